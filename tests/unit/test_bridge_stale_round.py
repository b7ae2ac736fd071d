"""An outbox round whose read of the conversation heads was taken before a send of one of
them began, and returned after that send ended, must not send that head again: its row
says 'queued' and its conversation is no longer in flight, but it was delivered (seen as an
x2m message the MSN server relayed twice, under load)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge import Bridge
from gateway.storage import OutboxItem
from gateway.storage.writer import WriteResult
from gateway.transport import Delivered
from tests.conftest import base_config
from tests.unit.bridge_fakes import ALICE, FullableStore, ScriptedTransport, until


class SlowStore(FullableStore):
    """Lets the test hold a mark_sending and the return of a heads read."""

    reads = 0

    def hold(self) -> None:
        self.marking_started, self.marking_go = asyncio.Event(), asyncio.Event()
        self.read_done, self.read_go = asyncio.Event(), asyncio.Event()

    def start_mark_sending(self, item_id: int) -> asyncio.Future[WriteResult]:
        self.marking_started.set()
        parent = super()

        async def held() -> WriteResult:  # the send ends once its mark is settled
            await self.marking_go.wait()
            return await parent.start_mark_sending(item_id)

        return asyncio.ensure_future(held())

    async def conversation_heads(self, network: str, limit: int) -> list[OutboxItem]:
        rows = await super().conversation_heads(network, limit)
        self.reads += 1
        if self.reads == 2:  # the round the test makes while the first send waits
            self.read_done.set()
            await self.read_go.wait()
        return rows


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SlowStore]:
    opened = await SlowStore.open(tmp_path / "gw.db", None)
    assert isinstance(opened, SlowStore)
    opened.writes = []
    opened.hold()
    yield opened
    await opened.close()


async def test_a_head_delivered_while_the_round_read_is_not_sent_again(
    tmp_path: Path, store: SlowStore
) -> None:
    transport = ScriptedTransport("test", lambda _item: Delivered())
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    payload: dict[str, Any] = {"body": "hello", "from": str(ALICE), "id": "m1"}
    await store.enqueue(network="test", subscriber_id=sub.id, dedup_key="k1", destination="bob@echo.test",
                        payload=payload, now=1.0, expires=10.0**10)  # fmt: skip
    bridge = Bridge(base_config(tmp_path), store, {"test": transport})
    await bridge.start()
    try:
        await asyncio.wait_for(store.marking_started.wait(), 5)  # round 1 sends it: 'queued' still
        bridge.wake("test")
        await asyncio.wait_for(store.read_done.wait(), 5)  # round 2 read it as 'queued'
        store.marking_go.set()
        await until(lambda: len(transport.calls) == 1)
        while await store.outbox_items():  # delivered and removed
            await asyncio.sleep(0.01)
        store.read_go.set()  # round 2 goes on with what it read
        await asyncio.sleep(0.5)
        assert len(transport.calls) == 1, "sent again from a stale read"
    finally:
        store.marking_go.set()
        store.read_go.set()
        await bridge.stop()
