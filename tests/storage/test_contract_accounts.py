"""Storage contract: subscribers and their accounts, through the store's interface only.

Runs once per backend (``backend`` fixture, tests/storage/conftest.py): a backend joins
the suite by adding itself there; every test here must then pass unchanged.
"""

from __future__ import annotations

import pytest

from gateway.addressing import BareJid
from gateway.storage import Conflict, Contact, StorageError, Store
from tests.storage.conftest import Backend

ALICE, BOB = BareJid.parse("alice@example.test"), BareJid.parse("bob@example.test")
SECRET = "correct horse battery staple"


async def test_subscribers_are_found_by_id_jid_and_account(store: Store) -> None:
    alice = await store.add_subscriber(ALICE, 1.0)
    await store.set_account(alice.id, "msn", "alice@hotmail.test", None, 2.0)
    assert await store.subscriber(alice.id) == alice
    assert await store.subscriber_by_jid(ALICE) == alice
    assert await store.subscriber_by_account("msn", "alice@hotmail.test") == alice
    assert await store.subscriber_by_account("sms", "alice@hotmail.test") is None
    assert [s.id for s in await store.subscribers()] == [alice.id]


async def test_a_jid_subscribes_once(store: Store) -> None:
    await store.add_subscriber(ALICE, 1.0)
    with pytest.raises(Conflict):
        await store.add_subscriber(ALICE, 2.0)


async def test_settings_are_kept(store: Store) -> None:
    alice = await store.add_subscriber(ALICE, 1.0)
    await store.update_settings(alice.id, {"away_sms": True})
    found = await store.subscriber(alice.id)
    assert found is not None and found.settings == {"away_sms": True}


async def test_the_secret_is_encrypted_at_rest(backend: Backend) -> None:
    store = await backend.open()
    alice = await store.add_subscriber(ALICE, 1.0)
    account = await store.set_account(alice.id, "msn", "alice@hotmail.test", SECRET, 1.0)
    assert account.has_secret
    assert await store.account_secret(alice.id, "msn") == SECRET
    await store.close()
    assert SECRET.encode() not in backend.at_rest()
    assert b"alice@hotmail.test" in backend.at_rest()  # the look: the data is there, in clear
    reopened = await backend.open()
    try:
        assert await reopened.account_secret(alice.id, "msn") == SECRET
    finally:
        await reopened.close()


async def test_a_legacy_id_linked_to_another_subscriber_is_a_conflict(store: Store) -> None:
    alice = await store.add_subscriber(ALICE, 1.0)
    bob = await store.add_subscriber(BOB, 1.0)
    await store.set_account(alice.id, "sms", "+33611111111", None, 1.0)
    with pytest.raises(Conflict) as conflict:
        await store.set_account(bob.id, "sms", "+33611111111", None, 2.0)
    assert isinstance(conflict.value, StorageError)
    assert await store.subscriber_by_account("sms", "+33611111111") == alice
    await store.set_account(alice.id, "sms", "+33611111111", None, 3.0)  # re-linking one's own: fine


async def test_removing_an_account_or_a_subscriber_removes_what_hangs_on_it(store: Store) -> None:
    alice = await store.add_subscriber(ALICE, 1.0)
    await store.set_account(alice.id, "msn", "alice@hotmail.test", None, 1.0)
    await store.upsert_contacts([Contact(alice.id, "msn", "carol@hotmail.test", "Carol", (), 1)])
    await store.remove_account(alice.id, "msn")
    assert await store.account(alice.id, "msn") is None
    assert await store.contacts(alice.id, "msn") == []
    await store.set_account(alice.id, "sms", "+33611111111", None, 1.0)
    await store.remove_subscriber(alice.id)
    assert await store.subscriber(alice.id) is None
    assert await store.accounts() == []
