"""Property-based tests that throw malformed and hostile input at every edge.

The suite runs each property with a fixed seed (``derandomize=True``) and a small example
count; ``PASSERELLE_FUZZ_EXAMPLES=2000 make fuzz`` (or the same variable with pytest) runs
the pure properties that many times, and the costly ones (a server per example, a real
Prosody) a proportional share of it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_REQUESTED = int(os.environ.get("PASSERELLE_FUZZ_EXAMPLES", "0") or 0)


def examples(default: int, cost: int = 1) -> int:
    """``default`` in the suite; with PASSERELLE_FUZZ_EXAMPLES=N, N // cost (never fewer)."""
    return max(default, _REQUESTED // cost) if _REQUESTED else default


def fuzz(default: int, cost: int = 1) -> settings:
    """Fixed seed, no deadline, no example database (the suite is reproducible)."""
    return settings(
        derandomize=True,
        database=None,
        max_examples=examples(default, cost),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
