"""A one-to-one chat never sends on a switchboard someone else has joined (any participant
may CAL a third person in, and a MSG goes to every other participant): the chat layer used
to keep sending to bob on a switchboard carol had been called into, and to adopt an
incoming multi-party switchboard as the one to send on. Lines said in a group carry their
other participants; a JOI racing a part's ACK is reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.msn.scripted_sb import ScriptedSwitchboard
from transports.msn.chat import Chat, JoinedWhileSending
from transports.msn.codec import Command, encode
from transports.msn.ns_events import SwitchboardGranted
from transports.msn.payload import build_text, build_typing
from transports.msn.sb import MessageReceived, Switchboard, TypingReceived

ME, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
TIMEOUT = 3.0
Script = Callable[[Command], list[bytes]]


def one_to_one(on_first_msg: list[bytes]) -> Script:
    """Our switchboard: bob joins when called; the first MSG is answered with
    ``on_first_msg`` (carol's JOI and the ACK, in some order), the others with an ACK."""
    seen: list[int] = []

    def script(cmd: Command) -> list[bytes]:
        match cmd.name:
            case "USR":
                return [encode("USR", cmd.trid, "OK", ME, "Alice")]
            case "CAL":
                return [encode("CAL", cmd.trid, "RINGING", "11"), encode("JOI", None, BOB, "Bob", "0")]
            case "MSG" if not seen:
                seen.append(1)
                return [line if line != b"ACK" else encode("ACK", cmd.trid) for line in on_first_msg]
            case "MSG":
                return [encode("ACK", cmd.trid)]
        return []

    return script


def acks_everything(cmd: Command) -> list[bytes]:
    """A fresh one-to-one switchboard with bob."""
    match cmd.name:
        case "USR":
            return [encode("USR", cmd.trid, "OK", ME, "Alice")]
        case "CAL":
            return [encode("CAL", cmd.trid, "RINGING", "12"), encode("JOI", None, BOB, "Bob", "0")]
        case "MSG":
            return [encode("ACK", cmd.trid)]
    return []


JOI_CAROL = encode("JOI", None, CAROL, "Carol", "0")


class Harness:
    """A chat with bob whose switchboard requests are served, in order, by ``boards``."""

    def __init__(self, boards: list[ScriptedSwitchboard]) -> None:
        self.boards = boards
        self.granted = 0
        self.events: list[Any] = []
        loop = asyncio.get_running_loop()
        self.chat = Chat(ME, BOB, self._emit, self._request_sb, timeout=TIMEOUT, clock=loop.time)

    async def _emit(self, event: MessageReceived | TypingReceived | JoinedWhileSending) -> None:
        self.events.append(event)

    async def _request_sb(self) -> SwitchboardGranted:
        board = self.boards[self.granted]
        self.granted += 1
        return SwitchboardGranted(self.granted, "127.0.0.1", board.port, "cookie")


@pytest.fixture
async def boards() -> AsyncIterator[Callable[..., Any]]:
    started: list[ScriptedSwitchboard] = []

    async def make(*scripts: Script) -> list[ScriptedSwitchboard]:
        for script in scripts:
            board = ScriptedSwitchboard(script)
            await board.start()
            started.append(board)
        return started[-len(scripts) :]

    yield make
    for board in started:
        await board.stop()


def texts(board: ScriptedSwitchboard) -> list[bytes]:
    return [(c.payload or b"").split(b"\r\n\r\n", 1)[-1] for c in board.commands if c.name == "MSG"]


async def test_a_switchboard_carol_joined_is_not_used_for_bob_any_more(boards: Any) -> None:
    first, second = await boards(one_to_one([b"ACK", JOI_CAROL]), acks_everything)
    h = Harness([first, second])
    try:
        assert (await h.chat.send("one")).ok
        async with asyncio.timeout(TIMEOUT):  # carol's JOI has been read
            while h.chat.primary is not None:
                await asyncio.sleep(0.01)
        assert (await h.chat.send("two")).ok
    finally:
        await h.chat.close()
    assert texts(first) == [b"one"]
    assert texts(second) == [b"two"]  # a new one-to-one switchboard
    assert not [e for e in h.events if isinstance(e, JoinedWhileSending)]  # ACK came first: no race


async def test_a_join_racing_a_part_is_reported_and_the_next_part_moves(boards: Any) -> None:
    first, second = await boards(one_to_one([JOI_CAROL, b"ACK"]), acks_everything)
    h = Harness([first, second])
    try:
        assert (await h.chat.send("one")).ok
        assert (await h.chat.send("two")).ok
    finally:
        await h.chat.close()
    assert h.events == [JoinedWhileSending(BOB, CAROL)]  # "one" may have reached carol: counted
    assert texts(first) == [b"one"] and texts(second) == [b"two"]


def group_invitation(cmd: Command) -> list[bytes]:
    """bob invites us into a switchboard carol is already in; both talk and type there."""
    match cmd.name:
        case "ANS":
            return [
                encode("IRO", cmd.trid, "1", "2", BOB, "Bob", "0"),
                encode("IRO", cmd.trid, "2", "2", CAROL, "Carol", "0"),
                encode("ANS", cmd.trid, "OK"),
                encode("MSG", None, BOB, "Bob", payload=build_typing(BOB)),
                encode("MSG", None, BOB, "Bob", payload=build_text("meet carol")),
                encode("MSG", None, CAROL, "Carol", payload=build_text("hi both")),
            ]
        case "MSG":
            return [encode("ACK", cmd.trid)]
    return []


async def test_an_incoming_group_switchboard_is_only_received_on(boards: Any) -> None:
    group, private = await boards(group_invitation, acks_everything)
    h = Harness([private])
    try:
        await h.chat.adopt_incoming(Switchboard.incoming(ME, "auth", "22"), "127.0.0.1", group.port)
        async with asyncio.timeout(TIMEOUT):
            while len([e for e in h.events if isinstance(e, MessageReceived)]) < 2:
                await asyncio.sleep(0.01)
        assert (await h.chat.send("just for you, bob")).ok
    finally:
        await h.chat.close()
    assert texts(group) == [] and texts(private) == [b"just for you, bob"]
    received = [e for e in h.events if isinstance(e, MessageReceived)]
    assert [(e.sender, e.text, e.others) for e in received] == [
        (BOB, "meet carol", (CAROL,)),
        (CAROL, "hi both", (BOB,)),
    ]
    assert not [e for e in h.events if isinstance(e, TypingReceived)]  # not typing to us
