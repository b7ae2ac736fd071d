"""Messages per minute, by network and direction, from the bridge's running totals.

The bridge only counts (totals since start); this samples those totals and turns the
difference over the last minute into a rate. Time is passed in, so it is tested
without sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

Totals = Mapping[tuple[str, str], int]
"""``(network, direction) -> count`` with direction ``to_network`` or ``to_xmpp``."""

WINDOW_S = 60.0


class RateWindow:
    def __init__(self, start: float, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[tuple[str, str], int]]] = deque([(start, {})])

    def sample(self, now: float, totals: Totals) -> None:
        """Record the totals at ``now``; keep just enough history to span one window."""
        self._samples.append((now, dict(totals)))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def per_minute(self, now: float, totals: Totals) -> dict[str, dict[str, float]]:
        """``{network: {direction: messages per minute}}``: what was counted over the last
        window (a gateway up for less than a minute shows what it did so far)."""
        base_t, base = self._samples[0]
        for t, counts in self._samples:
            if t <= now - self.window_s:
                base_t, base = t, counts
        elapsed = max(now - base_t, self.window_s)
        rates: dict[str, dict[str, float]] = {}
        for (network, direction), count in totals.items():
            delta = max(count - base.get((network, direction), 0), 0)
            rates.setdefault(network, {})[direction] = round(delta * 60.0 / elapsed, 2)
        return rates
