"""Concatenated MO reassembly (transports/sms/reassembly.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.sms.fake_mo import Split, mo_pdus
from transports.sms.pdu import DeliverSm
from transports.sms.reassembly import (
    Message,
    Part,
    Reassembler,
    assemble,
    is_expired,
    parse_udh,
    part_from_deliver,
)

FAST = settings(derandomize=True, max_examples=60, deadline=None)
LONG = "Bonjour, " + "ceci est un long message découpé en plusieurs parties. " * 8  # GSM-7
EMOJI = "😀 long emoji text 🎉 " * 12  # UCS-2 with surrogate pairs


def parts_of(text: str, *, coding: int = 0, split: Split = "udh", ref: int = 42) -> list[Part]:
    pdus = mo_pdus("336111", "336999", text, coding=coding, split=split, ref=ref)
    return [part_from_deliver(p, now=float(i)) for i, p in enumerate(pdus)]


@pytest.mark.parametrize(
    ("split", "coding", "text"),
    [
        ("udh", 0, LONG),
        ("udh16", 0, LONG),
        ("sar", 0, LONG),
        ("payload", 0, LONG),
        ("udh", 3, "àéîõü " * 60),
        ("sar", 8, EMOJI),
        ("udh", 8, EMOJI),
    ],
)
def test_every_numbering_scheme_reassembles(split: Split, coding: int, text: str) -> None:
    parts = parts_of(text, coding=coding, split=split)
    assert len(parts) == (1 if split == "payload" else len(parts))
    if split != "payload":
        assert len(parts) > 1
    r = Reassembler(timeout=60)
    results = [r.add(p) for p in parts]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == Message("336111", "336999", text, len(parts))
    assert r.pending_parts() == []


@FAST
@given(st.permutations(range(5)), st.lists(st.integers(0, 4), max_size=4))
def test_any_order_with_duplicates(order: list[int], dupes: list[int]) -> None:
    text = "x" * (153 * 4 + 10)
    parts = parts_of(text)
    assert len(parts) == 5
    r = Reassembler(timeout=60)
    arrival = [parts[i] for i in order]
    # duplicates arrive after the original: before completion they are ignored
    for i in dupes:
        arrival.insert(arrival.index(parts[i]) + 1, parts[i])
    done = [m for m in (r.add(p) for p in arrival) if m is not None]
    assert [m.text for m in done] == [text]
    assert r.pending_parts() == []
    assert r.expire(now=1000.0) == []


def test_single_part_is_a_message_of_one() -> None:
    (part,) = parts_of("hello")
    assert (part.total, part.seq) == (1, 1)
    assert assemble([part]) == Message("336111", "336999", "hello", 1)


def test_timeout_delivers_with_missing_note() -> None:
    parts = parts_of("a" * 153 + "b" * 153 + "c" * 10)
    r = Reassembler(timeout=30)
    assert r.add(parts[0]) is None
    assert r.add(parts[2]) is None
    assert r.next_deadline() == 30.0
    assert r.expire(now=29.0) == []
    (msg,) = r.expire(now=30.0)
    assert msg.text == "a" * 153 + "[part 2 of 3 missing]" + "c" * 10
    assert msg.missing == (2,)
    assert r.pending_parts() == [] and r.next_deadline() is None


def test_state_survives_a_restart_as_plain_data() -> None:
    parts = parts_of(LONG)
    stored = list(parts[:-1])  # what the caller had persisted before the restart
    revived = Reassembler(timeout=60, parts=stored)
    assert revived.add(parts[-1]) == Message("336111", "336999", LONG, len(parts))
    # the pure functions work on rows straight from a database too
    assert assemble(stored) is None
    assert assemble([*stored, parts[-1]]) is not None
    assert is_expired(stored, now=59.0, timeout=60) is False
    assert is_expired(stored, now=60.0, timeout=60) is True


def test_different_senders_or_refs_do_not_mix() -> None:
    a = parts_of(LONG, ref=1)
    b = parts_of(LONG.upper(), ref=2)
    r = Reassembler(timeout=60)
    done = [m for p in [x for pair in zip(a, b, strict=False) for x in pair] if (m := r.add(p))]
    assert sorted(m.text for m in done) == sorted([LONG, LONG.upper()])


def test_surrogate_pair_split_by_careless_sender_is_rejoined() -> None:
    text = "😀"
    raw = text.encode("utf-16-be")
    halves = [
        Part("1", "2", 9, 2, 1, 8, raw[:2], 0.0),
        Part("1", "2", 9, 2, 2, 8, raw[2:], 1.0),
    ]
    msg = assemble(halves)
    assert msg is not None and msg.text == text


def test_udh_parsing_edge_cases() -> None:
    assert parse_udh(b"") is None
    assert parse_udh(b"\x05\x00\x03") is None  # header longer than data
    udh = parse_udh(b"\x06\x08\x04\x12\x34\x03\x02rest")
    assert udh is not None and (udh.reference, udh.total, udh.seq, udh.length) == (0x1234, 3, 2, 7)
    other = parse_udh(b"\x03\x24\x01\x00rest")  # a national-language IE only
    assert other is not None and other.reference is None and other.length == 4


def test_broken_udh_is_shown_rather_than_dropped() -> None:
    pdu = DeliverSm(source_addr="1", destination_addr="2", esm_class=0x40, short_message=b"\x09ab")
    part = part_from_deliver(pdu, 0.0)
    assert (part.total, part.payload) == (1, b"\x09ab")


def test_nonsense_numbering_is_one_message() -> None:
    pdu = DeliverSm(esm_class=0x40, short_message=bytes([5, 0, 3, 1, 2, 5]) + b"hi")
    assert part_from_deliver(pdu, 0.0).total == 1
