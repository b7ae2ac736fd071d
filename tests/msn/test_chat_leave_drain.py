"""Leaving a switchboard (idle close, end of chat, sign-out) still reads what the server
relayed before it saw our OUT: the server ACKed those messages to their sender, so dropping
them unread lost them (seen as an ACKed x2m message that bob never got, when bob's client
left the chat at that instant)."""

from __future__ import annotations

import asyncio

from tests.msn.scripted_sb import ScriptedSwitchboard
from transports.msn.chat import Chat
from transports.msn.codec import Command, encode
from transports.msn.ns_events import SwitchboardGranted
from transports.msn.payload import split_text
from transports.msn.sb import MessageReceived, Switchboard, TypingReceived

ME, BOB = "alice@example.com", "bob@example.com"


def relays_one_more_then_closes(cmd: Command) -> list[bytes]:
    """bob is in the session; his last message crosses our OUT."""
    match cmd.name:
        case "ANS":
            return [encode("IRO", cmd.trid, "1", "1", BOB, "Bob", "0"), encode("ANS", cmd.trid, "OK")]
        case "OUT":
            (payload,) = split_text("one last thing")
            return [encode("MSG", None, BOB, "Bob", payload=payload), b""]
    return []


async def test_a_message_relayed_before_our_out_is_still_passed_on() -> None:
    server = ScriptedSwitchboard(relays_one_more_then_closes)
    await server.start()
    received: list[str] = []

    async def emit(event: MessageReceived | TypingReceived) -> None:
        if isinstance(event, MessageReceived):
            received.append(event.text)

    async def request_sb() -> SwitchboardGranted:
        raise AssertionError("no switchboard is asked for")

    loop = asyncio.get_running_loop()
    chat = Chat(ME, BOB, emit, request_sb, timeout=5.0, clock=loop.time)
    try:
        await chat.adopt_incoming(Switchboard.incoming(ME, "auth", "7"), "127.0.0.1", server.port)
        async with asyncio.timeout(5):
            while chat.primary is None or not chat.primary.usable:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(chat.close(), 5.0)
    finally:
        await server.stop()
    assert received == ["one last thing"]
    assert "OUT" in server.names()
