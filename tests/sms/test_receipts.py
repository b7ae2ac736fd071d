"""Delivery receipt detection, parsing and id matching (transports/sms/receipts.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.sms.pdu import DeliverSm, Tag, Tlv
from transports.sms.receipts import (
    ReceiptState,
    format_receipt_text,
    ids_match,
    is_receipt,
    message_id_candidates,
    normalise_message_id,
    parse_receipt,
    parse_receipt_text,
)

TEXT = (
    "id:0001A2B3 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
    "stat:DELIVRD err:000 text:Hello stat:UNDELIV id:9"
)


def receipt(text: str, *, esm_class: int = 0x04, tlvs: tuple[Tlv, ...] = ()) -> DeliverSm:
    return DeliverSm(
        source_addr="33698765432",
        destination_addr="SERVICE",
        esm_class=esm_class,
        short_message=text.encode(),
        tlvs=tlvs,
    )


def test_text_fields_and_free_form_tail() -> None:
    fields = parse_receipt_text(TEXT)
    assert fields["id"] == "0001A2B3"
    assert fields["submit date"] == "2401011200"
    assert fields["stat"] == "DELIVRD"
    assert fields["text"] == "Hello stat:UNDELIV id:9"  # the tail is the user's text


def test_parse_receipt_from_text() -> None:
    r = parse_receipt(receipt(TEXT))
    assert r is not None
    assert (r.message_id, r.raw_id, r.state, r.error) == ("1a2b3", "0001A2B3", ReceiptState.DELIVRD, "000")
    assert (r.source, r.destination, r.done_date) == ("33698765432", "SERVICE", "2401011201")
    assert r.state.final and not r.state.failed


def test_tlvs_win_over_text() -> None:
    tlvs = (Tlv(Tag.RECEIPTED_MESSAGE_ID, b"ABC\x00"), Tlv(Tag.MESSAGE_STATE, b"\x05"))
    r = parse_receipt(receipt(TEXT, tlvs=tlvs))
    assert r is not None and (r.message_id, r.state) == ("abc", ReceiptState.UNDELIV)
    assert r.state.failed


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", ReceiptState.DELIVRD),
        ("EXPIRED", ReceiptState.EXPIRED),
        ("DELETED", ReceiptState.DELETED),
        ("UNDELIV", ReceiptState.UNDELIV),
        ("ACCEPTD", ReceiptState.ACCEPTD),
        ("UNKNOWN", ReceiptState.UNKNOWN),
        ("REJECTD", ReceiptState.REJECTD),
        ("delivered", ReceiptState.DELIVRD),
        ("garbled", ReceiptState.UNKNOWN),
    ],
)
def test_states(stat: str, state: ReceiptState) -> None:
    r = parse_receipt(receipt(f"id:1 stat:{stat} err:000"))
    assert r is not None and r.state is state


def test_not_a_receipt_or_no_id() -> None:
    assert not is_receipt(0x00) and not is_receipt(0x40) and is_receipt(0x44)
    assert parse_receipt(receipt(TEXT, esm_class=0x00)) is None
    assert parse_receipt(receipt("stat:DELIVRD")) is None


@pytest.mark.parametrize(
    ("submitted", "receipted", "match"),
    [
        ("0A1B2C", "a1b2c", True),  # case and padding
        ("0A1B2C", "662316", True),  # receipt in decimal, resp in hex
        ("255", "ff", True),  # receipt in hex, resp in decimal
        ("  abc\x00", "ABC", True),
        ("0A1B2C", "0A1B2D", False),
        ("msg-1", "msg-2", False),
    ],
)
def test_id_matching(submitted: str, receipted: str, match: bool) -> None:
    assert ids_match(submitted, receipted) is match


def test_exact_form_is_the_first_candidate() -> None:
    assert message_id_candidates("000255") == ("255", "ff", "597")
    assert normalise_message_id("0000") == "0"


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2**63), st.integers(0, 6))
def test_hex_and_decimal_renderings_always_match(n: int, pad: int) -> None:
    hex_id = "0" * pad + format(n, "X")
    assert ids_match(hex_id, str(n))
    assert ids_match(str(n).zfill(pad + 1), format(n, "x"))


def test_formatted_text_parses_back() -> None:
    text = format_receipt_text("A1", ReceiptState.EXPIRED, submit_date="2401011200", done_date="2401021200")
    r = parse_receipt(receipt(text))
    assert r is not None and (r.message_id, r.state) == ("a1", ReceiptState.EXPIRED)
