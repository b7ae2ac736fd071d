"""The one async orchestrator: feeds events to the core, persists, executes actions.

Grouped by direction, like a conversation: *from XMPP* (the :class:`ComponentHandler`
methods the components call) and *from the networks* (:meth:`Bridge.network_event`, the
sink every transport is given). It persists before it acknowledges: a message is in the
outbox before anyone is told it was accepted, and leaves it only once the other side
confirmed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.addressing import E164, AddressError, BareJid, FullJid
from gateway.config import Config
from gateway.convergence import Convergence
from gateway.core import roster, xep0100
from gateway.core.actions import (
    PresenceType,
    PushRoster,
    RemoveRoster,
    SendXmppChatState,
    SendXmppMessage,
    SendXmppPresence,
)
from gateway.core.events import (
    ChatStateReceived,
    ContactListReceived,
    ContactPresenceChanged,
    DeliveryReported,
    LegacyContact,
    LegacyMessageReceived,
    NetworkEvent,
    ServiceSmsReceived,
    SessionStateChanged,
    SubscriptionRequested,
    XmppPresenceReceived,
)
from gateway.core.model import Presence, RosterEntry, Show
from gateway.core.presence import AwayBook, ResourceBook
from gateway.errors import UserError
from gateway.storage import Conflict, Contact, OutboxItem, StorageError, Store, Subscriber
from gateway.transport import Delivered, Failed, Linked, NeedMore, Retry, Transport
from gateway.xmpp.component import GatewayComponent

log = logging.getLogger(__name__)
Clock = Callable[[], float]
RETRY_CAP_S = 60.0
OUTBOX_SCAN = 2000  # conversations looked at per round (the oldest first)
XMPP_BATCH = 500  # network → XMPP messages handed over per round
AWAY_GRACE_S = 8.0  # without an XMPP client (or word of one) this long, a subscriber is away: MSN -> SMS
ROUND_GATHER_S = 0.002
FLUSH_S = 3.0  # at shutdown, how long sends under way may take to finish
DELIVERED_MEMORY_S = 3600.0  # a resend of a delivered message (same id and text) is dropped this long
HOUSEKEEPING_S = 600.0  # how often what is older than that is forgotten
STORE_RETRY_S = 0.5  # first pause after the database refused an outbox state change
STORE_RETRY_CAP_S = 4.0  # longest pause between tries of a refused state change


@dataclass
class Counters:
    """Totals since start, for ``status`` and metrics."""

    to_network: dict[str, int] = field(default_factory=dict)
    to_xmpp: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    replayed: int = 0

    def bump(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


@dataclass
class _Parked:
    """An outbox item whose last state change the database refused."""

    queue: str
    until: float  # not tried again before this time
    failures: int = 0
    settled: bool = False  # delivered, or failed and answered: only its removal is owed
    untold: UserError | None = None  # failed for good, its sender not yet told: only that is owed


class Parking:
    """What the database could not record about outbox items, kept in memory: a delivered
    message whose removal was refused is never sent again (its removal is retried), and an
    item whose reschedule was refused waits in memory instead of being retried in a loop.

    Bounded by the items the rounds try (one head per conversation, one batch of the XMPP
    queues); an entry goes as soon as a write about its item succeeds. Lost at a restart:
    a delivered item then goes out again (``requeue_interrupted``), as after a crash.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.items: dict[int, _Parked] = {}

    def settled(self, item_id: int) -> bool:
        parked = self.items.get(item_id)
        return parked is not None and parked.settled

    def untold(self, item_id: int) -> UserError | None:
        parked = self.items.get(item_id)
        return None if parked is None else parked.untold

    def due_at(self, item_id: int) -> float | None:
        parked = self.items.get(item_id)
        return None if parked is None else parked.until

    def park(
        self,
        item_id: int,
        queue: str,
        *,
        settled: bool = False,
        until: float = 0.0,
        untold: UserError | None = None,
    ) -> _Parked:
        parked = self.items.setdefault(item_id, _Parked(queue, 0.0))
        parked.failures += 1
        parked.settled = parked.settled or settled
        parked.untold = untold or parked.untold
        pause = min(STORE_RETRY_CAP_S, STORE_RETRY_S * 2 ** min(parked.failures - 1, 16))
        parked.until = max(self.clock() + pause, until)
        return parked

    def clear(self, item_id: int) -> None:
        self.items.pop(item_id, None)

    def next_due(self, queue: str, default: float) -> float:
        """Seconds until the next parked item of ``queue`` may be tried (at most ``default``)."""
        now = self.clock()
        waits = [p.until - now for p in self.items.values() if p.queue == queue and p.until > now]
        return max(STORE_RETRY_S / 5, min([default, *waits]))

    def forget_missing(self, queue: str, present: set[int]) -> None:
        """Drop the entries of items no longer in the outbox (removed by other means)."""
        for item_id in [i for i, p in self.items.items() if p.queue == queue and i not in present]:
            del self.items[item_id]

    def settled_ids(self) -> list[int]:
        return [i for i, p in self.items.items() if p.settled]


class Bridge:
    """Owns the store, the transports and their components."""

    def __init__(
        self, config: Config, store: Store, transports: Mapping[str, Transport], clock: Clock = time.time
    ):
        self.config = config
        self.store = store
        self.transports = dict(transports)
        self.components: dict[str, GatewayComponent] = {}
        self.clock = clock
        self.resources = {name: ResourceBook() for name in transports}
        self.counters = Counters()
        self._wake = {name: asyncio.Event() for name in transports}
        self._wake_xmpp = {name: asyncio.Event() for name in transports}
        self._workers: list[asyncio.Task[None]] = []
        self._in_flight: set[tuple[int | None, str]] = set()
        self._sends_ended = 0  # sends finished so far (a clock for _ended_at)
        # per network: conversation -> the value of _sends_ended when its last send ended
        self._ended_at: dict[str, dict[tuple[int | None, str], int]] = {n: {} for n in transports}
        self.accepting = True
        self.convergence = Convergence(self, clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self.parking = Parking(clock)
        self.away = AwayBook()  # who left XMPP when, whose presence is unknown (see AwayBook)
        self.away_grace_s = AWAY_GRACE_S
        self._confirming: dict[str, asyncio.Future[bool]] = {}  # per component: the next ping
        self._started = clock()

    def wake(self, network: str) -> None:
        """New work in the ``network`` outbox."""
        if network in self._wake:
            self._wake[network].set()

    def wake_xmpp(self, network: str) -> None:
        """New work in the queue of messages from ``network`` to XMPP."""
        if network in self._wake_xmpp:
            self._wake_xmpp[network].set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._started = self.clock()
        self.counters.replayed = await self.store.requeue_interrupted()
        if self.counters.replayed:
            log.warning(
                "%d messages were being sent when the gateway stopped; resending", self.counters.replayed
            )
        for name, transport in self.transports.items():
            await transport.start(self.network_event)
            self._workers.append(asyncio.ensure_future(self._network_worker(name)))
            self._workers.append(asyncio.ensure_future(self._xmpp_worker(name)))
        self._workers.append(asyncio.ensure_future(self._housekeeping()))

    async def _housekeeping(self) -> None:
        """Forget, now and then, the keys of messages that left the outbox long enough ago
        that no resend of them can come any more."""
        while True:
            try:
                gone = await self.store.forget_delivered(time.time() - DELIVERED_MEMORY_S)
                log.debug("forgot %d delivered message keys", gone)
            except Exception:
                log.exception("forgetting old delivered message keys failed; tried again later")
            await asyncio.sleep(HOUSEKEEPING_S)

    async def stop(self) -> None:
        self.accepting = False
        for name, component in self.components.items():
            if component.online.is_set():
                for action in xep0100.shutdown(await self._registered_users(name)):
                    component.send_xmpp_presence(action)
        await self._drain(FLUSH_S)
        await self._remove_settled()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for transport in self.transports.values():
            await transport.stop()

    async def _drain(self, limit: float) -> None:
        """Let the sends already under way finish (no new ones start once not accepting):
        their network may already have the message, so cancelling would risk a resend."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self._in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._in_flight:
            log.warning("%d sends still under way at shutdown; resumed at next start", len(self._in_flight))

    async def _remove_settled(self) -> None:
        """Last try to remove what was delivered but not removed (else it is sent again at
        the next start)."""
        for item_id in self.parking.settled_ids():
            try:
                await self.store.complete(item_id)
            except Exception as exc:
                log.error("delivered message %d not removed (%s): sent again at restart", item_id, exc)
            else:
                self._forget(item_id)

    async def _registered_users(self, network: str) -> list[BareJid]:
        users = []
        for account in await self.store.accounts(network):
            sub = await self.store.subscriber(account.subscriber_id)
            if sub is not None and sub.jid is not None:
                users.append(sub.jid)
        return users

    # -- from XMPP -----------------------------------------------------------------------

    def sender_allowed(self, sender: BareJid) -> bool:
        return sender.domain in self.config.xmpp.user_domains and bool(sender.local)

    async def _subscriber(self, jid: BareJid) -> Subscriber:
        sub = await self.store.subscriber_by_jid(jid)
        if sub is None:
            raise UserError("not-registered")
        return sub

    async def registration_state(self, network: str, sender: FullJid) -> str | None:
        sub = await self.store.subscriber_by_jid(sender.bare)
        account = await self.store.account(sub.id, network) if sub else None
        return account.legacy_id if account else None

    async def register(self, network: str, sender: FullJid, values: dict[str, str]) -> None:
        transport = self.transports[network]
        sub = await self.store.subscriber_by_jid(sender.bare)
        if sub is None and self.config.xmpp.registration == "closed":
            raise UserError("registration-closed")
        current = await self.store.account(sub.id, network) if sub else None
        outcome = await transport.register(sender.bare, current, values)
        match outcome:
            case NeedMore(text=text):
                raise UserError("bad-form", reason=text)
            case Linked(legacy_id=legacy_id, secret=secret):
                now = self.clock()
                if sub is None:
                    sub = await self.store.add_subscriber(sender.bare, now)
                try:
                    account = await self.store.set_account(sub.id, network, legacy_id, secret, now)
                except Conflict:
                    raise UserError(
                        "conflict", reason=f"{legacy_id} is already registered by another user."
                    ) from None
        log.info("%s registered on %s", sender.bare, network)
        for action in xep0100.after_registration(sender.bare):
            self.components[network].send_xmpp_presence(action)
        if self.resources[network].is_online(sender.bare):
            secret_value = await self.store.account_secret(sub.id, network)
            await transport.start_session(sub, account, secret_value)

    async def unregister(self, network: str, sender: FullJid) -> None:
        sub = await self._subscriber(sender.bare)
        account = await self.store.account(sub.id, network)
        if account is None:
            raise UserError("not-registered")
        await self.transports[network].unregister(sub, account)
        contacts = await self.store.contacts(sub.id, network)
        await self.store.remove_account(sub.id, network)
        if not await self._has_accounts(sub.id):
            await self.store.remove_subscriber(sub.id)
        component = self.components[network]
        locals_ = tuple(self.transports[network].contact_localpart(c.legacy_id) for c in contacts)
        if locals_ and not await component.push_roster(RemoveRoster(sender.bare, locals_)):
            for local in locals_:
                component.send_xmpp_presence(SendXmppPresence(sender.bare, local, "unsubscribed"))
        for action in xep0100.after_unregistration(sender.bare):
            component.send_xmpp_presence(action)
        log.info("%s unregistered from %s", sender.bare, network)

    async def _has_accounts(self, subscriber_id: int) -> bool:
        return any(a.subscriber_id == subscriber_id for a in await self.store.accounts())

    async def gateway_translate(self, network: str, sender: FullJid, text: str) -> str:
        local = self.transports[network].translate_prompt(text)
        return f"{local}@{self.components[network].boundjid.bare}"

    async def presence_received(self, network: str, event: XmppPresenceReceived) -> None:
        if event.kind in ("available", "unavailable") and event.contact is not None:
            return  # presence directed to a contact JID (a broadcast copy) is not the user's own state
        component = self.components[network]
        sub = await self.store.subscriber_by_jid(event.sender.bare)
        if event.kind in ("available", "unavailable"):
            await self._track(network, event, sub)
            return
        account = await self.store.account(sub.id, network) if sub else None
        if event.contact is None:
            for action in xep0100.to_component(event, registered=account is not None):
                component.send_xmpp_presence(action)
            return
        if sub is None or account is None:
            if event.kind in ("subscribe", "probe"):
                component.send_xmpp_presence(
                    SendXmppPresence(event.sender.bare, event.contact, "unsubscribed")
                )
            return
        transport = self.transports[network]
        try:
            legacy_id = transport.parse_contact(event.contact)
        except UserError:
            component.send_xmpp_presence(SendXmppPresence(event.sender.bare, event.contact, "unsubscribed"))
            return
        for action in await transport.contact_subscription(sub, legacy_id, event.kind):
            component.send_xmpp_presence(await self._merged(network, sub.id, legacy_id, action))

    async def _merged(
        self, network: str, subscriber_id: int, legacy_id: str, action: SendXmppPresence
    ) -> SendXmppPresence:
        """A linked MSN buddy's presence as the one buddy list shows it (an answer to a
        probe too): away, reachable by SMS, while offline on MSN."""
        if network != "msn" or action.presence is None or action.type not in ("available", "unavailable"):
            return action
        presence = await self.convergence.presence(subscriber_id, legacy_id, action.presence)
        kind: PresenceType = "available" if presence.online else "unavailable"
        return replace(action, type=kind, presence=presence)

    async def _track(self, network: str, event: XmppPresenceReceived, sub: Subscriber | None) -> None:
        transition = self.resources[network].update(event.sender, event.presence)
        self._note_away(event.sender.bare)
        if sub is None:
            return
        account = await self.store.account(sub.id, network)
        if account is None:
            return
        transport = self.transports[network]
        if transition.came_online:
            await transport.start_session(sub, account, await self.store.account_secret(sub.id, network))
            await self.store.make_due(
                f"xmpp:{network}", sub.id, self.clock()
            )  # forwards waiting: to XMPP now
        elif transition.went_offline:
            if network == "msn" and await self.convergence.went_away(sub):
                self._wake_xmpp[network].set()
                return  # always connected: the session stays up, now "on mobile"
            await transport.stop_session(sub.id)
        if transition.aggregate.online or transition.went_offline:
            await transport.set_presence(sub.id, transition.aggregate)
        self._wake[network].set()
        self._wake_xmpp[network].set()

    def _note_away(self, jid: BareJid) -> None:
        """Since when none of ``jid``'s XMPP clients is online (for :meth:`_texting_from`)."""
        if any(book.is_online(jid) for book in self.resources.values()):
            self.away.back(jid)
        else:
            self.away.left(jid, self.clock())

    def _texting_from(self, sub: Subscriber) -> float:
        """From when MSN messages for a subscriber without an XMPP client go by SMS: after
        the grace (``AwayBook``), so that a client reconnecting, or a restarting XMPP server,
        is not taken for the subscriber leaving (the message would reach them twice: by SMS
        and on XMPP); at once for one who was away already."""
        if sub.jid is None:
            return 0.0  # SMS-only: nothing to wait for
        return self.away.texting_from(sub.jid, self.away_grace_s, self._started)

    async def message_received(
        self, network: str, sender: FullJid, contact: str | None, body: str, msg_id: str, receipt: bool
    ) -> None:
        if not self.accepting:
            raise UserError("network-down", reason="The gateway is shutting down; send again in a moment.")
        sub = await self._subscriber(sender.bare)
        if await self.store.account(sub.id, network) is None:
            raise UserError("not-registered")
        if contact is None:
            raise UserError("not-supported", what="Messages to the gateway itself")
        legacy_id = self.transports[network].parse_contact(contact)
        now = self.clock()
        # the same id and text to the same contact again is a resend (XEP-0198 after a lost
        # stream), whether the first is still queued or delivered already; another text or
        # another contact under a reused id is a new message
        key = (
            xmpp_message_key(network, sub.id, str(sender.bare), legacy_id, msg_id, body)
            if msg_id
            else f"{network}:{uuid.uuid4()}"
        )
        payload = {"body": body, "from": str(sender), "id": msg_id, "receipt": receipt, "contact": contact}
        route, destination = network, legacy_id
        if network == "msn":  # a linked buddy away from MSN gets an SMS
            route, destination = await self.convergence.route(sub.id, legacy_id)
            if route != network:
                payload["reply_network"], payload["reply_contact"] = network, legacy_id
        try:
            item = await self._enqueue_message(route, sub.id, key, destination, payload, now)
        except StorageError:
            log.error("cannot store a message from %s: the database refused the write", sender.bare)
            raise UserError("storage-full") from None
        if item is None:
            log.info("duplicate message %s from %s ignored", msg_id, sender.bare)
        self._wake[route].set()

    async def _enqueue_message(
        self, route: str, subscriber_id: int, key: str, destination: str, payload: dict[str, Any], now: float
    ) -> int | None:
        return await self.store.enqueue(
            network=route,
            subscriber_id=subscriber_id,
            dedup_key=key,
            destination=destination,
            payload=payload,
            now=now,
            expires=now + self.transports[route].message_ttl_s,
        )

    async def chat_state_received(self, network: str, sender: FullJid, contact: str, state: str) -> None:
        sub = await self._subscriber(sender.bare)
        transport = self.transports[network]
        await transport.send_chat_state(sub.id, transport.parse_contact(contact), state)

    async def component_online(self, network: str) -> None:
        component = self.components[network]
        for action in xep0100.startup(await self._registered_users(network)):
            component.send_xmpp_presence(action)
        for jid in self.away.unknown():  # who had a client online when a stream ended: ask
            component.send_xmpp_presence(SendXmppPresence(jid, None, "probe"))
        if network == "msn":
            await self.convergence.start_always_connected()
        self._wake[network].set()
        self._wake_xmpp[network].set()

    async def component_offline(self, network: str) -> None:
        """The component's stream ended: the clients it reported online may be gone or may
        come back before it does. They count as unknown (``AwayBook``) until the server
        tells their presence again; no session changes for that."""
        book = self.resources[network]
        online = book.online()
        for jid in online:
            book.forget(jid)
        gone = tuple(j for j in online if not any(b.is_online(j) for b in self.resources.values()))
        self.away.lost(gone, self.clock(), self.away_grace_s)
        self._wake_xmpp[network].set()

    # -- from the networks ---------------------------------------------------------------

    async def network_event(self, event: NetworkEvent) -> None:
        """The sink given to every transport. Returns once the event is committed."""
        match event:
            case LegacyMessageReceived():
                await self._legacy_message(event)
            case ContactListReceived():
                await self._contact_list(event)
            case ContactPresenceChanged():
                await self._contact_presence(event)
            case SubscriptionRequested():
                await self._subscription_requested(event)
            case ChatStateReceived():
                await self._chat_state(event)
            case SessionStateChanged():
                await self._session_state(event)
            case DeliveryReported():
                await self._delivery_reported(event)
            case ServiceSmsReceived():
                await self.convergence.service_sms(event)

    async def _jid_of(self, subscriber_id: int) -> BareJid | None:
        sub = await self.store.subscriber(subscriber_id)
        return sub.jid if sub else None

    async def _legacy_message(self, event: LegacyMessageReceived) -> None:
        if await self.convergence.linked_sms(event):
            return
        now = self.clock()
        await self.store.enqueue(
            network=f"xmpp:{event.network}",
            subscriber_id=event.subscriber_id,
            dedup_key=f"in:{event.network}:{event.dedup_key}",
            destination=event.legacy_id,
            payload={"body": event.body, "nick": event.nick},
            now=now,
            expires=now + 7 * 86400,
        )
        self._wake_xmpp[event.network].set()

    async def _contact_list(self, event: ContactListReceived) -> None:
        jid = await self._jid_of(event.subscriber_id)
        stored = [
            LegacyContact(
                c.legacy_id, c.name, _subscription(c.list_bits, c.groups), c.groups, c.list_bits, c.phone
            )
            for c in await self.store.contacts(event.subscriber_id, event.network)
        ]
        current = [
            LegacyContact(
                c.legacy_id,
                c.name,
                _subscription(c.list_bits, c.groups),
                c.groups,
                c.list_bits,
                self._phone(c.phone),
            )
            for c in event.contacts
        ]
        change = roster.diff(stored, current)
        if change.empty:
            return
        await self.store.upsert_contacts(
            [
                Contact(
                    event.subscriber_id, event.network, c.legacy_id, c.name, c.groups, c.list_bits, c.phone
                )
                for c in change.changed
            ]
        )
        await self.store.remove_contacts(event.subscriber_id, event.network, change.removed)
        if jid is None:
            return
        transport = self.transports[event.network]
        component = self.components[event.network]
        by_id = {c.legacy_id: c for c in event.contacts}
        entries = tuple(
            RosterEntry(
                transport.contact_localpart(c.legacy_id), c.name, by_id[c.legacy_id].subscription, c.groups
            )
            for c in change.changed
        )
        if entries and not await component.push_roster(PushRoster(jid, entries)):
            for entry in entries:
                component.send_xmpp_presence(
                    SendXmppPresence(jid, entry.localpart, "subscribe", nick=entry.name)
                )
        if event.network == "msn":
            handles = [c.legacy_id for c in change.changed]
            for handle, presence in await self.convergence.linked_offline(event.subscriber_id, handles):
                component.send_xmpp_presence(
                    SendXmppPresence(jid, transport.contact_localpart(handle), "available", presence)
                )
        removed = tuple(transport.contact_localpart(lid) for lid in change.removed)
        if removed and not await component.push_roster(RemoveRoster(jid, removed)):
            for local in removed:
                component.send_xmpp_presence(SendXmppPresence(jid, local, "unsubscribed"))

    def _phone(self, published: str) -> str:
        """A contact's published mobile number (MSN PHM) in E.164, or '' when unreadable."""
        if not published:
            return ""
        try:
            return str(E164.parse(published, self.config.sms.default_region if self.config.sms else None))
        except AddressError:
            return ""

    async def _chat_state(self, event: ChatStateReceived) -> None:
        jid = await self._jid_of(event.subscriber_id)
        if jid is None:
            return
        local = self.transports[event.network].contact_localpart(event.legacy_id)
        self.components[event.network].send_chat_state(SendXmppChatState(jid, local, event.state))

    async def _contact_presence(self, event: ContactPresenceChanged) -> None:
        jid = await self._jid_of(event.subscriber_id)
        if jid is None:
            return
        local = self.transports[event.network].contact_localpart(event.legacy_id)
        presence = event.presence
        if event.network == "msn":
            presence = await self.convergence.presence(event.subscriber_id, event.legacy_id, presence)
        action = SendXmppPresence(jid, local, "available" if presence.online else "unavailable", presence)
        self.components[event.network].send_xmpp_presence(action)

    async def _subscription_requested(self, event: SubscriptionRequested) -> None:
        jid = await self._jid_of(event.subscriber_id)
        if jid is None:
            return
        local = self.transports[event.network].contact_localpart(event.legacy_id)
        self.components[event.network].send_xmpp_presence(
            SendXmppPresence(jid, local, "subscribe", nick=event.name)
        )

    async def _delivery_reported(self, event: DeliveryReported) -> None:
        """A receipt or an error for the XMPP sender, confirmed by a ping on the same stream;
        raises ConnectionError when it was not (the network's report is then refused, and
        reported again: an SMSC delivers a receipt until it is acknowledged)."""
        if not event.sender and event.reply_network == "msn" and event.reply_contact:
            # a forward of an MSN message: delivered, or not (then its buddy is told)
            if event.ok:
                self.convergence.forward_delivered(event.subscriber_id, event.reply_contact)
            else:
                key = event.msg_id or event.legacy_id
                await self.convergence.forward_undelivered(event.subscriber_id, event.reply_contact, key)
            return
        if not event.sender or (event.ok and not (event.receipt_requested and event.msg_id)):
            return  # a forward, a command reply, or no receipt asked for: nobody to tell
        network = event.reply_network or event.network
        legacy = event.reply_contact or event.legacy_id
        component = self.components[network]
        sender = FullJid.parse(event.sender)
        local = self.transports[network].contact_localpart(legacy)
        if event.ok:
            component.send_receipt(sender, local, event.msg_id)
        else:
            self.counters.bump(self.counters.failed, event.network)
            error = UserError("recipient-unavailable", reason=event.reason)
            component.send_error_message(sender, local, event.msg_id, error)
        if not await self._confirmed(network):
            raise ConnectionError(f"the XMPP server did not confirm a delivery report to {sender.bare}")

    async def _confirmed(self, network: str) -> bool:
        """Whether what was just written on the component's stream reached the server: one
        ping answered after it on the same stream, shared by whatever is written meanwhile."""
        ping = self._confirming.get(network)
        if ping is None:
            ping = self._confirming[network] = asyncio.ensure_future(self._confirm_ping(network))
        return await asyncio.shield(ping)

    async def _confirm_ping(self, network: str) -> bool:
        await asyncio.sleep(0)  # what is written in this instant shares the ping
        del self._confirming[network]  # written after this point: the next ping
        return await self.components[network].handover([])

    async def _session_state(self, event: SessionStateChanged) -> None:
        if event.state == "online":  # what waited for the session goes now, not after its pause
            await self.store.make_due(event.network, event.subscriber_id, self.clock())
            self.wake(event.network)
            return
        jid = await self._jid_of(event.subscriber_id)
        if jid is None:
            return
        component = self.components[event.network]
        status = {
            "failed": "Login failed: ",
            "replaced": "Signed in elsewhere: ",
            "offline": "Disconnected: ",
        }
        presence = Presence(Show.XA, status[event.state] + event.reason)
        component.send_xmpp_presence(SendXmppPresence(jid, None, "available", presence))

    # -- outbox workers --------------------------------------------------------------------

    async def _network_worker(self, network: str) -> None:
        """Deliver XMPP → network messages: conversations in parallel, each one in order.

        A conversation (subscriber, destination) has at most one message in flight, so
        retries never reorder it; different conversations do not wait for each other.
        """
        wake = self._wake[network]
        tasks: set[asyncio.Task[None]] = set()
        while True:
            wake.clear()  # before reading the queue: a message queued meanwhile wakes us again
            try:
                delay = await self._network_round(network, tasks)
            except Exception:
                log.exception("outbox round for %s failed; retrying", network)
                delay = 1.0
            await _sleep(wake, delay)

    async def _network_round(self, network: str, tasks: set[asyncio.Task[None]]) -> float:
        await asyncio.sleep(ROUND_GATHER_S)  # let completions and arrivals gather into one round
        read_from = self._sends_ended
        items = await self.store.conversation_heads(network, OUTBOX_SCAN)
        if len(items) < OUTBOX_SCAN:  # every conversation seen: the parking can be tidied
            self.parking.forget_missing(network, {item.id for item in items})
        ended = self._ended_at[network] = {c: n for c, n in self._ended_at[network].items() if n >= read_from}
        now = self.clock()
        heads = {(item.subscriber_id, item.destination): item for item in items}
        next_due = 5.0
        for conv, item in heads.items():
            stale = conv in self._in_flight or conv in ended  # its send ended after the read began
            due = None if stale else self._due_at(item)
            if due is None:
                continue
            if due > now:
                next_due = min(next_due, due - now)
                continue
            self._in_flight.add(conv)
            task = asyncio.ensure_future(self._send_one(network, conv, item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return next_due

    def _due_at(self, item: OutboxItem) -> float | None:
        """When a conversation's head may be tried; None while a send has it ('sending')."""
        parked = self.parking.due_at(item.id)
        if parked is not None:  # its state in the database is stale
            return parked
        return item.next_attempt if item.state == "queued" else None

    async def _send_one(self, network: str, conv: tuple[int | None, str], item: OutboxItem) -> None:
        try:
            untold = self.parking.untold(item.id)
            if self.parking.settled(item.id):
                await self._remove(network, item)  # delivered already: only its removal is owed
            elif untold is not None:
                await self._fail(network, item, untold)  # failed already: only telling is owed
            else:
                await self._send(network, item)
        except Exception:
            log.exception("sending outbox message %d on %s failed; tried again later", item.id, network)
            self.parking.park(item.id, network)
        finally:
            self._ended_at[network][conv] = self._sends_ended  # for rounds reading meanwhile
            self._sends_ended += 1
            self._in_flight.discard(conv)
            self._wake[network].set()

    async def _send(self, network: str, item: OutboxItem) -> None:
        if item.expires <= self.clock():
            self.counters.bump(self.counters.failed, network)
            await self._fail(network, item, UserError("recipient-unavailable", reason=_expired(item)))
            return
        # 'sending' and the attempt count commit with the transport's first write, or
        # before it (writes commit in submit order), never on their own: nothing depends on
        # them being stored before the send (the SMS transport learns that an earlier try
        # got as far as sending from its own count of the message).
        marked = self.store.start_mark_sending(item.id)
        try:
            outcome = await self.transports[network].deliver(item)
        except Exception:
            log.exception("sending outbox message %d on %s failed; it stays queued", item.id, network)
            outcome = Retry(5.0, "internal error")
        finally:
            await _settled(marked, item.id)
        match outcome:
            case Delivered(reached=reached):
                self.counters.bump(self.counters.to_network, network)
                if reached:
                    self._receipt(network, item)
                await self._remove(network, item)
            case Failed(error_key=key, params=params):
                self.counters.bump(self.counters.failed, network)
                await self._fail(network, item, UserError(key, **params))
            case Retry(after_s=after):
                await self._reschedule(network, item, self.clock() + min(after, RETRY_CAP_S))

    def _receipt(self, network: str, item: OutboxItem) -> None:
        """A XEP-0184 receipt for a message the network says reached its contact, when
        its sender asked for one. Not confirmed: if it is lost (the XMPP server restarting),
        the message was delivered all the same, and is not sent again."""
        msg_id, sender = str(item.payload.get("id", "")), str(item.payload.get("from", ""))
        if not (item.payload.get("receipt") and msg_id and sender):
            return
        contact = str(item.payload.get("contact", "")) or self.transports[network].contact_localpart(
            item.destination
        )
        self.components[network].send_receipt(FullJid.parse(sender), contact, msg_id)

    async def _reschedule(self, queue: str, item: OutboxItem, at: float) -> None:
        await self._outbox_write(queue, item, self.store.reschedule(item.id, at), "reschedule", until=at)

    async def _remove(self, queue: str, item: OutboxItem, *, delivered: bool = True) -> None:
        """Out of the outbox (delivered, or failed and answered). When the database refuses,
        the item is remembered as settled: never sent again, its removal tried again."""
        removal = self.store.complete(item.id, delivered=delivered)
        if await self._outbox_write(queue, item, removal, "remove", settled=True):
            self._forget(item.id)

    def _forget(self, item_id: int) -> None:
        """An item left the outbox: what is kept in memory about it goes too (SQLite gives a
        later message the same id once it is the highest one and gone)."""
        self.parking.clear(item_id)
        self.convergence.texted.pop(item_id, None)

    async def _outbox_write(
        self,
        queue: str,
        item: OutboxItem,
        write: Awaitable[None],
        what: str,
        *,
        settled: bool = False,
        until: float = 0.0,
    ) -> bool:
        """One state change of ``item``. When the database refuses it, the item is parked in
        memory (see :class:`Parking`) and tried again after a growing pause, not at once."""
        try:
            await write
        except Exception as exc:
            parked = self.parking.park(item.id, queue, settled=settled, until=until)
            level = logging.ERROR if parked.failures == 1 else logging.DEBUG  # one line per item
            log.log(
                level, "outbox message %d: the database refused to %s it (%s); kept in memory, "
                "tried again in %.1f s", item.id, what, exc, parked.until - self.clock(),
            )  # fmt: skip
            return False
        if self.parking.due_at(item.id) is not None:
            log.info("outbox message %d: the database took the change (%s)", item.id, what)
            self.parking.clear(item.id)
        return True

    async def _fail(self, network: str, item: OutboxItem, error: UserError) -> None:
        """A message that will never be delivered leaves the outbox once its sender was told
        (the error confirmed by the XMPP server, or the SMS answer queued); until then it is
        parked in memory and only the telling is tried again, never the message."""
        if await self._report_failure(network, item, error):
            await self._remove(network, item, delivered=False)
        else:
            parked = self.parking.park(item.id, network, untold=error)
            log.info("outbox message %d: its sender could not be told it failed; tried again in %.1f s",
                     item.id, parked.until - self.clock())  # fmt: skip

    async def _report_failure(self, network: str, item: OutboxItem, error: UserError) -> bool:
        """Tell the sender that ``item`` failed; whether that is done (confirmed)."""
        if not item.payload.get("from"):  # sent from the subscriber's phone: tell them there
            if item.subscriber_id is not None and item.payload.get("origin") == "sms":
                text = f"Not delivered to {item.destination}: {error.text}"
                try:
                    await self.convergence.send_sms(item.subscriber_id, text, f"fail:{item.dedup_key}")
                except Exception as exc:
                    log.warning("the SMS telling of a failed message could not be queued (%s)", exc)
                    return False
            return True
        sender = FullJid.parse(str(item.payload["from"]))
        contact = str(item.payload.get("contact", ""))
        reply_network = str(item.payload.get("reply_network", network))
        self.components[reply_network].send_error_message(
            sender, contact, str(item.payload.get("id", "")), error
        )
        return await self._confirmed(reply_network)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _xmpp_worker(self, network: str) -> None:
        """Hand network → XMPP messages to the server, confirmed by a ping, in batches."""
        wake = self._wake_xmpp[network]
        while True:
            wake.clear()
            try:
                delay = await self._xmpp_round(network)
            except Exception:
                log.exception("XMPP outbox round for %s failed; retrying", network)
                delay = 1.0
            if delay:
                await _sleep(wake, delay)

    async def _xmpp_round(self, network: str) -> float:
        """One batch; the pause before the next one. SMS forwards go on while the XMPP
        server is away; the hand-over waits for it."""
        component = self.components.get(network)
        online = component if component is not None and component.online.is_set() else None
        queue = f"xmpp:{network}"
        items = await self.store.due(queue, self.clock(), limit=XMPP_BATCH)
        if len(items) < XMPP_BATCH:  # every due item seen: the parking can be tidied
            self.parking.forget_missing(queue, {item.id for item in items})
        settled = [item for item in items if self.parking.settled(item.id)]
        if settled:  # handed over already: only their removal is owed
            await self._remove_handed(queue, settled)
        now, done = self.clock(), {item.id for item in settled}
        fresh = [i for i in items if i.id not in done and (self.parking.due_at(i.id) or 0.0) <= now]
        stanzas = await self._stanzas_by_conversation(network, online, fresh)
        if online is None:
            return self.parking.next_due(queue, 1.0 if items else 5.0)  # woken when it is back
        if not stanzas:  # all forwarded, waiting or parked: more may be due at once
            return 0.0 if fresh else self.parking.next_due(queue, 5.0)
        if not await online.handover([stanza for _, stanza in stanzas]):
            return 1.0
        handed = list({item.id: item for item, _ in stanzas}.values())
        await self._remove_handed(queue, handed)
        for _ in handed:  # counted once out of the outbox: a status read between agrees
            self.counters.bump(self.counters.to_xmpp, network)
        return 0.0

    async def _remove_handed(self, queue: str, items: list[OutboxItem]) -> None:
        """Remove handed-over items in one transaction. When the database refuses, they are
        parked as settled: never handed over again, their removal tried again."""
        try:
            await self.store.complete_many([item.id for item in items])
        except Exception as exc:
            first = [i for i in items if self.parking.park(i.id, queue, settled=True).failures == 1]
            if first:
                log.error("%d messages handed over to XMPP could not be removed (%s); kept in memory, "
                          "not handed over again", len(first), exc)  # fmt: skip
            return
        for item in items:
            self._forget(item.id)

    async def _stanzas_by_conversation(
        self, network: str, component: GatewayComponent | None, items: list[OutboxItem]
    ) -> list[tuple[OutboxItem, Any]]:
        """The stanzas of a batch: each conversation in order, the conversations side by side
        (an SMS forward waits for the SMSC; the other conversations need not wait for it).
        Without a component online, only what goes by SMS is done."""
        conversations: dict[tuple[int | None, str], list[OutboxItem]] = {}
        for item in items:
            conversations.setdefault((item.subscriber_id, item.destination), []).append(item)

        async def in_order(conversation: list[OutboxItem]) -> list[tuple[OutboxItem, Any]]:
            return [s for item in conversation for s in await self._xmpp_stanzas(network, component, item)]

        done = await asyncio.gather(*(in_order(c) for c in conversations.values()))
        return [stanza for stanzas in done for stanza in stanzas]

    async def _xmpp_stanzas(
        self, network: str, component: GatewayComponent | None, item: OutboxItem
    ) -> list[tuple[OutboxItem, Any]]:
        """The stanzas for one item (one per online resource); none when it went another way
        (forwarded by SMS, waiting, for a subscriber without XMPP, or no component online)."""
        queue = f"xmpp:{network}"
        try:
            sub = await self.store.subscriber(item.subscriber_id) if item.subscriber_id else None
            away = sub is not None and network == "msn" and not self.convergence.on_xmpp(sub)
            if sub is not None and away and await self._away(queue, item, sub):
                return []
            if sub is None or sub.jid is None:  # SMS-only subscriber (or gone): nothing more to hand over
                await self._remove(queue, item)
                return []
        except Exception:
            log.exception("message %d for XMPP could not be handled; tried again later", item.id)
            self.parking.park(item.id, queue)
            return []
        if component is None:
            return []  # kept until the XMPP server is back
        local = self.transports[network].contact_localpart(item.destination)
        body, nick = str(item.payload["body"]), str(item.payload.get("nick", ""))
        return [
            (item, component.build_message(SendXmppMessage(to, local, body, item.dedup_key, nick)))
            for to in self._destinations(network, sub.jid)
        ]

    async def _away(self, queue: str, item: OutboxItem, sub: Subscriber) -> bool:
        """An MSN message for a subscriber with no XMPP client online. True when it is taken
        care of here (held for a moment, texted, waiting); False when it goes to XMPP."""
        texting_from = self._texting_from(sub)
        if texting_from > self.clock():  # maybe only a client reconnecting: wait a little
            await self._reschedule(queue, item, texting_from)
            return True
        return await self._forward(queue, item, sub)

    async def _forward(self, queue: str, item: OutboxItem, sub: Subscriber) -> bool:
        """By SMS if they want it (the convergence decides, and tells a buddy whose message
        will not reach them). True when that settled it (waiting for a limit, or nowhere else
        to go); False when it goes to XMPP as well (the server keeps it until a client is
        back), as the convergence wants for a texted message."""
        decision, after = await self.convergence.forward(item, sub)
        match decision:
            case "wait":
                await self._reschedule(queue, item, self.clock() + after)
            case "sent":
                await self._remove(queue, item)
            case _ if sub.jid is None:  # an SMS-only subscriber: nowhere else to keep it
                await self._remove(queue, item)
            case _:  # "texted" (kept on XMPP too) or "no"
                return False
        return True

    def _destinations(self, network: str, jid: BareJid) -> list[BareJid | FullJid]:
        """Every online resource (so each client shows the message), else the bare JID
        (the server's offline storage keeps it)."""
        resources = self.resources[network].resources(jid)
        return [FullJid(jid, r) for r in resources] if resources else [jid]

    def status(self) -> dict[str, Any]:
        return {
            "components": {n: c.online.is_set() for n, c in self.components.items()},
            "transports": {n: t.status() for n, t in self.transports.items()},
            "counters": {
                "to_network": self.counters.to_network,
                "to_xmpp": self.counters.to_xmpp,
                "failed": self.counters.failed,
                "replayed_after_restart": self.counters.replayed,
            },
        }


def xmpp_message_key(
    network: str, subscriber_id: int, sender: str, contact: str, msg_id: str, body: str
) -> str:
    """The outbox key of a message from XMPP: the same for a resend (same sender, contact,
    id and text), another for a new text or contact under a reused id. Nothing in it names
    the subscriber but their row id (what removing them deletes: ``x:<network>:<id>:``)."""
    seen = "\n".join((sender, contact, msg_id, body)).encode("utf-8", "surrogatepass")
    return f"x:{network}:{subscriber_id}:{hashlib.blake2b(seen, digest_size=12).hexdigest()}"


async def _settled(marked: Awaitable[object], item_id: int) -> None:
    """The end of a 'sending' mark. Refused (the database is full, say), the send has
    happened anyway; the state change after it is kept in memory if it is refused too."""
    try:
        await marked
    except Exception as exc:
        log.debug("outbox message %d: the database refused to mark it sending (%s)", item_id, exc)


async def _sleep(wake: asyncio.Event, delay: float) -> None:
    """Wait up to ``delay`` seconds, or less if woken (the caller cleared ``wake`` before
    its round, so nothing queued during the round is missed)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):  # wait_for (3.11) can swallow a cancellation
            await wake.wait()


def _subscription(list_bits: int, _groups: tuple[str, ...]) -> str:
    """Stored contacts keep their mapped subscription in the transport's event; the diff
    compares whole contacts, so the stored form only needs to be stable."""
    return str(list_bits)


def _expired(item: OutboxItem) -> str:
    return "The message could not be delivered in time and was dropped; send it again."
