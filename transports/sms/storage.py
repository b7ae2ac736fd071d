"""What the SMS transport stores, declared by the transport: :class:`SmsStore`.

The transport owns this interface; ``gateway.storage`` implements it (SQLite today, a
server database next). Nothing here knows how rows are kept: every method is a plain
async call on the values below, and every storage failure comes out as
:class:`gateway.errors.StorageError`. Calls the hot path makes per part or per message
take sequences (:meth:`SmsStore.record_sent`, :meth:`SmsStore.forget_seen`) so that a
backend can make one round trip of several.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gateway.core.records import Account, Contact, Subscriber

CodeCheck = Literal["ok", "wrong", "expired", "exhausted", "none"]


class Counted(enum.Enum):
    """What :meth:`SmsStore.count_send` did; true unless a limit refused the message."""

    REFUSED = 0  # a limit would be passed: nothing counted
    NOW = 1  # counted by this call: no earlier try got as far as sending
    BEFORE = 2  # counted by an earlier try, which may have sent some parts

    def __bool__(self) -> bool:
        return self is not Counted.REFUSED


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
    """One part of a multi-part SMS received (MO), kept until its message is complete."""

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
    """One part the SMSC accepted, under the id its receipt will name."""

    item_key: str
    seq: int
    smsc_id: str
    state: str
    total: int
    subscriber_id: int | None
    meta: dict[str, Any]


class SmsStore(Protocol):
    """Everything the SMS transport reads and writes. Raises ``StorageError`` on failure."""

    # -- who is who (the gateway's subscribers, accounts and contacts) --------------------

    async def subscriber_by_account(self, network: str, legacy_id: str) -> Subscriber | None: ...
    async def account(self, subscriber_id: int, network: str) -> Account | None: ...
    async def contacts(self, subscriber_id: int, network: str) -> list[Contact]: ...
    async def upsert_contacts(self, contacts: Sequence[Contact]) -> None: ...
    async def remove_contacts(self, subscriber_id: int, network: str, legacy_ids: Sequence[str]) -> None: ...

    # -- verification codes (kept hashed; attempts counted before the check) --------------

    async def put_code(self, jid: str, msisdn: str, code: str, expires: float) -> None: ...
    async def pending_code(self, jid: str) -> PendingCode | None: ...
    async def check_code(self, jid: str, msisdn: str, code: str, now: float, max_attempts: int) -> CodeCheck:
        """Count the attempt, then: ``ok`` (the code is used up), ``wrong``, ``expired``,
        ``exhausted`` (more than ``max_attempts``) or ``none`` (no code for that number)."""
        ...

    # -- quotas ---------------------------------------------------------------------------

    async def count_send(
        self, item_key: str, subscriber_id: int, parts: int, now: float, limits: Quota
    ) -> Counted:
        """Count ``parts`` for ``item_key`` unless a limit would be passed, atomically with
        respect to every other count (concurrent sends cannot exceed a quota); a second
        count of the same key counts nothing and answers ``Counted.BEFORE``."""
        ...

    async def usage(self, subscriber_id: int, now: float) -> tuple[int, int]:
        """Parts counted in the current clock hour and UTC day."""
        ...

    async def prune(self, before: float, now: float) -> tuple[int, int, int, int]:
        """Forget counts, unreceipted parts and MO sightings older than ``before`` and usage
        of past hours and days; how many of each (counts, parts, usage, sightings)."""
        ...

    # -- parts of multi-part MO messages ---------------------------------------------------

    async def add_mo_part(self, part: StoredPart) -> None:
        """Keep a part (the same part twice is kept once)."""
        ...

    async def mo_parts(self) -> list[StoredPart]:
        """Every part kept, oldest first."""
        ...

    async def drop_mo_parts(self, source: str, destination: str, reference: int, total: int) -> None: ...

    # -- sent parts and their receipts -----------------------------------------------------

    async def record_sent(self, parts: Sequence[SentPart], now: float) -> None:
        """Record accepted parts in state ``sent`` (replacing an earlier record of the same
        part), all in one write; once it returns, :meth:`sent_part_by_id` finds them."""
        ...

    async def sent_seqs(self, item_key: str) -> set[int]:
        """The parts of ``item_key`` recorded as sent (a retry sends only the others)."""
        ...

    async def sent_part_by_id(self, candidates: tuple[str, ...]) -> SentPart | None:
        """The part sent under the first of ``candidates`` that has one (also after a
        restart: whatever a backend keeps in memory, the durable record decides)."""
        ...

    async def mark_part(self, item_key: str, seq: int, state: str) -> list[str]:
        """Set one part's final state; the states of all parts of that message."""
        ...

    async def finish_part(self, item_key: str, seq: int, state: str, total: int) -> list[str]:
        """:meth:`mark_part`, and when all ``total`` parts are then ``ok``, forget them in
        the same write."""
        ...

    async def forget_sent(self, item_key: str) -> None: ...

    # -- MO de-duplication (sightings of a message key) ------------------------------------

    async def first_time(self, key: str, now: float, window: float) -> bool:
        """Record a sighting of ``key`` at ``now``; False (a redelivery) when one less than
        ``window`` seconds older is recorded (a later one is kept)."""
        ...

    async def mark_seen(self, key: str, at: float) -> None:
        """Record a sighting of ``key`` at ``at``, replacing an earlier one."""
        ...

    async def forget_seen(self, sightings: Sequence[tuple[str, float]]) -> None:
        """Forget sightings (key, time recorded); one recorded again since stays."""
        ...
