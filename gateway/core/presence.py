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

    def online(self) -> tuple[BareJid, ...]:
        """Every bare JID with a resource online."""
        return tuple(self._online)

    def forget(self, jid: BareJid) -> None:
        self._online.pop(jid, None)


@dataclass
class AwayBook:
    """Since when each subscriber has had no XMPP client, and whose presence is unknown.

    MSN messages for a subscriber without an XMPP client go to their phone, but not at the
    first sign of absence: a client that just left may be reconnecting, and a server going
    down sends every user's unavailable presence a moment before it closes the component's
    stream. The grace covers that. It also covers the time when nobody can know: once the
    component's stream is gone, the subscribers who had a client online are *unknown* (their
    client may come back before the component does) until the server tells their presence
    again, or the grace, counted from the loss, runs out. A subscriber who was already away
    before the loss stays away: their messages go on to the phone without a new wait.
    """

    _away_since: dict[BareJid, float] = field(default_factory=dict)
    _unknown_since: dict[BareJid, float] = field(default_factory=dict)

    def back(self, jid: BareJid) -> None:
        """The server told us one of ``jid``'s clients is online."""
        self._away_since.pop(jid, None)
        self._unknown_since.pop(jid, None)

    def left(self, jid: BareJid, now: float) -> None:
        """``jid``'s last client went offline (the first time counts); told after a stream
        ended, away since then."""
        self._away_since.setdefault(jid, self._unknown_since.pop(jid, now))

    def lost(self, jids: tuple[BareJid, ...], now: float, recent_s: float) -> None:
        """The stream that told us these subscribers were online has ended. Who left less
        than ``recent_s`` before is unknown too (since they left): a server going down
        closes its users' streams first, and their client may be back before the component."""
        for jid in jids:
            self._unknown_since.setdefault(jid, now)
        for jid, since in self._away_since.items():
            if since > now - recent_s:
                self._unknown_since.setdefault(jid, since)
        for jid in self._unknown_since:
            self._away_since.pop(jid, None)

    def unknown(self) -> tuple[BareJid, ...]:
        """Whose presence the server has not told again since a stream ended."""
        return tuple(self._unknown_since)

    def texting_from(self, jid: BareJid, grace: float, started: float) -> float:
        """From when ``jid``'s MSN messages go by SMS: ``grace`` after their presence became
        unknown or they left, else (nothing heard of them since the gateway ``started``)
        ``grace`` after the start."""
        since = self._unknown_since.get(jid)
        if since is None:
            since = self._away_since.get(jid, started)
        return since + grace
