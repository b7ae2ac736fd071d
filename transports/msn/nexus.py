"""Passport 1.4 ("TWN") login over HTTP: turn a challenge from ``USR … TWN S`` into a ticket.

1. GET the nexus URL; its ``PassportURLs`` header names the login server (``DALogin=…``).
2. GET that URL with ``Authorization: Passport1.4 OrgVerb=GET,OrgURL=…,sign-in=…,pwd=…,<c>``.
3. 200 → ``Authentication-Info: … from-PP='<ticket>'``; 401 → wrong handle or password.

``login_url`` replaces the advertised DALogin: servers advertise what their own config says
(seen: ``https://127.0.0.1/login`` while the login endpoint was plain HTTP on the nexus host).
Every failure is a :class:`NexusError` naming the URL involved. The password never appears in
an error or a log line.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, urljoin

import aiohttp

from .errors import LoginFailure

log = logging.getLogger(__name__)

ORG_URL = "http%3A%2F%2Fmessenger%2Emsn%2Ecom"
_MAX_REDIRECTS = 3


class NexusError(Exception):
    """The Passport step failed; ``failure`` says how, ``url`` where."""

    def __init__(self, failure: LoginFailure, reason: str, url: str | None = None) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason
        self.url = url


def parse_passport_urls(header: str) -> dict[str, str]:
    """``DARealm=…,DALogin=…,DAReg=…`` → a dict (values untouched)."""
    out: dict[str, str] = {}
    for item in header.split(","):
        key, eq, value = item.strip().partition("=")
        if eq:
            out[key.strip()] = value.strip()
    return out


def absolute_login_url(dalogin: str, nexus_url: str) -> str:
    """DALogin as an absolute URL (Microsoft's was ``login.passport.com/login2.srf``)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", dalogin):
        return dalogin
    if dalogin.startswith("/"):
        return urljoin(nexus_url, dalogin)
    return "https://" + dalogin


def parse_ticket(auth_info: str) -> str | None:
    """The ticket in ``from-PP='…'`` of an Authentication-Info header, if present."""
    match = re.search(r"from-PP='([^']*)'", auth_info)
    match = match or re.search(r"from-PP=([^,\s]+)", auth_info)
    return match.group(1) if match else None


def authorization(handle: str, password: str, challenge: str) -> str:
    """The Authorization header value for the login server."""
    return (
        f"Passport1.4 OrgVerb=GET,OrgURL={ORG_URL},sign-in={quote(handle, safe='')},"
        f"pwd={quote(password, safe='')},{challenge}"
    )


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str]]:
    try:
        async with http.get(
            url,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            await resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        detail = str(exc)[:200] or type(exc).__name__
        reason = f"could not reach {url}: {detail}"
        raise NexusError(LoginFailure.UNREACHABLE, reason, url) from None


async def discover_login_url(http: aiohttp.ClientSession, nexus_url: str, timeout: float) -> str:
    """Ask the nexus where the login server is."""
    status, headers = await _get(http, nexus_url, {}, timeout)
    if status != 200 or "passporturls" not in headers:
        raise NexusError(
            LoginFailure.SERVER_ERROR,
            f"nexus {nexus_url} answered HTTP {status} without a PassportURLs header",
            nexus_url,
        )
    dalogin = parse_passport_urls(headers["passporturls"]).get("DALogin")
    if not dalogin:
        raise NexusError(LoginFailure.SERVER_ERROR, f"nexus {nexus_url} gave no DALogin", nexus_url)
    return absolute_login_url(dalogin, nexus_url)


async def get_ticket(
    http: aiohttp.ClientSession,
    nexus_url: str,
    handle: str,
    password: str,
    challenge: str,
    *,
    login_url: str | None = None,
    timeout: float = 15.0,
) -> str:
    """Log ``handle`` in to Passport and return the ticket for ``USR … TWN S``."""
    url = login_url or await discover_login_url(http, nexus_url, timeout)
    headers = {"Authorization": authorization(handle, password, challenge)}
    for _ in range(_MAX_REDIRECTS + 1):
        log.debug("passport login for %s at %s", handle, url)
        status, resp_headers = await _get(http, url, headers, timeout)
        if status in (301, 302, 303, 307, 308) and "location" in resp_headers:
            url = urljoin(url, resp_headers["location"])
            continue
        if status == 401:
            raise NexusError(
                LoginFailure.BAD_CREDENTIALS, f"login server {url} rejected the handle or password", url
            )
        if status != 200:
            raise NexusError(LoginFailure.SERVER_ERROR, f"login server {url} answered HTTP {status}", url)
        ticket = parse_ticket(resp_headers.get("authentication-info", ""))
        if not ticket:
            raise NexusError(
                LoginFailure.PROTOCOL, f"login server {url} answered 200 without a from-PP ticket", url
            )
        return ticket
    raise NexusError(LoginFailure.SERVER_ERROR, f"too many redirects, last at {url}", url)
