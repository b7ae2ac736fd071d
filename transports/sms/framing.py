"""Cut an SMPP byte stream into PDUs. Pure: bytes in, PDUs and errors out.

Three kinds of bad input, and what the framer does with each:

* a frame whose ``command_length`` is sane but whose body cannot be decoded (unknown
  command_id, truncated field, broken TLV): the frame is skipped by its length and a
  :class:`FrameError` with its sequence number is returned, so the caller answers
  ``generic_nack`` (ESME_RINVCMDID / ESME_RINVCMDLEN ...) and the stream goes on;
* a ``command_length`` below 16 or above ``max_length``: framing is lost. One
  :class:`FrameError` (ESME_RINVCMDLEN) is returned, then the framer drops octets until
  it sees a plausible header again (length in range and a command_id that SMPP 3.4
  defines), so a burst of garbage costs one generic_nack, not one per octet;
* a partial frame: kept until the rest arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from transports.sms.codec import HEADER, PduError, decode
from transports.sms.pdu import KNOWN_COMMAND_IDS, Pdu
from transports.sms.status import Status

DEFAULT_MAX_LENGTH = 64 * 1024


@dataclass(frozen=True)
class FrameError:
    """Undecodable input; answer ``generic_nack(sequence, status)``."""

    sequence: int
    command_id: int
    status: int
    reason: str


class Framer:
    """Incremental decoder for one connection's inbound byte stream."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_length = max_length
        self._resyncing = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Pdu | FrameError]:
        """Add received octets; return every PDU or error now complete, in order."""
        buf = self._buffer
        buf += data
        out: list[Pdu | FrameError] = []
        while True:
            if self._resyncing:
                start = self._find_header()
                if start is None:
                    del buf[: max(0, len(buf) - 15)]  # a header may start in the tail
                    break
                del buf[:start]
                self._resyncing = False
            if len(buf) < 4:
                break
            length = int.from_bytes(buf[0:4], "big")
            if not 16 <= length <= self._max_length:
                if len(buf) >= 16:
                    _, command_id, _, sequence = HEADER.unpack_from(buf)
                else:
                    command_id = sequence = 0
                out.append(
                    FrameError(
                        sequence,
                        command_id,
                        Status.ESME_RINVCMDLEN,
                        f"command_length {length} outside 16..{self._max_length}",
                    )
                )
                del buf[:1]
                self._resyncing = True
                continue
            if len(buf) < length:
                break
            frame = bytes(buf[:length])
            del buf[:length]
            try:
                out.append(decode(frame))
            except PduError as exc:
                out.append(FrameError(exc.sequence, exc.command_id, exc.status, exc.reason))
        return out

    def _find_header(self) -> int | None:
        buf = self._buffer
        for i in range(len(buf) - 15):
            length, command_id, status, _ = HEADER.unpack_from(buf, i)
            plausible = 16 <= length <= self._max_length and command_id in KNOWN_COMMAND_IDS
            if plausible and (command_id & 0x80000000 or status == 0):
                return i
        return None
