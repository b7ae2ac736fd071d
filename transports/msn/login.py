"""The login sequence of :class:`~.client.MsnSession`: NS connection(s), Passport, SYN.

Kept apart from the session's run loop: this is the part that turns every way a login can go
wrong into one :class:`LoginError` whose ``failure`` tells the gateway what to tell the user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from . import nexus
from .errors import LoginFailure
from .ns import NotificationConnection
from .ns_events import ListSynced, LoggedIn, LoginFailed, NeedTicket, NsEvent, Redirected
from .status import Status

log = logging.getLogger(__name__)
MAX_REDIRECTS = 3


class LoginError(Exception):
    """The login did not succeed; ``failure`` is the kind, ``reason`` a loggable sentence."""

    def __init__(self, failure: LoginFailure, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.failure, self.reason, self.code = failure, reason, code


@dataclass(frozen=True)
class LoginParams:
    handle: str
    password: str
    ns_host: str
    ns_port: int
    nexus_url: str
    login_url: str | None
    status: Status
    caps: int
    timeout: float
    ping_interval: float


@dataclass
class LoginResult:
    ns: NotificationConnection
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    synced: ListSynced
    backlog: list[NsEvent]  # events that came in the same read after the list


async def log_in(params: LoginParams, http: aiohttp.ClientSession, now: Callable[[], float]) -> LoginResult:
    """Connect (following XFR NS redirects), authenticate and sync; raises LoginError."""
    host, port = params.ns_host, params.ns_port
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), params.timeout)
        except (OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise LoginError(
                LoginFailure.UNREACHABLE, f"could not connect to {host}:{port}: {detail}"
            ) from None
        ns = NotificationConnection(
            params.handle, status=params.status, caps=params.caps, ping_interval=params.ping_interval
        )
        ns.start()
        writer.write(ns.data_to_send())
        try:
            result = await _drive(params, http, now, ns, reader, writer, f"{host}:{port}")
        except BaseException:
            writer.close()
            raise
        if isinstance(result, Redirected):
            writer.close()
            log.info("%s: redirected to %s:%d", params.handle, result.host, result.port)
            host, port = result.host, result.port
            continue
        return result
    raise LoginError(LoginFailure.PROTOCOL, "too many XFR NS redirects")


async def _drive(
    params: LoginParams,
    http: aiohttp.ClientSession,
    now: Callable[[], float],
    ns: NotificationConnection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    where: str,
) -> LoginResult | Redirected:
    while True:
        try:
            data = await reader.read(65536)
        except OSError as exc:
            raise LoginError(LoginFailure.UNREACHABLE, f"{where}: {exc}") from None
        if not data:
            raise LoginError(
                LoginFailure.SERVER_ERROR, f"{where} closed the connection during login ({ns.state.value})"
            )
        events = ns.receive_data(data, now())
        for index, event in enumerate(events):
            match event:
                case NeedTicket(challenge=challenge):
                    try:
                        ticket = await nexus.get_ticket(
                            http,
                            params.nexus_url,
                            params.handle,
                            params.password,
                            challenge,
                            login_url=params.login_url,
                            timeout=params.timeout,
                        )
                    except nexus.NexusError as exc:
                        raise LoginError(exc.failure, exc.reason) from None
                    ns.supply_ticket(ticket)
                case LoginFailed(failure=failure, reason=reason, code=code):
                    raise LoginError(failure, reason, code)
                case Redirected():
                    return event
                case LoggedIn():
                    log.info("%s: logged in, syncing the list", params.handle)
                case ListSynced():
                    writer.write(ns.data_to_send())
                    return LoginResult(ns, reader, writer, event, events[index + 1 :])
                case _:
                    pass
        writer.write(ns.data_to_send())
