"""Memory kept about an outbox item goes when the item leaves the outbox: SQLite gives a
later message the same id (the highest id, once deleted, is used again), and that message
was taken for one already texted and dropped (m2s messages to an SMS-only subscriber)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.bridge import Bridge
from gateway.core.events import LegacyMessageReceived
from gateway.storage import Contact
from gateway.transport import Delivered, Retry
from tests.conftest import base_config
from tests.unit.bridge_fakes import FakeComponent, FullableStore, ScriptedTransport, until


async def test_a_message_that_gets_the_id_of_a_texted_one_is_texted_too(
    tmp_path: Path, store: FullableStore
) -> None:
    sms = ScriptedTransport("sms", lambda _item: Delivered())
    sam = await store.add_subscriber(None, 1.0)  # SMS-only: every MSN message goes to the phone
    await store.set_account(sam.id, "sms", "+33611111111", None, 1.0)
    await store.set_account(sam.id, "msn", "sam@escargot.test", "pw", 1.0)
    await store.upsert_contacts([Contact(sam.id, "msn", "carol@escargot.test", "Carol", (), 3)])
    bridge = Bridge(
        base_config(tmp_path), store, {"sms": sms, "msn": ScriptedTransport("msn", lambda _i: Retry(60))}
    )
    bridge.components = {"sms": FakeComponent(), "msn": FakeComponent()}  # type: ignore[dict-item]
    await bridge.start()
    try:
        for n, text in enumerate(["one", "two", "three"]):
            await bridge.network_event(
                LegacyMessageReceived("msn", sam.id, "carol@escargot.test", text, f"m{n}")
            )
            await until(lambda n=n: len(sms.calls) == n + 1)
            while await store.outbox_items():  # gone: the next message gets the same id
                await asyncio.sleep(0.02)
        assert [c.payload["body"] for c in sms.calls] == ["Carol: one", "Carol: two", "Carol: three"]
        assert len({c.id for c in sms.calls}) == 1  # the same outbox id each time: the case at stake
    finally:
        await bridge.stop()
