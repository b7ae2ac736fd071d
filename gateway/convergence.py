"""Convergence, the I/O side: one buddy list, and the subscriber reachable by SMS.

The rules are pure (``gateway.core.convergence``); this module applies them with the
bridge's store, transports and outboxes. Everything that changes network goes through an
outbox like any other message, so it is accepted once and delivered once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from gateway.core import convergence as rules
from gateway.core.events import LegacyMessageReceived, ServiceSmsReceived
from gateway.core.model import Presence, Show
from gateway.storage import OutboxItem, Subscriber
from gateway.transport import Delivered, Failed, Retry

if TYPE_CHECKING:
    from gateway.bridge import Bridge

log = logging.getLogger(__name__)
FL, AL = 1, 2
GSM7_PART_CHARS = 153
Decision = Literal["sent", "wait", "no"]


class Convergence:
    def __init__(self, bridge: Bridge, clock: Callable[[], float] = time.time) -> None:
        self.b = bridge
        self.cfg = bridge.config.convergence
        self.clock = clock
        self.online: dict[tuple[int, str], bool] = {}  # MSN presence of each buddy
        self.recent: dict[tuple[int, str], list[float]] = {}  # forwards per buddy (loop breaker)
        self.told_waiting: set[tuple[int, str]] = set()
        self.breaker = rules.Breaker(limit=self.cfg.max_forwards_per_minute, window=60.0)

    @property
    def enabled(self) -> bool:
        return "sms" in self.b.transports and "msn" in self.b.transports

    # -- who is where --------------------------------------------------------------------

    async def msisdn(self, subscriber_id: int) -> str | None:
        account = await self.b.store.account(subscriber_id, "sms")
        return account.legacy_id if account else None

    async def eligible(self, subscriber_id: int) -> bool:
        """Has a number and an MSN account: can be reached by SMS while away."""
        if not self.enabled:
            return False
        return (
            await self.msisdn(subscriber_id) is not None
            and await self.b.store.account(subscriber_id, "msn") is not None
        )

    def setting(self, sub: Subscriber, key: str, default: Any) -> Any:
        return sub.settings.get(key, default)

    def forwarding(self, sub: Subscriber) -> bool:
        return bool(self.setting(sub, "forwarding", True))

    def on_xmpp(self, sub: Subscriber) -> bool:
        """A connected resource counts as online whatever its show."""
        return sub.jid is not None and any(book.is_online(sub.jid) for book in self.b.resources.values())

    def mobile_presence(self, sub: Subscriber) -> Presence:
        if not self.forwarding(sub):
            return Presence(Show.AWAY, "")
        return Presence(
            Show.AVAILABLE, str(self.setting(sub, "mobile_status_text", self.cfg.mobile_status_text))
        )

    async def keeps_connected(self, sub: Subscriber) -> bool:
        always = bool(self.setting(sub, "always_connected", self.cfg.always_connected))
        return always and await self.eligible(sub.id)

    async def start_always_connected(self) -> None:
        """At start: log in the MSN sessions of subscribers who are away from XMPP."""
        if not self.enabled:
            return
        for account in await self.b.store.accounts("msn"):
            sub = await self.b.store.subscriber(account.subscriber_id)
            if sub is None or self.on_xmpp(sub) or not await self.keeps_connected(sub):
                continue
            secret = await self.b.store.account_secret(sub.id, "msn")
            await self.b.transports["msn"].start_session(sub, account, secret)
            await self.b.transports["msn"].set_presence(sub.id, self.mobile_presence(sub))

    async def went_away(self, sub: Subscriber) -> bool:
        """The last XMPP resource left: stay logged in on mobile if the subscriber wants it."""
        if not await self.keeps_connected(sub):
            return False
        await self.b.transports["msn"].set_presence(sub.id, self.mobile_presence(sub))
        return True

    # -- MSN -> the subscriber's phone -------------------------------------------------------

    async def forward(self, item: OutboxItem, sub: Subscriber) -> tuple[Decision, float]:
        """Decide (and do) the SMS forward of an MSN message for a subscriber away from XMPP."""
        if item.payload.get("origin") == "sms" or not self.forwarding(sub) or not await self.eligible(sub.id):
            return "no", 0.0
        handle = item.destination
        contact = next((c for c in await self.b.store.contacts(sub.id, "msn") if c.legacy_id == handle), None)
        if contact is None or not contact.list_bits & (FL | AL):
            return "no", 0.0  # strangers wait for XMPP
        now = self.clock()
        recent = [t for t in self.recent.get((sub.id, handle), []) if now - t < 60.0]
        if not self.breaker.allows(recent, now):
            log.warning("forwards from %s look like an auto-responder loop; held for XMPP", handle)
            return "no", 0.0
        buddy = rules.Buddy(handle, contact.name, phone=contact.phone)
        sms_cfg = self.b.config.sms
        limit = GSM7_PART_CHARS * (sms_cfg.max_parts if sms_cfg else 1)
        text = rules.forward_text(buddy, str(item.payload.get("body", "")), limit)
        number = await self.msisdn(sub.id)
        assert number is not None
        outcome = await self.b.transports["sms"].deliver(
            _synthetic(item, f"fwd:{item.dedup_key}", number, {"body": text, "from_service": True})
        )
        match outcome:
            case Delivered():
                self.recent[(sub.id, handle)] = [*recent, now]
                await self.b.store.set_last_correspondent(sub.id, handle, now)
                return "sent", 0.0
            case Retry(after_s=after):
                return "wait", after
            case Failed(error_key="quota"):
                await self._tell_waiting(sub, handle, item)
                return "wait", 3600 - now % 3600 + 1
            case Failed():
                return "no", 0.0

    async def _tell_waiting(self, sub: Subscriber, handle: str, item: OutboxItem) -> None:
        """Once per conversation: the MSN sender learns the message will wait."""
        if (sub.id, handle) in self.told_waiting:
            return
        self.told_waiting.add((sub.id, handle))
        await self.send_msn(
            sub.id,
            handle,
            "(automatic reply) I am away; I will get your message later.",
            f"wait:{item.dedup_key}",
        )

    # -- the phone -> MSN (commands and replies to the service number) -------------------------

    async def service_sms(self, event: ServiceSmsReceived) -> None:
        sub = await self.b.store.subscriber(event.subscriber_id)
        if sub is None:
            return
        key = event.dedup_key
        if not await self.eligible(sub.id):
            await self.send_sms(sub.id, "This number is not linked to an MSN account.", key)
            return
        command = rules.parse_command(event.text)
        buddies = await self.buddies(sub.id)
        now = self.clock()
        match command:
            case rules.Reply(text=text):
                last = await self.b.store.last_correspondent(sub.id)
                last_from, last_at = last if last else (None, None)
                target = rules.reply_target(last_from, last_at, now, float(self.cfg.reply_window_s))
                if target is None:
                    await self.send_sms(sub.id, rules.outside_window_text(), key)
                else:
                    await self.send_msn(sub.id, target, text, key)
            case rules.To(name=name, text=text):
                buddy, candidates = rules.match_buddy(name, buddies)
                if buddy is None:
                    await self.send_sms(sub.id, rules.candidates_text(name, candidates), key)
                else:
                    await self.send_msn(sub.id, buddy.handle, text, key)
                    await self.b.store.set_last_correspondent(sub.id, buddy.handle, now)
            case rules.Who():
                await self.send_sms(sub.id, rules.who_text(buddies), key)
            case rules.SetStatus(show=show, text=text):
                await self.b.transports["msn"].set_presence(sub.id, Presence(show, text))
                await self.send_sms(sub.id, f"MSN status set to {show.value or 'online'}.", key)
            case rules.Help():
                await self.send_sms(sub.id, rules.HELP_TEXT, key)
            case rules.Stop() | rules.Start():
                on = isinstance(command, rules.Start)
                await self.b.store.update_settings(sub.id, {**sub.settings, "forwarding": on})
                sub = await self.b.store.subscriber(sub.id) or sub
                if not self.on_xmpp(sub):
                    await self.b.transports["msn"].set_presence(sub.id, self.mobile_presence(sub))
                answer = (
                    "Forwarding resumed. Text STOP to stop."
                    if on
                    else "Forwarding stopped. Text START to resume."
                )
                await self.send_sms(sub.id, answer, key, force=True)
            case rules.BadCommand(answer=answer):
                await self.send_sms(sub.id, answer, key)

    async def buddies(self, subscriber_id: int) -> list[rules.Buddy]:
        return [
            rules.Buddy(
                c.legacy_id,
                c.name,
                online=self.online.get((subscriber_id, c.legacy_id), False),
                phone=c.phone,
            )
            for c in await self.b.store.contacts(subscriber_id, "msn")
            if c.list_bits & FL
        ]

    async def send_sms(self, subscriber_id: int, text: str, key: str, *, force: bool = False) -> None:
        number = await self.msisdn(subscriber_id)
        if number is None:
            return
        payload = {"body": text, "from_service": True, "force": force}
        await self._enqueue("sms", subscriber_id, f"reply:{key}", number, payload)

    async def send_msn(self, subscriber_id: int, handle: str, text: str, key: str) -> None:
        local = self.b.transports["msn"].contact_localpart(handle)
        payload = {"body": text, "from": "", "id": "", "contact": local, "origin": "sms", "receipt": False}
        await self._enqueue("msn", subscriber_id, f"tomsn:{key}", handle, payload)

    async def _enqueue(
        self, network: str, subscriber_id: int, key: str, destination: str, payload: dict[str, Any]
    ) -> None:
        now = self.clock()
        ttl = self.b.transports[network].message_ttl_s
        await self.b.store.enqueue(
            network=network,
            subscriber_id=subscriber_id,
            dedup_key=key,
            destination=destination,
            payload=payload,
            now=now,
            expires=now + ttl,
        )
        self.b.wake(network)

    # -- one buddy list --------------------------------------------------------------------------

    async def linked_sms(self, event: LegacyMessageReceived) -> bool:
        """An SMS from a linked buddy's number arrives from their MSN JID."""
        if not self.enabled or event.network != "sms":
            return False
        contact = await self.b.store.contact_by_phone(event.subscriber_id, "msn", event.legacy_id)
        if contact is None:
            return False
        now = self.clock()
        await self.b.store.enqueue(
            network="xmpp:msn",
            subscriber_id=event.subscriber_id,
            dedup_key=f"in:sms:{event.dedup_key}",
            destination=contact.legacy_id,
            payload={"body": event.body, "origin": "sms"},
            now=now,
            expires=now + 7 * 86400,
        )
        self.b.wake_xmpp("msn")
        return True

    async def route(self, subscriber_id: int, handle: str) -> tuple[str, str]:
        """(network, destination) for a message from XMPP to an MSN buddy."""
        if not self.enabled:
            return "msn", handle
        contact = next(
            (c for c in await self.b.store.contacts(subscriber_id, "msn") if c.legacy_id == handle), None
        )
        phone = contact.phone if contact else ""
        if phone and await self.msisdn(subscriber_id) is None:
            phone = ""  # no number to send from
        sub = await self.b.store.subscriber(subscriber_id)
        prefer = sub.settings.get("prefer", self.cfg.prefer) if sub else self.cfg.prefer
        chosen = rules.route_to_contact(self.online.get((subscriber_id, handle), False), phone, prefer)
        return ("sms", phone) if chosen == "sms" else ("msn", handle)

    async def presence(self, subscriber_id: int, handle: str, presence: Presence) -> Presence:
        self.online[(subscriber_id, handle)] = presence.online
        if not self.enabled or presence.online:
            return presence
        contact = next(
            (c for c in await self.b.store.contacts(subscriber_id, "msn") if c.legacy_id == handle), None
        )
        return rules.merged_presence(presence, contact.phone if contact else "")


def _synthetic(item: OutboxItem, key: str, destination: str, payload: dict[str, Any]) -> OutboxItem:
    return OutboxItem(
        item.id,
        "sms",
        item.subscriber_id,
        key,
        destination,
        payload,
        "sending",
        max(item.attempts, 1),
        item.next_attempt,
        item.created,
        item.expires,
    )
