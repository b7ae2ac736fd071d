"""``MsnSession``: one MSN account logged in over asyncio (thin I/O around :mod:`.ns`).

``await session.login()`` runs the whole login (NS redirect, Passport, SYN) and raises a
:class:`LoginError` saying why it failed. Afterwards the session keeps itself alive: PNG/QNG,
and on a dropped connection a new login after a capped, jittered exponential backoff,
followed by a full :class:`ListSynced` so the caller can diff. ``OUT OTH`` (signed in
elsewhere) ends the session without reconnecting: fighting the other login would loop.

Events go to the ``on_event`` callback (sync or async); failures inside it are logged and do
not stop the session. Passwords and message bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from .chat import Chat, DeliveryResult, DeliveryStatus, JoinedWhileSending, SendFailed
from .errors import LoginFailure
from .login import LoginError, LoginParams, log_in
from .ns import NotificationConnection, NsState
from .ns_events import (
    CommandAccepted,
    CommandFailed,
    ConnectionLost,
    Contact,
    ContactPropertyChanged,
    Invited,
    ListChanged,
    ListSynced,
    NsEvent,
    OwnFriendlyNameChanged,
    PeerViolation,
    PersonalMessageChanged,
    PresenceChanged,
    ServerClosed,
    SignedOutElsewhere,
    SwitchboardGranted,
)
from .sb import MessageReceived, Switchboard, TypingReceived
from .status import ListBit, Status

__all__ = [
    "CommandError",
    "DeliveryResult",
    "DeliveryStatus",
    "Disconnected",
    "JoinedWhileSending",
    "LoginError",
    "MsnSession",
    "Reconnected",
    "SessionConfig",
    "SessionEvent",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionConfig:
    handle: str
    password: str = field(repr=False)
    ns_host: str = "messenger.hotmail.com"
    ns_port: int = 1863
    nexus_url: str = "https://nexus.passport.com/rdr/pprdr.asp"
    login_url: str | None = None  # overrides the DALogin the nexus advertises
    status: Status = Status.NLN
    personal_message: str | None = None
    caps: int = 0
    timeout: float = 20.0  # per network step (connect, HTTP, switchboard answer)
    login_timeout: float = 60.0
    ping_interval: float = 45.0
    chat_idle_timeout: float = 120.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0


class CommandError(Exception):
    """The server refused a list or profile command (``code`` is its numeric error)."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str
    reconnecting: bool


@dataclass(frozen=True, slots=True)
class Reconnected:
    attempts: int


SessionEvent = (
    ListSynced
    | PresenceChanged
    | PersonalMessageChanged
    | ListChanged
    | ContactPropertyChanged
    | OwnFriendlyNameChanged
    | MessageReceived
    | TypingReceived
    | JoinedWhileSending
    | SignedOutElsewhere
    | Disconnected
    | Reconnected
)
EventCallback = Callable[[SessionEvent], Awaitable[None] | None]
_LIVE_EVENTS = (
    PresenceChanged,
    PersonalMessageChanged,
    ListChanged,
    ContactPropertyChanged,
    OwnFriendlyNameChanged,
)


class MsnSession:
    """One logged-in MSN account; see the module docstring."""

    def __init__(
        self,
        config: SessionConfig,
        on_event: EventCallback,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self._on_event, self._rng, self._sleep = on_event, rng or random.Random(), sleep
        self._http, self._own_http = http, http is None
        self._ns: NotificationConnection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._waiters: dict[int, asyncio.Future[NsEvent]] = {}
        self._chats: dict[str, Chat] = {}
        self._status, self._psm = config.status, config.personal_message
        self._closing = False
        self._backlog: list[NsEvent] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.violations = 0  # input from the server that was dropped (logged, counted)
        self.presence: dict[str, Status] = {}

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # --- login -----------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in and start the background loop; raises :class:`LoginError`."""
        self._closing = False
        try:
            synced = await self._login_once()
        except LoginError:
            if self._own_http and self._http is not None:
                await self._http.close()
                self._http = None
            raise
        await self._emit(synced)
        self._run_task = asyncio.create_task(self._run())
        if self._idle_task is None:
            self._idle_task = asyncio.create_task(self._close_idle_chats())

    async def _login_once(self) -> ListSynced:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        cfg = self.config
        params = LoginParams(
            cfg.handle,
            cfg.password,
            cfg.ns_host,
            cfg.ns_port,
            cfg.nexus_url,
            cfg.login_url,
            self._status,
            cfg.caps,
            cfg.timeout,
            cfg.ping_interval,
        )
        try:
            async with asyncio.timeout(cfg.login_timeout):
                result = await log_in(params, self._http, self._now)
        except TimeoutError:
            raise LoginError(
                LoginFailure.UNREACHABLE, f"login did not finish within {cfg.login_timeout:g} s"
            ) from None
        self._ns, self._reader, self._writer = result.ns, result.reader, result.writer
        self._backlog = result.backlog
        if self._psm is not None:
            result.ns.set_personal_message(self._psm)
            self._flush()
        return result.synced

    # --- running ---------------------------------------------------------------------------

    async def _run(self) -> None:
        attempts = 0
        while True:
            try:
                reason = await self._read_ns()
            except Exception:
                log.exception("%s: notification server input could not be handled", self.config.handle)
                reason = "unreadable input from the notification server"
            if self._closing:
                return
            if isinstance(reason, SignedOutElsewhere):
                log.info("%s: signed in elsewhere; not reconnecting", self.config.handle)
                await self._drop_connection()
                await self._emit(reason)
                await self._emit(Disconnected("signed in from another location", False))
                return
            await self._drop_connection()
            await self._emit(Disconnected(reason, True))
            while not self._closing:
                delay = min(self.config.backoff_max, self.config.backoff_initial * 2 ** min(attempts, 30))
                delay *= 0.5 + self._rng.random() / 2
                attempts += 1
                await self._sleep(delay)
                try:
                    synced = await self._login_once()
                except LoginError as exc:
                    log.info("%s: re-login failed: %s", self.config.handle, exc.reason)
                    if exc.failure is LoginFailure.BAD_CREDENTIALS:
                        await self._emit(Disconnected(exc.reason, False))
                        return
                    continue
                await self._emit(synced)
                await self._emit(Reconnected(attempts))
                attempts = 0
                break

    async def _read_ns(self) -> str | SignedOutElsewhere:
        """Pump the NS connection until it ends; returns why."""
        ns, reader = self._ns, self._reader
        assert ns is not None and reader is not None
        events, self._backlog = self._backlog, []
        while True:
            for event in events:
                if isinstance(event, SignedOutElsewhere):
                    return event
                if isinstance(event, ConnectionLost | ServerClosed):
                    return event.reason
                await self._on_ns_event(event)
            self._flush()
            if ns.state is NsState.CLOSED:
                return "notification server connection closed"
            timer = ns.get_timer()
            timeout = None if timer is None else max(0.0, timer - self._now())
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                events = ns.handle_timer(self._now())
                continue
            except OSError as exc:
                return f"notification server connection failed: {exc}"
            if not data:
                return "notification server closed the connection"
            events = ns.receive_data(data, self._now())

    def _flush(self) -> None:
        if self._ns is not None and self._writer is not None and not self._writer.is_closing():
            data = self._ns.data_to_send()
            if data:
                self._writer.write(data)

    async def _on_ns_event(self, event: NsEvent) -> None:
        trid = getattr(event, "trid", None)
        if (
            isinstance(
                event,
                CommandFailed | CommandAccepted | SwitchboardGranted | ListChanged | OwnFriendlyNameChanged,
            )
            and trid in self._waiters
        ):
            waiter = self._waiters.pop(trid)
            if not waiter.done():
                waiter.set_result(event)
            if isinstance(event, CommandFailed | CommandAccepted | SwitchboardGranted):
                return
        if isinstance(event, PresenceChanged):
            self.presence[event.handle.lower()] = event.status
        if isinstance(event, Invited):
            # answered in the background so a slow switchboard never stalls the NS loop
            task = asyncio.create_task(self._accept_invitation(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, _LIVE_EVENTS):
            await self._emit(event)
        elif isinstance(event, CommandFailed):
            log.info("%s: server error %s for %s", self.config.handle, event.reason, event.command)
        elif isinstance(event, PeerViolation):
            self.violations += 1
            log.info("%s: dropped input from the notification server: %s", self.config.handle, event.reason)

    async def _drop_connection(self) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("notification server connection lost"))
        self._waiters.clear()
        if self._writer is not None:
            self._writer.close()
        self._ns = self._reader = self._writer = None
        self.presence.clear()
        chats, self._chats = list(self._chats.values()), {}
        await asyncio.gather(*(chat.close() for chat in chats))

    async def _emit(self, event: SessionEvent) -> None:
        try:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s: event callback failed on %s", self.config.handle, type(event).__name__)

    # --- commands --------------------------------------------------------------------------

    async def _command(self, send: Callable[[NotificationConnection], int | None]) -> NsEvent:
        ns = self._ns
        if ns is None or ns.state is not NsState.LIVE:
            raise ConnectionError("not connected to the notification server")
        trid = send(ns)
        if trid is None:
            raise CommandError("command not sent")
        waiter: asyncio.Future[NsEvent] = asyncio.get_running_loop().create_future()
        self._waiters[trid] = waiter
        self._flush()
        try:
            event = await asyncio.wait_for(waiter, self.config.timeout)
        finally:
            self._waiters.pop(trid, None)
        if isinstance(event, CommandFailed):
            raise CommandError(event.reason, event.code)
        return event

    def set_presence(self, status: Status, personal_message: str | None = None) -> None:
        """Change status (CHG, with caps) and, when given, the personal message (UUX)."""
        self._status = status
        ns = self._ns
        if personal_message is not None:
            self._psm = personal_message
        if ns is None or ns.state is not NsState.LIVE:
            return  # applied at the next login
        ns.set_status(status)
        if personal_message is not None:
            ns.set_personal_message(personal_message)
        self._flush()

    async def set_friendly_name(self, name: str) -> None:
        await self._command(lambda ns: ns.set_friendly_name(name))

    async def add_to_list(self, lst: ListBit, handle: str, friendly_name: str | None = None) -> ListChanged:
        """ADC, confirmed by the server's echo; raises :class:`CommandError` on refusal."""
        event = await self._command(lambda ns: ns.add_to_list(lst, handle, friendly_name))
        assert isinstance(event, ListChanged)
        return event

    async def remove_from_list(self, lst: ListBit, handle: str) -> ListChanged:
        """REM (by guid for FL), confirmed by the server's echo."""
        try:
            event = await self._command(lambda ns: ns.remove_from_list(lst, handle))
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        assert isinstance(event, ListChanged)
        return event

    @property
    def contacts(self) -> dict[str, Contact]:
        return self._ns.contacts if self._ns else {}

    async def _request_switchboard(self) -> SwitchboardGranted:
        try:
            event = await self._command(lambda ns: ns.request_switchboard())
        except (CommandError, ConnectionError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, CommandError) else None
            raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, f"no switchboard: {exc}", code)) from None
        assert isinstance(event, SwitchboardGranted)
        return event

    def _chat(self, handle: str) -> Chat:
        chat = self._chats.get(handle.lower())
        if chat is None:
            chat = Chat(
                self.config.handle,
                handle,
                self._emit,
                self._request_switchboard,
                timeout=self.config.timeout,
                clock=self._now,
            )
            self._chats[handle.lower()] = chat
        return chat

    async def send_message(self, handle: str, text: str) -> DeliveryResult:
        """Send ``text`` to ``handle`` over a (reused) switchboard; never raises."""
        if self._ns is None or self._ns.state is not NsState.LIVE:
            return DeliveryResult(DeliveryStatus.ERROR, "not connected")
        return await self._chat(handle).send(text)

    async def invite(self, handle: str, other: str) -> DeliveryResult:
        """Call ``other`` into the conversation with ``handle`` (a group conversation from
        then on; ``send_message`` to ``handle`` opens a new one-to-one switchboard)."""
        chat = self._chats.get(handle.lower())
        if chat is None:
            return DeliveryResult(DeliveryStatus.ERROR, f"no conversation with {handle}")
        return await chat.invite(other)

    async def say_in_group(self, handle: str, text: str) -> DeliveryResult:
        """Say ``text`` in the latest group conversation that ``handle`` is part of."""
        chat = self._chats.get(handle.lower())
        if chat is None:
            return DeliveryResult(DeliveryStatus.ERROR, f"no conversation with {handle}")
        return await chat.say_in_group(text)

    def send_typing(self, handle: str) -> None:
        """Typing notice, only on an open session with ``handle`` (none is opened for it)."""
        chat = self._chats.get(handle.lower())
        if chat is not None:
            chat.send_typing()

    async def end_chat(self, handle: str) -> None:
        """Leave the switchboard(s) with ``handle`` now (OUT) instead of at idle time."""
        chat = self._chats.pop(handle.lower(), None)
        if chat is not None:
            await chat.close()

    async def _accept_invitation(self, invite: Invited) -> None:
        sb = Switchboard.incoming(self.config.handle, invite.auth, invite.session_id)
        try:
            await self._chat(invite.caller).adopt_incoming(sb, invite.host, invite.port)
        except (OSError, TimeoutError) as exc:
            log.info("%s: could not answer %s's invitation: %s", self.config.handle, invite.caller, exc)

    async def _close_idle_chats(self) -> None:
        period = max(0.05, self.config.chat_idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            cutoff = self._now() - self.config.chat_idle_timeout
            for key, chat in list(self._chats.items()):
                if chat.last_used < cutoff and not chat.lock.locked():
                    del self._chats[key]
                    await chat.close()

    async def close(self) -> None:
        """Sign out (OUT) and stop everything."""
        self._closing = True
        if self._ns is not None:
            self._ns.close()
            self._flush()
        for task in (self._run_task, self._idle_task, *self._tasks):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._run_task = self._idle_task = None
        await self._drop_connection()
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None
