"""A message from MSN that the store refuses (disk full) is not dropped: the sender's
switchboard already ACKed it, so the transport keeps it, in order, and retries until the
store takes it (it used to let the error reach the session, which logged and dropped it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from gateway.addressing import BareJid
from gateway.config import MsnConfig, MsnServerConfig, Secret
from gateway.core.events import LegacyMessageReceived, NetworkEvent
from gateway.storage import Account, StorageError, Store, Subscriber
from transports.msn import transport as msn_transport
from transports.msn.client import SessionConfig, SessionEvent
from transports.msn.sb import MessageReceived
from transports.msn.transport import MsnTransport

SAM = Subscriber(7, BareJid.parse("sam@example.test"), 1.0, {})
ACCOUNT = Account(7, "msn", "sam@escargot.test", True, 1.0)


class FakeSession:
    """Stands for MsnSession: hands events to the transport's callback and, like the real
    one, logs and drops whatever the callback raises."""

    def __init__(self, config: SessionConfig, on_event: Callable[[SessionEvent], Any]) -> None:
        self.config, self.on_event = config, on_event
        self.dropped: list[BaseException] = []

    async def login(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def receive(self, text: str) -> None:
        try:
            await self.on_event(MessageReceived("carol@escargot.test", "Carol", text))
        except Exception as exc:
            self.dropped.append(exc)


class FullStoreSink:
    """The bridge's sink over a store that refuses messages while ``full`` is set."""

    def __init__(self) -> None:
        self.full = True
        self.stored: list[str] = []
        self.refused = 0

    async def __call__(self, event: NetworkEvent) -> None:
        if not isinstance(event, LegacyMessageReceived):
            return
        if self.full:
            self.refused += 1
            raise StorageError("database or disk is full")
        self.stored.append(event.body)


async def signed_in(sink: FullStoreSink) -> tuple[MsnTransport, FakeSession]:
    config = MsnConfig("msn.example.test", Secret("s"), MsnServerConfig("127.0.0.1", 1, "http://x/", ""))
    sessions: list[FakeSession] = []

    def factory(cfg: SessionConfig, on_event: Callable[[SessionEvent], Any]) -> Any:
        sessions.append(FakeSession(cfg, on_event))
        return sessions[-1]

    transport = MsnTransport(config, cast(Store, None), session_factory=factory)
    await transport.start(sink)
    await transport.start_session(SAM, ACCOUNT, "pw")
    return transport, sessions[0]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_messages_the_store_refuses_are_kept_and_stored_in_order() -> None:
    sink = FullStoreSink()
    transport, session = await signed_in(sink)
    try:
        for n in range(3):
            await asyncio.wait_for(session.receive(f"message {n}"), 1.0)  # the switchboard goes on
        await asyncio.sleep(0.5)
        assert sink.stored == [] and sink.refused >= 1
        assert 1 <= sink.refused <= 6, f"{sink.refused} tries in 0.5 s: retried in a loop"
        sink.full = False
        await until(lambda: len(sink.stored) == 3)
        assert sink.stored == ["message 0", "message 1", "message 2"]
        assert session.dropped == []
        await asyncio.sleep(0.3)
        assert len(sink.stored) == 3  # each stored once
    finally:
        await transport.stop()


async def test_past_the_cap_the_switchboard_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(msn_transport, "UNSTORED_KEPT", 2)
    sink = FullStoreSink()
    transport, session = await signed_in(sink)
    try:
        await session.receive("one")
        await session.receive("two")
        third = asyncio.ensure_future(session.receive("three"))
        await asyncio.sleep(0.3)
        assert not third.done(), "past the cap the reader must wait, not drop"
        sink.full = False
        await asyncio.wait_for(third, 5.0)
        await until(lambda: len(sink.stored) == 3)
        assert sink.stored == ["one", "two", "three"]
    finally:
        await transport.stop()
