"""Contacts (with their linked phone numbers) and each subscriber's last correspondent."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import cast

from gateway.core.records import Contact
from gateway.storage.base import StoreBase, contact_key
from gateway.storage.reader import first


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


class ContactTables(StoreBase):
    """Contacts and conversations: part of :class:`gateway.storage.Store`."""

    async def upsert_contacts(self, contacts: Sequence[Contact]) -> None:
        """Write many contacts in one transaction (roster sync writes in batches)."""
        try:
            await self._upsert_contacts(contacts)
        finally:
            self._changed([contact_key(c.subscriber_id, c.network, c.legacy_id) for c in contacts])

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
            self._changed([contact_key(subscriber_id, network, legacy_id)])

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
            self._changed([contact_key(subscriber_id, network, legacy_id)])
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
        key = contact_key(subscriber_id, network, legacy_id)
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
            self._changed([contact_key(subscriber_id, network, lid) for lid in legacy_ids])
