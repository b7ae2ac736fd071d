"""Small shared value types of the core."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Show(StrEnum):
    """A presence as XMPP shows it (``unavailable`` is a presence type, kept here for one field)."""

    AVAILABLE = ""
    CHAT = "chat"
    AWAY = "away"
    XA = "xa"
    DND = "dnd"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Presence:
    show: Show
    status: str = ""

    @property
    def online(self) -> bool:
        return self.show is not Show.UNAVAILABLE


OFFLINE = Presence(Show.UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One contact as the subscriber's roster should show it."""

    localpart: str  # escaped localpart on the component's domain
    name: str
    subscription: str  # none / to / from / both
    groups: tuple[str, ...] = ()
