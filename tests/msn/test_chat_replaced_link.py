"""A send waiting for the contact on a switchboard that the contact's own invitation
replaces goes on at once on the new switchboard (it used to wait the full time-out on the
closed one, because only the current primary's waiters were failed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.msn.scripted_sb import ScriptedSwitchboard
from transports.msn.chat import Chat
from transports.msn.codec import Command, encode
from transports.msn.ns_events import SwitchboardGranted
from transports.msn.sb import MessageReceived, Switchboard, TypingReceived

ME, BOB = "alice@example.com", "bob@example.com"
TIMEOUT = 10.0  # the switchboard time-out: the send must finish well before it


def never_joins(cmd: Command) -> list[bytes]:
    """Our own switchboard: bob rings but never joins (his client is busy inviting us)."""
    match cmd.name:
        case "USR":
            return [encode("USR", cmd.trid, "OK", ME, "Alice")]
        case "CAL":
            return [encode("CAL", cmd.trid, "RINGING", "11")]
    return []


def bob_is_here(cmd: Command) -> list[bytes]:
    """The switchboard bob invited us to: he is in it, and messages are ACKed."""
    match cmd.name:
        case "ANS":
            return [encode("IRO", cmd.trid, "1", "1", BOB, "Bob", "0"), encode("ANS", cmd.trid, "OK")]
        case "MSG":
            return [encode("ACK", cmd.trid)]
    return []


@pytest.fixture
async def switchboards() -> AsyncIterator[tuple[ScriptedSwitchboard, ScriptedSwitchboard]]:
    ours, theirs = ScriptedSwitchboard(never_joins), ScriptedSwitchboard(bob_is_here)
    await ours.start()
    await theirs.start()
    yield ours, theirs
    await ours.stop()
    await theirs.stop()


async def test_send_moves_to_the_contacts_switchboard_when_it_replaces_ours(
    switchboards: tuple[ScriptedSwitchboard, ScriptedSwitchboard],
) -> None:
    ours, theirs = switchboards
    loop = asyncio.get_running_loop()

    async def request_sb() -> SwitchboardGranted:
        return SwitchboardGranted(1, "127.0.0.1", ours.port, "cookie")

    async def emit(_event: MessageReceived | TypingReceived) -> None:
        return None

    chat = Chat(ME, BOB, emit, request_sb, timeout=TIMEOUT, clock=loop.time)
    started = loop.time()
    sending = asyncio.ensure_future(chat.send("hello bob"))
    try:
        async with asyncio.timeout(5):
            while "CAL" not in ours.names():  # the send now waits for bob's JOI on our switchboard
                ours.got.clear()
                await ours.got.wait()
        await chat.adopt_incoming(Switchboard.incoming(ME, "auth", "22"), "127.0.0.1", theirs.port)
        result = await asyncio.wait_for(sending, TIMEOUT + 5)
    finally:
        sending.cancel()
        await chat.close()
    elapsed = loop.time() - started

    assert result.ok, result
    assert elapsed < TIMEOUT / 2, f"the send waited {elapsed:.1f} s on the replaced switchboard"
    assert "MSG" in theirs.names() and "MSG" not in ours.names()
    assert any(b"hello bob" in (c.payload or b"") for c in theirs.commands)


async def test_send_moves_on_when_its_switchboard_is_replaced_while_connecting(
    switchboards: tuple[ScriptedSwitchboard, ScriptedSwitchboard], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaced before its connection was even open: the link is never read, so closing it
    must answer whoever waits for its USR OK (it used to wait the full time-out)."""
    ours, theirs = switchboards
    ours.script = lambda _cmd: []  # would never answer anyway
    loop = asyncio.get_running_loop()
    real_open, connecting, go_on = asyncio.open_connection, asyncio.Event(), asyncio.Event()

    async def first_one_slow(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if port == ours.port:
            connecting.set()
            await go_on.wait()
        return await real_open(host, port)

    monkeypatch.setattr(asyncio, "open_connection", first_one_slow)

    async def request_sb() -> SwitchboardGranted:
        return SwitchboardGranted(1, "127.0.0.1", ours.port, "cookie")

    async def emit(_event: MessageReceived | TypingReceived) -> None:
        return None

    chat = Chat(ME, BOB, emit, request_sb, timeout=TIMEOUT, clock=loop.time)
    started = loop.time()
    sending = asyncio.ensure_future(chat.send("hello bob"))
    try:
        await asyncio.wait_for(connecting.wait(), 5)  # our switchboard is being connected
        await chat.adopt_incoming(Switchboard.incoming(ME, "auth", "22"), "127.0.0.1", theirs.port)
        go_on.set()
        result = await asyncio.wait_for(sending, TIMEOUT + 5)
    finally:
        sending.cancel()
        await chat.close()
    assert result.ok, result
    assert loop.time() - started < TIMEOUT / 2
    assert any(b"hello bob" in (c.payload or b"") for c in theirs.commands)
