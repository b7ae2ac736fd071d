"""Bulk set-up for the scale scenarios: thousands of subscribers, fast.

- the gateway's database through :mod:`gateway.storage` (``Store.open`` applies the migrations,
  ``Store.set_account`` encrypts the MSN password with the key file, ``Store.upsert_contacts``
  writes the contact lists), many subscribers at a time so the store's group commit batches them:
  about 2,000 subscribers with 100 contacts each in seconds, where ``passerelle user add`` takes
  about half a second per subscriber;
- the bench Prosody's accounts as the files its ``internal_plain`` authentication reads
  (``data/<host>/accounts/<user>.dat``), because ``prosodyctl register`` also takes about half a
  second per user. Only for the bench's own Prosody (``storage = "internal"``,
  ``authentication = "internal_plain"``, see :mod:`gateway.devtools.prosody`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.addressing import BareJid
from gateway.devtools.prosody import Prosody
from gateway.storage import Cipher, Contact, Store

CHUNK = 200  # subscribers written concurrently (one group commit serves many of them)


@dataclass(frozen=True)
class SeedContact:
    """A contact as the gateway stores it after a sync (so the next login finds no change)."""

    legacy_id: str
    name: str
    groups: tuple[str, ...]
    list_bits: int
    phone: str = ""


@dataclass(frozen=True)
class Seed:
    """One subscriber: a JID (or none), a number, an MSN account and its stored contacts."""

    jid: str | None
    msisdn: str | None = None
    msn_handle: str | None = None
    msn_password: str | None = field(default=None, repr=False)
    contacts: tuple[SeedContact, ...] = ()


async def populate_gateway(db_path: Path, key_file: Path, seeds: Sequence[Seed]) -> dict[str, float]:
    """Add ``seeds`` to the database at ``db_path`` (created and migrated if needed)."""
    t0 = time.perf_counter()
    store = await Store.open(db_path, Cipher.from_file(key_file))
    contacts = 0

    async def one(seed: Seed) -> None:
        nonlocal contacts
        now = time.time()
        sub = await store.add_subscriber(BareJid.parse(seed.jid) if seed.jid else None, now)
        if seed.msisdn is not None:
            await store.set_account(sub.id, "sms", seed.msisdn, None, now)
        if seed.msn_handle is not None:
            await store.set_account(sub.id, "msn", seed.msn_handle, seed.msn_password, now)
        if seed.contacts:
            await store.upsert_contacts(
                [
                    Contact(sub.id, "msn", c.legacy_id, c.name, c.groups, c.list_bits, c.phone)
                    for c in seed.contacts
                ]
            )
            contacts += len(seed.contacts)

    try:
        for start in range(0, len(seeds), CHUNK):
            await asyncio.gather(*(one(s) for s in seeds[start : start + CHUNK]))
    finally:
        await store.close()
    return {"subscribers": len(seeds), "contacts": contacts, "seconds": round(time.perf_counter() - t0, 3)}


def _encode(part: str) -> str:
    """Prosody's datamanager encoding of a path part (every non-alphanumeric byte as %xx)."""
    return "".join(
        c if c.isascii() and c.isalnum() else "".join(f"%{b:02x}" for b in c.encode()) for c in part
    )


def write_prosody_accounts(prosody: Prosody, users: Iterable[str], password: str) -> int:
    """Create accounts (or reset their password) in the bench Prosody, as its storage files."""
    accounts = prosody.directory / "data" / _encode(prosody.domain) / "accounts"
    accounts.mkdir(parents=True, exist_ok=True)
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    data = f'return {{\n\t["password"] = "{escaped}";\n}};\n'.encode()
    count = 0
    for user in users:
        fd = os.open(accounts / f"{_encode(user)}.dat", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        count += 1
    return count


def prosody_roster_files(prosody: Prosody, users: Iterable[str]) -> int:
    """How many of ``users`` have a stored roster (a roster push created or changed it)."""
    rosters = prosody.directory / "data" / _encode(prosody.domain) / "roster"
    return sum(1 for u in users if (rosters / f"{_encode(u)}.dat").exists())
