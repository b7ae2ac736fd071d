"""Database backups: a consistent online copy, and a careful restore.

:func:`backup` uses SQLite's online backup API, so it is consistent while the gateway
writes (WAL included) and needs no downtime. :func:`restore` refuses anything that is
not a Passerelle database this version can run, keeps the database it replaces beside
it (``<db>.bak``, ``<db>.bak.1``…), and checks the key file against the restored data
before anything is replaced. The caller makes sure no gateway is running.

The key file (``storage.key_file``) is not in the database: back it up with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.storage import Cipher, Store
from gateway.storage.migrations import LATEST

TABLES = frozenset({"meta", "subscribers", "accounts", "contacts"})


class BackupError(Exception):
    """A backup or restore refused or failed; ``str()`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    schema: int
    subscribers: int


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        yield conn
    finally:
        conn.close()


def inspect(conn: sqlite3.Connection, name: Path) -> DatabaseInfo:
    """Check that ``conn`` holds a Passerelle database this version can run."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError:
        raise BackupError(f"{name}: not a Passerelle database (not an SQLite database)") from None
    if schema == 0 or not TABLES.issubset(tables):
        raise BackupError(f"{name}: not a Passerelle database (no Passerelle tables in it)")
    if schema > LATEST:
        raise BackupError(
            f"{name}: written by a newer Passerelle (schema version {schema}, this one knows up to "
            f"{LATEST}); upgrade Passerelle first"
        )
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise BackupError(f"{name}: the database is damaged ({check})")
    subscribers = int(conn.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0])
    return DatabaseInfo(schema, subscribers)


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (phone numbers and contacts are inside)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _copy(source: sqlite3.Connection, dest: Path) -> None:
    """A standalone copy (rollback journal, no WAL beside it) of ``source`` at ``dest``."""
    _private_file(dest)
    with _connect(dest) as out:
        source.backup(out)
        out.execute("PRAGMA journal_mode = DELETE")
        out.commit()
    with open(dest, "rb") as handle:
        os.fsync(handle.fileno())


def backup(db: Path, dest: Path, *, overwrite: bool = False) -> DatabaseInfo:
    """Copy the database at ``db`` to ``dest``, safely while a gateway is using it."""
    if not db.is_file():
        raise BackupError(f"{db}: no database here to back up")
    if dest.exists() and not overwrite:
        raise BackupError(f"{dest} already exists; give another name or --force")
    if dest.resolve() == db.resolve():
        raise BackupError(f"{dest}: that is the database itself")
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        with _connect(db) as conn:
            info = inspect(conn, db)
            _copy(conn, tmp)
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        raise BackupError(f"{db}: backup failed ({exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return info


def _free_name(db: Path) -> Path:
    kept = db.with_name(db.name + ".bak")
    n = 0
    while kept.exists():
        n += 1
        kept = db.with_name(f"{db.name}.bak.{n}")
    return kept


@dataclass(frozen=True, slots=True)
class Restored:
    info: DatabaseInfo
    kept: Path | None
    migrated_to: int


async def restore(db: Path, source: Path, key_file: Path) -> Restored:
    """Replace the database at ``db`` with the backup ``source`` (no gateway may run)."""
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    cipher = Cipher.from_file(key_file)
    tmp = db.with_name(f".{db.name}.restoring-{os.getpid()}")
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            with _connect(source) as conn:
                info = inspect(conn, source)
                _copy(conn, tmp)
        except sqlite3.Error as exc:
            raise BackupError(f"{source}: cannot read it ({exc})") from None
        # forward migrations, and the key check: the restored passwords must be readable
        store = await Store.open(tmp, cipher)
        await store.close()
        with _connect(tmp) as conn:
            conn.execute("PRAGMA journal_mode = DELETE")
            migrated_to = int(conn.execute("PRAGMA user_version").fetchone()[0])
        kept = None
        owner = db.stat() if db.exists() else db.parent.stat()
        if db.exists():
            kept = _free_name(db)
            try:
                with _connect(db) as conn:
                    _copy(conn, kept)
            except sqlite3.Error:  # not readable as a database: keep the file as it is
                shutil.copy2(db, kept)
        for suffix in ("-wal", "-shm"):  # the old WAL must never be applied to the new file
            with contextlib.suppress(FileNotFoundError):
                db.with_name(db.name + suffix).unlink()
        if os.geteuid() == 0:  # restored by root: the service's user must still own it
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, db)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return Restored(info, kept, migrated_to)
