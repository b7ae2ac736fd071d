"""The SMS network as a gateway transport: the adapter between the bridge and the ESME.

From XMPP to SMS: :meth:`SmsTransport.deliver` encodes, checks limits, and submits each
part, recording every accepted part so a retry never resends it. From SMS to XMPP:
:meth:`SmsTransport._on_deliver` answers a deliver_sm only once the message (or its
part) is committed, and with ESME_RINVDSTADR when no subscriber owns the destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.addressing import E164, AddressError, BareJid
from gateway.config import Config, SmsConfig
from gateway.core.actions import SendXmppPresence
from gateway.core.events import (
    ContactListReceived,
    ContactPresenceChanged,
    DeliveryReported,
    LegacyContact,
    LegacyMessageReceived,
    NetworkEvent,
    PresenceKind,
    ServiceSmsReceived,
)
from gateway.core.model import Presence, Show
from gateway.core.records import Account, Contact, OutboxItem, Subscriber
from gateway.errors import StorageError, UserError
from gateway.transport import (
    Delivered,
    DeliveryOutcome,
    EventSink,
    Failed,
    FormField,
    Linked,
    NeedMore,
    RegistrationOutcome,
    Retry,
)
from transports.sms import numbers
from transports.sms.encoding import MessageTooLong, encode_within
from transports.sms.esme import CURRENT_ARRIVAL, Esme
from transports.sms.esme_types import BindFailed, Bound, EsmeConfig, LinkEvent, Unbound
from transports.sms.pdu import DeliverSm, SubmitSm
from transports.sms.reassembly import Message, Part, Reassembler, assemble, part_from_deliver
from transports.sms.receipts import (
    Receipt,
    ReceiptState,
    is_receipt,
    message_id_candidates,
    normalise_message_id,
    parse_receipt,
)
from transports.sms.redelivery import Arrival, may_be_redelivery
from transports.sms.status import Status
from transports.sms.storage import Counted, Quota, SentPart, SmsStore, StoredPart

log = logging.getLogger(__name__)

CODE_TTL_S = 300.0
CODE_ATTEMPTS = 5
CODE_RESEND_S = 60.0
REASSEMBLY_TIMEOUT_S = 120.0
MO_DUPLICATE_WINDOW_S = 300.0
PRUNE_EVERY_S = 3600.0  # how often counts, sightings and receipt-less parts are forgotten
EARLY_RECEIPTS_KEPT = 10000
RETRYING_KEPT = 10000  # MO messages whose hand-over failed, remembered for their redelivery
SIGHTINGS_KEPT = 10000  # MO messages taken, with how their answer went (beyond: the database's)
REACHABLE = Presence(Show.AVAILABLE, "reachable by SMS")
UNLIMITED = Quota(10**9, 10**9, 10**12)


@dataclass(slots=True)
class Sighting:
    """An MO message taken: when (wall clock), how its deliver_sm came and was answered (None
    without an ESME), and whether its row in ``seen`` is still there."""

    at: float
    arrival: Arrival | None
    stored: bool = False


def relative_validity(seconds: int) -> str:
    """SMPP 3.4 §7.1.1 relative time ``YYMMDDhhmmss000R``."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


class SmsTransport:
    network = "sms"
    features = frozenset({"urn:xmpp:receipts"})
    registration_fields = (
        FormField("phone", "Your mobile number", desc="International (+33…) or national form"),
        FormField("code", "Code received by SMS", required=False, desc="Leave empty to receive a code"),
    )
    registration_instructions = (
        "Enter your mobile number: a code will be sent to it by SMS. Then submit the form again "
        "with the number and the code."
    )
    gateway_prompt = "Phone number"

    def __init__(self, config: SmsConfig, store: SmsStore, clock: Callable[[], float] = time.time) -> None:
        self.cfg = config
        self.store = store
        self.clock = clock
        self.message_ttl_s = float(config.validity_s)
        self.numbering = numbers.Numbering(config.default_region, config.jid)
        self.esme = Esme(esme_config(config), self._on_deliver, on_link=self._on_link)
        self.quota = Quota(
            config.limits.per_user_per_hour, config.limits.per_user_per_day, config.limits.global_per_day
        )
        self.sink: EventSink | None = None
        self.reassembler = Reassembler(REASSEMBLY_TIMEOUT_S)
        self.unreachable: dict[tuple[int, str], str] = {}
        self.link = "connecting"
        self.counters: dict[str, int] = {
            "mo_delivered": 0,
            "mo_unknown_destination": 0,
            "mo_duplicates": 0,
            "receipts": 0,
            "submitted_parts": 0,
            "maybe_duplicated_parts": 0,
            "throttled": 0,
        }
        self._timer: asyncio.Task[None] | None = None
        self._next_prune = 0.0  # the first housekeeping comes a second after the start
        self._early: dict[str, Receipt] = {}
        self._stopping = False
        self._retrying: dict[str, float] = {}  # MO de-dup key -> first arrival, hand-over failed
        self._last_take = 0.0  # when the last MO message was taken (its event key's stamp)
        self._sightings: dict[str, Sighting] = {}  # MO de-dup key -> the latest copy taken, oldest first
        # parts the SMSC accepted not yet recorded, or with an early receipt not yet applied
        self._unrecorded: dict[tuple[str, int], tuple[SentPart, float]] = {}

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self.sink = sink
        stored = await self.store.mo_parts()
        self.reassembler = Reassembler(REASSEMBLY_TIMEOUT_S, [Part(*_part_fields(p)) for p in stored])
        self.esme.start()
        self._timer = asyncio.ensure_future(self._expire_loop())

    async def stop(self) -> None:
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self.esme.close()
        try:  # the unbind confirmed the last answers: their sightings can go
            await self._forget_confirmed(self.clock())
        except Exception as exc:
            log.info("sightings of confirmed MO not forgotten (%s): a repeat may be dropped", exc)

    def _on_link(self, event: LinkEvent) -> None:
        match event:
            case Bound(smsc_system_id=name):
                self.link = "bound"
                log.info("bound to the SMSC %s as transceiver", name or "(unnamed)")
            case Unbound(reason=reason):
                self.link = "unbound"
                log.log(logging.INFO if self._stopping else logging.WARNING, "SMSC link down: %s", reason)
            case BindFailed(reason=reason):
                self.link = "bind failed"  # the ESME logs it once, with the next retry
                log.debug("SMSC bind failed: %s", reason)

    def status(self) -> dict[str, Any]:
        return {
            "smsc": self.link,
            "in_flight": self.esme.in_flight,
            "window": self.cfg.smsc.window,
            **self.counters,
        }

    # -- addressing ---------------------------------------------------------------------

    def parse_contact(self, localpart: str) -> str:
        return self.numbering.parse_contact(localpart)

    def contact_localpart(self, legacy_id: str) -> str:
        return self.numbering.localpart(legacy_id)

    def translate_prompt(self, text: str) -> str:
        return self.numbering.translate(text)

    # -- registration: link a number by a one-time code ----------------------------------

    async def register(
        self, user: BareJid, current: Account | None, form: Mapping[str, str]
    ) -> RegistrationOutcome:
        raw = form.get("phone", "").strip()
        if not raw:
            raise UserError("bad-form", reason="The field 'Your mobile number' is required.")
        try:
            number = str(E164.parse(raw, self.cfg.default_region))
        except AddressError as exc:
            raise UserError("bad-form", reason=f"{exc}.") from None
        owner = await self.store.subscriber_by_account("sms", number)
        if owner is not None and owner.jid != user:
            raise UserError("conflict", reason=f"{number} is already linked to another account.")
        if current is not None and current.legacy_id == number:
            return Linked(number)
        code = form.get("code", "").strip()
        now = self.clock()
        if not code:
            return await self._send_code(user, number, now)
        result = await self.store.check_code(str(user), number, code, now, CODE_ATTEMPTS)
        match result:
            case "ok":
                return Linked(number)
            case "wrong":
                pending = await self.store.pending_code(str(user))
                left = CODE_ATTEMPTS - (pending.attempts if pending else CODE_ATTEMPTS)
                raise UserError("bad-form", reason=f"Wrong code; {max(left, 0)} attempts left.")
            case "expired":
                raise UserError(
                    "bad-form", reason="The code expired; submit your number alone to get a new one."
                )
            case "exhausted":
                raise UserError(
                    "bad-form", reason="Too many wrong codes; submit your number alone to get a new one."
                )
            case _:
                raise UserError(
                    "bad-form", reason=f"No code was sent to {number}; submit your number alone first."
                )

    async def _send_code(self, user: BareJid, number: str, now: float) -> NeedMore:
        pending = await self.store.pending_code(str(user))
        if (
            pending is not None
            and pending.msisdn == number
            and pending.expires - CODE_TTL_S + CODE_RESEND_S > now
        ):
            return NeedMore(f"A code was already sent to {number}; submit the form again with it.")
        code = f"{secrets.randbelow(10**6):06d}"
        text = f"Your Passerelle code is {code}. It expires in 5 minutes."
        encoded = encode_within(text, 1)
        outcome = await self.esme.submit(
            SubmitSm(
                source_addr_ton=0 if self.cfg.service_number.isdigit() else numbers.TON_ALPHANUMERIC,
                source_addr_npi=0 if not self.cfg.service_number.isdigit() else 1,
                source_addr=self.cfg.service_number,
                dest_addr_ton=numbers.TON_INTERNATIONAL,
                dest_addr_npi=numbers.NPI_E164,
                destination_addr=numbers.msisdn_digits(number),
                data_coding=encoded.data_coding,
                short_message=encoded.segments[0],
                validity_period=relative_validity(int(CODE_TTL_S)),
            )
        )
        if not outcome.ok:
            log.warning("verification SMS not accepted by the SMSC: %s", outcome.reason)
            raise UserError(
                "network-down", reason="The code could not be sent by SMS right now; try again later."
            )
        await self.store.put_code(str(user), number, code, now + CODE_TTL_S)
        log.info("verification code sent for %s", user)
        return NeedMore(
            f"A code was sent by SMS to {number}. Submit the form again with your number and the code."
        )

    async def unregister(self, subscriber: Subscriber, account: Account) -> None:
        self.unreachable = {k: v for k, v in self.unreachable.items() if k[0] != subscriber.id}

    # -- phone contacts: synthesised presence ---------------------------------------------

    async def start_session(self, subscriber: Subscriber, account: Account, secret: str | None) -> None:
        assert self.sink is not None
        contacts = await self.store.contacts(subscriber.id, self.network)
        listed = tuple(LegacyContact(c.legacy_id, c.name, "both", c.groups, 1) for c in contacts)
        await self.sink(ContactListReceived(self.network, subscriber.id, listed))
        for contact in contacts:
            await self.sink(
                ContactPresenceChanged(
                    self.network,
                    subscriber.id,
                    contact.legacy_id,
                    self._presence(subscriber.id, contact.legacy_id),
                )
            )

    def _presence(self, subscriber_id: int, legacy_id: str) -> Presence:
        reason = self.unreachable.get((subscriber_id, legacy_id))
        return Presence(Show.UNAVAILABLE, reason) if reason else REACHABLE

    async def stop_session(self, subscriber_id: int) -> None:
        return None

    async def set_presence(self, subscriber_id: int, presence: Presence) -> None:
        return None  # SMS has no presence of its own

    async def send_chat_state(self, subscriber_id: int, legacy_id: str, state: str) -> None:
        return None  # SMS has no typing notifications

    async def contact_subscription(
        self, subscriber: Subscriber, legacy_id: str, kind: PresenceKind
    ) -> list[SendXmppPresence]:
        assert subscriber.jid is not None
        local = self.contact_localpart(legacy_id)
        jid = subscriber.jid
        match kind:
            case "subscribe":
                await self.store.upsert_contacts(
                    [Contact(subscriber.id, self.network, legacy_id, legacy_id, (), 1)]
                )
                return [
                    SendXmppPresence(jid, local, "subscribed"),
                    self._presence_action(jid, local, self._presence(subscriber.id, legacy_id)),
                ]
            case "probe" | "subscribed":
                return [self._presence_action(jid, local, self._presence(subscriber.id, legacy_id))]
            case "unsubscribe" | "unsubscribed":
                await self.store.remove_contacts(subscriber.id, self.network, [legacy_id])
                return [SendXmppPresence(jid, local, "unsubscribed")]
            case _:
                return []

    @staticmethod
    def _presence_action(jid: BareJid, local: str, presence: Presence) -> SendXmppPresence:
        return SendXmppPresence(jid, local, "available" if presence.online else "unavailable", presence)

    # -- XMPP -> SMS ----------------------------------------------------------------------

    async def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        if item.subscriber_id is None:
            return Failed("not-registered")
        account = await self.store.account(item.subscriber_id, self.network)
        if account is None:
            return Failed("not-registered")
        body = str(item.payload.get("body", ""))
        from_service = bool(item.payload.get("from_service"))  # forwards and command replies
        try:
            encoded = encode_within(body, self.cfg.max_parts, transliterate_typography=self.cfg.transliterate)
        except MessageTooLong:
            return Failed("too-long", {"limit": self.cfg.max_parts})
        now = self.clock()
        quota = UNLIMITED if item.payload.get("force") else self.quota  # STOP/START confirmations
        sms = self.store
        counted = await sms.count_send(item.dedup_key, item.subscriber_id, encoded.parts, now, quota)
        if not counted:
            return Failed(
                "quota", {"reason": await self._quota_reason(item.subscriber_id, encoded.parts, now)}
            )
        done = await sms.sent_seqs(item.dedup_key) if counted is Counted.BEFORE else set()
        done |= {seq for key, seq in self._unrecorded if key == item.dedup_key}
        ref = item.id % 256
        if from_service:
            source, source_ton, source_npi = self._service_address()
        else:
            source = numbers.msisdn_digits(account.legacy_id)
            source_ton, source_npi = numbers.TON_INTERNATIONAL, numbers.NPI_E164
        meta = {
            k: item.payload.get(k, "") for k in ("from", "id", "receipt", "reply_network", "reply_contact")
        }
        for seq, short_message in enumerate(encoded.short_messages(ref), start=1):
            if seq in done:
                continue
            outcome = await self.esme.submit(
                SubmitSm(
                    source_addr_ton=source_ton,
                    source_addr_npi=source_npi,
                    source_addr=source,
                    dest_addr_ton=numbers.TON_INTERNATIONAL,
                    dest_addr_npi=numbers.NPI_E164,
                    destination_addr=numbers.msisdn_digits(item.destination),
                    esm_class=0x40 if encoded.parts > 1 else 0,
                    registered_delivery=1,
                    data_coding=encoded.data_coding,
                    short_message=short_message,
                    validity_period=relative_validity(self.cfg.validity_s),
                )
            )
            if outcome.ok:
                self.counters["submitted_parts"] += 1
                sent = SentPart(
                    item.dedup_key,
                    seq,
                    normalise_message_id(outcome.message_id or ""),
                    "sent",
                    encoded.parts,
                    item.subscriber_id,
                    {**meta, "contact": item.destination},
                )
                await self._record_sent(sent, now)
                continue
            if outcome.maybe_sent:
                self.counters["maybe_duplicated_parts"] += 1
            if outcome.retryable:
                if outcome.status in (Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL):
                    self.counters["throttled"] += 1
                return Retry(min(30.0, 0.5 * 2 ** min(item.attempts, 6)), outcome.reason)
            return Failed(
                "recipient-unavailable", {"reason": f"The SMS centre refused the message ({outcome.reason})."}
            )
        return Delivered()

    async def _record_sent(self, sent: SentPart, now: float) -> None:
        """Record a part the SMSC accepted (receipts are matched to it), and apply its
        receipt if it came first. If the store refuses, or the receipt cannot be reported,
        the part is kept in memory (never submitted again) and all of it is done later."""
        try:
            await self.store.record_sent([sent], now)
        except StorageError as exc:
            log.error("an accepted SMS part could not be recorded (%s); kept in memory", exc)
            self._unrecorded[(sent.item_key, sent.seq)] = (sent, now)
            return
        early = self._early.pop(sent.smsc_id, None)
        if early is not None and not await self._early_receipt(sent, early):
            self._early[sent.smsc_id] = early  # applied when the part is recorded again
            self._unrecorded[(sent.item_key, sent.seq)] = (sent, now)

    async def _early_receipt(self, sent: SentPart, receipt: Receipt) -> bool:
        """A receipt that came before its part was recorded (the SMSC has its answer already:
        it will not send it again). False when it could not be applied now."""
        try:
            await self._apply_receipt(sent, receipt)
        except (StorageError, ConnectionError) as exc:
            log.info("early SMS receipt kept to apply later (%s)", exc)
            return False
        return True

    async def _record_unrecorded(self) -> None:
        """Try again what :meth:`_record_sent` could not do (recording is idempotent)."""
        for key, (sent, now) in list(self._unrecorded.items()):
            del self._unrecorded[key]
            await self._record_sent(sent, now)
            if key in self._unrecorded:
                return  # still refused: next time

    def _service_address(self) -> tuple[str, int, int]:
        number = self.cfg.service_number
        if number.isdigit():
            return number, 0 if len(number) <= 8 else numbers.TON_INTERNATIONAL, 1
        return number, numbers.TON_ALPHANUMERIC, 0

    async def _quota_reason(self, subscriber_id: int, parts: int, now: float) -> str:
        hour, day = await self.store.usage(subscriber_id, now)
        if hour + parts > self.quota.per_hour:
            resets = _clock((now // 3600 + 1) * 3600)
            return f"SMS limit reached ({self.quota.per_hour} per hour); it resets at {resets} UTC."
        if day + parts > self.quota.per_day:
            resets = _clock((now // 86400 + 1) * 86400)
            return f"SMS limit reached ({self.quota.per_day} per day); it resets at {resets} UTC."
        return "The gateway's daily SMS budget is used up; try again after midnight UTC."

    # -- SMS -> XMPP ----------------------------------------------------------------------

    async def _on_deliver(self, pdu: DeliverSm) -> int:
        try:
            return await self._take(pdu)
        except StorageError as exc:
            log.error("deliver_sm not taken, the store refused it (%s); the SMSC will deliver it again", exc)
        except ConnectionError as exc:  # a delivery report XMPP did not confirm
            log.warning("deliver_sm not taken (%s); the SMSC will deliver it again", exc)
        return Status.ESME_RSYSERR

    async def _take(self, pdu: DeliverSm) -> int:
        if is_receipt(pdu.esm_class):
            await self._receipt(pdu)
            return Status.ESME_ROK
        destination = "+" + numbers.msisdn_digits(pdu.destination_addr)
        if numbers.msisdn_digits(pdu.destination_addr) == numbers.msisdn_digits(self.cfg.service_number):
            return await self._to_service_number(pdu)
        owner = await self.store.subscriber_by_account(self.network, destination)
        if owner is None:
            self.counters["mo_unknown_destination"] += 1
            log.warning("MO for %s: no subscriber owns this number; refused", _mask(destination))
            return Status.ESME_RINVDSTADR
        now = self.clock()
        part = part_from_deliver(pdu, now)
        source = numbers.mo_source(pdu.source_addr)
        if part.total == 1:
            message = assemble([part])  # not through the reassembler: its duplicate memory is per reference
        else:
            await self.store.add_mo_part(StoredPart(*_part_fields(part)))
            message = self.reassembler.add(part)
        if message is not None:
            await self._mo_complete(owner.id, source, message, part, now)
        return Status.ESME_ROK

    async def _to_service_number(self, pdu: DeliverSm) -> int:
        """A subscriber texting the gateway from their own phone: commands and replies."""
        assert self.sink is not None
        source = numbers.mo_source(pdu.source_addr)
        owner = await self.store.subscriber_by_account(self.network, source)
        if owner is None:
            self.counters["service_from_unknown"] = self.counters.get("service_from_unknown", 0) + 1
            log.info("SMS to the service number from %s, who is no subscriber: dropped", _mask(source))
            return Status.ESME_ROK  # accepted and dropped: nothing is ever sent back automatically
        now = self.clock()
        part = part_from_deliver(pdu, now)
        message = assemble([part], force=True) if part.total == 1 else None
        if part.total > 1:
            await self.store.add_mo_part(StoredPart(*_part_fields(part)))
            message = self.reassembler.add(part)
        if message is None:
            return Status.ESME_ROK
        digest = hashlib.sha256(f"svc|{source}|{part.reference}|{message.text}".encode()).hexdigest()[:32]
        await self._take_once(
            f"svc:{digest}", now, lambda key: ServiceSmsReceived(owner.id, message.text, key)
        )
        if part.total > 1:
            await self.store.drop_mo_parts(part.source, part.destination, part.reference, part.total)
        return Status.ESME_ROK

    async def _mo_complete(
        self, subscriber_id: int, source: str, message: Message, part: Part, now: float
    ) -> None:
        digest = hashlib.sha256(
            f"{source}|{message.destination}|{part.reference}|{part.total}|{message.text}".encode()
        ).hexdigest()[:32]
        nick = "" if source.startswith("+") else source

        def event(key: str) -> LegacyMessageReceived:
            return LegacyMessageReceived(self.network, subscriber_id, source, message.text, key, nick)

        if await self._take_once(f"mo:{digest}", now, event):
            self.counters["mo_delivered"] += 1
            self.unreachable.pop((subscriber_id, source), None)
        else:
            self.counters["mo_duplicates"] += 1
        if part.total > 1:
            await self.store.drop_mo_parts(part.source, part.destination, part.reference, part.total)

    async def _take_once(self, key: str, now: float, event: Callable[[str], NetworkEvent]) -> bool:
        """Hand an MO message over once; False for a redelivery of one already taken.

        A message with the same content (``key``) as one taken is a redelivery only when
        the SMSC may not have had our answer to that one (:func:`may_be_redelivery`): a
        person sending the same text again is a new message. Its de-dup marker is
        committed *after* the message. (Before, a crash or a refused write between the
        marker and the message made the SMSC's redelivery look like a duplicate: the
        message was lost.) A crash between the message and the marker makes the redelivery
        a second copy instead, a PDU in flight at the crash. While handing a message over
        fails, its redeliveries reuse the event key of the first try, so a hand-over that
        was partly stored is not stored twice; two messages with the same text get two keys
        (the bridge stores one message per key).
        """
        assert self.sink is not None
        arrival = CURRENT_ARRIVAL.get()
        first = self._retrying.get(key)
        if first is None:
            if await self._redelivered(key, now, arrival):
                await self._sighted(key, now, arrival)  # this copy's answer is the one that counts now
                return False
            first = self._last_take = max(now, self._last_take + 1e-6)  # unique per message
        self._retrying[key] = first
        while len(self._retrying) > RETRYING_KEPT:  # the oldest then gets a new key: at worst a copy
            del self._retrying[next(iter(self._retrying))]
        await self.sink(event(f"{key}:{first:.6f}"))
        self._retrying.pop(key, None)
        await self._sighted(key, now, arrival)
        return True

    async def _redelivered(self, key: str, now: float, arrival: Arrival | None) -> bool:
        """Whether the message ``key`` arriving now may be the SMSC sending again one taken
        within MO_DUPLICATE_WINDOW_S. Without the ESME's account of both (a sighting from
        before this process, or a message not from the ESME), any within the window is."""
        seen = self._sightings.get(key)
        if seen is None:
            return not await self._not_seen(key, now)
        if now - seen.at > MO_DUPLICATE_WINDOW_S:
            return False
        if seen.arrival is None or arrival is None:
            return True
        return may_be_redelivery(seen.arrival, arrival)

    async def _sighted(self, key: str, now: float, arrival: Arrival | None) -> None:
        """Remember the message ``key`` taken now (in memory, and in ``seen`` for a restart)."""
        self._sightings.pop(key, None)  # re-inserted last: the dict stays oldest first
        self._sightings[key] = sighting = Sighting(now, arrival)
        while len(self._sightings) > SIGHTINGS_KEPT:  # then the database's sighting decides
            del self._sightings[next(iter(self._sightings))]
        try:
            await self.store.mark_seen(key, now)
            sighting.stored = True
        except StorageError as exc:  # the message is stored: a late redelivery would be a copy
            log.warning("MO de-dup marker not recorded (%s)", exc)

    async def _forget_confirmed(self, now: float) -> None:
        """Forget the sightings whose answer the SMSC confirmed in time (nothing will send
        those again, so a restarted gateway must take the same text as a new message) and
        those past the window."""
        done: dict[str, Sighting] = {}
        for key, sighting in list(self._sightings.items()):
            if now - sighting.at > MO_DUPLICATE_WINDOW_S:
                del self._sightings[key]
            elif sighting.stored and sighting.arrival is not None and sighting.arrival.confirmed_in_time:
                done[key] = sighting
        if done:
            await self.store.forget_seen([(key, sighting.at) for key, sighting in done.items()])
            for sighting in done.values():
                sighting.stored = False

    async def _not_seen(self, key: str, now: float) -> bool:
        """Whether ``key`` was not marked in the last MO_DUPLICATE_WINDOW_S, without marking
        it: ``first_time(key, at, 0)`` records a sighting at ``at`` unless a later one exists,
        and one recorded just outside the window never counts as seen. (A write, not the
        read ``seen_since``: with several deliver_sm in flight the write shares the group
        commit of the others' writes, where a read costs a hop of its own; measured: the
        read was slower from 4 concurrent deliver_sm up.)"""
        return await self.store.first_time(key, now - MO_DUPLICATE_WINDOW_S - 1, 0.0)

    async def _expire_loop(self) -> None:
        """Deliver multi-part messages whose missing parts never came, with a note."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._expire(self.clock())
            except Exception:
                log.exception("delivering an incomplete multi-part SMS failed")
            try:
                await self._forget_confirmed(self.clock())
            except Exception:
                log.exception("forgetting confirmed MO sightings failed")
            try:
                await self._record_unrecorded()
            except Exception:
                log.exception("recording accepted SMS parts failed")
            try:
                await self._prune(self.clock())
            except Exception:
                log.exception("forgetting old SMS records failed; tried again in an hour")

    async def _prune(self, now: float) -> None:
        """Once an hour: forget per-message counts and parts with no receipt once no retry
        and no receipt can come any more (twice the validity period, at least a day), MO
        sightings once past the duplicate window, and usage of past hours and days. Without
        it these tables grow with every SMS."""
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        keep = max(2.0 * self.cfg.validity_s, 86400.0)
        sent, parts, usage, seen = await self.store.prune(now - keep, now)
        log.info("forgot old SMS records: %d message counts, %d parts without a receipt, "
                 "%d usage buckets, %d MO sightings", sent, parts, usage, seen)  # fmt: skip

    async def _expire(self, now: float) -> None:
        before = {p.key: p for p in self.reassembler.pending_parts()}
        messages = self.reassembler.expire(now)
        if not messages:
            return
        after = {p.key for p in self.reassembler.pending_parts()}
        gone = [part for key, part in before.items() if key not in after]
        for message in messages:
            part = next(p for p in gone if (p.source, p.destination) == (message.source, message.destination))
            gone.remove(part)
            owner = await self.store.subscriber_by_account(
                self.network, "+" + numbers.msisdn_digits(message.destination)
            )
            if owner is None:
                await self.store.drop_mo_parts(part.source, part.destination, part.reference, part.total)
                continue
            await self._mo_complete(owner.id, numbers.mo_source(message.source), message, part, now)

    async def _receipt(self, pdu: DeliverSm) -> None:
        assert self.sink is not None
        receipt = parse_receipt(pdu)
        if receipt is None:
            log.warning("unreadable delivery receipt ignored")
            return
        self.counters["receipts"] += 1
        if not receipt.state.final:
            return
        part = await self.store.sent_part_by_id(message_id_candidates(receipt.raw_id))
        if part is None:
            # a fast SMSC can send the receipt before submit_sm_resp was recorded
            self._early[receipt.message_id] = receipt
            while len(self._early) > EARLY_RECEIPTS_KEPT:
                self._early.pop(next(iter(self._early)))
            # the part may have been recorded while we looked: whoever pops the receipt applies it
            part = await self.store.sent_part_by_id(message_id_candidates(receipt.raw_id))
            if part is None or self._early.pop(receipt.message_id, None) is None:
                return
        await self._apply_receipt(part, receipt)

    async def _apply_receipt(self, part: SentPart, receipt: Receipt) -> None:
        assert self.sink is not None
        ok = receipt.state is ReceiptState.DELIVRD
        state = "ok" if ok else receipt.state.value
        confirmed = _report_confirmed(part)
        if confirmed:  # the parts are kept until the report is confirmed (else it is sent again)
            states = await self.store.mark_part(part.item_key, part.seq, state)
        else:  # nothing to confirm: forgotten with the last part's mark, in the same write
            states = await self.store.finish_part(part.item_key, part.seq, state, part.total)
        failed = [s for s in states if s not in ("ok", "sent")]
        contact = str(part.meta.get("contact", ""))
        if part.subscriber_id is None:
            return
        to_contact = bool(part.meta.get("from"))  # else the service writing to the subscriber's phone
        if failed and not ok and failed.count(receipt.state.value) == 1 and len(failed) == 1:
            reason = f"The SMS to {contact} was not delivered ({receipt.state.value})."
            await self._report(part, False, reason)
            if not to_contact:
                return  # the subscriber's own number is no contact of theirs: no presence for it
            self.unreachable[(part.subscriber_id, contact)] = f"not reachable by SMS ({receipt.state.value})"
            await self.sink(
                ContactPresenceChanged(
                    self.network, part.subscriber_id, contact, self._presence(part.subscriber_id, contact)
                )
            )
        elif not failed and len(states) == part.total and all(s == "ok" for s in states):
            was_unreachable = self.unreachable.pop((part.subscriber_id, contact), None)
            await self._report(part, True, "")
            if confirmed:
                await self.store.forget_sent(part.item_key)
            if was_unreachable:
                await self.sink(ContactPresenceChanged(self.network, part.subscriber_id, contact, REACHABLE))

    async def _report(self, part: SentPart, ok: bool, reason: str) -> None:
        assert self.sink is not None and part.subscriber_id is not None
        await self.sink(
            DeliveryReported(
                self.network,
                part.subscriber_id,
                str(part.meta.get("contact", "")),
                str(part.meta.get("id", "")),
                str(part.meta.get("from", "")),
                ok,
                bool(part.meta.get("receipt")),
                reason,
                str(part.meta.get("reply_network", "")),
                str(part.meta.get("reply_contact", "")),
            )
        )


def _report_confirmed(part: SentPart) -> bool:
    """Whether the delivery report of ``part``'s message may fail for want of the XMPP
    server's confirmation (then the SMSC's receipt is refused and comes again, and must find
    the parts still recorded): a receipt the XMPP sender asked for. Forwards, command replies
    and messages without a receipt request are reported to nobody on success."""
    meta = part.meta
    return bool(meta.get("from")) and bool(meta.get("receipt")) and bool(meta.get("id"))


def _part_fields(p: StoredPart | Part) -> tuple[str, str, int, int, int, int, bytes, float]:
    return (p.source, p.destination, p.reference, p.total, p.seq, p.data_coding, p.payload, p.received_at)


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))


def _mask(number: str) -> str:
    return number[:-4] + "****" if len(number) > 6 else "****"


def esme_config(config: SmsConfig) -> EsmeConfig:
    """The ESME's settings from ``[sms.smsc]``; raises ``ValueError`` on what an SMSC would
    refuse at every bind (``passerelle check-config`` builds it too, see gateway.preflight)."""
    smsc = config.smsc
    return EsmeConfig(
        host=smsc.host,
        port=smsc.port,
        system_id=smsc.system_id,
        password=smsc.password.value,
        system_type=smsc.system_type,
        window=smsc.window,
        max_rate=smsc.max_rate,
        enquire_link_s=smsc.enquire_link_s,
    )


def build_sms(config: Config, store: SmsStore) -> SmsTransport:
    assert config.sms is not None
    return SmsTransport(config.sms, store)
