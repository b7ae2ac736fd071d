"""A client's resend of a message (the same id and text to the same contact, as XEP-0198
clients resend what the server had not acknowledged when their stream broke) is delivered
once, whether the first copy is still queued or already delivered; another text or another
contact under a reused id is a new message.
The memory of delivered messages is bounded in time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.addressing import FullJid
from gateway.transport import Delivered, Failed
from tests.unit.bridge_fakes import (
    ALICE,
    FakeComponent,
    FullableStore,
    ScriptedTransport,
    running,
    until,
    until_empty,
)

BOB = FullJid.parse("bob@example.test/phone")


async def test_a_resend_of_a_delivered_message_is_not_delivered_again(
    tmp_path: Path, store: FullableStore
) -> None:
    transport = ScriptedTransport("test", lambda _item: Delivered())
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await store.set_account(sub.id, "test", "alice", None, 1.0)
    bridge = await running(tmp_path, store, transport, component=FakeComponent())

    async def send(msg_id: str, body: str) -> None:
        await bridge.message_received("test", ALICE, "bob\\40echo.test", body, msg_id, False)

    async def settled() -> None:
        await asyncio.sleep(0.3)
        await until_empty(store)

    try:
        await send("m1", "hello")
        await send("m1", "hello")  # resent while the first is queued
        await until(lambda: len(transport.calls) == 1)
        await settled()
        await send("m1", "hello")  # resent after it was delivered
        await settled()
        assert [c.payload["body"] for c in transport.calls] == ["hello"]

        await send("m1", "another text")  # a client that reuses its ids
        await until(lambda: len(transport.calls) == 2)
        await bridge.message_received("test", ALICE, "carol\\40echo.test", "hello", "m1", False)
        await until(lambda: len(transport.calls) == 3)  # the same id and text to someone else
        await settled()
        assert [c.destination for c in transport.calls] == ["bob@echo.test"] * 2 + ["carol@echo.test"]

        assert await store.forget_delivered(time.time() + 1) == 3  # an hour later, say
        await send("m1", "hello")
        await until(lambda: len(transport.calls) == 4)
        assert [c.payload["body"] for c in transport.calls] == ["hello", "another text", "hello", "hello"]
    finally:
        await bridge.stop()


async def test_removing_the_subscriber_forgets_their_delivered_keys(
    tmp_path: Path, store: FullableStore
) -> None:
    transport = ScriptedTransport("test", lambda _item: Delivered())
    alice = await store.add_subscriber(ALICE.bare, 1.0)
    bob = await store.add_subscriber(BOB.bare, 1.0)
    for sub in (alice, bob):
        await store.set_account(sub.id, "test", f"{sub.jid}", None, 1.0)
    bridge = await running(tmp_path, store, transport, component=FakeComponent())
    try:
        await bridge.message_received("test", ALICE, "carol\\40echo.test", "hi", "m1", False)
        await bridge.message_received("test", BOB, "carol\\40echo.test", "hi", "m1", False)
        await until(lambda: len(transport.calls) == 2)
        await until_empty(store)
    finally:
        await bridge.stop()
    keys = {row[0] for row in await store._r.execute("SELECT dedup_key FROM delivered")}
    assert len(keys) == 2 and not any("alice" in k or "bob" in k for k in keys)  # no JID in clear
    await store.remove_subscriber(alice.id)
    assert {row[0] for row in await store._r.execute("SELECT dedup_key FROM delivered")} == {
        k for k in keys if k.startswith(f"x:test:{bob.id}:")
    }


async def test_a_resend_of_a_failed_message_is_tried_and_answered_again(
    tmp_path: Path, store: FullableStore
) -> None:
    transport = ScriptedTransport(
        "test", lambda _item: Failed("recipient-unavailable", {"reason": "offline"})
    )
    xmpp = FakeComponent()
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await store.set_account(sub.id, "test", "alice", None, 1.0)
    bridge = await running(tmp_path, store, transport, component=xmpp)
    try:
        await bridge.message_received("test", ALICE, "bob\\40echo.test", "hello", "m1", False)
        await until(lambda: len(xmpp.errors) == 1)
        await until_empty(store)
        await bridge.message_received("test", ALICE, "bob\\40echo.test", "hello", "m1", False)
        await until(lambda: len(xmpp.errors) == 2)  # the resend's sender is told too
        assert len(transport.calls) == 2
    finally:
        await bridge.stop()
