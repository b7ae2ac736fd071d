"""What every part of the store shares: its connections and the identity look-up cache.

:class:`Store` (``gateway.storage.store``) is assembled from the parts in
``subscribers``, ``contacts`` and ``outbox``, each a mixin over this base; the base holds
the cache every message's look-ups go through (see :meth:`StoreBase._cached`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.storage.boundary import Writes
from gateway.storage.crypto import Cipher
from gateway.storage.reader import Reader

if TYPE_CHECKING:
    from gateway.storage.sms import SmsTables

CACHE_TTL_S = 10.0  # changes made by another process (the CLI) are seen within this time
CACHE_SIZE = 50000


def contact_key(subscriber_id: int, network: str, legacy_id: str) -> tuple[Any, ...]:
    return ("contact", subscriber_id, network, legacy_id)


class StoreBase:
    """The connections and the cache; the parts of the store add the tables' methods."""

    _r: Reader
    _w: Writes
    _cipher: Cipher | None
    _cache: dict[tuple[Any, ...], tuple[float, Any]]
    _changes: int  # writes to contacts and conversations so far (see _remember_read)
    sms: SmsTables

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
