"""Codec: framing round trips, malformed input, caps; URL encoding of friendly names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transports.msn.codec import (
    Command,
    Direction,
    ErrorReply,
    Parser,
    ProtocolViolation,
    encode,
    url_decode,
    url_encode,
)

FAST = settings(derandomize=True, database=None, max_examples=200, deadline=None)
word = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12).filter(
    lambda w: not w.isdigit()
)


def test_server_lines_with_and_without_trid() -> None:
    frames = Parser().feed(
        b"ILN 8 NLN bob@example.com Bob 0\r\nNLN AWY bob@example.com Bob 0\r\n"
        b"RNG 11752013 127.0.0.1:1864 CKI x bob@example.com Bob\r\nQNG 60\r\n911 4\r\n"
        b"MSG Hotmail Hotmail 5\r\nhello"
    )
    assert frames == [
        Command("ILN", 8, ("NLN", "bob@example.com", "Bob", "0")),
        Command("NLN", None, ("AWY", "bob@example.com", "Bob", "0")),
        Command("RNG", None, ("11752013", "127.0.0.1:1864", "CKI", "x", "bob@example.com", "Bob")),
        Command("QNG", None, ("60",)),
        ErrorReply(911, 4),
        Command("MSG", None, ("Hotmail", "Hotmail"), b"hello"),
    ]


def test_payload_length_is_in_bytes_and_split_anywhere() -> None:
    body = "héllo ✓".encode()
    data = f"UBX bob@example.com {len(body)}\r\n".encode() + body + b"QNG 50\r\n"
    expected = [Command("UBX", None, ("bob@example.com",), body), Command("QNG", None, ("50",))]
    parser = Parser()
    got = []
    for i in range(len(data)):
        got += parser.feed(data[i : i + 1])
    assert got == expected


def test_line_and_payload_caps_skip_without_buffering() -> None:
    parser = Parser(max_line=64, max_payload=100)
    frames = parser.feed(b"X" * 200)
    assert isinstance(frames[0], ProtocolViolation) and frames[0].reason == "line too long"
    frames = parser.feed(b"X" * 200 + b"\r\nQNG 1\r\nMSG a b 1000\r\n" + b"z" * 600)
    assert frames[0] == Command("QNG", None, ("1",))
    assert isinstance(frames[1], ProtocolViolation) and "over the cap" in frames[1].reason
    assert parser.feed(b"z" * 400 + b"FLN bob@example.com\r\n") == [
        Command("FLN", None, ("bob@example.com",))
    ]


def test_malformed_lines_are_violations_not_crashes() -> None:
    frames = Parser().feed(b"\xff\xfe\r\nMSG a b notanumber\r\n\r\nFLN x\r\n")
    assert [type(f) for f in frames] == [ProtocolViolation, ProtocolViolation, Command]


def test_client_direction_payload_commands() -> None:
    frames = Parser(Direction.FROM_CLIENT).feed(b"MSG 3 A 2\r\nhiPNG\r\nQRY 7 PROD 2\r\nab")
    assert frames == [
        Command("MSG", 3, ("A",), b"hi"),
        Command("PNG", None, ()),
        Command("QRY", 7, ("PROD",), b"ab"),
    ]


@FAST
@given(
    name=st.sampled_from(["MSG", "UUX", "QRY"]),
    trid=st.integers(0, 10**6),
    args=st.lists(word, max_size=4),
    payload=st.binary(max_size=300),
)
def test_round_trip_client_commands(name: str, trid: int, args: list[str], payload: bytes) -> None:
    cmd = Command(name, trid, tuple(args), payload)
    assert Parser(Direction.FROM_CLIENT).feed(cmd.to_bytes()) == [cmd]


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parser = Parser(max_line=128, max_payload=64)
    for frame in parser.feed(data) + parser.feed(b"\r\n"):
        assert isinstance(frame, Command | ErrorReply | ProtocolViolation)


@FAST
@given(st.text(max_size=60))
def test_friendly_names_round_trip_and_contain_no_spaces(name: str) -> None:
    encoded = url_encode(name)
    assert " " not in encoded and "\n" not in encoded
    assert url_decode(encoded) == name


def test_url_decode_tolerates_bad_utf8() -> None:
    assert url_decode("Bob%FF%20B") == "Bob\ufffd B"


def test_encode_refuses_words_that_break_framing() -> None:
    import pytest

    with pytest.raises(ValueError):
        encode("PRP", 1, "MFN", "has space")
