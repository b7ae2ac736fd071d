"""Per-contact switchboards for :class:`~.client.MsnSession` (thin asyncio around :mod:`.sb`).

One :class:`Chat` per contact: its switchboard is opened on the first message, reused, and
closed after ``idle_timeout`` seconds without traffic. Sends to one contact are serialised
(a lock), so they arrive in order. Before each part is sent the contact must be in the
session; if they left (BYE) they are called again, because a server ACKs and silently drops a
message to a departed peer. For the same reason a BYE seen *before* a part's ACK means that
part was dropped (the server handles one connection in order), and it is sent again.
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


Emit = Callable[[MessageReceived | TypingReceived], Awaitable[None]]
RequestSb = Callable[[], Awaitable[SwitchboardGranted]]


class _SbLink:
    """A switchboard state machine plus its socket and reader task."""

    def __init__(self, sb: Switchboard, chat: Chat) -> None:
        self.sb = sb
        self.chat = chat
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[SessionReady | SessionFailed] = asyncio.get_running_loop().create_future()

    async def open(self, host: str, port: int, timeout: float) -> None:
        reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
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

    async def close(self) -> None:
        self.sb.leave()
        self.flush()
        if self.writer is not None:
            self.writer.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    @property
    def usable(self) -> bool:
        return self.sb.state is SbState.READY and self.writer is not None and not self.writer.is_closing()


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
        self._waiters: dict[object, asyncio.Future[SbEvent]] = {}
        self._left_during: set[int] = set()  # message ids with a BYE before their ACK

    # --- events from the switchboard -------------------------------------------------------

    async def on_sb_event(self, link: _SbLink, event: SbEvent) -> None:
        self.last_used = self._clock()
        match event:
            case SessionReady() | SessionFailed():
                if not link.ready.done():
                    link.ready.set_result(event)
            case ParticipantJoined(handle=handle):
                self._resolve(("join", link, handle.lower()), event)
            case ParticipantLeft(handle=handle) if handle.lower() == self.contact.lower():
                if link is self.primary:
                    self._left_during.update(
                        k[1] for k in self._waiters if isinstance(k, tuple) and k[0] == "msg"
                    )
            case CallFailed(trid=trid):
                self._resolve(("cal", link, trid), event)
            case MessageAcked(message_id=mid) | MessageFailed(message_id=mid):
                self._resolve(("msg", mid), event)
            case MessageReceived() | TypingReceived():
                await self._emit(event)
            case _:
                log.debug("switchboard event for %s ignored: %s", self.contact, type(event).__name__)

    def on_link_closed(self, link: _SbLink) -> None:
        if link is self.primary:
            self.primary = None
            for key, waiter in list(self._waiters.items()):
                if not waiter.done():
                    waiter.set_exception(ConnectionError("switchboard connection closed"))
                del self._waiters[key]
        elif link in self.extra:
            self.extra.remove(link)

    def _resolve(self, key: object, event: SbEvent) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event)

    def _expect(self, key: object) -> asyncio.Future[SbEvent]:
        """Register interest in an event before the command that causes it is flushed."""
        waiter: asyncio.Future[SbEvent] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        return waiter

    async def _first(self, waiters: dict[object, asyncio.Future[SbEvent]]) -> SbEvent:
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
        if self.primary is not None and self.primary.usable:
            return self.primary
        granted = await self._request_sb()
        link = _SbLink(Switchboard.outgoing(self.me, granted.auth), self)
        self.primary = link
        try:
            await link.open(granted.host, granted.port, self._timeout)
        except (OSError, TimeoutError) as exc:
            self.primary = None
            raise SendFailed(
                DeliveryResult(
                    DeliveryStatus.ERROR, f"could not reach switchboard {granted.host}:{granted.port}: {exc}"
                )
            ) from None
        ready = await asyncio.wait_for(link.ready, self._timeout)
        if isinstance(ready, SessionFailed):
            raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, ready.reason, ready.code))
        return link

    async def _ensure_present(self, link: _SbLink) -> None:
        if link.sb.has(self.contact):
            return
        trid = link.sb.invite(self.contact)
        keys: list[object] = [("join", link, self.contact.lower()), ("cal", link, trid)]
        waiters = {key: self._expect(key) for key in keys}
        link.flush()
        event = await self._first(waiters)
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
        for _attempt in range(3):
            link = await self._ensure_switchboard()
            await self._ensure_present(link)
            mid = link.sb.send_message(chunk)
            key: object = ("msg", mid)
            waiters = {key: self._expect(key)}
            link.flush()
            event = await self._first(waiters)
            if isinstance(event, MessageFailed):
                status = DeliveryStatus.NAK if event.code is None else DeliveryStatus.ERROR
                raise SendFailed(DeliveryResult(status, event.reason, event.code))
            if mid not in self._left_during:
                return
            self._left_during.discard(mid)
            log.info("%s left before the ACK; calling them again", self.contact)
        raise SendFailed(DeliveryResult(DeliveryStatus.ERROR, "contact keeps leaving the chat"))

    def send_typing(self) -> bool:
        """Typing notice on an open session with the contact present; False if there is none."""
        link = self.primary
        if link is None or not link.usable or not link.sb.has(self.contact):
            return False
        link.sb.send_typing()
        link.flush()
        return True

    async def adopt_incoming(self, sb: Switchboard, host: str, port: int) -> None:
        """Answer an invitation (RNG) from this contact."""
        link = _SbLink(sb, self)
        await link.open(host, port, self._timeout)
        if self.primary is None or not self.primary.usable or not self.primary.sb.has(self.contact):
            old, self.primary = self.primary, link
            if old is not None:
                await old.close()
        else:
            self.extra.append(link)

    async def close(self) -> None:
        for link in [*self.extra, *([self.primary] if self.primary else [])]:
            await link.close()
        self.extra.clear()
        self.primary = None
