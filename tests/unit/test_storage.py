"""The store's contract, migrations from every earlier version, encryption at rest."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from gateway.addressing import BareJid
from gateway.storage import Cipher, Conflict, Contact, KeyError_, StorageError, Store, create_key_file
from gateway.storage.migrations import LATEST
from gateway.storage.store import migrate, schema_version


@pytest.fixture
def cipher(tmp_path: Path) -> Cipher:
    create_key_file(tmp_path / "k.key")
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    return Cipher.from_file(tmp_path / "k.key")


async def test_from_an_empty_file(tmp_path: Path, cipher: Cipher) -> None:
    store = await Store.open(tmp_path / "db", cipher)
    async with aiosqlite.connect(tmp_path / "db") as raw:
        assert await schema_version(raw) == LATEST
        async with raw.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone()) == ("wal",)
    await store.close()
    assert (tmp_path / "db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("start", range(1, LATEST))
async def test_from_each_earlier_version(tmp_path: Path, cipher: Cipher, start: int) -> None:
    async with aiosqlite.connect(tmp_path / "db", isolation_level=None) as raw:
        await migrate(raw, target=start)
        await raw.execute("INSERT INTO subscribers (jid, created) VALUES ('old@example.org', 1.0)")
    store = await Store.open(tmp_path / "db", cipher)
    sub = await store.subscriber_by_jid(BareJid.parse("old@example.org"))
    assert sub is not None  # data written at the old version survives
    await store.close()


async def test_newer_schema_is_refused(tmp_path: Path, cipher: Cipher) -> None:
    async with aiosqlite.connect(tmp_path / "db", isolation_level=None) as raw:
        await raw.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StorageError, match="newer than this Passerelle supports"):
        await Store.open(tmp_path / "db", cipher)


async def test_accounts_conflict_and_cascade(tmp_path: Path, cipher: Cipher) -> None:
    store = await Store.open(tmp_path / "db", cipher)
    alice = await store.add_subscriber(BareJid.parse("alice@example.org"), 1.0)
    bob = await store.add_subscriber(BareJid.parse("bob@example.org"), 1.0)
    await store.set_account(alice.id, "msn", "alice@msn.test", "hunter2", 1.0)
    with pytest.raises(Conflict):
        await store.set_account(bob.id, "msn", "alice@msn.test", "x", 1.0)
    assert await store.account_secret(alice.id, "msn") == "hunter2"
    await store.upsert_contacts([Contact(alice.id, "msn", "c@msn.test", "C", ("G",), 11)])
    await store.enqueue(
        network="msn",
        subscriber_id=alice.id,
        dedup_key="k",
        destination="c@msn.test",
        payload={"body": "b"},
        now=1.0,
        expires=2.0,
    )
    await store.remove_subscriber(alice.id)
    assert await store.accounts() == []
    assert await store.contacts(alice.id, "msn") == []
    assert await store.outbox_items() == []
    await store.close()


async def test_passwords_are_encrypted_at_rest(tmp_path: Path, cipher: Cipher) -> None:
    store = await Store.open(tmp_path / "db", cipher)
    sub = await store.add_subscriber(BareJid.parse("alice@example.org"), 1.0)
    await store.set_account(sub.id, "msn", "alice@msn.test", "correct-horse-battery", 1.0)
    await store.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("db*"))
    assert b"correct-horse-battery" not in blob


async def test_wrong_key_gives_a_clear_error(tmp_path: Path, cipher: Cipher) -> None:
    store = await Store.open(tmp_path / "db", cipher)
    await store.close()
    create_key_file(tmp_path / "other.key")
    with pytest.raises(KeyError_, match="not the one this database was created with"):
        await Store.open(tmp_path / "db", Cipher.from_file(tmp_path / "other.key"))


async def test_outbox_dedup_and_requeue(tmp_path: Path, cipher: Cipher) -> None:
    store = await Store.open(tmp_path / "db", cipher)
    args = dict(
        network="sms",
        subscriber_id=None,
        destination="+33600000000",
        payload={"body": "x"},
        now=1.0,
        expires=9.0,
    )
    first = await store.enqueue(dedup_key="a", **args)  # type: ignore[arg-type]
    assert first is not None
    assert await store.enqueue(dedup_key="a", **args) is None  # type: ignore[arg-type]
    await store.mark_sending(first)
    assert await store.requeue_interrupted() == 1
    (item,) = await store.due("sms", 2.0)
    assert item.state == "queued" and item.attempts == 1
    assert await store.outbox_stats() == (1, 1.0)
    await store.close()
