"""Events the core consumes: what happened, in the past tense.

XMPP-side events are built by ``gateway.xmpp`` from stanzas; network-side events are
emitted by transports into the sink the bridge gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.addressing import FullJid
from gateway.core.model import Presence

PresenceKind = Literal[
    "available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"
]


@dataclass(frozen=True, slots=True)
class XmppPresenceReceived:
    sender: FullJid
    contact: str | None  # the contact's localpart, or None for the component itself
    kind: PresenceKind
    presence: Presence


@dataclass(frozen=True, slots=True)
class LegacyContact:
    """A contact as its network describes it."""

    legacy_id: str
    name: str
    subscription: str  # none / to / from / both, already mapped by the transport
    groups: tuple[str, ...] = ()
    list_bits: int = 0
    phone: str = ""  # the contact's mobile number when the network publishes one (MSN PHM)


@dataclass(frozen=True, slots=True)
class ContactListReceived:
    """The whole contact list, at every login (the core diffs it with the stored one)."""

    network: str
    subscriber_id: int
    contacts: tuple[LegacyContact, ...]


@dataclass(frozen=True, slots=True)
class ContactPresenceChanged:
    network: str
    subscriber_id: int
    legacy_id: str
    presence: Presence


@dataclass(frozen=True, slots=True)
class SubscriptionRequested:
    """A contact asks to see the subscriber (MSN: added to RL, or pending PL)."""

    network: str
    subscriber_id: int
    legacy_id: str
    name: str


@dataclass(frozen=True, slots=True)
class LegacyMessageReceived:
    network: str
    subscriber_id: int
    legacy_id: str
    body: str
    dedup_key: str  # stable across redeliveries by the network, when it has one
    nick: str = ""  # a readable name for senders without one (SMS short codes)


@dataclass(frozen=True, slots=True)
class ChatStateReceived:
    network: str
    subscriber_id: int
    legacy_id: str
    state: Literal["composing", "paused", "active"]


@dataclass(frozen=True, slots=True)
class SessionStateChanged:
    """A subscriber's network session went up, failed, or was taken over elsewhere."""

    network: str
    subscriber_id: int
    state: Literal["online", "offline", "failed", "replaced"]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ServiceSmsReceived:
    """The subscriber texted the service number from their own phone (commands, replies)."""

    subscriber_id: int
    text: str
    dedup_key: str


@dataclass(frozen=True, slots=True)
class DeliveryReported:
    """The network's final word on a message sent from XMPP (an SMS delivery receipt)."""

    network: str
    subscriber_id: int
    legacy_id: str
    msg_id: str
    sender: str  # the full JID that sent it: errors must go there
    ok: bool
    receipt_requested: bool
    reason: str = ""
    reply_network: str = ""  # the message was sent to a linked buddy's JID on this network
    reply_contact: str = ""  # … with this legacy id


NetworkEvent = (
    ContactListReceived
    | ContactPresenceChanged
    | SubscriptionRequested
    | LegacyMessageReceived
    | ChatStateReceived
    | SessionStateChanged
    | DeliveryReported
    | ServiceSmsReceived
)
