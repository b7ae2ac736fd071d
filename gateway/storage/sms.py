"""The SMS transport's own state, in the same database (see ``Store.sms``).

Verification codes are stored hashed (scrypt, salted); sending quotas are counted with
single statements so parallel sends cannot overshoot them; parts of multi-part MO
messages and of sent messages survive restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

import aiosqlite

from gateway.storage.writer import GroupWriter


@dataclass(frozen=True, slots=True)
class Quota:
    """SMS parts allowed per subscriber per hour and per day, and for everyone per day."""

    per_hour: int
    per_day: int
    global_per_day: int


@dataclass(frozen=True, slots=True)
class PendingCode:
    msisdn: str
    expires: float
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredPart:
    source: str
    destination: str
    reference: int
    total: int
    seq: int
    data_coding: int
    payload: bytes
    received_at: float


@dataclass(frozen=True, slots=True)
class SentPart:
    item_key: str
    seq: int
    smsc_id: str
    state: str
    total: int
    subscriber_id: int | None
    meta: dict[str, Any]


def _hash(code: str, salt: bytes) -> bytes:
    return hashlib.scrypt(code.encode(), salt=salt, n=2**12, r=8, p=1, dklen=32)


class SmsTables:
    """Methods over the SMS tables; obtained from :attr:`Store.sms`."""

    def __init__(self, db: aiosqlite.Connection, writer: GroupWriter) -> None:
        self._db = db
        self._w = writer

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
        async with self._db.execute(
            "SELECT msisdn, expires, attempts FROM sms_codes WHERE jid = ?", (jid,)
        ) as cur:
            row = await cur.fetchone()
        return PendingCode(row[0], row[1], row[2]) if row else None

    async def check_code(self, jid: str, msisdn: str, code: str, now: float, max_attempts: int) -> str:
        """``ok``, ``wrong``, ``expired``, ``exhausted`` or ``none``. Counts the attempt first."""
        await self._w.write("UPDATE sms_codes SET attempts = attempts + 1 WHERE jid = ?", (jid,))
        async with self._db.execute(
            "SELECT msisdn, code_hash, salt, expires, attempts FROM sms_codes WHERE jid = ?", (jid,)
        ) as cur:
            row = await cur.fetchone()
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
    ) -> bool:
        """Record ``parts`` SMS for ``item_key`` unless a limit would be passed.

        Limits count per clock hour and per UTC day, in counters (O(1) whatever the
        volume). The check and the increments run in one transaction in which nothing
        else interleaves, so concurrent sends cannot exceed a quota. Counting the same
        item twice (a retry) is a no-op returning True.
        """
        async with self._db.execute("SELECT 1 FROM sms_sent WHERE item_key = ?", (item_key,)) as cur:
            if await cur.fetchone():
                return True
        hour, day = f"h{int(now // 3600)}", f"d{int(now // 86400)}"
        used = "(SELECT COALESCE((SELECT parts FROM sms_usage WHERE bucket = ? AND subscriber_id = ?), 0))"
        bump = (
            "INSERT INTO sms_usage (bucket, subscriber_id, parts) SELECT ?, ?, ? "
            "WHERE (SELECT at FROM sms_sent WHERE item_key = ?) = ? "
            "ON CONFLICT (bucket, subscriber_id) DO UPDATE SET parts = parts + excluded.parts"
        )
        result = await self._w.write_group(
            [
                (
                    f"INSERT INTO sms_sent (item_key, subscriber_id, parts, at) SELECT ?, ?, ?, ? "
                    f"WHERE {used} + ? <= ? AND {used} + ? <= ? AND {used} + ? <= ?",
                    (
                        item_key,
                        subscriber_id,
                        parts,
                        now,
                        hour,
                        subscriber_id,
                        parts,
                        limits.per_hour,
                        day,
                        subscriber_id,
                        parts,
                        limits.per_day,
                        day,
                        0,
                        parts,
                        limits.global_per_day,
                    ),
                ),
                (bump, (hour, subscriber_id, parts, item_key, now)),
                (bump, (day, subscriber_id, parts, item_key, now)),
                (bump, (day, 0, parts, item_key, now)),
            ],
            savepoint=False,  # sms_sent's key was checked above; one conversation sends at a time
        )
        return result.rowcounts[0] == 1

    async def usage(self, subscriber_id: int, now: float) -> tuple[int, int]:
        """Parts sent in the current clock hour and UTC day."""
        hour, day = f"h{int(now // 3600)}", f"d{int(now // 86400)}"
        async with self._db.execute(
            "SELECT bucket, parts FROM sms_usage WHERE subscriber_id = ? AND bucket IN (?, ?)",
            (subscriber_id, hour, day),
        ) as cur:
            found = {row[0]: int(row[1]) for row in await cur.fetchall()}
        return found.get(hour, 0), found.get(day, 0)

    async def prune(self, before: float) -> None:
        await self._w.write("DELETE FROM sms_sent WHERE at < ?", (before,))
        await self._w.write("DELETE FROM sms_usage WHERE bucket < ?", (f"d{int(before // 86400)}",))
        await self._w.write("DELETE FROM seen WHERE at < ?", (before,))

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
        async with self._db.execute("SELECT * FROM sms_mo_parts ORDER BY received_at") as cur:
            return [StoredPart(*row) for row in await cur.fetchall()]

    async def drop_mo_parts(self, source: str, destination: str, reference: int, total: int) -> None:
        await self._w.write(
            "DELETE FROM sms_mo_parts WHERE source = ? AND destination = ? AND reference = ? AND total = ?",
            (source, destination, reference, total),
        )

    # -- sent parts and receipts -----------------------------------------------------------

    async def record_sent(self, part: SentPart, now: float) -> None:
        await self._w.write(
            "INSERT OR REPLACE INTO sms_parts_sent VALUES (?, ?, ?, 'sent', ?, ?, ?, ?)",
            (
                part.item_key,
                part.seq,
                part.smsc_id,
                part.total,
                part.subscriber_id,
                json.dumps(part.meta),
                now,
            ),
        )

    async def sent_seqs(self, item_key: str) -> set[int]:
        async with self._db.execute("SELECT seq FROM sms_parts_sent WHERE item_key = ?", (item_key,)) as cur:
            return {row[0] for row in await cur.fetchall()}

    async def sent_part_by_id(self, candidates: tuple[str, ...]) -> SentPart | None:
        for smsc_id in candidates:
            async with self._db.execute("SELECT * FROM sms_parts_sent WHERE smsc_id = ?", (smsc_id,)) as cur:
                row = await cur.fetchone()
            if row is not None:
                return SentPart(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))
        return None

    async def mark_part(self, item_key: str, seq: int, state: str) -> list[str]:
        """Set one part's final state; return the states of all parts of that message."""
        await self._w.write(
            "UPDATE sms_parts_sent SET state = ? WHERE item_key = ? AND seq = ?", (state, item_key, seq)
        )
        async with self._db.execute(
            "SELECT state FROM sms_parts_sent WHERE item_key = ? ORDER BY seq", (item_key,)
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def forget_sent(self, item_key: str) -> None:
        await self._w.write("DELETE FROM sms_parts_sent WHERE item_key = ?", (item_key,))

    # -- inbound de-duplication -------------------------------------------------------------

    async def first_time(self, key: str, now: float, window: float) -> bool:
        """True unless ``key`` was seen less than ``window`` seconds ago (then a redelivery)."""
        cur = await self._w.write("INSERT OR IGNORE INTO seen (dedup_key, at) VALUES (?, ?)", (key, now))
        if cur.rowcount == 1:
            return True
        cur = await self._w.write(
            "UPDATE seen SET at = ? WHERE dedup_key = ? AND at < ?", (now, key, now - window)
        )
        return cur.rowcount == 1
