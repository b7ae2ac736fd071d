"""MSNP command framing: bytes in, commands out; commands in, bytes out (no I/O).

A command is one CRLF-terminated line of space-separated words. A few commands are followed by
a payload whose length, in **bytes**, is the line's last word (``MSG a b 123\\r\\n<123 bytes>``).
Which commands carry a payload, and which have a transaction id, depends on the direction, so
a :class:`Parser` is built for one side of the connection.

Guards: a line longer than ``max_line`` or a payload bigger than ``max_payload`` is reported as
a :class:`ProtocolViolation` and skipped without being buffered, so a hostile peer cannot make
us allocate more than the caps. Arguments are decoded as UTF-8 with replacement (they are
ASCII or URL-encoded on the wire); payloads stay bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, unquote

MAX_LINE = 16 * 1024
MAX_PAYLOAD = 256 * 1024


class Direction(Enum):
    """Which side wrote the bytes being parsed."""

    FROM_SERVER = "from-server"  # we are the client
    FROM_CLIENT = "from-client"  # we are the (fake) server


# Commands followed by a <len>-byte payload, per direction.
SERVER_PAYLOAD_COMMANDS = frozenset(
    {"MSG", "UBX", "UUX", "NOT", "GCF", "IPG", "ADL", "RML", "FQY", "UBN", "UBM", "NFY", "SDG"}
)
CLIENT_PAYLOAD_COMMANDS = frozenset(
    {"MSG", "UUX", "QRY", "ADL", "RML", "FQY", "UUN", "UUM", "PUT", "DEL", "SDG", "PAG"}
)
# Server commands whose first argument is *not* a transaction id even when it is numeric.
SERVER_NO_TRID = frozenset(
    {
        "MSG",
        "UBX",
        "NLN",
        "FLN",
        "BYE",
        "JOI",
        "RNG",
        "LST",
        "LSG",
        "BPR",
        "QNG",
        "OUT",
        "NOT",
        "IPG",
        "UBN",
        "UBM",
        "NFY",
        "SBS",
    }
)
CLIENT_NO_TRID = frozenset({"PNG", "OUT"})


@dataclass(frozen=True, slots=True)
class Command:
    """One command line, with its payload when the command carries one."""

    name: str
    trid: int | None
    args: tuple[str, ...] = ()
    payload: bytes | None = None

    def arg(self, index: int, default: str = "") -> str:
        """The argument at ``index``, or ``default`` when the line is shorter."""
        return self.args[index] if index < len(self.args) else default

    def to_bytes(self) -> bytes:
        """The wire form; a payload gets its byte length appended as the last word."""
        return encode(self.name, self.trid, *self.args, payload=self.payload)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A numeric error reply such as ``911 4``: ``code`` about the command with ``trid``."""

    code: int
    trid: int | None
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer sent something unframeable; it was skipped. ``excerpt`` is at most 80 bytes."""

    reason: str
    excerpt: bytes = b""


Frame = Command | ErrorReply | ProtocolViolation


def _is_decimal(word: str) -> bool:
    return word.isascii() and word.isdigit()


class Parser:
    """Incremental parser: ``feed()`` any chunk, get back every complete frame in it."""

    def __init__(
        self,
        direction: Direction = Direction.FROM_SERVER,
        *,
        max_line: int = MAX_LINE,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        self._direction = direction
        if direction is Direction.FROM_SERVER:
            self._payload_names, self._no_trid = SERVER_PAYLOAD_COMMANDS, SERVER_NO_TRID
        else:
            self._payload_names, self._no_trid = CLIENT_PAYLOAD_COMMANDS, CLIENT_NO_TRID
        self._max_line = max_line
        self._max_payload = max_payload
        self._buf = bytearray()
        self._pending: tuple[str, int | None, tuple[str, ...], int] | None = None
        self._skip = 0  # payload bytes still to discard after an oversized payload
        self._discarding_line = False  # inside an over-long line, until its LF

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return the frames completed by it, in order."""
        out: list[Frame] = []
        self._buf += data
        buf = self._buf
        pos = 0  # what is before it is consumed; cut once at the end (a SYN is ~1,000 lines a read)
        try:
            while True:
                if self._skip:
                    n = min(self._skip, len(buf) - pos)
                    pos += n
                    self._skip -= n
                    if self._skip:
                        return out
                if self._pending is not None:
                    name, trid, args, length = self._pending
                    if len(buf) - pos < length:
                        return out
                    payload = bytes(buf[pos : pos + length])
                    pos += length
                    self._pending = None
                    out.append(Command(name, trid, args, payload))
                    continue
                nl = buf.find(b"\n", pos)
                if self._discarding_line:
                    if nl < 0:
                        pos = len(buf)
                        return out
                    pos = nl + 1
                    self._discarding_line = False
                    continue
                if nl < 0:
                    if len(buf) - pos > self._max_line:
                        out.append(ProtocolViolation("line too long", bytes(buf[pos : pos + 80])))
                        pos = len(buf)
                        self._discarding_line = True
                    return out
                if nl - pos > self._max_line:
                    out.append(ProtocolViolation("line too long", bytes(buf[pos : pos + 80])))
                    pos = nl + 1
                    continue
                line = bytes(buf[pos:nl]).rstrip(b"\r")
                pos = nl + 1
                frame = self._parse_line(line)
                if frame is not None:
                    out.append(frame)
        finally:
            del buf[:pos]

    def _parse_line(self, line: bytes) -> Frame | None:
        words = line.decode("utf-8", errors="replace").split()
        if not words:
            return None  # blank lines are tolerated
        name = words[0]
        if _is_decimal(name) and len(name) == 3:
            err_trid = int(words[1]) if len(words) > 1 and _is_decimal(words[1]) else None
            return ErrorReply(int(name), err_trid, tuple(words[2:]))
        if not name.isascii() or not name.isalnum():
            return ProtocolViolation("bad command name", line[:80])
        name = name.upper()
        rest = words[1:]
        trid: int | None = None
        if name not in self._no_trid and rest and _is_decimal(rest[0]) and len(rest[0]) < 10:
            trid = int(rest[0])
            rest = rest[1:]
        if name not in self._payload_names:
            return Command(name, trid, tuple(rest))
        if not rest or not _is_decimal(rest[-1]):
            return ProtocolViolation(f"{name} without a payload length", line[:80])
        length = int(rest[-1])
        args = tuple(rest[:-1])
        if length > self._max_payload:
            self._skip = length
            return ProtocolViolation(f"{name} payload of {length} bytes over the cap", line[:80])
        self._pending = (name, trid, args, length)
        return None


def encode(name: str, trid: int | None, *args: str, payload: bytes | None = None) -> bytes:
    """Serialise one command. Raises ValueError on a word that would break the framing."""
    words = [name] if trid is None else [name, str(trid)]
    words.extend(args)
    for word in words:
        if not word or any(c in word for c in " \r\n\t"):
            raise ValueError(f"cannot put {word!r} in an MSNP command word")
    if payload is not None:
        words.append(str(len(payload)))
        return (" ".join(words) + "\r\n").encode("utf-8") + payload
    return (" ".join(words) + "\r\n").encode("utf-8")


# Friendly names travel percent-encoded (UTF-8). Keep the common punctuation readable, as MSN
# clients do; spaces, '%' and control characters must always be encoded.
_SAFE = "@!$'()*,;:/?[]~-_."


def url_encode(text: str) -> str:
    """Percent-encode a friendly name or group name for a command word."""
    return quote(text, safe=_SAFE)


def url_decode(word: str) -> str:
    """Decode a percent-encoded word; invalid UTF-8 becomes U+FFFD rather than an error."""
    if "%" not in word:
        return word  # most names and guids: nothing to decode
    return unquote(word, encoding="utf-8", errors="replace")
