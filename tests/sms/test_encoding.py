"""Alphabet choice, segmentation and decoding (transports/sms/encoding.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.sms.encoding import (
    DC_GSM7,
    DC_UCS2,
    GSM7_CHARACTERS,
    GSM7_EXTENSION_CHARACTERS,
    MessageTooLong,
    count_parts,
    decode_gsm7,
    decode_text,
    encode_text,
    encode_within,
    is_gsm7,
    transliterate,
)

FAST = settings(derandomize=True, max_examples=150, deadline=None)

gsm_text = st.text(alphabet=st.sampled_from(sorted(GSM7_CHARACTERS)), max_size=500)
# Mostly GSM-7 with extension characters, so escape pairs land on part boundaries often.
ext_heavy = st.text(alphabet=st.sampled_from([*sorted(GSM7_EXTENSION_CHARACTERS), "a"]), max_size=400)
emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
ucs_text = st.text(
    alphabet=st.one_of(emoji, st.characters(exclude_categories=["Cs"]), st.sampled_from("жé€")),
    min_size=1,
    max_size=300,
).filter(lambda t: not is_gsm7(t))


@FAST
@given(st.one_of(gsm_text, ext_heavy))
def test_gsm7_round_trip_and_limits(text: str) -> None:
    encoded = encode_text(text)
    assert encoded.data_coding == DC_GSM7
    assert decode_gsm7(b"".join(encoded.segments)) == text
    # every part decodes on its own: no escape pair was cut in half
    assert "".join(decode_gsm7(s) for s in encoded.segments) == text
    assert all(not s.endswith(b"\x1b") for s in encoded.segments)
    limit = 160 if encoded.parts == 1 else 153
    assert all(len(s) <= limit for s in encoded.segments)
    assert (encoded.parts == 1) == (encoded.units <= 160)
    assert encoded.units == len(text) + sum(ch in GSM7_EXTENSION_CHARACTERS for ch in text)
    assert count_parts(text) == encoded.parts
    # greedy packing: a part is only closed when the next character does not fit
    assert all(len(s) >= 152 for s in encoded.segments[:-1])


@FAST
@given(ucs_text)
def test_ucs2_round_trip_never_splits_surrogates(text: str) -> None:
    encoded = encode_text(text)
    assert encoded.data_coding == DC_UCS2
    assert "".join(s.decode("utf-16-be") for s in encoded.segments) == text  # strict: pairs whole
    limit = 140 if encoded.parts == 1 else 134
    assert all(len(s) <= limit for s in encoded.segments)
    assert encoded.units == len(text.encode("utf-16-be")) // 2
    assert decode_text(b"".join(encoded.segments), DC_UCS2).text == text


@FAST
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=255))
def test_decode_never_raises(data: bytes, coding: int) -> None:
    decoded = decode_text(data, coding)
    assert isinstance(decoded.text, str)
    assert decoded.exact == (coding in (0, 1, 3, 8) or 0xF0 <= coding <= 0xF3)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("😀" * 35, 1),  # 70 UTF-16 units
        ("😀" * 36, 2),
    ],
)
def test_parts_count_at_the_limits(text: str, parts: int) -> None:
    assert count_parts(text) == parts


def test_escape_pair_moves_whole_to_next_part() -> None:
    encoded = encode_text("a" * 152 + "€" + "b" * 10)
    assert encoded.segments[0] == b"a" * 152
    assert encoded.segments[1].startswith(b"\x1b\x65")


def test_one_non_gsm_character_switches_everything_to_ucs2() -> None:
    assert encode_text("hello wörld").data_coding == DC_GSM7  # ö is in GSM 03.38
    assert encode_text("hello ворld").data_coding == DC_UCS2


def test_short_messages_carry_udh_only_when_split() -> None:
    assert encode_text("hi").short_messages(7) == (b"hi",)
    long = encode_text("x" * 200).short_messages(7)
    assert long[0][:6] == bytes([5, 0, 3, 7, 2, 1]) and long[1][:6] == bytes([5, 0, 3, 7, 2, 2])


def test_transliteration_only_when_it_makes_gsm7() -> None:
    assert transliterate("l’été «ok» … –\u00a0x") == 'l\'été "ok" ... - x'
    assert encode_text("l’été", transliterate_typography=True).data_coding == DC_GSM7
    assert encode_text("l’été", transliterate_typography=False).data_coding == DC_UCS2
    # an emoji forces UCS-2 anyway: the typographic apostrophe is kept
    kept = encode_text("l’été 😀", transliterate_typography=True)
    assert kept.data_coding == DC_UCS2
    assert decode_text(b"".join(kept.segments), DC_UCS2).text == "l’été 😀"


def test_max_parts_refusal_is_explained() -> None:
    assert encode_within("a" * 306, 2).parts == 2
    with pytest.raises(MessageTooLong) as err:
        encode_within("a" * 307, 2)
    assert err.value.parts == 3
    assert str(err.value).startswith("message too long: it needs 3 SMS parts and the limit is 2")


@pytest.mark.parametrize(
    ("data", "coding", "text", "exact"),
    [
        (b"\x1b\x65 \x00", 0, "€ @", True),
        (b"\x1b\x41", 0, "A", True),  # unknown extension: the basic character
        (b"ab\x1b", 0, "ab", True),  # trailing escape dropped
        (b"\x80", 0, "\ufffd", True),
        (b"hi\xff", 1, "hi\ufffd", True),
        ("é".encode("latin-1"), 3, "é", True),
        ("😀".encode("utf-16-be"), 8, "😀", True),
        (b"\xd8\x3d", 8, "\ufffd", True),  # lone high surrogate
        (b"\x00a\x00", 8, "a\ufffd", True),  # odd length
        (b"\xe9", 4, "é", False),  # 8-bit binary: a guess
    ],
)
def test_decode_examples(data: bytes, coding: int, text: str, exact: bool) -> None:
    decoded = decode_text(data, coding)
    assert (decoded.text, decoded.exact) == (text, exact)
