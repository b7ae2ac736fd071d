"""PDU codec and stream framer (transports/sms/pdu.py, codec.py, framing.py)."""

from __future__ import annotations

import struct

import pytest
import smpp34
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.sms.codec import PduError, decode, encode
from transports.sms.framing import FrameError, Framer
from transports.sms.pdu import (
    AlertNotification,
    Bind,
    BindMode,
    BindResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
)
from transports.sms.status import Status, status_name

FAST = settings(derandomize=True, max_examples=120, deadline=None)

seqs = st.integers(min_value=1, max_value=0x7FFFFFFF)
u8 = st.integers(min_value=0, max_value=255)
status = st.integers(min_value=0, max_value=0xFFFFFFFF)


def cstr(max_len: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=max_len)


tlvs = st.lists(
    st.builds(Tlv, st.integers(min_value=0, max_value=0xFFFF), st.binary(max_size=40)), max_size=4
).map(tuple)

sm_fields = {
    "sequence": seqs,
    "service_type": cstr(5),
    "source_addr_ton": u8,
    "source_addr_npi": u8,
    "source_addr": cstr(20),
    "dest_addr_ton": u8,
    "dest_addr_npi": u8,
    "destination_addr": cstr(20),
    "esm_class": u8,
    "protocol_id": u8,
    "priority_flag": u8,
    "schedule_delivery_time": cstr(16),
    "validity_period": cstr(16),
    "registered_delivery": u8,
    "replace_if_present_flag": u8,
    "data_coding": u8,
    "sm_default_msg_id": u8,
    "short_message": st.binary(max_size=254),
    "tlvs": tlvs,
}

pdus: st.SearchStrategy[Pdu] = st.one_of(
    st.builds(SubmitSm, **sm_fields),
    st.builds(DeliverSm, **sm_fields),
    st.builds(
        Bind,
        mode=st.sampled_from(BindMode),
        sequence=seqs,
        system_id=cstr(15),
        password=cstr(8),
        system_type=cstr(12),
        interface_version=u8,
        addr_ton=u8,
        addr_npi=u8,
        address_range=cstr(40),
    ),
    st.builds(
        BindResp,
        mode=st.sampled_from(BindMode),
        sequence=seqs,
        status=status,
        tlvs=tlvs,
        system_id=cstr(15).filter(bool),
    ),
    st.builds(SubmitSmResp, sequence=seqs, status=status, message_id=cstr(64).filter(bool)),
    st.builds(DeliverSmResp, sequence=seqs, status=status, message_id=cstr(64).filter(bool)),
    st.builds(Unbind, sequence=seqs),
    st.builds(UnbindResp, sequence=seqs, status=status),
    st.builds(EnquireLink, sequence=seqs),
    st.builds(EnquireLinkResp, sequence=seqs, status=status),
    st.builds(GenericNack, sequence=seqs, status=status),
    st.builds(
        AlertNotification,
        sequence=seqs,
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(64),
        esme_addr_ton=u8,
        esme_addr_npi=u8,
        esme_addr=cstr(64),
        tlvs=tlvs,
    ),
)


@FAST
@given(pdus)
def test_encode_decode_round_trip(pdu: Pdu) -> None:
    frame = encode(pdu)
    assert struct.unpack(">I", frame[:4])[0] == len(frame)
    assert decode(frame) == pdu


@FAST
@given(st.lists(pdus, min_size=1, max_size=6), st.data())
def test_framer_reassembles_any_chunking(items: list[Pdu], data: st.DataObject) -> None:
    stream = b"".join(encode(p) for p in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = Framer()
    out: list[Pdu | FrameError] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += framer.feed(stream[start:end])
    assert out == items
    assert framer.buffered == 0


@FAST
@given(st.binary(max_size=400))
def test_framer_never_raises_on_garbage(garbage: bytes) -> None:
    framer = Framer()
    items = framer.feed(garbage) + framer.feed(encode(EnquireLink(sequence=42)))
    assert all(isinstance(i, FrameError) or type(i).__module__ == "transports.sms.pdu" for i in items)
    assert framer.buffered <= 64 * 1024


def test_matches_smpp34_byte_for_byte() -> None:
    """Differential check against an independent codec (smpp34's Rust core)."""
    ours = SubmitSm(
        sequence=7, source_addr="33612345678", source_addr_ton=1, source_addr_npi=1,
        destination_addr="33698765432", dest_addr_ton=1, dest_addr_npi=1, esm_class=0x40,
        registered_delivery=1, data_coding=8, short_message=b"\x05\x00\x03\x01\x02\x01\x00h",
        tlvs=(Tlv(Tag.SAR_MSG_REF_NUM, b"\x00\x01"), Tlv(0x1401, b"vendor")),
    )  # fmt: skip
    theirs = smpp34.SubmitSm(
        "33612345678", "33698765432", b"\x05\x00\x03\x01\x02\x01\x00h", sequence_number=7,
        source_addr_ton=1, source_addr_npi=1, dest_addr_ton=1, dest_addr_npi=1, esm_class=0x40,
        registered_delivery=1, data_coding=8,
        tlvs=[smpp34.Tlv(0x020C, b"\x00\x01"), smpp34.Tlv(0x1401, b"vendor")],
    )  # fmt: skip
    assert encode(ours) == theirs.encode()
    back = smpp34.decode(encode(ours))
    assert isinstance(back, smpp34.SubmitSm)
    assert (back.sequence_number, back.short_message, back.data_coding) == (7, ours.short_message, 8)
    deliver = smpp34.DeliverSm("1", "2", b"yo", sequence_number=3, esm_class=4).encode()
    assert decode(deliver) == DeliverSm(
        sequence=3, source_addr="1", destination_addr="2", esm_class=4, short_message=b"yo"
    )


def test_error_responses_without_body_decode() -> None:
    frame = struct.pack(">IIII", 16, 0x80000004, Status.ESME_RTHROTTLED, 9)
    assert decode(frame) == SubmitSmResp(sequence=9, status=Status.ESME_RTHROTTLED)
    bind_refused = struct.pack(">IIII", 16, 0x80000009, Status.ESME_RINVPASWD, 1)
    assert decode(bind_refused) == BindResp(sequence=1, status=Status.ESME_RINVPASWD)
    assert encode(SubmitSmResp(sequence=9, status=0x58)) == frame


def test_encode_refuses_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="message_payload"):
        encode(SubmitSm(short_message=b"x" * 255))
    with pytest.raises(ValueError, match="password"):
        encode(Bind(system_id="gw", password="123456789"))


def test_unknown_command_is_skipped_with_its_sequence() -> None:
    unknown = struct.pack(">IIII", 20, 0x00000099, 0, 77) + b"abcd"
    items = Framer().feed(unknown + encode(EnquireLink(sequence=78)))
    assert items == [
        FrameError(77, 0x99, Status.ESME_RINVCMDID, "unsupported command_id 0x00000099"),
        EnquireLink(sequence=78),
    ]


def test_truncated_body_is_an_error_with_sequence() -> None:
    body = b"\x00\x01\x0133611"  # service_type, TONs, then a source_addr without NUL
    frame = struct.pack(">IIII", 16 + len(body), 0x00000005, 0, 5) + body
    (err, nxt) = Framer().feed(frame + encode(Unbind(sequence=6)))
    assert isinstance(err, FrameError)
    assert (err.sequence, err.status) == (5, Status.ESME_RINVCMDLEN)
    assert nxt == Unbind(sequence=6)


def test_broken_tlv_stream() -> None:
    frame = bytearray(encode(DeliverSm(sequence=3, tlvs=(Tlv(0x0424, b"abc"),))))
    frame[-5] = 0x09  # TLV length now 0x0903: runs past the PDU
    with pytest.raises(PduError) as err:
        decode(bytes(frame))
    assert (err.value.sequence, err.value.status) == (3, Status.ESME_RINVOPTPARSTREAM)


@pytest.mark.parametrize("length", [0, 8, 15, 64 * 1024 + 1, 0xFFFFFFFF])
def test_bad_command_length_then_resync(length: int) -> None:
    framer = Framer()
    bad = struct.pack(">IIII", length, 0x15, 0, 11)
    items = framer.feed(bad + b"junk" * 5 + encode(EnquireLink(sequence=12)))
    assert [type(i) for i in items] == [FrameError, EnquireLink]
    first = items[0]
    assert isinstance(first, FrameError)
    assert (first.sequence, first.status) == (11, Status.ESME_RINVCMDLEN)


def test_garbage_costs_one_error_not_one_per_octet() -> None:
    framer = Framer()
    items = framer.feed(b"\xde\xad\xbe\xef garbage \x00\x01" * 20)
    items += framer.feed(encode(EnquireLinkResp(sequence=1)))
    assert len([i for i in items if isinstance(i, FrameError)]) == 1
    assert items[-1] == EnquireLinkResp(sequence=1)


def test_status_names() -> None:
    assert status_name(0x58) == "ESME_RTHROTTLED (0x58)"
    assert "not an SMPP 3.4 status" in status_name(0x400)
