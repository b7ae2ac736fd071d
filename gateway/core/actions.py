"""Actions the core asks for: what to do, in the imperative. The bridge executes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.addressing import BareJid, FullJid
from gateway.core.model import Presence, RosterEntry

PresenceType = Literal[
    "available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"
]


@dataclass(frozen=True, slots=True)
class SendXmppPresence:
    to: BareJid | FullJid
    contact: str | None  # sender localpart on the component; None for the component itself
    type: PresenceType
    presence: Presence | None = None
    nick: str = ""


@dataclass(frozen=True, slots=True)
class SendXmppMessage:
    to: BareJid | FullJid
    contact: str
    body: str
    dedup_key: str
    nick: str = ""


@dataclass(frozen=True, slots=True)
class SendXmppChatState:
    to: BareJid
    contact: str
    state: str


@dataclass(frozen=True, slots=True)
class PushRoster:
    """Add or update roster items (XEP-0356) — or ask by subscription when not privileged."""

    to: BareJid
    entries: tuple[RosterEntry, ...]


@dataclass(frozen=True, slots=True)
class RemoveRoster:
    to: BareJid
    localparts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StartSession:
    network: str
    subscriber_id: int


@dataclass(frozen=True, slots=True)
class StopSession:
    network: str
    subscriber_id: int


@dataclass(frozen=True, slots=True)
class SetLegacyPresence:
    network: str
    subscriber_id: int
    presence: Presence


XmppAction = SendXmppPresence | SendXmppMessage | SendXmppChatState | PushRoster | RemoveRoster
NetworkAction = StartSession | StopSession | SetLegacyPresence
Action = XmppAction | NetworkAction
