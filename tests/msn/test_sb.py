"""Switchboard state machine against scripted server lines (transcripts of msnp.md)."""

from __future__ import annotations

import pytest

from transports.msn.codec import Command, Direction, Parser
from transports.msn.payload import MAX_MSG_PAYLOAD, build_text, build_typing
from transports.msn.sb import (
    CallFailed,
    MessageAcked,
    MessageFailed,
    MessageReceived,
    ParticipantJoined,
    ParticipantLeft,
    PayloadIgnored,
    Ringing,
    SbState,
    SessionFailed,
    SessionReady,
    Switchboard,
    TypingReceived,
)


def wire(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


def msg_from(sender: str, name: str, payload: bytes) -> bytes:
    return f"MSG {sender} {name} {len(payload)}\r\n".encode() + payload


def outgoing_with_bob() -> Switchboard:
    sb = Switchboard.outgoing("alice@example.com", "17262740.1050826919")
    assert sb.data_to_send() == b"USR 1 alice@example.com 17262740.1050826919\r\n"
    with pytest.raises(RuntimeError):
        sb.invite("bob@example.com")
    assert sb.receive_data(wire("USR 1 OK alice@example.com Alice")) == [SessionReady(())]
    assert sb.invite("bob@example.com") == 2
    assert sb.data_to_send() == b"CAL 2 bob@example.com\r\n"
    events = sb.receive_data(wire("CAL 2 RINGING 11752013", "JOI bob@example.com Bob%20B 1342177280"))
    assert events == [Ringing(2, "11752013"), ParticipantJoined("bob@example.com", "Bob B")]
    assert sb.has("Bob@Example.com")
    return sb


def test_outgoing_message_acked() -> None:
    sb = outgoing_with_bob()
    mid = sb.send_message("Hello Bob")
    assert sb.data_to_send() == b"MSG 3 A " + str(len(build_text("Hello Bob"))).encode() + (
        b"\r\n" + build_text("Hello Bob")
    )
    assert sb.receive_data(wire("ACK 3")) == [MessageAcked(mid)]


def test_long_message_split_acked_only_when_all_parts_are() -> None:
    sb = outgoing_with_bob()
    mid = sb.send_message("é" * 2000)
    frames = Parser(Direction.FROM_CLIENT).feed(sb.data_to_send())
    assert [f.trid for f in frames if isinstance(f, Command)] == [3, 4, 5]
    assert all(isinstance(f, Command) and len(f.payload or b"") <= MAX_MSG_PAYLOAD for f in frames)
    assert sb.receive_data(wire("ACK 3", "ACK 4")) == []
    assert sb.receive_data(wire("ACK 5")) == [MessageAcked(mid)]


def test_nak_and_error_fail_the_message_once() -> None:
    sb = outgoing_with_bob()
    mid = sb.send_message("x" * 4000)
    sb.data_to_send()
    events = sb.receive_data(wire("NAK 3", "ACK 4", "282 5"))
    assert events == [MessageFailed(mid, "not delivered (NAK)")]


def test_call_to_offline_contact_fails_with_217() -> None:
    sb = Switchboard.outgoing("alice@example.com", "a")
    sb.receive_data(wire("USR 1 OK alice@example.com Alice"))
    sb.invite("carol@example.com")
    [event] = sb.receive_data(wire("217 2"))
    assert event == CallFailed(2, "carol@example.com", 217, "217 principal not online")
    assert event.offline


def test_bye_tracks_departure_and_typing() -> None:
    sb = outgoing_with_bob()
    sb.send_typing()
    typing = build_typing("alice@example.com")
    assert sb.data_to_send() == f"MSG 3 U {len(typing)}\r\n".encode() + typing
    events = sb.receive_data(msg_from("bob@example.com", "Bob", build_typing("bob@example.com")))
    assert events == [TypingReceived("bob@example.com")]
    assert sb.receive_data(wire("BYE bob@example.com")) == [ParticipantLeft("bob@example.com")]
    assert not sb.has("bob@example.com")
    sb.leave()
    assert sb.data_to_send() == b"OUT\r\n" and sb.state is SbState.CLOSED


def test_incoming_session() -> None:
    sb = Switchboard.incoming("bob@example.com", "849102291.520491", "11752013")
    assert sb.data_to_send() == b"ANS 1 bob@example.com 849102291.520491 11752013\r\n"
    events = sb.receive_data(wire("IRO 1 1 1 alice@example.com Alice 1342177280", "ANS 1 OK"))
    assert events == [
        ParticipantJoined("alice@example.com", "Alice", initial=True),
        SessionReady(("alice@example.com",)),
    ]
    text = "Hëllo Bob 👋"
    events = sb.receive_data(msg_from("alice@example.com", "Alice", build_text(text)))
    assert events == [MessageReceived("alice@example.com", "Alice", text, "FN=Arial; EF=; CO=0; CS=0; PF=22")]
    nudge = b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n"
    assert sb.receive_data(msg_from("alice@example.com", "Alice", nudge)) == [
        PayloadIgnored("alice@example.com", "text/x-msnmsgr-datacast")
    ]


def test_a_message_in_a_group_names_the_other_participants() -> None:
    """Said with carol in the session too, a message carries her (not its sender, not us)."""
    sb = Switchboard.incoming("alice@example.com", "auth", "11")
    sb.receive_data(wire("IRO 1 1 1 Bob@example.com Bob 0", "ANS 1 OK"))
    one = sb.receive_data(msg_from("bob@example.com", "Bob", build_text("just us")))
    assert [e.others for e in one if isinstance(e, MessageReceived)] == [()]
    sb.receive_data(wire("JOI carol@example.com Carol 0"))
    two = sb.receive_data(msg_from("bob@example.com", "Bob", build_text("meet carol")))
    assert [e.others for e in two if isinstance(e, MessageReceived)] == [("carol@example.com",)]
    three = sb.receive_data(msg_from("carol@example.com", "Carol", build_text("hi")))
    assert [e.others for e in three if isinstance(e, MessageReceived)] == [("bob@example.com",)]


def test_refused_answer() -> None:
    sb = Switchboard.incoming("bob@example.com", "stale", "1")
    assert sb.receive_data(wire("911 1")) == [SessionFailed(911, "911 authentication failed")]
    assert sb.state is SbState.CLOSED
