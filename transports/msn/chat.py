"""Per-contact switchboards for :class:`~.client.MsnSession` (thin asyncio around :mod:`.sb`).

One :class:`Chat` per contact: its switchboard is opened on the first message, reused, and
closed after ``idle_timeout`` seconds without traffic. Sends to one contact are serialised
(a lock), so they arrive in order. Before each part is sent the contact must be in the
session; if they left (BYE) they are called again, because a server ACKs and silently drops a
message to a departed peer. For the same reason a BYE seen *before* a part's ACK means that
part was dropped (the server handles one connection in order), and it is sent again.

A switchboard is a one-to-one conversation only while nobody but the contact has joined
it: any participant may CAL a third person in, and a MSG goes to *every* other participant.
From the first JOI/IRO of anyone else the switchboard is "shared": it is no longer used to
send to the contact (the next message opens a new one-to-one switchboard), its typing
notices are dropped, and its messages carry their other participants
(:attr:`~.sb.MessageReceived.others`) so they can be shown as said in a group. One race is
left, and counted (:class:`JoinedWhileSending`): a part sent before the JOI reached us but
relayed after the server let the newcomer in reaches them too; we can tell, because its ACK
comes after the JOI (the server handles one connection in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from .ns_events import SwitchboardGranted
from .payload import split_text_chunks
from .sb import (
    CallFailed,
    MessageAcked,
    MessageFailed,
    MessageReceived,
    ParticipantJoined,
    ParticipantLeft,
    SbEvent,
    SbState,
    SessionFailed,
    SessionReady,
    Switchboard,
    TypingReceived,
)

log = logging.getLogger(__name__)


class DeliveryStatus(Enum):
    ACKED = "acked"  # the server ACKed every part while the contact was in the session
    OFFLINE = "offline"  # 217: the contact is offline or hidden
    NAK = "nak"  # the server NAKed a part
    ERROR = "error"  # anything else; ``reason`` says what


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status: DeliveryStatus
    reason: str = ""
    code: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is DeliveryStatus.ACKED


class SendFailed(Exception):
    """Internal: a send step failed with ``result``."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.reason)
        self.result = result


class _LinkReplaced(Exception):
    """Internal: the switchboard a send was using is no longer the chat's primary (the
    contact's own invitation replaced it, or it closed before anything was sent on it)."""


@dataclass(frozen=True, slots=True)
class JoinedWhileSending:
    """``newcomer`` joined the switchboard of a one-to-one conversation with ``contact``
    while a part of ours still waited for its ACK there: that part may have reached the
    newcomer too (the race the module docstring describes). Counted, never shown."""

    contact: str
    newcomer: str


SEND_ROUNDS = 5  # calls of one part to the contact (they left, or the switchboard was replaced)
LEAVE_DRAIN_S = 1.0  # after OUT, how long to read what the server relayed before it saw it


Emit = Callable[[MessageReceived | TypingReceived | JoinedWhileSending], Awaitable[None]]
RequestSb = Callable[[], Awaitable[SwitchboardGranted]]
_Key = tuple[str, "_SbLink", object]  # (what, the link it is awaited on, handle/trid/message id)


class _SbLink:
    """A switchboard state machine plus its socket and reader task."""

    def __init__(self, sb: Switchboard, chat: Chat) -> None:
        self.sb = sb
        self.chat = chat
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[SessionReady | SessionFailed] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.shared = False  # someone besides the contact joined: never sent on for the contact

    async def open(self, host: str, port: int, timeout: float) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        if self.closed:  # closed (replaced) while connecting: nothing to say on it
            writer.close()
            return
        self.writer = writer
        self.flush()
        self.task = asyncio.create_task(self._read(reader))

    def flush(self) -> None:
        data = self.sb.data_to_send()
        if data and self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                events = self.sb.receive_data(data)
                self.flush()
                for event in events:
                    await self.chat.on_sb_event(self, event)
        except (ConnectionError, OSError):
            pass
        finally:
            self.sb.state = SbState.CLOSED
            if not self.ready.done():
                self.ready.set_result(SessionFailed(0, "switchboard connection closed"))
            self.chat.on_link_closed(self)

    async def close(self, drain: float = 0.0) -> None:
        """Leave (OUT) and close. With ``drain``, what the server relayed before it saw the
        OUT is still read and passed on (it ACKed it to the sender), for up to ``drain``
        seconds, until the server closes the connection."""
        self.closed = True
        if not self.ready.done():  # a send waiting for USR/ANS OK goes on at once
            self.ready.set_result(SessionFailed(0, "switchboard connection closed"))
        self.sb.leave()
        self.flush()
        reader = self.task if self.task is not asyncio.current_task() else None
        if drain and reader is not None and self.writer is not None and not self.writer.is_closing():
            await asyncio.wait({reader}, timeout=drain)
        if self.writer is not None:
            self.writer.close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    @property
    def usable(self) -> bool:
        return self.sb.state is SbState.READY and self.writer is not None and not self.writer.is_closing()

    @property
    def alive(self) -> bool:
        """Ready or still answering USR/ANS (not closed)."""
        closing = self.writer is not None and self.writer.is_closing()
        return self.sb.state is not SbState.CLOSED and not closing


class Chat:
    """Everything about talking to one contact."""

    def __init__(
        self,
        me: str,
        contact: str,
        emit: Emit,
        request_sb: RequestSb,
        *,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self.me, self.contact = me, contact
        self._emit, self._request_sb = emit, request_sb
        self._timeout, self._clock = timeout, clock
        self.primary: _SbLink | None = None
        self.extra: list[_SbLink] = []  # incoming sessions we only receive on
        self.lock = asyncio.Lock()
        self.last_used = clock()
        self._waiters: dict[_Key, asyncio.Future[SbEvent]] = {}
        self._left_during: set[_Key] = set()  # ("msg", link, id) of messages with a BYE before their ACK

    # --- events from the switchboard -------------------------------------------------------

    async def on_sb_event(self, link: _SbLink, event: SbEvent) -> None:
        self.last_used = self._clock()
        match event:
            case SessionReady() | SessionFailed():
                if not link.ready.done():
                    link.ready.set_result(event)
            case ParticipantJoined(handle=handle):
                self._resolve(("join", link, handle.lower()), event)
                if handle.lower() not in (self.contact.lower(), self.me.lower()):
                    await self._became_shared(link, handle)
            case ParticipantLeft(handle=handle) if handle.lower() == self.contact.lower():
                self._left_during.update(k for k in self._waiters if k[0] == "msg" and k[1] is link)
            case CallFailed(trid=trid):
                self._resolve(("cal", link, trid), event)
            case MessageAcked(message_id=mid) | MessageFailed(message_id=mid):
                self._resolve(("msg", link, mid), event)
            case TypingReceived() if link.shared:
                pass  # typing in a group conversation is not typing to us
            case MessageReceived() | TypingReceived():
                await self._emit(event)
            case _:
                log.debug("switchboard event for %s ignored: %s", self.contact, type(event).__name__)

    async def _became_shared(self, link: _SbLink, newcomer: str) -> None:
        """``newcomer`` (not the contact) is in ``link``: it is a group conversation from now
        on, kept only to receive on. A send on it goes on on a new switchboard (its next
        step sees the link is no longer the primary); parts already sent wait for their ACK."""
        was_shared, link.shared = link.shared, True
        if link is self.primary:
            self.primary = None
            self.extra.append(link)
        if not was_shared and any(key[0] == "msg" and key[1] is link for key in self._waiters):
            log.info("%s joined the switchboard with %s while a message waited for its ACK; it may "
                     "have reached them too", newcomer, self.contact)  # fmt: skip
            await self._emit(JoinedWhileSending(self.contact, newcomer))

    def on_link_closed(self, link: _SbLink) -> None:
        """Whatever link closed (primary, replaced or extra), nothing waits on it any more."""
        if link is self.primary:
            self.primary = None
        elif link in self.extra:
            self.extra.remove(link)
        self._fail_waiters(link, ConnectionError("switchboard connection closed"))

    def _fail_waiters(self, link: _SbLink, exc: Exception) -> None:
        for key, waiter in list(self._waiters.items()):
            if key[1] is link:
                if not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # the sender reads one of its waiters, not all: no warning
                del self._waiters[key]

    def _resolve(self, key: _Key, event: SbEvent) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event)

    def _expect(self, key: _Key) -> asyncio.Future[SbEvent]:
        """Register interest in an event before the command that causes it is flushed."""
        waiter: asyncio.Future[SbEvent] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        return waiter

    async def _first(self, waiters: dict[_Key, asyncio.Future[SbEvent]]) -> SbEvent:
        try:
            done, _ = await asyncio.wait(
                waiters.values(), timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                reason = f"no answer from the switchboard in {self._timeout:g} s"
                raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, reason))
            return done.pop().result()
        finally:
            for key in waiters:
                self._waiters.pop(key, None)

    # --- sending ---------------------------------------------------------------------------

    async def _ensure_switchboard(self) -> _SbLink:
        """The primary switchboard, ready; a new one is asked for when there is none."""
        link = self.primary
        if link is None or not link.alive:
            link = await self._open_outgoing()
        ready = await self._wait_ready(link)
        if link is not self.primary:
            raise _LinkReplaced
        if isinstance(ready, SessionFailed):
            raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, ready.reason, ready.code))
        return link

    async def _open_outgoing(self) -> _SbLink:
        granted = await self._request_sb()
        if self.primary is not None and self.primary.alive:
            return self.primary  # the contact's invitation came while we asked: use it
        link = _SbLink(Switchboard.outgoing(self.me, granted.auth), self)
        self.primary = link
        try:
            await link.open(granted.host, granted.port, self._timeout)
        except (OSError, TimeoutError) as exc:
            if self.primary is link:
                self.primary = None
            reason = f"could not reach switchboard {granted.host}:{granted.port}: {exc}"
            raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, reason)) from None
        return link

    async def _wait_ready(self, link: _SbLink) -> SessionReady | SessionFailed:
        """The link's USR/ANS answer (the future may be shared with a concurrent adopt)."""
        done, _ = await asyncio.wait({link.ready}, timeout=self._timeout)
        if not done:
            reason = f"no answer from the switchboard in {self._timeout:g} s"
            raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, reason))
        return link.ready.result()

    async def _ensure_present(self, link: _SbLink) -> None:
        if link.sb.has(self.contact):
            return
        if not link.usable:
            raise _LinkReplaced  # closed under us before anything was sent: call again
        trid = link.sb.invite(self.contact)
        keys: list[_Key] = [("join", link, self.contact.lower()), ("cal", link, trid)]
        waiters = {key: self._expect(key) for key in keys}
        link.flush()
        try:
            event = await self._first(waiters)
        except ConnectionError:
            raise _LinkReplaced from None  # no message was sent on it: safe to call again
        if isinstance(event, CallFailed):
            status = DeliveryStatus.OFFLINE if event.offline else DeliveryStatus.ERROR
            raise SendFailed(DeliveryResult(status, event.reason, event.code))

    async def send(self, text: str) -> DeliveryResult:
        """Deliver ``text`` (split if long), in order with earlier sends to this contact."""
        async with self.lock:
            self.last_used = self._clock()
            try:
                for chunk in split_text_chunks(text):
                    await self._send_chunk(chunk)
            except SendFailed as failed:
                return failed.result
            except ConnectionError as exc:
                return DeliveryResult(DeliveryStatus.ERROR, str(exc))
            finally:
                self.last_used = self._clock()
            return DeliveryResult(DeliveryStatus.ACKED)

    async def _send_chunk(self, chunk: str) -> None:
        for _round in range(SEND_ROUNDS):
            try:
                if await self._send_once(chunk):
                    return
                log.info("%s left before the ACK; calling them again", self.contact)
            except _LinkReplaced:
                log.debug("switchboard with %s replaced or closed before the message; again", self.contact)
        raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, "the chat with the contact kept breaking"))

    async def _send_once(self, chunk: str) -> bool:
        """One part on the primary switchboard with the contact present; False when they
        left before its ACK (the server then dropped it)."""
        link = await self._ensure_switchboard()
        await self._ensure_present(link)
        if link is not self.primary or not link.usable:
            raise _LinkReplaced
        key: _Key = ("msg", link, link.sb.send_message(chunk))
        waiters = {key: self._expect(key)}
        link.flush()
        try:
            event = await self._first(waiters)
        finally:
            left = key in self._left_during
            self._left_during.discard(key)
        if isinstance(event, MessageFailed):
            status = DeliveryStatus.NAK if event.code is None else DeliveryStatus.ERROR
            raise SendFailed(DeliveryResult(status, event.reason, event.code))
        return not left

    def send_typing(self) -> bool:
        """Typing notice on an open session with the contact present; False if there is none."""
        link = self.primary
        if link is None or not link.usable or not link.sb.has(self.contact):
            return False
        link.sb.send_typing()
        link.flush()
        return True

    async def invite(self, handle: str) -> DeliveryResult:
        """``CAL`` ``handle`` into the one-to-one switchboard with the contact, making it a
        group conversation (what scripted MSN users in the tests do; the gateway itself
        never does). Later sends to the contact go on a new switchboard."""
        async with self.lock:
            link = self.primary
            if link is None or not link.usable or not link.sb.has(self.contact):
                reason = f"no conversation with {self.contact} to invite into"
                return DeliveryResult(DeliveryStatus.ERROR, reason)
            trid = link.sb.invite(handle)
            keys: list[_Key] = [("join", link, handle.lower()), ("cal", link, trid)]
            waiters = {key: self._expect(key) for key in keys}
            link.flush()
            try:
                event = await self._first(waiters)
            except SendFailed as failed:
                return failed.result
            except (ConnectionError, _LinkReplaced) as exc:
                return DeliveryResult(DeliveryStatus.ERROR, str(exc) or "the conversation ended")
            if isinstance(event, CallFailed):
                status = DeliveryStatus.OFFLINE if event.offline else DeliveryStatus.ERROR
                return DeliveryResult(status, event.reason, event.code)
            return DeliveryResult(DeliveryStatus.ACKED)

    async def say_in_group(self, text: str) -> DeliveryResult:
        """Say ``text`` (one part) in the most recent group conversation this chat knows
        (explicitly: nothing else ever sends on a shared switchboard)."""
        async with self.lock:
            link = next((lk for lk in reversed(self.extra) if lk.shared and lk.usable), None)
            if link is None:
                return DeliveryResult(DeliveryStatus.ERROR, f"no group conversation with {self.contact}")
            key: _Key = ("msg", link, link.sb.send_message(text))
            waiters = {key: self._expect(key)}
            link.flush()
            try:
                event = await self._first(waiters)
            except SendFailed as failed:
                return failed.result
            except ConnectionError as exc:
                return DeliveryResult(DeliveryStatus.ERROR, str(exc))
            if isinstance(event, MessageFailed):
                return DeliveryResult(DeliveryStatus.NAK, event.reason, event.code)
            return DeliveryResult(DeliveryStatus.ACKED)

    async def adopt_incoming(self, sb: Switchboard, host: str, port: int) -> None:
        """Answer an invitation (RNG) from this contact."""
        link = _SbLink(sb, self)
        await link.open(host, port, self._timeout)
        if self.primary is None or not self.primary.usable or not self.primary.sb.has(self.contact):
            old, self.primary = self.primary, link
            if old is not None:  # a send waiting on it goes on at once on the new one
                self._fail_waiters(old, _LinkReplaced())
                await old.close()
        else:
            self.extra.append(link)

    async def close(self) -> None:
        """Leave every switchboard with the contact, reading what was already relayed."""
        links = [*self.extra, *([self.primary] if self.primary else [])]
        await asyncio.gather(*(link.close(LEAVE_DRAIN_S) for link in links))
        self.extra.clear()
        self.primary = None
