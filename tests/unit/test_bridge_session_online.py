"""Messages that waited for a subscriber's network session (not signed in yet: after a
restart, the first login) go as soon as the session is up, not after their retry pause."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.core.events import SessionStateChanged
from gateway.storage import OutboxItem
from gateway.transport import Delivered, DeliveryOutcome, Retry
from tests.unit.bridge_fakes import (
    ALICE,
    FakeComponent,
    FullableStore,
    ScriptedTransport,
    running,
    until,
    until_empty,
)


async def test_a_message_waiting_for_the_session_goes_when_it_is_up(
    tmp_path: Path, store: FullableStore
) -> None:
    signed_in = False

    def deliver(_item: OutboxItem) -> DeliveryOutcome:
        return Delivered() if signed_in else Retry(60.0, "not signed in yet")

    transport = ScriptedTransport("test", deliver)
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await store.set_account(sub.id, "test", "alice", None, 1.0)
    bridge = await running(tmp_path, store, transport, component=FakeComponent())
    try:
        await bridge.message_received("test", ALICE, "bob\\40echo.test", "hello", "m1", False)
        await until(lambda: len(transport.calls) == 1)  # tried: waits a minute
        await asyncio.sleep(0.5)
        assert len(transport.calls) == 1
        signed_in = True
        await bridge.network_event(SessionStateChanged("test", sub.id, "online"))
        await until(lambda: len(transport.calls) == 2, timeout=5.0)  # not a minute later
        await until_empty(store)
    finally:
        await bridge.stop()
