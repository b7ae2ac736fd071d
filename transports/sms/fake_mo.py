"""Mobile-originated deliver_sm as an SMSC would send them (for the fake SMSC). Pure."""

from __future__ import annotations

from typing import Literal

from transports.sms.encoding import concat_udh, encode_chars
from transports.sms.pdu import DeliverSm, Tag, Tlv

Split = Literal["udh", "udh16", "sar", "payload"]
_PART_OCTETS = {0: 153, 3: 134, 8: 134}


def mo_pdus(source: str, dest: str, text: str, *, coding: int, split: Split, ref: int) -> list[DeliverSm]:
    """``text`` encoded in ``coding`` (0, 3 or 8) as one or more deliver_sm (sequence 0).

    Long texts are cut on character boundaries and numbered with an 8-bit UDH
    (``udh``), a 16-bit UDH (``udh16``) or the SAR TLVs (``sar``); ``payload`` puts the
    whole text in one message_payload TLV.
    """
    chunks = _chunks(text, coding, 65000 if split == "payload" else _PART_OCTETS[coding])
    total = len(chunks)
    pdus: list[DeliverSm] = []
    for seq, chunk in enumerate(chunks, start=1):
        esm, body = 0, chunk
        tlvs: tuple[Tlv, ...] = ()
        if split == "payload":
            body, tlvs = b"", (Tlv(Tag.MESSAGE_PAYLOAD, chunk),)
        elif total > 1 and split == "udh":
            esm, body = 0x40, concat_udh(ref, total, seq) + chunk
        elif total > 1 and split == "udh16":
            esm, body = 0x40, bytes([6, 8, 4, 0x12, ref & 0xFF, total, seq]) + chunk
        elif total > 1:
            tlvs = (
                Tlv.of_int(Tag.SAR_MSG_REF_NUM, ref, 2),
                Tlv.of_int(Tag.SAR_TOTAL_SEGMENTS, total, 1),
                Tlv.of_int(Tag.SAR_SEGMENT_SEQNUM, seq, 1),
            )
        pdus.append(
            DeliverSm(
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=source,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=dest,
                esm_class=esm,
                data_coding=coding,
                short_message=body,
                tlvs=tlvs,
            )
        )
    return pdus


def _chunks(text: str, coding: int, octets: int) -> list[bytes]:
    """Encode ``text`` in ``coding`` and cut it on character boundaries."""
    chunks: list[bytes] = [b""]
    for encoded in encode_chars(text, coding):
        if len(chunks[-1]) + len(encoded) > octets:
            chunks.append(b"")
        chunks[-1] += encoded
    return chunks
