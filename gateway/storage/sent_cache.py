"""The receipt cache: sent SMS parts in memory, in front of the durable ``sms_parts_sent``.

A delivery receipt names the SMSC's message id; the part it is about is usually found
here (recorded by this process seconds before) at no database read. Anything not here is
looked up in the table (:meth:`gateway.storage.sms.SmsTables.sent_part_by_id`), so a
restart, an eviction or an expiry only costs a read, never a lost receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator

from transports.sms.storage import SentPart

SENT_CACHE_TTL_S = 10.0  # as the store's identity cache: another process's change is seen by then
SENT_CACHE_SIZE = 50000


class SentCache:
    """The receipt cache: sent parts recorded by this process, by SMSC message id, for
    :attr:`SENT_CACHE_TTL_S`, at most ``size`` of them (past it the oldest goes). A receipt
    usually comes seconds after its submit and then costs no read; one whose id is not here
    (older, evicted, or after a restart) is looked up in the durable table.

    Only what was committed goes in, and every change this process makes to those rows
    (record again, mark, forget, a subscriber's removal) is applied to it; the database
    stays the reference for anything older or not found here. A part whose record is being
    committed can be waited for (:meth:`recording`)."""

    def __init__(self, ttl: float = SENT_CACHE_TTL_S, size: int = SENT_CACHE_SIZE) -> None:
        self._ttl, self._size = ttl, size
        self._by_id: dict[str, tuple[float, SentPart]] = {}
        self._ids: dict[str, dict[int, str]] = {}  # item_key -> seq -> the SMSC id of that part
        self._recording: dict[str, asyncio.Future[None]] = {}

    def recording(self, smsc_id: str) -> asyncio.Future[None] | None:
        """Done once the record of the part sent under ``smsc_id`` (in progress) is over."""
        return self._recording.get(smsc_id)

    @contextlib.contextmanager
    def record(self, smsc_id: str) -> Iterator[None]:
        done = asyncio.get_running_loop().create_future()
        self._recording[smsc_id] = done
        try:
            yield
        finally:
            if self._recording.get(smsc_id) is done:
                del self._recording[smsc_id]
            done.set_result(None)

    def put(self, part: SentPart) -> None:
        while len(self._by_id) >= self._size:  # bounded: the oldest entry goes (the table has it)
            oldest = next(iter(self._by_id))
            self._pop(oldest, self._by_id[oldest][1].item_key)
        replaced = self._ids.get(part.item_key, {}).get(part.seq)
        if replaced is not None and replaced != part.smsc_id:  # sent again: the old id is gone
            self._pop(replaced, part.item_key)
        self._ids.setdefault(part.item_key, {})[part.seq] = part.smsc_id
        previous = self._by_id.get(part.smsc_id)
        if previous is not None:  # re-inserted last: the dict stays oldest first
            self._pop(part.smsc_id, previous[1].item_key)
        self._by_id[part.smsc_id] = (time.monotonic() + self._ttl, part)

    def get(self, smsc_id: str) -> SentPart | None:
        hit = self._by_id.get(smsc_id)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._pop(smsc_id, hit[1].item_key)
            return None
        return hit[1]

    def set_state(self, item_key: str, seq: int, state: str) -> None:
        smsc_id = self._ids.get(item_key, {}).get(seq)
        hit = self._by_id.get(smsc_id) if smsc_id is not None else None
        if hit is not None and (hit[1].item_key, hit[1].seq) == (item_key, seq):
            self._by_id[hit[1].smsc_id] = (hit[0], dataclasses.replace(hit[1], state=state))

    def drop(self, item_key: str) -> None:
        for smsc_id in self._ids.pop(item_key, {}).values():
            self._pop(smsc_id, item_key)

    def _pop(self, smsc_id: str, item_key: str) -> None:
        """Forget the entry under ``smsc_id`` if it is a part of ``item_key`` (an SMSC may
        give an id out again: the entry may be another message's by now)."""
        hit = self._by_id.get(smsc_id)
        if hit is not None and hit[1].item_key == item_key:
            del self._by_id[smsc_id]
            parts = self._ids.get(item_key, {})
            if parts.get(hit[1].seq) == smsc_id:
                del parts[hit[1].seq]
            if not parts:
                self._ids.pop(item_key, None)

    def clear(self) -> None:
        self._by_id.clear()
        self._ids.clear()
