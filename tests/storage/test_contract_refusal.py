"""Storage contract: a write the database refuses is a :class:`gateway.errors.StorageError`
(whatever the backend; its own error is the cause), nothing of it is kept, and the store
works again once the database takes writes. Runs once per backend (tests/storage/conftest.py)."""

from __future__ import annotations

import pytest

from gateway.addressing import BareJid
from gateway.errors import StorageError
from gateway.storage import Store
from tests.storage.conftest import Backend
from transports.sms.storage import SentPart

NOW = 1_700_000_000.0


async def _enqueue(store: Store, key: str) -> int | None:
    return await store.enqueue(network="sms", subscriber_id=None, dedup_key=key, destination="+33600000001",
                               payload={"body": "hi"}, now=NOW, expires=NOW + 60)  # fmt: skip


async def test_refused_writes_are_storage_errors_and_keep_nothing(backend: Backend, store: Store) -> None:
    part = SentPart("m", 1, "abc", "sent", 1, None, {})
    with backend.refusing_writes():
        with pytest.raises(StorageError) as refused:
            await _enqueue(store, "k1")
        assert refused.value.__cause__ is not None  # the backend's own error, for the log
        with pytest.raises(StorageError):
            await store.sms.record_sent([part], NOW)
        with pytest.raises(StorageError):
            await store.sms.mark_seen("k", NOW)
        with pytest.raises(StorageError):
            await store.add_subscriber(BareJid.parse("alice@example.test"), NOW)
    assert await store.outbox_items() == [] and await store.sms.sent_part_by_id(("abc",)) is None
    assert await _enqueue(store, "k1") is not None  # the database takes writes again
    await store.sms.record_sent([part], NOW)
    assert await store.sms.sent_part_by_id(("abc",)) == part
