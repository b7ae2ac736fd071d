"""XEP-0100 presence flows between a user and a gateway component (pure rules)."""

from __future__ import annotations

from gateway.addressing import BareJid
from gateway.core.actions import SendXmppPresence
from gateway.core.events import XmppPresenceReceived
from gateway.core.model import Presence, Show

GATEWAY_ONLINE = Presence(Show.AVAILABLE)


def after_registration(user: BareJid) -> list[SendXmppPresence]:
    """XEP-0100 §4.1.1: the gateway asks to subscribe to the user's presence."""
    return [
        SendXmppPresence(user, None, "subscribe"),
        SendXmppPresence(user, None, "available", GATEWAY_ONLINE),
    ]


def after_unregistration(user: BareJid) -> list[SendXmppPresence]:
    """XEP-0100 §4.3: unsubscribe both ways and go unavailable to the user."""
    return [
        SendXmppPresence(user, None, "unsubscribe"),
        SendXmppPresence(user, None, "unsubscribed"),
        SendXmppPresence(user, None, "unavailable"),
    ]


def to_component(event: XmppPresenceReceived, registered: bool) -> list[SendXmppPresence]:
    """Answer a subscription or probe addressed to the component itself."""
    user = event.sender.bare
    match event.kind:
        case "subscribe":
            if not registered:
                return [SendXmppPresence(user, None, "unsubscribed")]
            return [
                SendXmppPresence(user, None, "subscribed"),
                SendXmppPresence(user, None, "available", GATEWAY_ONLINE),
            ]
        case "probe":
            if registered:
                return [SendXmppPresence(user, None, "available", GATEWAY_ONLINE)]
            return [SendXmppPresence(user, None, "unsubscribed")]
        case "unsubscribe":
            return [SendXmppPresence(user, None, "unsubscribed")]
        case "subscribed" | "unsubscribed" | "available" | "unavailable":
            return []


def startup(users: list[BareJid]) -> list[SendXmppPresence]:
    return [SendXmppPresence(u, None, "available", GATEWAY_ONLINE) for u in users]


def shutdown(users: list[BareJid]) -> list[SendXmppPresence]:
    return [SendXmppPresence(u, None, "unavailable") for u in users]
