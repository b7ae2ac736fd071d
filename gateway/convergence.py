"""Convergence, the I/O side: one buddy list, and the subscriber reachable by SMS.

The rules are pure (``gateway.core.convergence``); this module applies them with the
bridge's store, transports and outboxes. Everything that changes network goes through an
outbox like any other message, so it is accepted once and delivered once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from gateway.core import convergence as rules
from gateway.core.events import LegacyMessageReceived, ServiceSmsReceived
from gateway.core.model import OFFLINE, Presence, Show
from gateway.errors import UserError
from gateway.storage import OutboxItem, Subscriber
from gateway.transport import Delivered, DeliveryOutcome, Failed, Retry

if TYPE_CHECKING:
    from gateway.bridge import Bridge

log = logging.getLogger(__name__)
FL, AL = 1, 2
GSM7_PART_CHARS = 153
Decision = Literal["texted", "sent", "wait", "no"]
"""What :meth:`Convergence.forward` did: "texted" (by SMS, and to be handed to XMPP too, so
the subscriber's clients show it later); "wait" (over the SMS limit, or the SMSC asked to
retry); "no" (not texted: to XMPP only). "sent" (texted, and settled) is not used any more:
what the phone received also reaches the subscriber's XMPP account."""
TEXTED_KEPT = 10000
TELL_AGAIN_S = 3600.0  # an automatic answer to a buddy is repeated at most this often
LOST_TOLD_PER_MIN = 5  # answers about lost messages per buddy per minute (against answer loops)


class Convergence:
    def __init__(self, bridge: Bridge, clock: Callable[[], float] = time.time) -> None:
        self.b = bridge
        self.cfg = bridge.config.convergence
        self.clock = clock
        self.online: dict[tuple[int, str], bool] = {}  # MSN presence of each buddy
        self.recent: dict[tuple[int, str], list[float]] = {}  # forwards per buddy (loop breaker)
        self.told: dict[tuple[int, str, str], float] = {}  # (subscriber, buddy, kind): when told
        self.lost_told: dict[tuple[int, str], list[float]] = {}  # (subscriber, buddy): answers, last minute
        self.texted: dict[int, None] = {}  # outbox ids texted, their XMPP handover still owed
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
        """Decide (and do) the SMS forward of an MSN message for a subscriber away from XMPP.

        Both "texted" and "no" hand the message to XMPP (the bare JID, as nobody is online:
        the server's offline storage keeps it). A buddy whose message will not reach the
        phone is told so, once per conversation. Idempotent: a texted message whose XMPP
        handover is tried again is not texted again.
        """
        if item.payload.get("origin") == "sms" or not await self.eligible(sub.id):
            return "no", 0.0
        if item.id in self.texted:
            return "texted", 0.0
        buddy = await self._buddy(sub.id, item.destination)
        if buddy is None:
            return "no", 0.0  # strangers wait for XMPP, and get no automatic answer
        now = self.clock()
        why = self._held(sub, buddy.handle, now)
        if why is not None:
            if why == rules.STOPPED_WHY or sub.jid is None:  # a held loop waits for XMPP quietly
                await self._tell_not_forwarded(sub, buddy.handle, why, item.dedup_key)
            return "no", 0.0
        return await self._text(item, sub, buddy, now)

    async def _buddy(self, subscriber_id: int, handle: str) -> rules.Buddy | None:
        """The sender as a buddy of the subscriber (on their forward or allow list), else None."""
        c = await self.b.store.contact(subscriber_id, "msn", handle)
        if c is not None and c.list_bits & (FL | AL):
            return rules.Buddy(handle, c.name, phone=c.phone)
        return None

    def _held(self, sub: Subscriber, handle: str, now: float) -> str | None:
        """Why a buddy's message is not texted now (STOP, or an auto-responder loop), or None."""
        if not self.forwarding(sub):
            return rules.STOPPED_WHY
        recent = [t for t in self.recent.get((sub.id, handle), []) if now - t < 60.0]
        self.recent[(sub.id, handle)] = recent
        if not self.breaker.allows(recent, now):
            log.warning("forwards from %s look like an auto-responder loop; held for XMPP", handle)
            return rules.LOOP_WHY
        return None

    async def _text(
        self, item: OutboxItem, sub: Subscriber, buddy: rules.Buddy, now: float
    ) -> tuple[Decision, float]:
        # the phone may answer as soon as the SMS is out: it answers this buddy from then on
        previous = await self.b.store.last_correspondent(sub.id)
        await self.b.store.set_last_correspondent(sub.id, buddy.handle, now)
        outcome = await self._send_forward(item, sub, buddy)
        if previous is not None and not isinstance(outcome, Delivered):
            await self.b.store.set_last_correspondent(sub.id, *previous)
        match outcome:
            case Delivered():
                self._texted(item.id)
                self.recent[(sub.id, buddy.handle)].append(now)
                self._told_again(sub.id, buddy.handle, keep_refused=True)  # its receipt may still fail
                return "texted", 0.0
            case Retry(after_s=after):
                return "wait", after
            case Failed(error_key="quota"):
                await self._tell(sub, buddy.handle, "waiting", rules.waiting_text(), item.dedup_key)
                return "wait", 3600 - now % 3600 + 1
            case Failed(error_key=key, params=params):
                why = UserError(key, **params).text
                log.info("forward from %s refused by the SMS side: %s", buddy.handle, why)
                await self._tell_not_forwarded(sub, buddy.handle, why, item.dedup_key, kind="refused")
                return "no", 0.0

    def _texted(self, item_id: int) -> None:
        self.texted[item_id] = None
        while len(self.texted) > TEXTED_KEPT:
            del self.texted[next(iter(self.texted))]

    async def _send_forward(self, item: OutboxItem, sub: Subscriber, buddy: rules.Buddy) -> DeliveryOutcome:
        sms_cfg = self.b.config.sms
        limit = GSM7_PART_CHARS * (sms_cfg.max_parts if sms_cfg else 1)
        text = rules.forward_text(buddy, str(item.payload.get("body", "")), limit)
        number = await self.msisdn(sub.id)
        assert number is not None
        payload = {
            "body": text,
            "from_service": True,
            "reply_network": "msn",
            "reply_contact": buddy.handle,
            "id": item.dedup_key,  # names the forward in its delivery receipt
        }
        forward = _synthetic(item, f"fwd:{item.dedup_key}", number, payload)
        return await self.b.transports["sms"].deliver(forward)

    def _told_again(self, subscriber_id: int, handle: str, *, keep_refused: bool = False) -> None:
        """A forward got through: the next problem in this conversation is news again."""
        self.told = {
            k: v
            for k, v in self.told.items()
            if k[:2] != (subscriber_id, handle) or (keep_refused and k[2] == "refused")
        }

    def forward_delivered(self, subscriber_id: int, handle: str) -> None:
        """The SMS network's final word on a forward of ``handle``'s message: delivered to
        the phone (so a later refusal is told again)."""
        self._told_again(subscriber_id, handle)

    async def forward_undelivered(self, subscriber_id: int, handle: str, key: str) -> None:
        """The SMS network's final word on a forward of ``handle``'s message (a delivery
        receipt): not delivered. The buddy is told (once per conversation when the message
        was also handed to XMPP, else for each message). Called by the bridge on a failed
        ``DeliveryReported`` without an XMPP sender whose ``reply_network`` is "msn"."""
        sub = await self.b.store.subscriber(subscriber_id)
        if sub is not None:
            await self._tell_not_forwarded(sub, handle, rules.UNDELIVERED_WHY, key, kind="refused")

    async def _tell_not_forwarded(
        self, sub: Subscriber, handle: str, why: str, key: str, kind: str = ""
    ) -> None:
        kept = sub.jid is not None
        text = rules.not_forwarded_text(why, kept=kept)
        if kept:  # it waits for XMPP: once per conversation is enough
            await self._tell(sub, handle, kind or why, text, key)
        else:
            await self._tell_lost(sub, handle, text, key)

    async def _tell_lost(self, sub: Subscriber, handle: str, text: str, key: str) -> None:
        """An SMS-only subscriber never gets this message: its sender is told, for each one.
        At most LOST_TOLD_PER_MIN answers per buddy per minute, so that an auto-responder
        answering the answers cannot keep a loop going."""
        now = self.clock()
        recent = [t for t in self.lost_told.get((sub.id, handle), []) if now - t < 60.0]
        if len(recent) >= LOST_TOLD_PER_MIN:
            self.lost_told[(sub.id, handle)] = recent
            log.warning("more than %d lost messages from %s in a minute: not answered", len(recent), handle)
            return
        self.lost_told[(sub.id, handle)] = [*recent, now]
        await self.send_msn(sub.id, handle, text, f"lost:{key}")

    async def _tell(self, sub: Subscriber, handle: str, kind: str, text: str, key: str) -> None:
        """An automatic MSN answer to ``handle``, once per conversation and kind: never
        twice within ``TELL_AGAIN_S`` unless a forward got through in between, so an
        auto-responder on the other side cannot turn it into a loop."""
        told, now = (sub.id, handle, kind), self.clock()
        if now - self.told.get(told, -TELL_AGAIN_S) < TELL_AGAIN_S:
            return
        self.told[told] = now
        await self.send_msn(sub.id, handle, text, f"{kind}:{key}")

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
                    self.carbon(sub, target, text, key)
            case rules.To(name=name, text=text):
                buddy, candidates = rules.match_buddy(name, buddies)
                if buddy is None:
                    await self.send_sms(sub.id, rules.candidates_text(name, candidates), key)
                else:
                    await self.send_msn(sub.id, buddy.handle, text, key)
                    self.carbon(sub, buddy.handle, text, key)
                    await self.b.store.set_last_correspondent(sub.id, buddy.handle, now)
            case rules.Who():
                await self.send_sms(sub.id, rules.who_text(buddies), key)
            case rules.SetStatus(show=show, text=text):
                await self.b.transports["msn"].set_presence(sub.id, Presence(show, text))
                await self.send_sms(sub.id, rules.status_set_text(show, text), key)
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

    def carbon(self, sub: Subscriber, handle: str, text: str, key: str) -> None:
        """What the subscriber sent by SMS also shows in their XMPP clients: a XEP-0280 sent
        carbon to their own account, where the server granted the message privilege."""
        component = self.b.components.get("msn")
        if sub.jid is None or component is None:
            return
        local = self.b.transports["msn"].contact_localpart(handle)
        if not component.send_carbon(sub.jid, local, text, f"sms-{key}"[-64:]):
            log.debug(
                "no carbon of an SMS to %s: no message privilege on %s (or not connected)",
                handle,
                sub.jid.domain,
            )

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
        contact = await self.b.store.contact(subscriber_id, "msn", handle)
        phone = contact.phone if contact else ""
        if phone and await self.msisdn(subscriber_id) is None:
            phone = ""  # no number to send from
        sub = await self.b.store.subscriber(subscriber_id)
        prefer = sub.settings.get("prefer", self.cfg.prefer) if sub else self.cfg.prefer
        chosen = rules.route_to_contact(self.online.get((subscriber_id, handle), False), phone, prefer)
        return ("sms", phone) if chosen == "sms" else ("msn", handle)

    async def linked_offline(self, subscriber_id: int, handles: Iterable[str]) -> list[tuple[str, Presence]]:
        """Among ``handles`` (buddies just added or changed), those linked to a phone and
        offline on MSN, with the presence they show: away, reachable by SMS. Nothing else
        would tell the subscriber's clients (an offline buddy sends no presence)."""
        if not self.enabled:
            return []
        phones = {c.legacy_id: c.phone for c in await self.b.store.contacts(subscriber_id, "msn") if c.phone}
        return [
            (h, rules.merged_presence(OFFLINE, phones[h]))
            for h in handles
            if h in phones and not self.online.get((subscriber_id, h), False)
        ]

    async def presence(self, subscriber_id: int, handle: str, presence: Presence) -> Presence:
        self.online[(subscriber_id, handle)] = presence.online
        if not self.enabled or presence.online:
            return presence
        contact = await self.b.store.contact(subscriber_id, "msn", handle)
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
