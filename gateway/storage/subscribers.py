"""Subscribers and their accounts on the networks (secrets encrypted at rest)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, cast

from gateway.addressing import BareJid
from gateway.core.records import Account, Subscriber
from gateway.errors import Conflict, StorageError
from gateway.storage.base import StoreBase
from gateway.storage.boundary import is_constraint
from gateway.storage.crypto import KeyError_
from gateway.storage.reader import first


def _subscriber(row: sqlite3.Row) -> Subscriber:
    jid = BareJid.parse(row["jid"]) if row["jid"] else None
    return Subscriber(row["id"], jid, row["created"], json.loads(row["settings"]))


def _account(row: sqlite3.Row) -> Account:
    has_secret = row["secret"] is not None
    return Account(row["subscriber_id"], row["network"], row["legacy_id"], has_secret, row["created"])


class SubscriberTables(StoreBase):
    """Subscribers and accounts: part of :class:`gateway.storage.Store`."""

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
