"""The store: opening the database (schema, migrations, connections) and :class:`Store`.

:class:`Store` is the storage interface the rest of the gateway sees, assembled from its
parts: subscribers and accounts (``subscribers``), contacts (``contacts``), the durable
outbox (``outbox``) and the SMS transport's tables (``sms``). It is written against SQLite
(aiosqlite, WAL); failures come out as :class:`gateway.errors.StorageError`. SQL is only
ever built with parameters.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.errors import StorageError
from gateway.storage.boundary import Writes
from gateway.storage.contacts import ContactTables
from gateway.storage.crypto import Cipher
from gateway.storage.migrations import LATEST, MIGRATIONS
from gateway.storage.outbox import OutboxRows, OutboxTables
from gateway.storage.reader import Reader, first
from gateway.storage.sms import SmsTables
from gateway.storage.subscribers import SubscriberTables
from gateway.storage.writer import GroupWriter

log = logging.getLogger(__name__)


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection, target: int = LATEST) -> list[int]:
    """Apply pending migrations up to ``target``; return the versions applied."""
    current = await schema_version(db)
    if current > LATEST:
        raise StorageError(
            f"the database is at schema version {current}, newer than this Passerelle supports "
            f"({LATEST}); upgrade Passerelle or restore a backup made by this version"
        )
    applied: list[int] = []
    for version in range(current + 1, target + 1):
        await db.executescript(
            "BEGIN IMMEDIATE;\n" + MIGRATIONS[version - 1] + f"\nPRAGMA user_version = {version};\nCOMMIT;"
        )
        applied.append(version)
    return applied


def _log_schema_change(path: Path, before: int) -> None:
    """One line for what opening did to the schema: a new database is routine (info); an
    upgrade says from which version to which, once, not one line per migration."""
    if before == 0:
        log.info("created database %s at schema version %d", path, LATEST)
    else:
        log.info("upgraded database %s from schema version %d to %d", path, before, LATEST)


def _writer_connection(path: Path) -> sqlite3.Connection:
    """The group writer's own connection (opened on its thread): same pragmas as the store's.
    The store's aiosqlite connection reads (and migrates); this one makes every other write."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


async def _close(db: aiosqlite.Connection, writer: GroupWriter | None) -> None:
    if writer is not None:
        await writer.close()  # every acknowledged write is committed first
    await db.close()


class Store(SubscriberTables, ContactTables, OutboxTables):
    """Async access to one database file. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection, writer: GroupWriter, cipher: Cipher | None) -> None:
        self._db = db
        self._cipher = cipher
        self._raw_writer = writer
        self._w = Writes(writer)
        self._r = Reader(db)
        self._outbox = OutboxRows()
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._changes = 0
        self.sms = SmsTables(self._r, self._w, self)
        self.schema_before = LATEST  # the schema version found at open (0: a new database)

    @classmethod
    async def open(cls, path: Path, cipher: Cipher | None, *, upgrade: bool = True) -> Store:
        """Open (creating if needed) and bring the schema up to date.

        With ``upgrade=False`` a database that needs migrations is refused instead.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # phone numbers and contacts: readable by the service only
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the database ({exc})") from None
        db.row_factory = sqlite3.Row
        writer: GroupWriter | None = None
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")  # the writer's connection: the same
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 5000")
            version = await schema_version(db)
            if version < LATEST and not upgrade:
                raise StorageError(f"{path}: schema version {version} needs `passerelle db upgrade`")
            if await migrate(db):
                _log_schema_change(path, version)
            writer = await GroupWriter.start(functools.partial(_writer_connection, path))
            store = cls(db, writer, cipher)
            store.schema_before = version
            if cipher is not None:
                await store._check_key()
            return store
        except sqlite3.DatabaseError as exc:
            await _close(db, writer)
            raise StorageError(f"{path}: not a usable Passerelle database ({exc})") from None
        except BaseException:
            await _close(db, writer)
            raise

    async def close(self) -> None:
        await _close(self._db, self._raw_writer)
        log.info(
            "database closed: %d writes in %d transactions; %d reads",
            self._raw_writer.writes,
            self._raw_writer.commits,
            self._r.hops,
        )

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions committed, writes in them): the group-commit factor."""
        return self._raw_writer.commits, self._raw_writer.writes

    @property
    def db_hops(self) -> int:
        """Hand-overs to the database threads so far: one per read, one per write batch."""
        return self._r.hops + self._raw_writer.hops

    async def _check_key(self) -> None:
        assert self._cipher is not None
        row = first(await self._r.execute("SELECT value FROM meta WHERE key = 'key_check'"))
        if row is None:
            await self._w.write(
                "INSERT INTO meta (key, value) VALUES ('key_check', ?)", (self._cipher.encrypt("passerelle"),)
            )
        else:
            self._cipher.decrypt(row[0])  # raises KeyError_ with a clear message

    # -- cached identity look-ups (every message needs them) ---------------------------
