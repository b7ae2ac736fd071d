"""Delivery receipts (SMSC → ESME deliver_sm). Pure.

A receipt is a deliver_sm whose ``esm_class & 0x3C == 0x04``. Its text follows the
de-facto format of SMPP 3.4 appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E text:...

and many SMSCs also set ``receipted_message_id`` (0x001E) and ``message_state``
(0x0427). The TLVs win when both are present: they are structured, the text is not.

Message ids are opaque strings, but SMSCs are known to print in the receipt a
different rendering of the id they returned in submit_sm_resp: decimal instead of hex,
zero-padded, upper-case. :func:`normalise_message_id` gives the canonical form to store
next to a submitted message, :func:`message_id_candidates` the forms to look a
receipt's id up by, most likely first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from transports.sms.encoding import decode_text
from transports.sms.pdu import DeliverSm, Tag

ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04


class ReceiptState(StrEnum):
    ENROUTE = "ENROUTE"
    DELIVRD = "DELIVRD"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"
    UNDELIV = "UNDELIV"
    ACCEPTD = "ACCEPTD"
    UNKNOWN = "UNKNOWN"
    REJECTD = "REJECTD"

    @property
    def final(self) -> bool:
        return self not in (ReceiptState.ENROUTE, ReceiptState.ACCEPTD, ReceiptState.UNKNOWN)

    @property
    def failed(self) -> bool:
        return self in _FAILED


_FAILED = frozenset({ReceiptState.EXPIRED, ReceiptState.DELETED, ReceiptState.UNDELIV, ReceiptState.REJECTD})

# message_state TLV values (SMPP 3.4 section 5.2.28).
_MESSAGE_STATE = {
    1: ReceiptState.ENROUTE,
    2: ReceiptState.DELIVRD,
    3: ReceiptState.EXPIRED,
    4: ReceiptState.DELETED,
    5: ReceiptState.UNDELIV,
    6: ReceiptState.ACCEPTD,
    7: ReceiptState.UNKNOWN,
    8: ReceiptState.REJECTD,
}
MESSAGE_STATE_OF = {state: code for code, state in _MESSAGE_STATE.items()}

# Spellings seen in the wild for the stat: field.
_STAT_ALIASES = {
    "DELIVERED": ReceiptState.DELIVRD,
    "UNDELIVERABLE": ReceiptState.UNDELIV,
    "ACCEPTED": ReceiptState.ACCEPTD,
    "REJECTED": ReceiptState.REJECTD,
    "ENROUTE": ReceiptState.ENROUTE,
}

_KEYS = r"(?:id|sub|dlvrd|submit date|done date|stat|err)"
_FIELD = re.compile(
    rf"(?<!\S)(?P<key>{_KEYS})\s*:\s*(?P<value>.*?)(?=\s+{_KEYS}\s*:|$)",
    re.IGNORECASE | re.DOTALL,
)
_TEXT = re.compile(r"(?<!\S)text\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Receipt:
    """A parsed delivery receipt. ``message_id`` is normalised, ``raw_id`` as received."""

    message_id: str
    raw_id: str
    state: ReceiptState
    error: str | None = None
    submit_date: str | None = None
    done_date: str | None = None
    text: str = ""
    source: str = ""  # the handset the original message went to
    destination: str = ""  # the address the original message came from


def is_receipt(esm_class: int) -> bool:
    return esm_class & ESM_TYPE_MASK == ESM_DELIVERY_RECEIPT


def normalise_message_id(raw: str) -> str:
    """Canonical form of an id: trimmed, lower-case, without leading zeros."""
    cleaned = raw.strip().strip("\x00").lower()
    return cleaned.lstrip("0") or ("0" if cleaned else "")


def message_id_candidates(raw: str) -> tuple[str, ...]:
    """Normalised ids ``raw`` may stand for, most likely first.

    The id itself; then, if it is all digits, its hex rendering (receipt printed in
    decimal, submit_sm_resp in hex); then, if it is hex, its decimal rendering. Look
    them up in order and take the first hit: the exact form always wins.
    """
    canonical = normalise_message_id(raw)
    out = [canonical]
    if canonical.isdigit() and len(canonical) <= 20:
        out.append(format(int(canonical), "x"))
    if canonical and all(c in "0123456789abcdef" for c in canonical) and len(canonical) <= 16:
        out.append(str(int(canonical, 16)))
    return tuple(dict.fromkeys(out))


def ids_match(submitted: str, receipted: str) -> bool:
    """True when a receipt id may refer to the id returned by submit_sm_resp."""
    return normalise_message_id(submitted) in message_id_candidates(receipted)


def parse_receipt_text(text: str) -> dict[str, str]:
    """The ``key:value`` fields of a receipt text, keys lower-cased.

    ``text:`` is last and free-form (it is the start of the original message), so
    everything after it is its value, whatever it looks like; other keys: first wins.
    """
    fields: dict[str, str] = {}
    head = text
    marker = _TEXT.search(text)
    if marker is not None:
        head = text[: marker.start()]
        fields["text"] = text[marker.end() :].strip()
    for m in _FIELD.finditer(head):
        fields.setdefault(m["key"].lower(), m["value"].strip())
    return fields


def _state_from_text(stat: str | None) -> ReceiptState | None:
    if not stat:
        return None
    upper = stat.upper()
    try:
        return ReceiptState(upper)
    except ValueError:
        return _STAT_ALIASES.get(upper)


def parse_receipt(pdu: DeliverSm) -> Receipt | None:
    """The receipt ``pdu`` carries; None when it is not a receipt or names no id."""
    if not is_receipt(pdu.esm_class):
        return None
    payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    body = payload.value if payload is not None else pdu.short_message
    fields = parse_receipt_text(decode_text(body, pdu.data_coding).text)
    id_tlv = pdu.tlv(Tag.RECEIPTED_MESSAGE_ID)
    raw_id = id_tlv.as_cstring() if id_tlv is not None else fields.get("id", "")
    if not raw_id.strip():
        return None
    state_tlv = pdu.tlv(Tag.MESSAGE_STATE)
    state = _MESSAGE_STATE.get(state_tlv.as_int()) if state_tlv is not None else None
    state = state or _state_from_text(fields.get("stat")) or ReceiptState.UNKNOWN
    return Receipt(
        message_id=normalise_message_id(raw_id),
        raw_id=raw_id,
        state=state,
        error=fields.get("err"),
        submit_date=fields.get("submit date"),
        done_date=fields.get("done date"),
        text=fields.get("text", ""),
        source=pdu.source_addr,
        destination=pdu.destination_addr,
    )


def format_receipt_text(
    message_id: str, state: ReceiptState, *, submit_date: str, done_date: str, err: str = "000"
) -> str:
    """The appendix B text for a receipt (used by the fake SMSC)."""
    delivered = "001" if state is ReceiptState.DELIVRD else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submit_date} "
        f"done date:{done_date} stat:{state.value} err:{err} text:"
    )
