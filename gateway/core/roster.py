"""Roster diffing: at each login push only what changed since the last one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.core.events import LegacyContact


@dataclass(frozen=True, slots=True)
class RosterDiff:
    changed: tuple[LegacyContact, ...]
    removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.changed and not self.removed


def diff(stored: Iterable[LegacyContact], current: Iterable[LegacyContact]) -> RosterDiff:
    """Contacts new or different in ``current``, and legacy ids gone from it.

    Cost grows with the number of contacts only through one dict build; the result
    holds only the changes, so a login without changes pushes nothing.
    """
    before = {c.legacy_id: c for c in stored}
    now = {c.legacy_id: c for c in current}
    changed = tuple(c for lid, c in now.items() if before.get(lid) != c)
    removed = tuple(lid for lid in before if lid not in now)
    return RosterDiff(changed, removed)
