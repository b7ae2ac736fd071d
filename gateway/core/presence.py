"""Which of a subscriber's XMPP resources are online, and what that means for sessions.

Pure bookkeeping: feed it the subscriber's presences, it answers with the transition
(first resource online, last resource gone, or the aggregate presence changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.addressing import BareJid, FullJid
from gateway.core.model import OFFLINE, Presence, Show

# The most available show wins when several resources are online.
_RANK = {Show.CHAT: 0, Show.AVAILABLE: 1, Show.AWAY: 2, Show.XA: 3, Show.DND: 4, Show.UNAVAILABLE: 9}


@dataclass(frozen=True, slots=True)
class Transition:
    came_online: bool
    went_offline: bool
    aggregate: Presence


@dataclass
class ResourceBook:
    """Online resources per bare JID."""

    _online: dict[BareJid, dict[str, Presence]] = field(default_factory=dict)

    def update(self, sender: FullJid, presence: Presence) -> Transition:
        resources = self._online.setdefault(sender.bare, {})
        was_online = bool(resources)
        before = self.aggregate(sender.bare)
        if presence.online:
            resources[sender.resource] = presence
        else:
            resources.pop(sender.resource, None)
        if not resources:
            del self._online[sender.bare]
        now_online = sender.bare in self._online
        after = self.aggregate(sender.bare)
        return Transition(
            came_online=now_online and not was_online,
            went_offline=was_online and not now_online,
            aggregate=after if after != before or now_online != was_online else before,
        )

    def aggregate(self, jid: BareJid) -> Presence:
        resources = self._online.get(jid)
        if not resources:
            return OFFLINE
        return min(resources.values(), key=lambda p: _RANK[p.show])

    def resources(self, jid: BareJid) -> tuple[str, ...]:
        return tuple(self._online.get(jid, {}))

    def is_online(self, jid: BareJid) -> bool:
        return jid in self._online

    def forget(self, jid: BareJid) -> None:
        self._online.pop(jid, None)
