"""Reassembly of concatenated mobile-originated SMS. Pure: parts and ``now`` in, text out.

A long MO message arrives as several ``deliver_sm``; the part number travels in one of
three ways, all handled here:

* a UDH (``esm_class & 0x40``) with IEI 0x00 (8-bit reference) or 0x08 (16-bit);
* the SAR TLVs ``sar_msg_ref_num`` / ``sar_total_segments`` / ``sar_segment_seqnum``;
* a single ``message_payload`` TLV holding the whole text (nothing to reassemble).

The state is plain data: a :class:`Part` is a frozen record the caller can store in a
database row as is, and the functions take the stored parts back. So the caller owns
persistence (parts survive a restart) and this module owns the rules:

    part = part_from_deliver(pdu, now)        # None → not a concatenated part
    # store part; parts = load all parts with part.key
    msg = assemble(parts)                     # complete → a Message, else None
    # periodically, for each stored key:
    if is_expired(parts, now, timeout): msg = assemble(parts, force=True)

A part arriving again after its message was completed (SMSC redelivery) must not start
a new message: remember completed keys for the timeout and drop their parts.

:class:`Reassembler` is the same thing kept in memory, for callers that do not persist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from transports.sms.encoding import decode_text
from transports.sms.pdu import ShortMessage, Tag

ESM_UDHI = 0x40

PartKey = tuple[str, str, int, int]  # source, destination, reference, total


@dataclass(frozen=True)
class Part:
    """One received segment, ``payload`` without its UDH. Store and restore it as is."""

    source: str
    destination: str
    reference: int
    total: int
    seq: int
    data_coding: int
    payload: bytes
    received_at: float

    @property
    def key(self) -> PartKey:
        """Parts of one message share this key (the total is part of it, so a reused
        reference with a different size does not mix two messages)."""
        return (self.source, self.destination, self.reference, self.total)


@dataclass(frozen=True)
class Message:
    """A whole MO text. ``missing`` lists part numbers never received (timeout)."""

    source: str
    destination: str
    text: str
    parts: int
    missing: tuple[int, ...] = ()
    exact: bool = True  # False when a part's data_coding was unknown and guessed


@dataclass(frozen=True)
class Udh:
    """What the user data header says about concatenation (None fields: not present)."""

    length: int  # octets of the UDH including its length octet
    reference: int | None = None
    total: int | None = None
    seq: int | None = None


def parse_udh(data: bytes) -> Udh | None:
    """Parse the UDH at the start of ``data``; None when it is malformed."""
    if not data:
        return None
    udhl = data[0]
    if udhl + 1 > len(data):
        return None
    pos, end = 1, 1 + udhl
    found = Udh(length=end)
    while pos + 2 <= end:
        iei, iel = data[pos], data[pos + 1]
        if pos + 2 + iel > end:
            return None
        ie = data[pos + 2 : pos + 2 + iel]
        if iei == 0x00 and iel == 3:
            found = Udh(end, ie[0], ie[1], ie[2])
        elif iei == 0x08 and iel == 4:
            found = Udh(end, int.from_bytes(ie[0:2], "big"), ie[2], ie[3])
        pos += 2 + iel
    return found


def split_user_data(pdu: ShortMessage) -> tuple[bytes, Udh | None]:
    """The message bytes of ``pdu`` (payload TLV preferred) and its UDH if flagged (a
    deliver_sm, or a submit_sm as the fake SMSC's phones receive it)."""
    payload_tlv = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    data = payload_tlv.value if payload_tlv is not None else pdu.short_message
    if not pdu.esm_class & ESM_UDHI:
        return data, None
    udh = parse_udh(data)
    if udh is None:
        return data, None  # UDHI set but header broken: keep the bytes, show what we can
    return data[udh.length :], udh


def part_from_deliver(pdu: ShortMessage, now: float) -> Part:
    """The :class:`Part` a deliver_sm carries; a message in one piece is part 1 of 1."""
    body, udh = split_user_data(pdu)
    reference, total, seq = 0, 1, 1
    if udh is not None and udh.reference is not None and udh.total and udh.seq:
        reference, total, seq = udh.reference, udh.total, udh.seq
    else:
        ref_tlv = pdu.tlv(Tag.SAR_MSG_REF_NUM)
        total_tlv = pdu.tlv(Tag.SAR_TOTAL_SEGMENTS)
        seq_tlv = pdu.tlv(Tag.SAR_SEGMENT_SEQNUM)
        if ref_tlv and total_tlv and seq_tlv and total_tlv.as_int() and seq_tlv.as_int():
            reference, total, seq = ref_tlv.as_int(), total_tlv.as_int(), seq_tlv.as_int()
    if seq > total:  # nonsense numbering: treat it as a message on its own
        reference, total, seq = 0, 1, 1
    return Part(
        source=pdu.source_addr,
        destination=pdu.destination_addr,
        reference=reference,
        total=total,
        seq=seq,
        data_coding=pdu.data_coding,
        payload=body,
        received_at=now,
    )


def missing_note(seq: int, total: int) -> str:
    return f"[part {seq} of {total} missing]"


def assemble(parts: Iterable[Part], *, force: bool = False) -> Message | None:
    """The message the parts of one key make, or None while parts are missing.

    Duplicates (same part number) are ignored, the first one received wins. With
    ``force`` (after the timeout) the text is built from what arrived, with a
    :func:`missing_note` where each absent part would be. Consecutive parts in the same
    coding are decoded together, so a surrogate pair split across UCS-2 parts by a
    careless sender still comes out whole.
    """
    by_seq: dict[int, Part] = {}
    for part in sorted(parts, key=lambda p: p.received_at):
        by_seq.setdefault(part.seq, part)
    if not by_seq:
        return None
    first = next(iter(by_seq.values()))
    total = first.total
    missing = tuple(n for n in range(1, total + 1) if n not in by_seq)
    if missing and not force:
        return None
    chunks: list[str] = []
    exact = True
    run: list[Part] = []

    def flush() -> None:
        nonlocal exact
        if run:
            decoded = decode_text(b"".join(p.payload for p in run), run[0].data_coding)
            exact = exact and decoded.exact
            chunks.append(decoded.text)
            run.clear()

    for n in range(1, total + 1):
        present = by_seq.get(n)
        if present is None:
            flush()
            chunks.append(missing_note(n, total))
        else:
            if run and run[-1].data_coding != present.data_coding:
                flush()
            run.append(present)
    flush()
    return Message(first.source, first.destination, "".join(chunks), total, missing, exact)


def is_expired(parts: Sequence[Part], now: float, timeout: float) -> bool:
    """True once ``timeout`` seconds have passed since the first part of the key arrived."""
    return bool(parts) and now - min(p.received_at for p in parts) >= timeout


class Reassembler:
    """In-memory convenience around :func:`assemble` for callers without persistence."""

    def __init__(self, timeout: float, parts: Iterable[Part] = ()) -> None:
        self.timeout = timeout
        self._pending: dict[PartKey, list[Part]] = {}
        self._completed: dict[PartKey, float] = {}  # key → completion time, for late duplicates
        for part in parts:
            self._pending.setdefault(part.key, []).append(part)

    def add(self, part: Part) -> Message | None:
        """Add one part; the whole message once its last part arrived, else None.

        A duplicate is ignored, also when it arrives after its message was completed
        (for ``timeout`` seconds): it must not start a new, never-completed message.
        """
        done_at = self._completed.get(part.key)
        if done_at is not None and part.received_at - done_at < self.timeout:
            return None
        stored = self._pending.setdefault(part.key, [])
        if any(p.seq == part.seq for p in stored):
            return None
        stored.append(part)
        message = assemble(stored)
        if message is not None:
            del self._pending[part.key]
            self._completed[part.key] = part.received_at
        return message

    def expire(self, now: float) -> list[Message]:
        """Messages whose timeout passed, delivered with notes for the missing parts."""
        self._completed = {k: t for k, t in self._completed.items() if now - t < self.timeout}
        done: list[Message] = []
        for key in [k for k, v in self._pending.items() if is_expired(v, now, self.timeout)]:
            message = assemble(self._pending.pop(key), force=True)
            if message is not None:
                done.append(message)
        return done

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work, for the caller's timer."""
        firsts = [min(p.received_at for p in v) for v in self._pending.values() if v]
        return min(firsts) + self.timeout if firsts else None

    def pending_parts(self) -> list[Part]:
        """Every stored part (what a caller would persist)."""
        return [p for parts in self._pending.values() for p in parts]
