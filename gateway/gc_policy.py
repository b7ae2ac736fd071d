"""Garbage collection for a process that keeps thousands of sessions for days.

CPython's cyclic collector looks at every tracked object in a full (generation 2)
collection. A gateway with 2,000 always-connected subscribers holds about half a million
long-lived objects (MSN sessions, contact lists, caches): under load a full collection ran
every few seconds and took about 0.5 s, so the cost of relaying one message grew with the
number of subscribers (1.4-1.5x from 10 to 2,000 in ``python -m bench --only growth``).

The policy here moves what has survived into the permanent generation every
``freeze_every_s`` (:func:`gc.freeze`): full collections then look only at what is newer,
and stay as cheap as with ten subscribers. Reference counting still frees every object that
is not in a reference cycle, frozen or not. Cycles that were frozen and later became garbage
(a closed session's objects, say) would stay; every ``thaw_every_s`` the permanent
generation is put back and collected once in full, so they live at most that long.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GcPolicy:
    freeze_every_s: float = 20.0
    thaw_every_s: float = 900.0

    def freeze(self) -> int:
        """Collect the young generations (so that fresh garbage is not frozen), then move
        every surviving object into the permanent generation; how many are frozen now."""
        gc.collect(1)
        gc.freeze()
        return gc.get_freeze_count()

    def thaw(self) -> int:
        """Put the permanent generation back, collect everything once, freeze again; how
        many objects that collection found unreachable."""
        gc.unfreeze()
        started = time.perf_counter()
        found = gc.collect()
        gc.freeze()
        log.debug(
            "full garbage collection: %d unreachable, %.0f ms; %d objects frozen",
            found, (time.perf_counter() - started) * 1000.0, gc.get_freeze_count(),
        )  # fmt: skip
        return found

    async def run(self) -> None:
        """Freeze and thaw on schedule until cancelled (then the permanent generation is
        put back, so a process that goes on is as it was)."""
        since_thaw = 0.0
        try:
            while True:
                await asyncio.sleep(self.freeze_every_s)
                since_thaw += self.freeze_every_s
                if since_thaw >= self.thaw_every_s:
                    since_thaw = 0.0
                    self.thaw()
                else:
                    self.freeze()
        finally:
            gc.unfreeze()
