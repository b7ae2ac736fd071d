"""Storage contract: the durable outbox (the method signatures the bridge calls today).

Runs once per backend (``backend`` fixture, tests/storage/conftest.py)."""

from __future__ import annotations

import time
from typing import Any

from gateway.addressing import BareJid
from gateway.storage import Store
from tests.storage.conftest import Backend

NOW = 1000.0


async def _enqueue(
    store: Store, sub: int | None, key: str, dest: str = "+33600000001", **kw: Any
) -> int | None:
    return await store.enqueue(
        network="sms", subscriber_id=sub, dedup_key=key, destination=dest,
        payload={"body": key}, now=kw.get("now", NOW), expires=kw.get("expires", NOW + 3600),
    )  # fmt: skip


async def _alice(store: Store) -> int:
    return (await store.add_subscriber(BareJid.parse("alice@example.test"), 1.0)).id


async def test_an_item_keeps_what_was_enqueued(store: Store) -> None:
    sub = await _alice(store)
    item_id = await _enqueue(store, sub, "k1", expires=NOW + 60)
    (item,) = await store.outbox_items("sms")
    assert (item.id, item.network, item.subscriber_id, item.dedup_key, item.destination) == (
        item_id, "sms", sub, "k1", "+33600000001",
    )  # fmt: skip
    assert (item.payload, item.state, item.attempts) == ({"body": "k1"}, "queued", 0)
    assert (item.next_attempt, item.created, item.expires) == (NOW, NOW, NOW + 60)
    assert await store.outbox_stats() == (1, NOW)


async def test_a_key_is_enqueued_once(store: Store) -> None:
    sub = await _alice(store)
    assert await _enqueue(store, sub, "k1") is not None
    assert await _enqueue(store, sub, "k1") is None
    assert len(await store.outbox_items()) == 1


async def test_a_delivered_xmpp_key_stays_a_duplicate_until_forgotten(store: Store) -> None:
    sub = await _alice(store)
    for key, delivered, again in (("x:a", True, False), ("x:b", False, True), ("s:c", True, True)):
        item_id = await _enqueue(store, sub, key)
        assert item_id is not None
        await store.complete(item_id, delivered=delivered)
        assert (await _enqueue(store, sub, key) is not None) is again, key
    assert await store.forget_delivered(time.time() - 3600) == 0  # kept for a while (stamped now)
    assert await store.forget_delivered(time.time() + 1) == 1  # "x:a"
    assert await _enqueue(store, sub, "x:a") is not None


async def test_due_items_come_oldest_first_and_one_head_per_conversation(store: Store) -> None:
    sub = await _alice(store)
    first = await _enqueue(store, sub, "k1", "+33600000001")
    second = await _enqueue(store, sub, "k2", "+33600000002")
    third = await _enqueue(store, sub, "k3", "+33600000001")
    assert first is not None and second is not None and third is not None
    assert [i.id for i in await store.due("sms", NOW)] == [first, second, third]
    assert [i.id for i in await store.due("sms", NOW, limit=1)] == [first]
    assert [i.id for i in await store.conversation_heads("sms", 10)] == [first, second]
    assert await store.due("msn", NOW) == []
    await store.reschedule(first, NOW + 30)
    assert [i.id for i in await store.due("sms", NOW)] == [second, third]
    assert [i.id for i in await store.due("sms", NOW + 30)] == [first, second, third]
    await store.make_due("sms", sub, NOW)
    assert [i.id for i in await store.due("sms", NOW)] == [first, second, third]


async def test_sending_counts_an_attempt_and_completing_removes(store: Store) -> None:
    sub = await _alice(store)
    one, two, three = [await _enqueue(store, sub, k) for k in ("k1", "k2", "k3")]
    assert one is not None and two is not None and three is not None
    await store.mark_sending(one)
    await store.start_mark_sending(two)
    await store.mark_sending_many([three])
    items = {i.id: i for i in await store.outbox_items()}
    assert [(items[i].state, items[i].attempts) for i in (one, two, three)] == [("sending", 1)] * 3
    assert await store.due("sms", NOW) == []
    await store.reschedule(one, NOW)
    assert [(i.id, i.state, i.attempts) for i in await store.due("sms", NOW)] == [(one, "queued", 1)]
    await store.complete_many([one, two])
    assert [i.id for i in await store.outbox_items()] == [three]


async def test_a_restart_requeues_what_was_caught_mid_send(backend: Backend) -> None:
    store = await backend.open()
    sub = await _alice(store)
    item_id = await _enqueue(store, sub, "k1")
    assert item_id is not None
    await store.mark_sending(item_id)
    await store.close()
    store = await backend.open()
    try:
        assert await store.requeue_interrupted() == 1
        (item,) = await store.due("sms", NOW)
        assert (item.id, item.state, item.attempts) == (item_id, "queued", 1)
        assert await store.requeue_interrupted() == 0
    finally:
        await store.close()
