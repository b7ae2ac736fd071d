"""A test network that exercises the transport contract without any real protocol.

Accounts are ``name`` + ``password``; the password ``wrong`` is refused. A message sent
to any contact comes back from that contact as ``echo: <body>``; a contact named
``offline`` never accepts a message (``Failed``), one named ``slow`` asks to retry once.
Login publishes a contact list of two contacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.addressing import BareJid, escape_node, unescape_node
from gateway.core.actions import SendXmppPresence
from gateway.core.events import (
    ContactListReceived,
    ContactPresenceChanged,
    LegacyContact,
    LegacyMessageReceived,
    PresenceKind,
    SessionStateChanged,
)
from gateway.core.model import Presence, Show
from gateway.errors import UserError
from gateway.storage import Account, OutboxItem, Subscriber
from gateway.transport import (
    Delivered,
    DeliveryOutcome,
    EventSink,
    Failed,
    FormField,
    Linked,
    RegistrationOutcome,
    Retry,
)


class EchoTransport:
    network = "test"
    features = frozenset({"urn:xmpp:receipts"})
    registration_fields = (
        FormField("username", "User name"),
        FormField("password", "Password", "text-private"),
    )
    registration_instructions = "Enter your echo network user name and password."
    gateway_prompt = "Echo address"
    message_ttl_s = 3600.0

    def __init__(self) -> None:
        self.sink: EventSink | None = None
        self.sessions: set[int] = set()
        self.delivered: list[tuple[str, str]] = []
        self.presences: list[tuple[int, Presence]] = []
        self._retried: set[int] = set()

    async def start(self, sink: EventSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        self.sessions.clear()

    def parse_contact(self, localpart: str) -> str:
        handle = unescape_node(localpart)
        if "@" not in handle:
            raise UserError("bad-address", reason=f"'{handle}' is not an echo address (name@host).")
        return handle

    def contact_localpart(self, legacy_id: str) -> str:
        return escape_node(legacy_id)

    def translate_prompt(self, text: str) -> str:
        return self.contact_localpart(self.parse_contact(escape_node(text.strip())))

    async def register(
        self, user: BareJid, current: Account | None, form: Mapping[str, str]
    ) -> RegistrationOutcome:
        name, password = form.get("username", ""), form.get("password", "")
        if not name or not password:
            raise UserError("bad-form", reason="Both the user name and the password are required.")
        if name == "explode":
            raise RuntimeError("boom: internal detail the user must not see")
        if password == "wrong":
            raise UserError("bad-credentials", reason="The echo network refused this password.")
        return Linked(name, password)

    async def unregister(self, subscriber: Subscriber, account: Account) -> None:
        self.sessions.discard(subscriber.id)

    async def start_session(self, subscriber: Subscriber, account: Account, secret: str | None) -> None:
        assert self.sink is not None
        self.sessions.add(subscriber.id)
        await self.sink(SessionStateChanged(self.network, subscriber.id, "online"))
        contacts = (
            LegacyContact("alpha@echo.test", "Alpha", "both", ("Friends",), 11),
            LegacyContact("beta@echo.test", "Beta", "both", (), 11),
        )
        await self.sink(ContactListReceived(self.network, subscriber.id, contacts))
        await self.sink(
            ContactPresenceChanged(
                self.network, subscriber.id, "alpha@echo.test", Presence(Show.AWAY, "busy")
            )
        )

    async def stop_session(self, subscriber_id: int) -> None:
        self.sessions.discard(subscriber_id)

    async def set_presence(self, subscriber_id: int, presence: Presence) -> None:
        self.presences.append((subscriber_id, presence))

    async def send_chat_state(self, subscriber_id: int, legacy_id: str, state: str) -> None:
        return None

    async def contact_subscription(
        self, subscriber: Subscriber, legacy_id: str, kind: PresenceKind
    ) -> list[SendXmppPresence]:
        assert subscriber.jid is not None
        local = self.contact_localpart(legacy_id)
        if kind == "subscribe":
            return [
                SendXmppPresence(subscriber.jid, local, "subscribed"),
                SendXmppPresence(subscriber.jid, local, "available", Presence(Show.AVAILABLE)),
            ]
        return []

    async def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        assert self.sink is not None
        if item.destination.startswith("offline@"):
            return Failed("recipient-unavailable", {"reason": "That contact is offline."})
        if item.destination.startswith("slow@") and item.id not in self._retried:
            self._retried.add(item.id)
            return Retry(0.2, "throttled")
        body = str(item.payload["body"])
        self.delivered.append((item.destination, body))
        assert item.subscriber_id is not None
        await self.sink(
            LegacyMessageReceived(
                self.network, item.subscriber_id, item.destination, f"echo: {body}", f"e{item.id}"
            )
        )
        return Delivered()

    def status(self) -> dict[str, Any]:
        return {"sessions": len(self.sessions)}
