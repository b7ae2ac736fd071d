"""The durable outbox: every message to a network is stored here before it is sent."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from gateway.core.records import OutboxItem
from gateway.storage.base import StoreBase
from gateway.storage.reader import first
from gateway.storage.writer import WriteResult

OUTBOX_MEMO_SIZE = 20000  # outbox items kept while their message waits


class OutboxRows:
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


class OutboxTables(StoreBase):
    """The outbox: part of :class:`gateway.storage.Store`."""

    _outbox: OutboxRows

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
