"""The store: subscribers, their accounts and contacts, and the durable outbox.

This is the storage interface the rest of the gateway sees; it is written against
SQLite (aiosqlite, WAL) and kept small so that a server database can implement the same
methods when a deployment outgrows one machine. SQL is only ever built with parameters.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite

from gateway.addressing import BareJid
from gateway.core.records import Account, Contact, OutboxItem, Subscriber
from gateway.errors import Conflict, StorageError
from gateway.storage.boundary import Writes, is_constraint
from gateway.storage.crypto import Cipher, KeyError_
from gateway.storage.migrations import LATEST, MIGRATIONS
from gateway.storage.reader import Reader, first
from gateway.storage.sms import SmsTables
from gateway.storage.writer import GroupWriter, WriteResult

log = logging.getLogger(__name__)
CACHE_TTL_S = 10.0  # changes made by another process (the CLI) are seen within this time
CACHE_SIZE = 50000
OUTBOX_MEMO_SIZE = 20000  # outbox items kept while their message waits


def _subscriber(row: sqlite3.Row) -> Subscriber:
    jid = BareJid.parse(row["jid"]) if row["jid"] else None
    return Subscriber(row["id"], jid, row["created"], json.loads(row["settings"]))


def _account(row: sqlite3.Row) -> Account:
    has_secret = row["secret"] is not None
    return Account(row["subscriber_id"], row["network"], row["legacy_id"], has_secret, row["created"])


def _contact(row: sqlite3.Row) -> Contact:
    groups = tuple(json.loads(row["groups"]))
    sub, net = row["subscriber_id"], row["network"]
    return Contact(
        sub,
        net,
        row["legacy_id"],
        row["name"],
        groups,
        row["list_bits"],
        row["phone"],
        bool(row["phone_manual"]),
    )


def _contact_key(subscriber_id: int, network: str, legacy_id: str) -> tuple[Any, ...]:
    return ("contact", subscriber_id, network, legacy_id)


class _OutboxRows:
    """Outbox rows to :class:`OutboxItem`, for queries that name the columns in the order of
    its fields (``SELECT id, network, ..., expires``): read by position, as a look-up by name
    costs more than the rest of the row.

    The outbox is scanned again and again while messages wait (each worker round reads every
    conversation's head), so the item made from a row is kept and given again while the row
    is unchanged. Items are frozen; their payload must be treated as read-only too (a payload
    found changed is not given again: the item is made anew from the stored text)."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[tuple[Any, ...], dict[str, Any], OutboxItem]] = {}

    def item(self, row: sqlite3.Row) -> OutboxItem:
        values = tuple(row)
        hit = self._items.get(values[0])
        if hit is not None and hit[0] == values and hit[2].payload == hit[1]:
            return hit[2]
        if len(self._items) >= OUTBOX_MEMO_SIZE:
            self._items.clear()
        stored = json.loads(values[5])
        (item_id, network, sub, key, destination, _, state, attempts, at, created, expires) = values
        item = OutboxItem(
            item_id, network, sub, key, destination, dict(stored), state, attempts, at, created, expires
        )
        self._items[values[0]] = (values, stored, item)
        return item

    def forget(self, item_ids: Sequence[int]) -> None:
        for item_id in item_ids:
            self._items.pop(item_id, None)


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


class Store:
    """Async access to one database file. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection, writer: GroupWriter, cipher: Cipher | None) -> None:
        self._db = db
        self._cipher = cipher
        self._raw_writer = writer
        self._w = Writes(writer)
        self._r = Reader(db)
        self._outbox = _OutboxRows()
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._changes = 0  # writes to contacts and conversations so far (see _remember_read)
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

    def _cached(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def _remember(self, key: tuple[Any, ...], value: Any) -> Any:
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + CACHE_TTL_S, value)
        return value

    def forget_cached(self) -> None:
        """Drop cached look-ups (after any change to subscribers or accounts)."""
        self._cache.clear()
        self._changes += 1

    def _remember_read(self, key: tuple[Any, ...], value: Any, changes: int) -> Any:
        """Cache what a read found unless a write changed contacts or conversations while it
        ran (``changes`` is :attr:`_changes` when the read began): its result may be older
        than that write, which dropped the cached entries already."""
        if changes == self._changes:
            self._remember(key, value)
        return value

    def _changed(self, keys: Sequence[tuple[Any, ...]]) -> None:
        """After a write to contacts or conversations (made or failed): the cached entries
        go, and reads under way are not cached."""
        self._changes += 1
        for key in keys:
            self._cache.pop(key, None)

    async def subscriber(self, subscriber_id: int) -> Subscriber | None:
        hit, value = self._cached(("id", subscriber_id))
        if not hit:
            value = self._remember(("id", subscriber_id), await self._read_subscriber(subscriber_id))
        return cast(Subscriber | None, value)

    async def subscriber_by_jid(self, jid: BareJid) -> Subscriber | None:
        hit, value = self._cached(("jid", jid))
        if not hit:
            value = self._remember(("jid", jid), await self._read_subscriber_by_jid(jid))
        return cast(Subscriber | None, value)

    async def subscriber_by_account(self, network: str, legacy_id: str) -> Subscriber | None:
        key = ("owner", network, legacy_id)
        hit, value = self._cached(key)
        if not hit:
            value = self._remember(key, await self._read_subscriber_by_account(network, legacy_id))
        return cast(Subscriber | None, value)

    async def account(self, subscriber_id: int, network: str) -> Account | None:
        key = ("account", subscriber_id, network)
        hit, value = self._cached(key)
        if not hit:
            value = self._remember(key, await self._read_account(subscriber_id, network))
        return cast(Account | None, value)

    # -- subscribers ------------------------------------------------------------------

    async def add_subscriber(self, jid: BareJid | None, now: float) -> Subscriber:
        self.forget_cached()
        try:
            cur = await self._w.write(
                "INSERT INTO subscribers (jid, created) VALUES (?, ?)", (str(jid) if jid else None, now)
            )
        except StorageError as exc:
            if is_constraint(exc):
                raise Conflict(f"{jid} is already a subscriber") from None
            raise
        assert cur.lastrowid is not None
        return Subscriber(cur.lastrowid, jid, now, {})

    async def _read_subscriber(self, subscriber_id: int) -> Subscriber | None:
        row = first(await self._r.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,)))
        return _subscriber(row) if row else None

    async def _read_subscriber_by_jid(self, jid: BareJid) -> Subscriber | None:
        row = first(await self._r.execute("SELECT * FROM subscribers WHERE jid = ?", (str(jid),)))
        return _subscriber(row) if row else None

    async def _read_subscriber_by_account(self, network: str, legacy_id: str) -> Subscriber | None:
        rows = await self._r.execute(
            "SELECT s.* FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id "
            "WHERE a.network = ? AND a.legacy_id = ?",
            (network, legacy_id),
        )
        row = first(rows)
        return _subscriber(row) if row else None

    async def subscribers(self) -> list[Subscriber]:
        return [_subscriber(row) for row in await self._r.execute("SELECT * FROM subscribers ORDER BY id")]

    async def update_settings(self, subscriber_id: int, settings: dict[str, Any]) -> None:
        self.forget_cached()
        await self._w.write(
            "UPDATE subscribers SET settings = ? WHERE id = ?", (json.dumps(settings), subscriber_id)
        )

    async def remove_subscriber(self, subscriber_id: int) -> None:
        """Delete the subscriber and, by cascade, everything stored about them."""
        self.forget_cached()
        sub = await self._read_subscriber(subscriber_id)
        try:
            await self._w.write_group(
                [  # what is not removed by cascade: state keyed by JID or by a bare id
                    ("DELETE FROM sms_codes WHERE jid = ?", (str(sub.jid) if sub and sub.jid else "",)),
                    ("DELETE FROM sms_sent WHERE subscriber_id = ?", (subscriber_id,)),
                    ("DELETE FROM sms_usage WHERE subscriber_id = ?", (subscriber_id,)),
                    # keys of their delivered XMPP messages (gateway.bridge.xmpp_message_key)
                    ("DELETE FROM delivered WHERE dedup_key LIKE ?", (f"x:%:{subscriber_id}:%",)),
                    (  # parts of unfinished multi-part SMS to their number
                        "DELETE FROM sms_mo_parts WHERE destination IN (SELECT ltrim(legacy_id, '+') "
                        "FROM accounts WHERE subscriber_id = ? AND network = 'sms')",
                        (subscriber_id,),
                    ),
                    ("DELETE FROM subscribers WHERE id = ?", (subscriber_id,)),
                ]
            )
        finally:
            self.forget_cached()  # read meanwhile: their contacts, their last correspondent
        self.sms.forget_cached()  # their sent parts went with them (by cascade)

    # -- accounts ---------------------------------------------------------------------

    async def set_account(
        self, subscriber_id: int, network: str, legacy_id: str, secret: str | None, now: float
    ) -> Account:
        """Link (or re-link) the subscriber's account on ``network``.

        Raises :class:`Conflict` when another subscriber owns ``legacy_id``.
        """
        self.forget_cached()
        owner = await self.subscriber_by_account(network, legacy_id)
        if owner is not None and owner.id != subscriber_id:
            raise Conflict(f"{legacy_id} is already linked to another subscriber")
        blob = None
        if secret is not None:
            if self._cipher is None:
                raise StorageError("a key file is needed to store passwords")
            blob = self._cipher.encrypt(secret)
        await self._w.write(
            "INSERT INTO accounts (subscriber_id, network, legacy_id, secret, created) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (subscriber_id, network) DO UPDATE SET legacy_id = excluded.legacy_id, "
            "secret = excluded.secret",
            (subscriber_id, network, legacy_id, blob, now),
        )
        self.forget_cached()  # the owner look-up above cached the state before the write
        return Account(subscriber_id, network, legacy_id, blob is not None, now)

    async def _read_account(self, subscriber_id: int, network: str) -> Account | None:
        rows = await self._r.execute(
            "SELECT * FROM accounts WHERE subscriber_id = ? AND network = ?", (subscriber_id, network)
        )
        return _account(rows[0]) if rows else None

    async def account_secret(self, subscriber_id: int, network: str) -> str | None:
        """The decrypted secret; raises the key error when the key does not match."""
        row = first(
            await self._r.execute(
                "SELECT secret FROM accounts WHERE subscriber_id = ? AND network = ?",
                (subscriber_id, network),
            )
        )
        if row is None or row[0] is None:
            return None
        if self._cipher is None:
            raise KeyError_("a key file is needed to read stored passwords")
        return self._cipher.decrypt(row[0])

    async def accounts(self, network: str | None = None) -> list[Account]:
        rows = await self._r.execute(
            "SELECT * FROM accounts WHERE ? IS NULL OR network = ? ORDER BY subscriber_id", (network, network)
        )
        return [_account(r) for r in rows]

    async def remove_account(self, subscriber_id: int, network: str) -> None:
        self.forget_cached()
        which = (subscriber_id, network)
        try:
            await self._w.write_group(
                [
                    ("DELETE FROM accounts WHERE subscriber_id = ? AND network = ?", which),
                    ("DELETE FROM contacts WHERE subscriber_id = ? AND network = ?", which),
                ]
            )
        finally:
            self.forget_cached()  # contacts read meanwhile

    # -- contacts ---------------------------------------------------------------------

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> None:
        """Write many contacts in one transaction (roster sync writes in batches)."""
        try:
            await self._upsert_contacts(contacts)
        finally:
            self._changed([_contact_key(c.subscriber_id, c.network, c.legacy_id) for c in contacts])

    async def _upsert_contacts(self, contacts: Sequence[Contact]) -> None:
        await self._w.write_many(
            "INSERT INTO contacts (subscriber_id, network, legacy_id, name, groups, list_bits, phone) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subscriber_id, network, legacy_id) DO UPDATE SET "
            "name = excluded.name, groups = excluded.groups, list_bits = excluded.list_bits, "
            "phone = CASE WHEN contacts.phone_manual THEN contacts.phone ELSE excluded.phone END",
            [
                (
                    c.subscriber_id,
                    c.network,
                    c.legacy_id,
                    c.name,
                    json.dumps(list(c.groups)),
                    c.list_bits,
                    c.phone,
                )
                for c in contacts
            ],
        )

    async def link_phone(self, subscriber_id: int, network: str, legacy_id: str, phone: str) -> None:
        """An operator's link between a contact and a number: wins over the network's.
        (Made by another process, the CLI, it is seen within CACHE_TTL_S.)"""
        try:
            await self._w.write(
                "INSERT INTO contacts (subscriber_id, network, legacy_id, name, phone, phone_manual) "
                "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (subscriber_id, network, legacy_id) DO UPDATE SET "
                "phone = excluded.phone, phone_manual = 1",
                (subscriber_id, network, legacy_id, legacy_id, phone),
            )
        finally:
            self._changed([_contact_key(subscriber_id, network, legacy_id)])

    async def unlink_phone(self, subscriber_id: int, network: str, legacy_id: str) -> bool:
        """The operator's "no number" for a contact: the number the network publishes for it
        is ignored from now on (as a manual link wins). False: no such contact."""
        try:
            cur = await self._w.write(
                "UPDATE contacts SET phone = '', phone_manual = 1 "
                "WHERE subscriber_id = ? AND network = ? AND legacy_id = ?",
                (subscriber_id, network, legacy_id),
            )
        finally:
            self._changed([_contact_key(subscriber_id, network, legacy_id)])
        return bool(cur.rowcount)

    async def contact_by_phone(self, subscriber_id: int, network: str, phone: str) -> Contact | None:
        row = first(
            await self._r.execute(
                "SELECT * FROM contacts WHERE subscriber_id = ? AND network = ? AND phone = ? "
                "ORDER BY phone_manual DESC LIMIT 1",
                (subscriber_id, network, phone),
            )
        )
        return _contact(row) if row else None

    async def contact(self, subscriber_id: int, network: str, legacy_id: str) -> Contact | None:
        """One contact of the subscriber (every forwarded message needs its sender's).
        Cached; this store's writes to it drop the cached copy."""
        key = _contact_key(subscriber_id, network, legacy_id)
        hit, value = self._cached(key)
        if not hit:
            changes = self._changes
            row = first(
                await self._r.execute(
                    "SELECT * FROM contacts WHERE subscriber_id = ? AND network = ? AND legacy_id = ?",
                    (subscriber_id, network, legacy_id),
                )
            )
            value = self._remember_read(key, _contact(row) if row else None, changes)
        return cast(Contact | None, value)

    async def set_last_correspondent(self, subscriber_id: int, legacy_id: str, now: float) -> None:
        key = ("last", subscriber_id)
        try:
            await self._w.write(
                "INSERT INTO conversations (subscriber_id, last_from, last_at) VALUES (?, ?, ?) "
                "ON CONFLICT (subscriber_id) DO UPDATE SET "
                "last_from = excluded.last_from, last_at = excluded.last_at",
                (subscriber_id, legacy_id, now),
            )
        finally:
            self._changed([key])
        self._remember(key, (legacy_id, now))  # committed: what a read would find now

    async def last_correspondent(self, subscriber_id: int) -> tuple[str, float] | None:
        """Who the subscriber's phone last heard from (or wrote to), and when. Cached: only
        the gateway writes it (each set updates the cached copy)."""
        key = ("last", subscriber_id)
        hit, value = self._cached(key)
        if not hit:
            changes = self._changes
            row = first(
                await self._r.execute(
                    "SELECT last_from, last_at FROM conversations WHERE subscriber_id = ?", (subscriber_id,)
                )
            )
            value = self._remember_read(key, (row[0], row[1]) if row else None, changes)
        return cast(tuple[str, float] | None, value)

    async def contacts(self, subscriber_id: int, network: str) -> list[Contact]:
        rows = await self._r.execute(
            "SELECT * FROM contacts WHERE subscriber_id = ? AND network = ? ORDER BY legacy_id",
            (subscriber_id, network),
        )
        return [_contact(r) for r in rows]

    async def remove_contacts(self, subscriber_id: int, network: str, legacy_ids: Sequence[str]) -> None:
        try:
            await self._w.write_many(
                "DELETE FROM contacts WHERE subscriber_id = ? AND network = ? AND legacy_id = ?",
                [(subscriber_id, network, lid) for lid in legacy_ids],
            )
        finally:
            self._changed([_contact_key(subscriber_id, network, lid) for lid in legacy_ids])

    # -- outbox -----------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        network: str,
        subscriber_id: int | None,
        dedup_key: str,
        destination: str,
        payload: dict[str, Any],
        now: float,
        expires: float,
    ) -> int | None:
        """Persist a message; return its id, or None when ``dedup_key`` was seen already:
        in the outbox, or among the messages that left it (see :meth:`complete`)."""
        cur = await self._w.write(
            "INSERT INTO outbox (network, subscriber_id, dedup_key, destination, payload, next_attempt, "
            "created, expires) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM delivered WHERE dedup_key = ?) "
            "ON CONFLICT (dedup_key) DO NOTHING",
            (
                network,
                subscriber_id,
                dedup_key,
                destination,
                json.dumps(payload),
                now,
                now,
                expires,
                dedup_key,
            ),
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    async def conversation_heads(self, network: str, limit: int) -> list[OutboxItem]:
        """The oldest message of each conversation (subscriber, destination), oldest first."""
        rows = await self._r.execute(
            "SELECT id, network, subscriber_id, dedup_key, destination, payload, state, attempts, "
            "next_attempt, created, expires FROM outbox WHERE id IN "
            "(SELECT MIN(id) FROM outbox WHERE network = ? GROUP BY subscriber_id, destination) "
            "ORDER BY id LIMIT ?",
            (network, limit),
        )
        return [self._outbox.item(r) for r in rows]

    async def due(self, network: str, now: float, limit: int = 100) -> list[OutboxItem]:
        rows = await self._r.execute(
            "SELECT id, network, subscriber_id, dedup_key, destination, payload, state, attempts, "
            "next_attempt, created, expires FROM outbox "
            "WHERE network = ? AND state = 'queued' AND next_attempt <= ? ORDER BY id LIMIT ?",
            (network, now, limit),
        )
        return [self._outbox.item(r) for r in rows]

    async def outbox_items(self, network: str | None = None, limit: int = -1) -> list[OutboxItem]:
        rows = await self._r.execute(
            "SELECT id, network, subscriber_id, dedup_key, destination, payload, state, attempts, "
            "next_attempt, created, expires FROM outbox WHERE ? IS NULL OR network = ? ORDER BY id LIMIT ?",
            (network, network, limit),
        )
        return [self._outbox.item(r) for r in rows]

    async def mark_sending(self, item_id: int) -> None:
        await self.start_mark_sending(item_id)

    def start_mark_sending(self, item_id: int) -> asyncio.Future[WriteResult]:
        """:meth:`mark_sending`, submitted now and awaited later: it commits with (or
        before) the next write submitted, so a send pays no commit of its own for it."""
        return self._w.start_write(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?", (item_id,)
        )

    async def mark_sending_many(self, item_ids: Sequence[int]) -> None:
        """:meth:`mark_sending` for several messages, in one statement."""
        await self._w.write(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1 "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(item_ids)),),
        )

    async def reschedule(self, item_id: int, next_attempt: float) -> None:
        await self._w.write(
            "UPDATE outbox SET state = 'queued', next_attempt = ? WHERE id = ?", (next_attempt, item_id)
        )

    async def make_due(self, network: str, subscriber_id: int, now: float) -> None:
        """Everything queued for ``subscriber_id`` on ``network`` is due now (a route changed)."""
        await self._w.write(
            "UPDATE outbox SET next_attempt = ? WHERE network = ? AND subscriber_id = ? AND state = 'queued'",
            (now, network, subscriber_id),
        )

    async def complete_many(self, item_ids: Sequence[int]) -> None:
        """Remove delivered messages in one transaction (one statement)."""
        await self._w.write(
            "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(item_ids)),)
        )
        self._outbox.forget(item_ids)

    async def complete(self, item_id: int, *, delivered: bool = True) -> None:
        """Remove a message that was delivered (or failed, its sender told). The key of a
        delivered message from XMPP (``x:…``, :func:`gateway.bridge.xmpp_message_key`) is
        remembered for a while (:meth:`forget_delivered`): a resend of it is then a
        duplicate. A failed one is not: its resend is tried (and answered) again."""
        await self._w.write_group(
            [
                ("INSERT OR IGNORE INTO delivered SELECT dedup_key, ? FROM outbox "
                 "WHERE id = ? AND ? AND dedup_key LIKE 'x:%'", (time.time(), item_id, int(delivered))),
                ("DELETE FROM outbox WHERE id = ?", (item_id,)),
            ],
            savepoint=False,
        )  # fmt: skip
        self._outbox.forget((item_id,))

    async def forget_delivered(self, before: float) -> int:
        """Forget the keys of messages that left the outbox before ``before``; how many."""
        cur = await self._w.write("DELETE FROM delivered WHERE at < ?", (before,))
        return cur.rowcount

    async def requeue_interrupted(self) -> int:
        """After a restart: put messages caught mid-send back in the queue; count them."""
        cur = await self._w.write("UPDATE outbox SET state = 'queued' WHERE state = 'sending'")
        return cur.rowcount

    async def outbox_stats(self) -> tuple[int, float | None]:
        """(depth, creation time of the oldest message)."""
        row = first(await self._r.execute("SELECT COUNT(*), MIN(created) FROM outbox"))
        assert row is not None
        return int(row[0]), row[1]
