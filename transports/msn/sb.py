"""A switchboard (one chat session) as a sans-I/O state machine.

Outgoing: ``USR t <me> <auth>`` → ``USR t OK`` → ``CAL t <who>`` → ``CAL t RINGING <id>`` →
``JOI <who>``. Incoming (after an ``RNG``): ``ANS t <me> <auth> <id>`` → ``IRO …`` per
participant → ``ANS t OK``. Participants are tracked through JOI/IRO/BYE because a server ACKs
and silently drops a message sent after the peer left: callers must check
:meth:`Switchboard.has` before trusting an ACK.

States: CONNECTING --USR OK / ANS OK--> READY --leave()/refusal--> CLOSED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .codec import Command, Direction, ErrorReply, Parser, encode, url_decode
from .errors import describe
from .payload import DEFAULT_FORMAT, TextPayload, TypingPayload, build_typing, parse_message
from .payload import split_text as split_payloads


class SbState(Enum):
    CONNECTING = "connecting"
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionReady:
    """We are in the session; ``participants`` are those already there (incoming case)."""

    participants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The switchboard refused our USR/ANS (e.g. ``911`` for a stale auth cookie)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ringing:
    trid: int
    session_id: str


@dataclass(frozen=True, slots=True)
class ParticipantJoined:
    handle: str
    friendly_name: str
    initial: bool = False  # from IRO, i.e. already there when we answered


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    handle: str
    idle: bool = False  # ``BYE <who> 1``: the server closed an idle session


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A text message. ``others`` are the participants besides the sender and us when it
    arrived (lower-cased handles): not empty, it was said in a group conversation."""

    sender: str
    sender_name: str
    text: str
    im_format: str | None = None
    others: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TypingReceived:
    handle: str


@dataclass(frozen=True, slots=True)
class PayloadIgnored:
    """A MSG we do not act on (nudge, ink, P2P…)."""

    sender: str
    content_type: str


@dataclass(frozen=True, slots=True)
class MessageAcked:
    """Every part of message ``message_id`` was ACKed."""

    message_id: int


@dataclass(frozen=True, slots=True)
class MessageFailed:
    """A part was NAKed (``code`` None) or refused with an error code."""

    message_id: int
    reason: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """``CAL`` refused; code 217 means the contact is offline (or hidden)."""

    trid: int
    handle: str
    code: int
    reason: str

    @property
    def offline(self) -> bool:
        return self.code == 217


@dataclass(frozen=True, slots=True)
class SbViolation:
    reason: str


SbEvent = (
    SessionReady
    | SessionFailed
    | Ringing
    | ParticipantJoined
    | ParticipantLeft
    | MessageReceived
    | TypingReceived
    | PayloadIgnored
    | MessageAcked
    | MessageFailed
    | CallFailed
    | SbViolation
)


class Switchboard:
    """One switchboard connection for ``handle`` (our own account)."""

    def __init__(self, handle: str) -> None:
        self.handle = handle
        self.state = SbState.CONNECTING
        self.session_id: str | None = None
        self._parser = Parser(Direction.FROM_SERVER)
        self._out = bytearray()
        self._trid = 0
        self._participants: dict[str, str] = {}  # lower-cased handle -> friendly name
        self._calls: dict[int, str] = {}  # CAL trid -> handle
        self._parts: dict[int, int] = {}  # MSG trid -> message id
        self._remaining: dict[int, int] = {}  # message id -> parts not yet ACKed
        self._next_message_id = 0

    @classmethod
    def outgoing(cls, handle: str, auth: str) -> Switchboard:
        """A session we open after ``XFR SB`` gave us ``auth``."""
        sb = cls(handle)
        sb._send("USR", handle, auth)
        return sb

    @classmethod
    def incoming(cls, handle: str, auth: str, session_id: str) -> Switchboard:
        """A session we were invited to by ``RNG``."""
        sb = cls(handle)
        sb.session_id = session_id
        sb._send("ANS", handle, auth, session_id)
        return sb

    def _send(self, name: str, *args: str, payload: bytes | None = None) -> int:
        self._trid += 1
        self._out += encode(name, self._trid, *args, payload=payload)
        return self._trid

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    @property
    def participants(self) -> frozenset[str]:
        """Lower-cased handles of the other people currently in the session."""
        return frozenset(self._participants)

    def has(self, handle: str) -> bool:
        return handle.lower() in self._participants

    # --- commands ---------------------------------------------------------------------------

    def invite(self, handle: str) -> int:
        """``CAL``: answered by :class:`Ringing` then :class:`ParticipantJoined`, or
        :class:`CallFailed`."""
        self._require_ready()
        trid = self._send("CAL", handle)
        self._calls[trid] = handle
        return trid

    def send_message(self, text: str, im_format: str = DEFAULT_FORMAT) -> int:
        """Send ``text`` as one or more ``MSG t A`` (split at 1664 bytes); returns a message id
        later reported by :class:`MessageAcked` or :class:`MessageFailed`."""
        self._require_ready()
        self._next_message_id += 1
        message_id = self._next_message_id
        parts = split_payloads(text, im_format=im_format)
        for payload in parts:
            self._parts[self._send("MSG", "A", payload=payload)] = message_id
        self._remaining[message_id] = len(parts)
        return message_id

    def send_typing(self) -> None:
        """``MSG t U`` typing notification (no acknowledgement)."""
        self._require_ready()
        self._send("MSG", "U", payload=build_typing(self.handle))

    def leave(self) -> None:
        """``OUT``; the session is over for us."""
        if self.state is not SbState.CLOSED:
            self._out += b"OUT\r\n"
        self.state = SbState.CLOSED

    def _require_ready(self) -> None:
        if self.state is not SbState.READY:
            raise RuntimeError(f"switchboard is {self.state.value}, not ready")

    # --- incoming ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[SbEvent]:
        events: list[SbEvent] = []
        for frame in self._parser.feed(data):
            if isinstance(frame, Command):
                events += self._on_command(frame)
            elif isinstance(frame, ErrorReply):
                events += self._on_error(frame)
            else:
                events.append(SbViolation(frame.reason))
        return events

    def _on_error(self, err: ErrorReply) -> list[SbEvent]:
        trid = err.trid or 0
        if self.state is SbState.CONNECTING:
            self.state = SbState.CLOSED
            return [SessionFailed(err.code, describe(err.code))]
        if trid in self._calls:
            return [CallFailed(trid, self._calls.pop(trid), err.code, describe(err.code))]
        if trid in self._parts:
            message_id = self._parts.pop(trid)
            return self._fail(message_id, describe(err.code), err.code)
        return [SbViolation(f"error {describe(err.code)} for unknown trid {err.trid}")]

    def _fail(self, message_id: int, reason: str, code: int | None) -> list[SbEvent]:
        if self._remaining.pop(message_id, None) is None:
            return []  # already reported; replies to its other parts are dropped as they come
        return [MessageFailed(message_id, reason, code)]

    def _on_command(self, cmd: Command) -> list[SbEvent]:
        match cmd.name:
            case "USR" | "ANS" if cmd.arg(0) == "OK":
                self.state = SbState.READY
                return [SessionReady(tuple(self._participants))]
            case "IRO":
                # IRO t <index> <count> <handle> <name> [caps]
                return self._joined(cmd.arg(2), cmd.arg(3), initial=True)
            case "JOI":
                return self._joined(cmd.arg(0), cmd.arg(1), initial=False)
            case "CAL" if cmd.arg(0) == "RINGING":
                self._calls.pop(cmd.trid or 0, None)
                self.session_id = cmd.arg(1) or self.session_id
                return [Ringing(cmd.trid or 0, cmd.arg(1))]
            case "BYE":
                self._participants.pop(cmd.arg(0).lower(), None)
                return [ParticipantLeft(cmd.arg(0), idle=cmd.arg(1) == "1")]
            case "ACK":
                message_id = self._parts.pop(cmd.trid or 0, None)
                if message_id is None or message_id not in self._remaining:
                    return []
                self._remaining[message_id] -= 1
                if self._remaining[message_id] > 0:
                    return []
                del self._remaining[message_id]
                return [MessageAcked(message_id)]
            case "NAK":
                message_id = self._parts.pop(cmd.trid or 0, None)
                if message_id is None:
                    return []
                return self._fail(message_id, "not delivered (NAK)", None)
            case "MSG":
                return [self._on_msg(cmd)]
            case "OUT":
                self.state = SbState.CLOSED
                return []
        return [SbViolation(f"unexpected {cmd.name}")]

    def _joined(self, handle: str, name: str, *, initial: bool) -> list[SbEvent]:
        if not handle:
            return [SbViolation("participant without a handle")]
        friendly = url_decode(name or handle)
        self._participants[handle.lower()] = friendly
        return [ParticipantJoined(handle, friendly, initial)]

    def _on_msg(self, cmd: Command) -> SbEvent:
        sender, name = cmd.arg(0), url_decode(cmd.arg(1, cmd.arg(0)))
        parsed = parse_message(cmd.payload or b"")
        if isinstance(parsed, TextPayload):
            others = tuple(sorted(p for p in self._participants if p != sender.lower()))
            return MessageReceived(sender, name, parsed.text, parsed.im_format, others)
        if isinstance(parsed, TypingPayload):
            return TypingReceived(parsed.handle or sender)
        return PayloadIgnored(sender, parsed.content_type)
