"""Backups: consistent copies; restores that refuse what they cannot run."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gateway.addressing import BareJid
from gateway.ops.backup import BackupError, backup, restore
from gateway.storage import Cipher, KeyError_, Store, create_key_file
from gateway.storage.migrations import LATEST


async def make_db(tmp_path: Path, jids: list[str]) -> tuple[Path, Path]:
    db, key = tmp_path / "gw.db", tmp_path / "secret.key"
    if not key.exists():
        create_key_file(key)
    store = await Store.open(db, Cipher.from_file(key))
    for jid in jids:
        sub = await store.add_subscriber(BareJid.parse(jid), 1.0)
        await store.set_account(sub.id, "msn", jid.replace("@", "-") + "@hotmail.com", "pw", 1.0)
    await store.close()
    return db, key


async def jids_in(db: Path, key: Path) -> list[str]:
    store = await Store.open(db, Cipher.from_file(key))
    try:
        return [str(s.jid) for s in await store.subscribers()]
    finally:
        await store.close()


async def test_backup_while_open_then_restore_round_trip(tmp_path: Path) -> None:
    db, key = await make_db(tmp_path, ["alice@example.org"])
    live = await Store.open(db, Cipher.from_file(key))  # a running gateway holds it open (WAL)
    await live.add_subscriber(BareJid.parse("bob@example.org"), 2.0)
    copy = tmp_path / "backups" / "copy.db"
    copy.parent.mkdir()
    info = backup(db, copy)
    await live.remove_subscriber((await live.subscribers())[0].id)
    await live.close()
    assert info.subscribers == 2 and info.schema == LATEST
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not Path(str(copy) + "-wal").exists()
    with pytest.raises(BackupError, match="already exists"):
        backup(db, copy)

    done = await restore(db, copy, key)
    assert done.kept == tmp_path / "gw.db.bak"
    assert sorted(await jids_in(db, key)) == ["alice@example.org", "bob@example.org"]
    assert await jids_in(done.kept, key) == ["bob@example.org"]
    again = await restore(db, copy, key)
    assert again.kept == tmp_path / "gw.db.bak.1"


async def test_restore_refuses_foreign_newer_and_wrongly_keyed_files(tmp_path: Path) -> None:
    db, key = await make_db(tmp_path, ["alice@example.org"])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a Passerelle database"):
        await restore(db, junk, key)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(BackupError, match="not a Passerelle database"):
        await restore(db, other, key)
    newer = tmp_path / "newer.db"
    backup(db, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(BackupError, match=f"newer Passerelle \\(schema version {LATEST + 1}"):
        await restore(db, newer, key)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    foreign_db, _ = await make_db(foreign, ["eve@example.org"])
    with pytest.raises(KeyError_, match="not the one this database was created with"):
        await restore(db, foreign_db, key)
    assert await jids_in(db, key) == ["alice@example.org"]  # untouched by every refusal
    assert not (tmp_path / "gw.db.bak").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


async def test_an_older_backup_is_migrated_forward(tmp_path: Path) -> None:
    db, key = await make_db(tmp_path, ["alice@example.org"])
    old = tmp_path / "old.db"
    from gateway.storage.migrations import MIGRATIONS

    with sqlite3.connect(old) as conn:
        conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        conn.execute("INSERT INTO subscribers (jid, created) VALUES ('carol@example.org', 1)")
    done = await restore(db, old, key)
    assert (done.info.schema, done.migrated_to) == (1, LATEST)
    assert await jids_in(db, key) == ["carol@example.org"]
