"""A message that fails for good leaves the outbox only once its sender was told: the XMPP
error is confirmed by the server like a delivery (a ping answered after it on the same
stream). Written on a stream that was breaking, it is written again, and the message itself
is never sent again (it failed: only the telling is owed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.bridge import Bridge
from gateway.transport import Failed
from tests.conftest import base_config
from tests.unit.bridge_fakes import ALICE, FakeComponent, FullableStore, ScriptedTransport, until


async def test_an_unconfirmed_failure_notice_is_sent_again_and_the_message_is_not(
    tmp_path: Path, store: FullableStore
) -> None:
    refused = Failed("recipient-unavailable", {"reason": "refused"})
    transport = ScriptedTransport("test", lambda _item: refused)
    xmpp = FakeComponent()
    xmpp.confirms = False  # the stream breaks right after the error is written
    sub = await store.add_subscriber(ALICE.bare, 1.0)
    await store.enqueue(
        network="test", subscriber_id=sub.id, dedup_key="k1", destination="bob@echo.test",
        payload={"body": "hello", "from": str(ALICE), "id": "m1", "contact": "bob"},
        now=1.0, expires=10.0**10,
    )  # fmt: skip
    bridge = Bridge(base_config(tmp_path), store, {"test": transport})
    bridge.components = {"test": xmpp}  # type: ignore[dict-item]
    await bridge.start()
    try:
        await until(lambda: len(xmpp.errors) >= 2, timeout=6.0)  # told again after a pause
        assert len(await store.outbox_items()) == 1, "left the outbox before its sender was told"
        xmpp.confirms = True
        async with asyncio.timeout(5):
            while await store.outbox_items():
                await asyncio.sleep(0.05)
        assert len(transport.calls) == 1, "a message that failed for good was sent again"
        assert {e[2] for e in xmpp.errors} == {"m1"}  # each notice about the same message
        assert xmpp.errors[0][3].condition == "recipient-unavailable"
    finally:
        await bridge.stop()
