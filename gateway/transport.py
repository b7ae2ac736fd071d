"""The transport contract: what a network package implements to plug into the gateway.

A transport is a small closed world. It turns its protocol into the core's events and
executes the gateway's requests; it never calls into gateway objects. Each method says
what it may and may not do. Failures of the network are reported as events
(:class:`~gateway.core.events.SessionStateChanged`) or as outcomes, never raised into
the event loop.

A transport may keep network state of its own (codes, quotas, message parts) in the
tables the storage layer gives it; it never touches the bridge or the XMPP side.

The gateway holds an explicit mapping from network name to transport object (see
``gateway.app``); there is no registration by import or by string lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.addressing import BareJid
from gateway.core.actions import SendXmppPresence
from gateway.core.events import NetworkEvent, PresenceKind
from gateway.core.model import Presence
from gateway.core.records import Account, OutboxItem, Subscriber

EventSink = Callable[[NetworkEvent], Awaitable[None]]
"""Where a transport sends events. When the awaitable returns, the event is committed
(persisted where that matters): only then may the transport acknowledge it to its peer."""


@dataclass(frozen=True, slots=True)
class FormField:
    """One field of the XEP-0077 registration form (a XEP-0004 data form field)."""

    var: str
    label: str
    type: Literal["text-single", "text-private"] = "text-single"
    required: bool = True
    desc: str = ""


@dataclass(frozen=True, slots=True)
class Linked:
    """Registration succeeded: store this legacy identity (and its secret, encrypted)."""

    legacy_id: str
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class NeedMore:
    """Registration needs another round (e.g. a code was sent): answer not-acceptable with ``text``."""

    text: str


RegistrationOutcome = Linked | NeedMore


@dataclass(frozen=True, slots=True)
class Delivered:
    """The network accepted the message; ``receipt_ref`` correlates a later receipt.
    ``reached`` when the network's acceptance is itself proof that the contact got it (an
    MSN switchboard's ACK with the contact in the session): a XEP-0184 request is then
    answered at once, not by a later delivery report."""

    receipt_ref: str | None = None
    reached: bool = False


@dataclass(frozen=True, slots=True)
class Retry:
    """Not now (throttled, network down, contact to be called back): try again later."""

    after_s: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """Will never be delivered; the sender gets an error with this registry key and params."""

    error_key: str
    params: Mapping[str, object] = field(default_factory=dict)


DeliveryOutcome = Delivered | Retry | Failed


class Transport(Protocol):
    """One network. Implementations: ``transports.sms.transport``, ``transports.msn.transport``."""

    network: str
    """Short name, also the disco identity type (``sms``, ``msn``)."""

    features: frozenset[str]
    """Extra disco#info features (receipts, chat states…) this network supports."""

    @property
    def registration_fields(self) -> tuple[FormField, ...]: ...

    registration_instructions: str
    gateway_prompt: str
    """Label of the ``jabber:iq:gateway`` prompt (``Phone number``, ``MSN address``)."""

    message_ttl_s: float
    """How long an accepted message may wait in the outbox before it expires."""

    async def start(self, sink: EventSink) -> None:
        """Open the shared connection (the SMPP bind; nothing for MSN) and return quickly.
        Reconnection is the transport's own job."""

    async def stop(self) -> None:
        """Close everything gracefully, within a bounded time."""

    def parse_contact(self, localpart: str) -> str:
        """The legacy id for a contact JID's (escaped) localpart. No I/O.
        Raises ``UserError('bad-address', reason=...)`` naming the correct form when there is one."""

    def contact_localpart(self, legacy_id: str) -> str:
        """The (escaped) JID localpart for a legacy id. No I/O."""

    def translate_prompt(self, text: str) -> str:
        """``jabber:iq:gateway``: a user-typed address to a localpart; raises ``UserError``."""

    async def register(
        self, user: BareJid, current: Account | None, form: Mapping[str, str]
    ) -> RegistrationOutcome:
        """Check a registration form; may talk to the network (an MSN login, an SMS code).
        Raises ``UserError`` for bad input or credentials."""

    async def unregister(self, subscriber: Subscriber, account: Account) -> None:
        """Forget the account's live state (log out); storage is the bridge's job."""

    async def start_session(self, subscriber: Subscriber, account: Account, secret: str | None) -> None:
        """Log in for this subscriber, where the network has per-user sessions. Returns
        quickly; success and failure arrive as ``SessionStateChanged`` events."""

    async def stop_session(self, subscriber_id: int) -> None:
        """Log out this subscriber's session, if any."""

    async def set_presence(self, subscriber_id: int, presence: Presence) -> None:
        """The subscriber's own presence changed (no-op for networks without presence)."""

    async def send_chat_state(self, subscriber_id: int, legacy_id: str, state: str) -> None:
        """The subscriber is typing (XEP-0085 ``composing``) or stopped; no-op without typing."""

    async def contact_subscription(
        self, subscriber: Subscriber, legacy_id: str, kind: PresenceKind
    ) -> list[SendXmppPresence]:
        """The subscriber sent a subscription stanza (or a probe) to a contact JID: apply it
        to the network's lists where it has them, and say what to answer (mapping.md)."""

    async def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        """Send one outbox message. Must not raise: report ``Retry`` or ``Failed``."""

    def status(self) -> dict[str, Any]:
        """A small JSON-able dict for ``passerelle status`` (connection state, counters)."""
