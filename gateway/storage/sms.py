"""The SMS transport's own state, in the same database (see ``Store.sms``).

Verification codes are stored hashed (scrypt, salted); sending quotas are counted with
single statements so parallel sends cannot overshoot them; parts of multi-part MO
messages and of sent messages survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Sequence
from functools import partial
from typing import Protocol

from gateway.core.records import Account, Contact, Subscriber
from gateway.storage.boundary import Writes
from gateway.storage.reader import Reader, first
from gateway.storage.sent_cache import SentCache
from transports.sms.storage import CodeCheck, Counted, PendingCode, Quota, SentPart, SmsStore, StoredPart

__all__ = ["Counted", "PendingCode", "Quota", "SentCache", "SentPart", "SmsStore", "SmsTables", "StoredPart"]


def _hash(code: str, salt: bytes) -> bytes:
    return hashlib.scrypt(code.encode(), salt=salt, n=2**12, r=8, p=1, dklen=32)


class Directory(Protocol):
    """The store's subscribers, accounts and contacts, as the SMS transport sees them."""

    async def subscriber_by_account(self, network: str, legacy_id: str) -> Subscriber | None: ...
    async def account(self, subscriber_id: int, network: str) -> Account | None: ...
    async def contacts(self, subscriber_id: int, network: str) -> list[Contact]: ...
    async def upsert_contacts(self, contacts: Sequence[Contact]) -> None: ...
    async def remove_contacts(self, subscriber_id: int, network: str, legacy_ids: Sequence[str]) -> None: ...


class SmsTables:
    """The SMS transport's storage (:class:`transports.sms.storage.SmsStore`) over the SMS
    tables, and the store's directory for the rest; obtained from :attr:`Store.sms`."""

    def __init__(self, reader: Reader, writer: Writes, directory: Directory) -> None:
        self._r = reader
        self._w = writer
        self._sent = SentCache()
        self._dir = directory

    # -- who is who: the store's own (cached) look-ups -------------------------------------

    async def subscriber_by_account(self, network: str, legacy_id: str) -> Subscriber | None:
        return await self._dir.subscriber_by_account(network, legacy_id)

    async def account(self, subscriber_id: int, network: str) -> Account | None:
        return await self._dir.account(subscriber_id, network)

    async def contacts(self, subscriber_id: int, network: str) -> list[Contact]:
        return await self._dir.contacts(subscriber_id, network)

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> None:
        await self._dir.upsert_contacts(contacts)

    async def remove_contacts(self, subscriber_id: int, network: str, legacy_ids: Sequence[str]) -> None:
        await self._dir.remove_contacts(subscriber_id, network, legacy_ids)

    # -- verification codes -------------------------------------------------------------

    async def put_code(self, jid: str, msisdn: str, code: str, expires: float) -> None:
        salt = secrets.token_bytes(16)
        await self._w.write(
            "INSERT INTO sms_codes (jid, msisdn, code_hash, salt, expires, attempts) "
            "VALUES (?, ?, ?, ?, ?, 0) "
            "ON CONFLICT (jid) DO UPDATE SET msisdn = excluded.msisdn, code_hash = excluded.code_hash, "
            "salt = excluded.salt, expires = excluded.expires, attempts = 0",
            (jid, msisdn, _hash(code, salt), salt, expires),
        )

    async def pending_code(self, jid: str) -> PendingCode | None:
        row = first(
            await self._r.execute("SELECT msisdn, expires, attempts FROM sms_codes WHERE jid = ?", (jid,))
        )
        return PendingCode(row[0], row[1], row[2]) if row else None

    async def check_code(self, jid: str, msisdn: str, code: str, now: float, max_attempts: int) -> CodeCheck:
        """``ok``, ``wrong``, ``expired``, ``exhausted`` or ``none``. Counts the attempt first."""
        await self._w.write("UPDATE sms_codes SET attempts = attempts + 1 WHERE jid = ?", (jid,))
        row = first(
            await self._r.execute(
                "SELECT msisdn, code_hash, salt, expires, attempts FROM sms_codes WHERE jid = ?", (jid,)
            )
        )
        if row is None or row[0] != msisdn:
            return "none"
        if row[3] <= now:
            return "expired"
        if row[4] > max_attempts:
            return "exhausted"
        if not hmac.compare_digest(_hash(code.strip(), row[2]), row[1]):
            return "wrong"
        await self._w.write("DELETE FROM sms_codes WHERE jid = ?", (jid,))
        return "ok"

    # -- quotas -----------------------------------------------------------------------

    async def count_send(
        self, item_key: str, subscriber_id: int, parts: int, now: float, limits: Quota
    ) -> Counted:
        """Record ``parts`` SMS for ``item_key`` unless a limit would be passed.

        Limits count per clock hour and per UTC day, in counters (O(1) whatever the
        volume). The check and the increments run in one transaction in which nothing
        else interleaves, so concurrent sends cannot exceed a quota. Counting the same
        item twice (a retry) counts nothing and answers ``Counted.BEFORE``: parts are sent
        only once their message is counted, so only then can some be sent already.
        """
        return await self._w.run(
            partial(_count_send, key=item_key, sub=subscriber_id, parts=parts, now=now, limits=limits)
        )

    async def usage(self, subscriber_id: int, now: float) -> tuple[int, int]:
        """Parts sent in the current clock hour and UTC day."""
        hour, day = f"h{int(now // 3600)}", f"d{int(now // 86400)}"
        rows = await self._r.execute(
            "SELECT bucket, parts FROM sms_usage WHERE subscriber_id = ? AND bucket IN (?, ?)",
            (subscriber_id, hour, day),
        )
        found = {row[0]: int(row[1]) for row in rows}
        return found.get(hour, 0), found.get(day, 0)

    async def prune(self, before: float, now: float) -> tuple[int, int, int, int]:
        """Forget what no longer matters, in one transaction: counts of messages (and parts
        with no receipt) older than ``before``, MO sightings older than ``before``, usage
        buckets of past hours and days (the current hour and day stay). How many rows of
        each (sent, parts, usage, seen) went."""
        result = await self._w.write_group(
            [
                ("DELETE FROM sms_sent WHERE at < ?", (before,)),
                ("DELETE FROM sms_parts_sent WHERE at < ?", (before,)),
                (
                    "DELETE FROM sms_usage WHERE "
                    "(substr(bucket, 1, 1) = 'h' AND CAST(substr(bucket, 2) AS INTEGER) < ?) OR "
                    "(substr(bucket, 1, 1) = 'd' AND CAST(substr(bucket, 2) AS INTEGER) < ?)",
                    (int(now // 3600), int(now // 86400)),
                ),
                ("DELETE FROM seen WHERE at < ?", (before,)),
            ],
            savepoint=False,
        )
        if result.rowcounts[1]:
            self._sent.clear()
        sent, parts, usage, seen = result.rowcounts
        return sent, parts, usage, seen

    # -- MO parts ---------------------------------------------------------------------

    async def add_mo_part(self, part: StoredPart) -> None:
        await self._w.write(
            "INSERT OR IGNORE INTO sms_mo_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                part.source,
                part.destination,
                part.reference,
                part.total,
                part.seq,
                part.data_coding,
                part.payload,
                part.received_at,
            ),
        )

    async def mo_parts(self) -> list[StoredPart]:
        return [
            StoredPart(*row)
            for row in await self._r.execute("SELECT * FROM sms_mo_parts ORDER BY received_at")
        ]

    async def drop_mo_parts(self, source: str, destination: str, reference: int, total: int) -> None:
        await self._w.write(
            "DELETE FROM sms_mo_parts WHERE source = ? AND destination = ? AND reference = ? AND total = ?",
            (source, destination, reference, total),
        )

    # -- sent parts and receipts -----------------------------------------------------------

    async def record_sent(self, parts: SentPart | Sequence[SentPart], now: float) -> None:
        """Record accepted parts in one write (one part alone is taken too, as before)."""
        if isinstance(parts, SentPart):
            parts = (parts,)
        if not parts:
            return
        with contextlib.ExitStack() as recording:
            for part in parts:
                recording.enter_context(self._sent.record(part.smsc_id))
            await self._record_sent(parts, now)
            for part in parts:
                self._sent.put(dataclasses.replace(part, state="sent"))  # as stored

    async def _record_sent(self, parts: Sequence[SentPart], now: float) -> None:
        await self._w.write_many(
            "INSERT OR REPLACE INTO sms_parts_sent VALUES (?, ?, ?, 'sent', ?, ?, ?, ?)",
            [
                (p.item_key, p.seq, p.smsc_id, p.total, p.subscriber_id, json.dumps(p.meta), now)
                for p in parts
            ],
        )

    async def sent_seqs(self, item_key: str) -> set[int]:
        rows = await self._r.execute("SELECT seq FROM sms_parts_sent WHERE item_key = ?", (item_key,))
        return {row[0] for row in rows}

    async def sent_part_by_id(self, candidates: tuple[str, ...]) -> SentPart | None:
        """The part sent under the first of ``candidates`` that has one.

        A receipt usually comes seconds after its submit: the part recorded by this process
        is then found in memory (when its record is being committed, once it is); otherwise
        (after a restart, or later) in the database, all candidates in one query."""
        if not candidates:
            return None
        recording = self._sent.recording(candidates[0])
        if recording is not None:
            await asyncio.shield(recording)
        cached = self._sent.get(candidates[0])  # the exact form wins: only it can be taken from memory
        if cached is not None:
            return cached
        row = first(
            await self._r.execute(
                "SELECT p.* FROM json_each(?) AS c JOIN sms_parts_sent AS p ON p.smsc_id = c.value "
                "ORDER BY c.key LIMIT 1",
                (json.dumps(candidates),),
            )
        )
        if row is None:
            return None
        return SentPart(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))

    async def mark_part(self, item_key: str, seq: int, state: str) -> list[str]:
        """Set one part's final state; return the states of all parts of that message."""
        states = await self._w.run(partial(_mark_part, key=item_key, seq=seq, state=state))
        self._sent.set_state(item_key, seq, state)
        return states

    async def finish_part(self, item_key: str, seq: int, state: str, total: int) -> list[str]:
        """:meth:`mark_part`, and when all ``total`` parts of the message are then ``ok``,
        its :meth:`forget_sent` in the same transaction (one write instead of two). (A part
        not recorded yet does not count: its receipt must find the others.)"""
        states = await self._w.run(partial(_mark_part, key=item_key, seq=seq, state=state, forget=total))
        if _delivered(states, total):
            self._sent.drop(item_key)
        else:
            self._sent.set_state(item_key, seq, state)
        return states

    async def forget_sent(self, item_key: str) -> None:
        await self._w.write("DELETE FROM sms_parts_sent WHERE item_key = ?", (item_key,))
        self._sent.drop(item_key)

    def forget_cached(self) -> None:
        """Drop the sent parts kept in memory (after a subscriber's rows were deleted)."""
        self._sent.clear()

    # -- inbound de-duplication -------------------------------------------------------------

    async def seen_since(self, key: str, since: float) -> bool:
        """Whether a sighting of ``key`` at ``since`` or later is recorded (by
        :meth:`first_time`). A read: nothing is written, so nothing waits for a commit."""
        rows = await self._r.execute("SELECT 1 FROM seen WHERE dedup_key = ? AND at >= ?", (key, since))
        return bool(rows)

    async def first_time(self, key: str, now: float, window: float) -> bool:
        """True unless ``key`` was seen less than ``window`` seconds ago (then a redelivery)."""
        return await self._w.run(partial(_first_time, key=key, now=now, window=window))

    async def mark_seen(self, key: str, at: float) -> None:
        """Record a sighting of ``key`` at ``at`` (replacing an earlier one): a message was
        taken whose answer the SMSC may not get, so its redelivery may follow."""
        await self._w.write(
            "INSERT INTO seen (dedup_key, at) VALUES (?, ?) "
            "ON CONFLICT (dedup_key) DO UPDATE SET at = excluded.at",
            (key, at),
        )

    async def forget_seen(self, sightings: Sequence[tuple[str, float]]) -> None:
        """Forget sightings (key, time recorded) whose answer the SMSC confirmed: nothing
        will redeliver them. One recorded again since (another time) stays."""
        statements = [("DELETE FROM seen WHERE dedup_key = ? AND at = ?", (key, at)) for key, at in sightings]
        await self._w.write_group(statements, savepoint=False)


# -- run on the database thread, inside the writer's transaction (GroupWriter.run) ----------------


def _count_send(
    conn: sqlite3.Connection, *, key: str, sub: int, parts: int, now: float, limits: Quota
) -> Counted:
    if conn.execute("SELECT 1 FROM sms_sent WHERE item_key = ?", (key,)).fetchone():
        return Counted.BEFORE  # a retry: counted already
    hour, day = f"h{int(now // 3600)}", f"d{int(now // 86400)}"
    used = "(SELECT COALESCE((SELECT parts FROM sms_usage WHERE bucket = ? AND subscriber_id = ?), 0))"
    checks = (
        (hour, sub, parts, limits.per_hour),
        (day, sub, parts, limits.per_day),
        (day, 0, parts, limits.global_per_day),
    )
    cur = conn.execute(
        f"INSERT INTO sms_sent (item_key, subscriber_id, parts, at) SELECT ?, ?, ?, ? "
        f"WHERE {used} + ? <= ? AND {used} + ? <= ? AND {used} + ? <= ?",
        (key, sub, parts, now, *(value for check in checks for value in check)),
    )
    if cur.rowcount != 1:
        return Counted.REFUSED  # a limit would be passed
    bump = (
        "INSERT INTO sms_usage (bucket, subscriber_id, parts) VALUES (?, ?, ?) "
        "ON CONFLICT (bucket, subscriber_id) DO UPDATE SET parts = parts + excluded.parts"
    )
    for bucket, who in ((hour, sub), (day, sub), (day, 0)):
        conn.execute(bump, (bucket, who, parts))
    return Counted.NOW


def _delivered(states: list[str], total: int) -> bool:
    return len(states) == total and all(s == "ok" for s in states)


def _mark_part(conn: sqlite3.Connection, *, key: str, seq: int, state: str, forget: int = 0) -> list[str]:
    """Mark one part; with ``forget`` (the message's part count), forget the message's
    parts when all of them are recorded and delivered."""
    conn.execute("UPDATE sms_parts_sent SET state = ? WHERE item_key = ? AND seq = ?", (state, key, seq))
    rows = conn.execute("SELECT state FROM sms_parts_sent WHERE item_key = ? ORDER BY seq", (key,))
    states = [row[0] for row in rows]
    if forget and _delivered(states, forget):
        conn.execute("DELETE FROM sms_parts_sent WHERE item_key = ?", (key,))
    return states


def _first_time(conn: sqlite3.Connection, *, key: str, now: float, window: float) -> bool:
    cur = conn.execute("INSERT OR IGNORE INTO seen (dedup_key, at) VALUES (?, ?)", (key, now))
    if cur.rowcount == 1:
        return True
    cur = conn.execute("UPDATE seen SET at = ? WHERE dedup_key = ? AND at < ?", (now, key, now - window))
    return cur.rowcount == 1
