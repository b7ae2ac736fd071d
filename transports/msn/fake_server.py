"""A fake MSN server on loopback, for tests and demos: NS, switchboard and Passport (HTTP).

It speaks MSNP12 the way ``docs``/msnp.md describes a real community server: TWN login
through an HTTP nexus, SYN with LSG/LST/BPR, presence to watchers allowed by AL/BLP and not
BL, UUX→UBX, ADC/REM with the reverse-list notices (a reverse add stays on PL until the
user's ``REM PL``, live or not), multi-party switchboards (any participant may CAL a third
one in; JOI to all, one IRO per participant, MSG to every other) with RNG/ANS/IRO/JOI/BYE,
ACK-then-drop for a MSG to a departed peer, connection closed for a MSG payload over 1664
bytes, ``OUT OTH`` to an older session.

From a test::

    server = await FakeMsnServer.start(users=[{"handle": "alice@example.com", ...}])
    ...  # server.ns_port, server.nexus_url, server.login_url
    server.refuse_logins(600, duration=5)   # faults
    await server.drop_connections("alice@example.com")
    await server.stop()

From a shell: ``python -m transports.msn.fake_server --ns-port 1863 --http-port 8080
--users users.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .codec import url_encode
from .fake_directory import Directory, FakeUser
from .fake_ns import NsConnection
from .fake_sb import SbConnection, SbSession
from .payload import build_psm
from .status import ListBit, Status

log = logging.getLogger(__name__)


class FakeMsnServer:
    """Use :meth:`start`; every attribute below may be changed by a test at run time."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.dialects: tuple[str, ...] = ("MSNP12",)
        self.redirect_first_login = False
        self.advertised_login_url: str | None = None
        self.qng_seconds = 60
        self.reply_delay = 0.0
        self.forced_217: set[str] = set()
        self.messages: list[tuple[str, tuple[str, ...], bytes]] = []  # sender, recipients, body
        self.ns_port = self.ns_alt_port = self.sb_port = self.http_port = 0
        self.sb_sessions: dict[str, SbSession] = {}
        self.sb_tokens: dict[str, tuple[str, str | None]] = {}
        self._ns: dict[str, NsConnection] = {}  # lower handle -> current authenticated conn
        self._all_ns: set[NsConnection] = set()
        self._all_sb: set[SbConnection] = set()
        self._tickets: dict[str, str] = {}  # ticket -> lower handle
        self._redirected: set[str] = set()
        self._refusal: tuple[int, float] | None = None
        self._session_ids = itertools.count(11752013)
        self._servers: list[asyncio.Server] = []
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- life cycle ----------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        users: Iterable[Mapping[str, Any]] = (),
        *,
        directory: Directory | None = None,
        dialects: Iterable[str] = ("MSNP12",),
        redirect_first_login: bool = False,
        advertised_login_url: str | None = None,
        host: str = "127.0.0.1",
        ns_port: int = 0,
        http_port: int = 0,
        sb_port: int = 0,
    ) -> FakeMsnServer:
        """Listen on loopback (port 0 = any free port) and return the running server."""
        directory = directory or Directory()
        directory.load_json({"users": list(users)})
        self = cls(directory)
        self.dialects = tuple(dialects)
        self.redirect_first_login = redirect_first_login
        ns = await asyncio.start_server(lambda r, w: self._accept_ns(r, w, False), host, ns_port)
        alt = await asyncio.start_server(lambda r, w: self._accept_ns(r, w, True), host, 0)
        sb = await asyncio.start_server(self._accept_sb, host, sb_port)
        self._servers = [ns, alt, sb]
        self.ns_port = ns.sockets[0].getsockname()[1]
        self.ns_alt_port = alt.sockets[0].getsockname()[1]
        self.sb_port = sb.sockets[0].getsockname()[1]
        app = web.Application()
        app.router.add_get("/rdr/pprdr.asp", self._nexus)
        app.router.add_get("/login2.srf", self._login)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, http_port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        self.advertised_login_url = advertised_login_url
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        await self.drop_connections()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def redirected_handles(self) -> frozenset[str]:
        """Handles that were sent an ``XFR NS`` (lower-cased)."""
        return frozenset(self._redirected)

    @property
    def nexus_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/rdr/pprdr.asp"

    @property
    def login_url(self) -> str:
        """Where the login endpoint really is (what ``login_url`` overrides should name)."""
        return f"http://127.0.0.1:{self.http_port}/login2.srf"

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_ns(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, alt: bool) -> None:
        conn = NsConnection(self, r, w, alternate=alt)
        self._all_ns.add(conn)
        await conn.run()

    async def _accept_sb(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conn = SbConnection(self, r, w)
        self._all_sb.add(conn)
        try:
            await conn.run()
        finally:
            self._all_sb.discard(conn)

    # --- fault controls -------------------------------------------------------------------

    def refuse_logins(self, code: int, duration: float) -> None:
        """Answer ``USR … I`` with error ``code`` for the next ``duration`` seconds."""
        self._refusal = (code, asyncio.get_running_loop().time() + duration)

    def force_217(self, handle: str, enabled: bool = True) -> None:
        """Make every CAL to ``handle`` fail with 217, whatever its presence."""
        (self.forced_217.add if enabled else self.forced_217.discard)(handle.lower())

    async def drop_connections(self, handle: str | None = None) -> None:
        """Abort connections (all, or one user's NS and SB ones) without a goodbye."""
        for conn in list(self._all_ns) + list(self._all_sb):
            if handle is None or (conn.user and conn.user.key == handle.lower()):
                conn.closed = True
                conn.writer.transport.abort()
        await asyncio.sleep(0)

    # --- hooks used by the NS and SB connections ------------------------------------------

    def login_refusal(self) -> int | None:
        if self._refusal and asyncio.get_running_loop().time() < self._refusal[1]:
            return self._refusal[0]
        return None

    def should_redirect(self, handle: str, *, alternate: bool) -> bool:
        if not self.redirect_first_login or alternate or handle.lower() in self._redirected:
            return False
        self._redirected.add(handle.lower())
        return True

    def check_ticket(self, handle: str, ticket: str) -> FakeUser | None:
        token = ticket[2:] if ticket.startswith("t=") else ticket
        token = token.split("&", 1)[0]
        if self._tickets.get(token) != handle.lower():
            return None
        del self._tickets[token]
        return self.directory.get(handle)

    def ns_of(self, handle: str) -> NsConnection | None:
        conn = self._ns.get(handle.lower())
        return conn if conn is not None and not conn.closed else None

    def ns_authenticated(self, conn: NsConnection) -> None:
        assert conn.user is not None
        older = self._ns.get(conn.user.key)
        self._ns[conn.user.key] = conn
        if older is not None and older is not conn:
            older.send("OUT", None, "OTH")
            older.close()

    def ns_disconnected(self, conn: NsConnection) -> None:
        self._all_ns.discard(conn)
        user = conn.user
        if user is None or self._ns.get(user.key) is not conn:
            return  # never logged in, or superseded by a newer login
        del self._ns[user.key]
        user.status = Status.FLN
        self.broadcast_presence(user)

    def watched_by(self, user: FakeUser) -> list[FakeUser]:
        """Registered users that ``user`` has on its forward list."""
        found = (self.directory.get(k) for k, e in user.lists.items() if e.mask & ListBit.FL)
        return [u for u in found if u is not None]

    def _watchers(self, user: FakeUser) -> list[NsConnection]:
        out = []
        for key, conn in self._ns.items():
            if (
                conn.user
                and conn.first_chg_done
                and not conn.closed
                and key != user.key
                and conn.user.mask_for(user.handle) & ListBit.FL
            ):
                out.append(conn)
        return out

    def broadcast_presence(self, user: FakeUser) -> None:
        """Tell every watcher what they can now see of ``user`` (only when it changed)."""
        for conn in self._watchers(user):
            self.show_presence(conn, user)

    def show_presence(self, conn: NsConnection, user: FakeUser) -> None:
        conn.show_presence(user)

    def broadcast_psm(self, user: FakeUser) -> None:
        for conn in self._watchers(user):
            if conn.user and user.visible_status(conn.user.handle) is not Status.FLN:
                conn.send("UBX", None, user.handle, payload=build_psm(user.psm))

    def added_to_forward_list(self, user: FakeUser, other: FakeUser) -> None:
        other_ns = self.ns_of(other.handle)
        back = other.entry(user.handle)
        if not back.mask & ListBit.RL:
            # Pending (PL, RL hidden) until they answer with REM PL, whether they are told
            # now or not: real servers list a live add as pending at every later login too.
            back.mask |= ListBit.PL
        if other_ns is not None:
            other_ns.send("ADC", 0, "RL", f"N={user.handle}", f"F={url_encode(user.friendly_name)}")
        mine = self.ns_of(user.handle)
        if mine is not None and mine.first_chg_done:
            self.show_presence(mine, other)

    def removed_from_forward_list(self, user: FakeUser, other: FakeUser) -> None:
        other.entry(user.handle).mask &= ~(ListBit.RL | ListBit.PL)
        other.prune()
        other_ns = self.ns_of(other.handle)
        if other_ns is not None:
            other_ns.send("REM", 0, "RL", user.handle)
        mine = self.ns_of(user.handle)
        if mine is not None:
            mine.last_seen.pop(other.key, None)

    def new_sb_token(self, handle: str, session_id: str | None = None) -> str:
        token = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"
        self.sb_tokens[token] = (handle, session_id)
        return token

    def new_sb_session(self) -> SbSession:
        session = SbSession(str(next(self._session_ids)))
        self.sb_sessions[session.id] = session
        return session

    def record_message(self, sender: str, recipients: list[str], payload: bytes) -> None:
        self.messages.append((sender, tuple(recipients), payload))

    # --- HTTP: nexus and login server -----------------------------------------------------

    async def _nexus(self, request: web.Request) -> web.Response:
        dalogin = self.advertised_login_url or self.login_url
        urls = f"DARealm=Passport.Net,DALogin={dalogin},DAReg=http://127.0.0.1/reg"
        return web.Response(text="", headers={"PassportURLs": urls})

    async def _login(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        fields: dict[str, str] = {}
        for item in header.removeprefix("Passport1.4").strip().split(","):
            key, _, value = item.partition("=")
            fields[key.strip()] = value
        user = self.directory.get(unquote(fields.get("sign-in", "")))
        if user is None or user.password != unquote(fields.get("pwd", "")):
            return web.Response(
                status=401, headers={"WWW-Authenticate": "Passport1.4 da-status=failed,srealm=Passport.NET"}
            )
        token = secrets.token_urlsafe(18)
        self._tickets[token] = user.key
        info = (
            f"Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,"
            f"from-PP='t={token}&p={secrets.token_urlsafe(12)}',ru=http://messenger.msn.com"
        )
        return web.Response(text="", headers={"Authentication-Info": info})


async def _serve(args: argparse.Namespace) -> None:
    directory = Directory.from_file(args.users) if args.users else Directory()
    server = await FakeMsnServer.start(
        directory=directory,
        dialects=args.dialects.split(","),
        ns_port=args.ns_port,
        http_port=args.http_port,
        sb_port=args.sb_port,
        redirect_first_login=args.redirect,
    )
    print(
        f"fake MSN server: NS 127.0.0.1:{server.ns_port} SB {server.sb_port} nexus {server.nexus_url}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake MSNP12 server for tests and demos")
    parser.add_argument("--ns-port", type=int, default=1863)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--sb-port", type=int, default=0)
    parser.add_argument("--users", help="JSON file of users and their lists")
    parser.add_argument("--dialects", default="MSNP12")
    parser.add_argument("--redirect", action="store_true", help="XFR NS on each first login")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
