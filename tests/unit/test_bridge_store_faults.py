"""The bridge when the database refuses writes (disk full): new messages are refused with
``storage-full``; an outbox item whose state change is refused is neither sent again once
delivered, nor retried in a tight loop, nor left blocking its conversation. Also: an MSN
message no route can take to a subscriber without XMPP is answered to its sender."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.bridge import Bridge
from gateway.core.events import LegacyMessageReceived
from gateway.errors import UserError
from gateway.storage import Contact, OutboxItem, Store
from gateway.transport import Delivered, DeliveryOutcome, Failed, Retry
from tests.conftest import base_config
from tests.echo_transport import EchoTransport
from tests.unit.bridge_fakes import (
    ALICE,
    FakeComponent,
    FullableStore,
    ScriptedTransport,
    running,
    until,
    until_empty,
)


async def queue_one(store: Store, network: str, subscriber_id: int, key: str = "k1") -> int:
    item = await store.enqueue(
        network=network, subscriber_id=subscriber_id, dedup_key=key, destination="bob@echo.test",
        payload={"body": "hello", "from": str(ALICE), "id": key}, now=1.0, expires=10.0**10,
    )  # fmt: skip
    assert item is not None
    return item


async def test_a_new_message_is_refused_with_storage_full(tmp_path: Path, store: FullableStore) -> None:
    bridge = Bridge(base_config(tmp_path), store, {"test": EchoTransport()})
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await store.set_account(sub.id, "test", "alice", "pw", 1.0)
    store.full = True
    with pytest.raises(UserError) as refused:
        await bridge.message_received("test", ALICE, "bob\\40echo.test", "hello", "m1", False)
    assert refused.value.key == "storage-full"
    assert refused.value.condition == "resource-constraint"
    assert "cannot store new messages" in refused.value.text


async def test_a_delivered_message_whose_removal_is_refused_is_not_sent_again(
    tmp_path: Path, store: FullableStore
) -> None:
    def fill_the_disk_while_sending(_item: OutboxItem) -> DeliveryOutcome:
        store.full = True
        return Delivered()

    transport = ScriptedTransport("test", fill_the_disk_while_sending)
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    item_id = await queue_one(store, "test", sub.id)
    bridge = await running(tmp_path, store, transport)
    try:
        await until(lambda: len(transport.calls) == 1)
        await asyncio.sleep(1.5)  # the removal is refused meanwhile
        assert len(transport.calls) == 1
        assert store.writes.count("complete") <= 4, "the removal is retried with a pause, not in a loop"
        store.full = False
        await until_empty(store)
        assert len(transport.calls) == 1, "the delivered message was sent again"
        assert transport.calls[0].id == item_id
    finally:
        await bridge.stop()


async def test_a_refused_state_change_is_retried_after_a_pause_not_in_a_loop(
    tmp_path: Path, store: FullableStore
) -> None:
    transport = ScriptedTransport("test", lambda _item: Delivered())
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await queue_one(store, "test", sub.id)
    store.full = True  # every state change is refused: its 'sending' mark, then its removal
    bridge = await running(tmp_path, store, transport)
    try:
        await asyncio.sleep(2.0)
        tries = store.writes.count("complete")
        assert 1 <= tries <= 5, f"{tries} tries in 2 s"
        assert store.writes.count("mark_sending") == 1  # a refused mark does not stop the send
        assert len(transport.calls) == 1  # delivered once, never again while its removal waits
        store.full = False
        await until_empty(store)
        assert len(transport.calls) == 1
    finally:
        await bridge.stop()


async def test_a_retry_whose_reschedule_is_refused_does_not_block_the_conversation(
    tmp_path: Path, store: FullableStore
) -> None:
    outcomes = [Retry(0.3, "throttled"), Delivered()]

    def throttled_once(_item: OutboxItem) -> DeliveryOutcome:
        store.full = len(outcomes) == 2  # the reschedule after the first try is refused
        return outcomes.pop(0)

    transport = ScriptedTransport("test", throttled_once)
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await queue_one(store, "test", sub.id)
    bridge = await running(tmp_path, store, transport)
    try:
        await until(lambda: len(transport.calls) == 1)
        assert "reschedule" in store.writes
        store.full = False
        await until(lambda: len(transport.calls) == 2, timeout=6.0)  # was stuck 'sending' until restart
        await until_empty(store)
    finally:
        await bridge.stop()


async def test_an_msn_message_no_route_takes_to_an_sms_only_subscriber_is_answered(
    tmp_path: Path, store: FullableStore
) -> None:
    """The subscriber has no XMPP address and the SMSC refuses the forward for good: the MSN
    sender (whose switchboard ACKed the message) gets an automatic answer, and the message
    leaves the queue (it used to leave it silently)."""
    sms = ScriptedTransport("sms", lambda _item: Failed("recipient-unavailable", {"reason": "refused"}))
    msn = ScriptedTransport("msn", lambda _item: Retry(60.0, "not now"))
    sam = await store.add_subscriber(None, 1.0)
    await store.set_account(sam.id, "sms", "+33611111111", None, 1.0)
    await store.set_account(sam.id, "msn", "sam@escargot.test", "pw", 1.0)
    await store.upsert_contacts([Contact(sam.id, "msn", "carol@escargot.test", "Carol", (), 3)])
    bridge = Bridge(base_config(tmp_path), store, {"sms": sms, "msn": msn})
    bridge.components = {"sms": FakeComponent(), "msn": FakeComponent()}  # type: ignore[dict-item]
    await bridge.start()
    try:
        await bridge.network_event(
            LegacyMessageReceived("msn", sam.id, "carol@escargot.test", "see you at 8?", "msn:1")
        )
        await until(lambda: len(msn.calls) == 1)
        notice = msn.calls[0]
        assert notice.destination == "carol@escargot.test"
        assert notice.payload["body"].startswith("(automatic reply)")
        assert len(sms.calls) == 1  # the forward the SMSC refused
        assert [i.network for i in await store.outbox_items()] == ["msn"]  # only the answer is left
    finally:
        await bridge.stop()
