"""Hostile MSNP: lines and payloads thrown at the parser, at the client state machines (NS
and switchboard) and at the fake server.

Defined outcomes (msnp.md, transports/msn/codec.py):

* the parser turns every byte stream into Commands, ErrorReplies and ProtocolViolations,
  skips an over-long line or an over-cap payload without buffering it, and resumes on the
  next line; what it holds never exceeds the caps;
* the NS and SB state machines answer every line with a typed event (an unknown command is
  ``Unhandled`` / ``SbViolation``, a bad value a ``PeerViolation``) and stay usable: the next
  ordinary line is understood;
* the fake server closes a switchboard connection on a MSG payload over 1664 bytes (what
  real servers do) and on anything unframeable, answers unknown commands with an error
  code, and goes on serving everyone else.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz import fuzz
from transports.msn.client import MsnSession, SessionConfig
from transports.msn.codec import Command, ErrorReply, Parser, ProtocolViolation
from transports.msn.fake_server import FakeMsnServer
from transports.msn.ns import NotificationConnection, NsState
from transports.msn.ns_events import PeerViolation, PresenceChanged
from transports.msn.payload import MAX_MSG_PAYLOAD, build_text
from transports.msn.sb import ParticipantLeft, SbState, Switchboard

MAX_LINE, MAX_PAYLOAD = 256, 512  # small caps, so the generated input crosses them
SENTINEL = b"FLN sentinel@example.com\r\n"

# words a hostile server or client may put in a line: bad numbers, odd digits, invalid UTF-8
bad_numbers = st.sampled_from(
    ["-1", "0", "99999999999999999999", "\u00b2", "\u0663", "1e3", "0x10", "", "１２", "NaN"]
)
words = st.one_of(
    bad_numbers,
    st.text(
        st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=["Zs", "Cs"]), max_size=12
    ),
    st.sampled_from(
        ["NLN", "FL", "AL", "BL", "RL", "N=bob@example.com", "C=guid", "host:1864", "host:\u00b2"]
    ),
)
ns_names = st.sampled_from(
    ["VER", "CVR", "USR", "XFR", "SYN", "LSG", "LST", "BPR", "GTC", "BLP", "PRP", "CHG", "ILN", "NLN", "FLN",
     "UBX", "ADC", "REM", "RNG", "QNG", "CHL", "UUX", "QRY", "MSG", "SBS", "NOT", "GCF", "IPG", "ZZZ", "ACK",
     "NAK", "JOI", "IRO", "BYE", "CAL", "ANS"]
)  # fmt: skip


NUMERIC_LINES = [
    "NLN NLN bob@example.com Bob {n}",
    "ILN 7 NLN bob@example.com Bob {n}",
    "SYN 5 2000 2000 {n} {n}",
    "QNG {n}",
    "RNG 123 host:{n} CKI tok bob@example.com Bob",
    "LST N=x@example.com F=x C=g {n}",
    "XFR 9 SB host:{n} CKI tok",
    "CHG 9 NLN {n}",
    "IRO 1 {n} {n} bob@example.com Bob {n}",
    "ACK {n}",
]


def _line(name: str, args: list[str]) -> bytes:
    return " ".join([name, *(a for a in args if a)]).encode() + b"\r\n"


@st.composite
def hostile_chunk(draw: st.DrawFn, names: st.SearchStrategy[str] = ns_names) -> tuple[str, bytes]:
    """(kind, bytes): one hostile line, always followed by CRLF so the next line is clean."""
    kind = draw(
        st.sampled_from(
            ["line", "numeric", "error", "utf8", "bad-name", "too-long", "oversized", "bad-length", "payload",
             "short-payload"]
        )
    )  # fmt: skip
    name = draw(names)
    args = draw(st.lists(words, max_size=6))
    if kind == "line":  # ends in a word, so a payload command is refused rather than framed
        return kind, _line(name, [*args, "end"])
    if kind == "numeric":  # a well-formed line with a bad number where a number belongs
        n = draw(bad_numbers) or "0"
        shape = draw(st.sampled_from(NUMERIC_LINES))
        return kind, shape.format(n=n).encode() + b"\r\n"
    if kind == "error":
        return kind, _line(draw(st.sampled_from(["200", "201", "911", "217", "999", "000"])), args)
    if kind == "utf8":  # starts with a byte never valid in UTF-8 (so never a valid length either)
        return kind, name.encode() + b" \xff" + draw(st.binary(max_size=40)).replace(b"\n", b"") + b"\r\n"
    if kind == "bad-name":
        return kind, draw(st.sampled_from(["M-G", "é", "\u00b2X", "A.B"])).encode() + b" 1 2\r\n"
    if kind == "too-long":
        return kind, b"MSG " + b"x" * draw(st.integers(MAX_LINE + 1, 4 * MAX_LINE)) + b"\r\n"
    if kind == "oversized":
        size = draw(st.integers(MAX_PAYLOAD + 1, 4 * MAX_PAYLOAD))
        return kind, f"MSG a b {size}\r\n".encode() + b"z" * size + b"\r\n"
    if kind == "bad-length":
        # not a decimal length (a decimal one over the cap is the "oversized" case)
        bad = draw(bad_numbers.filter(lambda w: not (w.isascii() and w.isdigit())))
        return kind, f"MSG a b {bad or 'x'}\r\n".encode()
    payload = draw(st.binary(max_size=MAX_PAYLOAD)).replace(b"\n", b"")
    if kind == "payload":
        return kind, f"{name} 5 {len(payload)}\r\n".encode() + payload + b"\r\n"
    declared = draw(st.integers(0, len(payload)))  # shorter than sent: the rest reads as a line
    return kind, f"MSG a b {declared}\r\n".encode() + payload + b"\r\n"


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@fuzz(200)
@given(st.lists(hostile_chunk(), min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=8))
def test_parser_resumes_after_every_hostile_line_and_stays_within_its_caps(
    chunks: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    data = b"".join(chunk + SENTINEL for _, chunk in chunks)
    parser = Parser(max_line=MAX_LINE, max_payload=MAX_PAYLOAD)
    frames = []
    for piece in _chunks(data, cuts):
        frames += parser.feed(piece)
        assert len(parser._buf) <= MAX_LINE + MAX_PAYLOAD + 2  # never more than the caps
    sentinels = [f for f in frames if isinstance(f, Command) and f.args == ("sentinel@example.com",)]
    assert len(sentinels) == len(chunks)  # every hostile line is over by the next line
    assert all(isinstance(f, Command | ErrorReply | ProtocolViolation) for f in frames)
    # the same bytes in one piece give the same frames: framing does not depend on the reads
    assert Parser(max_line=MAX_LINE, max_payload=MAX_PAYLOAD).feed(data) == frames
    reasons = [f.reason for f in frames if isinstance(f, ProtocolViolation)]
    for kind, _ in chunks:
        if kind == "oversized":
            assert any("over the cap" in r for r in reasons)
        elif kind == "too-long":
            assert "line too long" in reasons
        elif kind == "bad-name":
            assert "bad command name" in reasons
        elif kind == "bad-length":
            assert "MSG without a payload length" in reasons


# -- the NS state machine, logged in, under hostile server lines ------------------------------


def _live_ns() -> NotificationConnection:
    ns = NotificationConnection("alice@example.com")
    ns.start()
    for line in (
        "VER 1 MSNP12",
        "CVR 2 7.0.0816 7.0.0816 7.0.0816 https://x https://x",
        "USR 3 TWN S ct=1",
    ):
        ns.receive_data(line.encode() + b"\r\n", 0)
    ns.supply_ticket("t=abc&p=def")
    ns.receive_data(b"USR 4 OK alice@example.com 1 0\r\n", 0)
    ns.receive_data(b"SYN 5 2000 2000 0 0\r\nCHG 6 NLN 0\r\n", 0)
    assert ns.state is NsState.LIVE
    ns.data_to_send()
    return ns


def _ends_ns(chunk: bytes) -> bool:
    """Lines after which the NS connection is legitimately over (OUT, XFR NS, a login error)."""
    head = chunk.split(b" ", 2)
    return head[0] in (b"OUT", b"XFR")


@fuzz(200)
@given(st.lists(hostile_chunk(), min_size=1, max_size=5))
@example([("numeric", "NLN NLN bob@example.com Bob \u00b2\r\n".encode())])
def test_ns_answers_every_hostile_line_with_an_event_and_stays_live(chunks: list[tuple[str, bytes]]) -> None:
    ns = _live_ns()
    for _, chunk in chunks:
        if _ends_ns(chunk):
            continue
        ns.receive_data(chunk, 1.0)
        if ns.state is not NsState.LIVE:
            return  # OUT or an XFR NS among the generated words: a defined end
        events = ns.receive_data(b"NLN BSY bob@example.com Bob 0\r\n", 1.0)
        assert PresenceChanged("bob@example.com", _busy(), "Bob", 0) in events


def _busy() -> object:
    from transports.msn.status import Status

    return Status.BSY


# -- the switchboard, in a session, under hostile lines ------------------------------------


def _ready_sb() -> Switchboard:
    sb = Switchboard.outgoing("alice@example.com", "1.2")
    sb.receive_data(b"USR 1 OK alice@example.com Alice\r\nJOI bob@example.com Bob 0\r\n")
    assert sb.state is SbState.READY
    sb.data_to_send()
    return sb


@fuzz(200)
@given(st.lists(hostile_chunk(), min_size=1, max_size=5))
def test_switchboard_answers_every_hostile_line_and_stays_in_session(chunks: list[tuple[str, bytes]]) -> None:
    sb = _ready_sb()
    for _, chunk in chunks:
        if chunk.startswith(b"OUT"):
            continue
        events = sb.receive_data(chunk)
        if sb.state is not SbState.READY:
            return
        assert all(type(e).__module__ == "transports.msn.sb" for e in events)
        after = sb.receive_data(b"BYE carol@example.com\r\n")
        assert ParticipantLeft("carol@example.com") in after


def test_switchboard_oversized_payload_is_a_violation_and_invalid_utf8_is_replaced() -> None:
    sb = _ready_sb()
    # a declared length over the cap is reported at once, whatever follows
    events = sb.receive_data(b"MSG bob@example.com Bob 99999999999999999999\r\n")
    assert [type(e).__name__ for e in events] == ["SbViolation"] and "over the cap" in events[0].reason  # type: ignore[union-attr]
    sb = _ready_sb()
    events = sb.receive_data(
        b"MSG bob@example.com Bob 300000\r\n" + b"x" * 300000 + b"BYE carol@example.com\r\n"
    )
    assert [type(e).__name__ for e in events] == ["SbViolation", "ParticipantLeft"]
    payload = build_text("") + b"caf\xe9 \xff"
    (event,) = sb.receive_data(b"MSG bob@example.com Bob %d\r\n" % len(payload) + payload)
    assert event.text == "caf\ufffd \ufffd"  # type: ignore[union-attr]


async def test_client_logs_a_dropped_violation(caplog: pytest.LogCaptureFixture) -> None:
    session = MsnSession(SessionConfig("alice@example.com", "pw"), lambda _e: None)
    with caplog.at_level(logging.DEBUG):
        await session._on_ns_event(PeerViolation("MSG payload of 300000 bytes over the cap"))
    assert any("over the cap" in r.getMessage() for r in caplog.records)


# -- the fake server under hostile clients ---------------------------------------------------

USERS = [
    {"handle": "alice@example.com", "password": "alice pw", "friendly_name": "Alice"},
    {"handle": "bob@example.com", "password": "bob pw", "friendly_name": "Bob"},
]


async def _exchange(port: int, data: bytes, *, wait: float = 0.3) -> tuple[bytes, bool]:
    """Send ``data`` on a fresh connection; what came back, and whether the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    received = b""
    closed = False
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                received += chunk
            closed = True
    except TimeoutError:
        pass
    except ConnectionError:
        closed = True
    writer.close()
    return received, closed


async def _still_serves(server: FakeMsnServer) -> None:
    session = MsnSession(
        SessionConfig(
            "bob@example.com", "bob pw", ns_host="127.0.0.1", ns_port=server.ns_port,
            nexus_url=server.nexus_url, timeout=3.0, login_timeout=5.0,
        ),
        lambda _e: None,
    )  # fmt: skip
    await session.login()
    await session.close()


@fuzz(8, cost=100)
@given(
    st.lists(
        hostile_chunk(st.sampled_from(["VER", "CVR", "USR", "SYN", "CHG", "ZZZ", "PNG", "ADC"])), max_size=3
    )
)
def test_fake_ns_answers_hostile_clients_and_keeps_serving(chunks: list[tuple[str, bytes]]) -> None:
    async def run() -> None:
        server = await FakeMsnServer.start(users=USERS)
        try:
            for kind, chunk in chunks:
                received, closed = await _exchange(server.ns_port, chunk)
                if kind in ("too-long", "bad-name", "bad-length"):
                    assert closed  # unframeable client input: the server hangs up
                elif kind == "line" and chunk.startswith(b"ZZZ"):
                    assert received.split(b" ")[0] == b"715" or closed
            await _still_serves(server)
        finally:
            await server.stop()

    asyncio.run(run())


def test_fake_switchboard_closes_on_a_payload_over_1664_bytes_and_keeps_serving() -> None:
    async def run() -> None:
        server = await FakeMsnServer.start(users=USERS)
        try:
            token = server.new_sb_token("alice@example.com")
            payload = build_text("x" * MAX_MSG_PAYLOAD)
            data = f"USR 1 alice@example.com {token}\r\nMSG 2 A {len(payload)}\r\n".encode() + payload
            received, closed = await _exchange(server.sb_port, data, wait=2.0)
            assert received.startswith(b"USR 1 OK") and b"ACK" not in received and closed
            await _still_serves(server)
        finally:
            await server.stop()

    asyncio.run(run())
