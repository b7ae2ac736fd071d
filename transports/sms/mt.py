"""Mobile-terminated messages: text and addresses → the submit_sm PDUs to send. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from transports.sms.encoding import encode_within
from transports.sms.pdu import SubmitSm

ESM_UDHI = 0x40
TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
NPI_UNKNOWN, NPI_E164 = 0, 1


@dataclass(frozen=True)
class SmppAddress:
    ton: int
    npi: int
    addr: str


def smpp_address(address: str) -> SmppAddress:
    """``+33612345678`` → TON 1/NPI 1 ``33612345678``; digits (short code) → TON 0/NPI 1;
    anything else is an alphanumeric sender id (TON 5, at most 11 characters)."""
    if address.startswith("+") and address[1:].isdigit():
        return SmppAddress(TON_INTERNATIONAL, NPI_E164, address[1:])
    if address.isdigit():
        return SmppAddress(TON_UNKNOWN, NPI_E164, address)
    if not address or len(address) > 11:
        raise ValueError(f"{address!r} is neither a number nor an alphanumeric sender id (1-11 chars)")
    return SmppAddress(TON_ALPHANUMERIC, NPI_UNKNOWN, address)


def build_submits(
    source: str,
    destination: str,
    text: str,
    *,
    ref: int,
    max_parts: int,
    transliterate_typography: bool = False,
    registered_delivery: int = 1,
) -> list[SubmitSm]:
    """One submit_sm per SMS part (UDH concatenation, 8-bit ``ref``), receipts requested.

    Raises :class:`~transports.sms.encoding.MessageTooLong` past ``max_parts`` and
    ValueError for an unusable address. Sequence numbers are assigned by the ESME.
    """
    encoded = encode_within(text, max_parts, transliterate_typography=transliterate_typography)
    src, dst = smpp_address(source), smpp_address(destination)
    esm_class = ESM_UDHI if encoded.parts > 1 else 0
    return [
        SubmitSm(
            source_addr_ton=src.ton,
            source_addr_npi=src.npi,
            source_addr=src.addr,
            dest_addr_ton=dst.ton,
            dest_addr_npi=dst.npi,
            destination_addr=dst.addr,
            esm_class=esm_class,
            registered_delivery=registered_delivery,
            data_coding=encoded.data_coding,
            short_message=short_message,
        )
        for short_message in encoded.short_messages(ref)
    ]
