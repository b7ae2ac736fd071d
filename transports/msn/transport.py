"""The MSN network as a gateway transport: one :class:`MsnSession` per subscriber.

From XMPP to MSN: registration checks the credentials with a real (hidden) login;
presence, typing, messages and subscription stanzas become CHG/UUX, typing notices, MSG on
a switchboard and ADC/REM. From MSN to XMPP: every session event becomes a core event
(:meth:`MsnTransport._on_event`), with the rules of :mod:`transports.msn.mapping`.
Passwords and message bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal

from gateway.addressing import AddressError, BareJid, MsnHandle, escape_node, unescape_node
from gateway.config import Config, MsnConfig
from gateway.core import events as ev
from gateway.core.actions import SendXmppPresence
from gateway.core.model import OFFLINE, Presence
from gateway.core.records import Account, OutboxItem, Subscriber
from gateway.errors import StorageError, UserError
from gateway.transport import Delivered, DeliveryOutcome, EventSink, Failed, FormField, Linked, Retry
from transports.msn import client as msn
from transports.msn import mapping
from transports.msn import ns_events as nse
from transports.msn.errors import LoginFailure
from transports.msn.sb import MessageReceived, TypingReceived
from transports.msn.status import ListBit, Status
from transports.msn.storage import MsnStore

log = logging.getLogger(__name__)

SessionFactory = Callable[[msn.SessionConfig, msn.EventCallback], msn.MsnSession]
MAX_SEND_ERRORS = 4  # NAK or switchboard errors for one message before it is given up
LOGIN_WAIT_S = 10.0  # how long a subscription stanza waits for a login in progress
PROBE_WAIT_S = 5.0  # how long after a login began probes wait for it (counted once per login)
RESYNC_SETTLE_S = 2.0  # after a re-login, contacts not seen online again by then are offline
ENDED = ("failed", "replaced", "stopped")
UNSTORED_RETRY_S = 0.2  # first pause after the store refused a message from MSN
UNSTORED_RETRY_CAP_S = 2.0  # longest pause between tries
UNSTORED_KEPT = 1000  # messages kept per session while the store refuses; past it the switchboard waits


class _Login:
    """One subscriber's MSN session and what the gateway knows through it."""

    def __init__(self, subscriber_id: int, handle: str, session: msn.MsnSession) -> None:
        self.subscriber_id, self.handle, self.session = subscriber_id, handle, session
        self.state = "connecting"  # connecting | online | reconnecting | failed | replaced | stopped
        self.reason = ""
        self.ready = asyncio.Event()  # set once the first login succeeded or failed
        self.probes_until = asyncio.get_running_loop().time() + PROBE_WAIT_S  # see contact_subscription
        self.tasks: set[asyncio.Task[None]] = set()
        self.masks: dict[str, int] = {}  # lower handle -> list mask (RL implied once PL is left)
        self.names: dict[str, str] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.presence: dict[str, Status] = {}
        self.psm: dict[str, str] = {}
        self.phones: dict[str, str] = {}  # mobile numbers the contacts publish (PHM)
        self.asked: set[str] = set()  # subscription requests already passed on this session
        self.stale: set[str] = set()  # online before a drop, not seen again since
        self.applied: tuple[Status, str] | None = None
        self.holding = 0  # list changes in progress: the roster is pushed once they are done
        self.unstored: deque[ev.LegacyMessageReceived] = deque()  # ACKed, refused by the store: retried
        self.room = asyncio.Event()  # set when ``unstored`` has room again
        self.retrying = False


class MsnTransport:
    network = "msn"
    features = frozenset({"http://jabber.org/protocol/chatstates", "urn:xmpp:receipts"})
    registration_fields = (
        FormField("handle", "MSN address", desc="e.g. bob@hotmail.com"),
        FormField("password", "MSN password", "text-private"),
    )
    registration_instructions = "Enter your MSN address and password; they are checked by signing in."
    gateway_prompt = "MSN address"
    message_ttl_s = 86400.0

    def __init__(
        self,
        config: MsnConfig,
        store: MsnStore,
        *,
        session_options: Mapping[str, Any] | None = None,
        session_factory: SessionFactory = msn.MsnSession,
    ) -> None:
        self.cfg, self.store = config, store
        self.options = dict(session_options or {})  # SessionConfig timeouts and backoff
        self.factory = session_factory
        self.sink: EventSink | None = None
        self.logins: dict[int, _Login] = {}
        self.send_errors: dict[int, int] = {}  # outbox item id -> failed sends so far
        self.counters = {
            "messages_out": 0,
            "messages_in": 0,
            "offline_refusals": 0,
            "logins_failed": 0,
            "group_join_races": 0,  # a 1:1 message that may have reached someone who just joined
        }

    # -- lifecycle and addressing -----------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self.sink = sink  # nothing shared to open: each subscriber has their own login

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_session(sid) for sid in list(self.logins)))

    def status(self) -> dict[str, Any]:
        states = [login.state for login in self.logins.values()]
        return {
            "sessions": len(states),
            "logged_in": states.count("online"),
            "connecting": states.count("connecting") + states.count("reconnecting"),
            "failing": states.count("failed") + states.count("replaced"),
            **self.counters,
        }

    def parse_contact(self, localpart: str) -> str:
        try:
            return MsnHandle.parse(unescape_node(localpart)).address
        except AddressError as exc:
            raise UserError("bad-address", reason=f"{exc}.") from None

    def contact_localpart(self, legacy_id: str) -> str:
        return escape_node(legacy_id.lower())

    def translate_prompt(self, text: str) -> str:
        try:
            return self.contact_localpart(MsnHandle.parse(text).address)
        except AddressError as exc:
            raise UserError("bad-address", reason=f"{exc}.") from None

    def _session_config(self, handle: str, password: str, **extra: Any) -> msn.SessionConfig:
        server = self.cfg.server
        options = {**self.options, **extra}
        return msn.SessionConfig(
            handle,
            password,
            ns_host=server.host,
            ns_port=server.port,
            nexus_url=server.nexus_url,
            login_url=server.login_url or None,
            **options,
        )

    # -- registration: a hidden login checks the credentials ---------------------------------

    async def register(self, user: BareJid, current: Account | None, form: Mapping[str, str]) -> Linked:
        raw, password = form.get("handle", "").strip(), form.get("password", "")
        if not raw or not password:
            raise UserError("bad-form", reason="Both the MSN address and the password are required.")
        try:
            handle = MsnHandle.parse(raw).address
        except AddressError as exc:
            raise UserError("bad-form", reason=f"{exc}.") from None
        owner = await self.store.subscriber_by_account(self.network, handle)
        if owner is not None and owner.jid != user:
            raise UserError("conflict", reason=f"{handle} is already registered by another user.")
        me = await self.store.subscriber_by_jid(user)
        running = self.logins.get(me.id) if me is not None else None
        if running is not None and running.handle == handle:
            if running.state == "online" and running.session.config.password == password:
                return Linked(handle, password)  # already proven by the running session
            await self.stop_session(running.subscriber_id)  # the check below would sign it out
        probe = self.factory(self._session_config(handle, password, status=Status.HDN), _ignore)
        try:
            await probe.login()
        except msn.LoginError as exc:
            log.info("registration of %s as %s refused: %s", user, handle, exc.reason)
            key, reason = _login_problem(exc)
            raise UserError(key, reason=reason[:1].upper() + reason[1:] + ".") from None
        finally:
            await probe.close()
        return Linked(handle, password)

    async def unregister(self, subscriber: Subscriber, account: Account) -> None:
        await self.stop_session(subscriber.id)

    # -- sessions ---------------------------------------------------------------------------

    async def start_session(self, subscriber: Subscriber, account: Account, secret: str | None) -> None:
        current = self.logins.get(subscriber.id)
        if current is not None and current.state not in ENDED and current.handle == account.legacy_id:
            return
        await self.stop_session(subscriber.id)
        if secret is None:
            reason = "no MSN password is stored; register again"
            await self._emit(ev.SessionStateChanged(self.network, subscriber.id, "failed", reason))
            return
        holder: list[_Login] = []
        config = self._session_config(account.legacy_id, secret)
        session = self.factory(config, lambda event: self._on_event(holder[0], event))
        login = _Login(subscriber.id, account.legacy_id, session)
        holder.append(login)
        self.logins[subscriber.id] = login
        self._spawn(login, self._log_in(login))

    async def _log_in(self, login: _Login) -> None:
        try:
            await login.session.login()
        except msn.LoginError as exc:
            self.counters["logins_failed"] += 1
            log.info("MSN login of %s failed: %s", login.handle, exc.reason)
            await self._end(login, "failed", _login_problem(exc)[1])
            return
        login.state = "online"
        login.ready.set()
        log.info("MSN session of %s is up", login.handle)
        await self._emit(ev.SessionStateChanged(self.network, login.subscriber_id, "online"))

    async def stop_session(self, subscriber_id: int) -> None:
        login = self.logins.pop(subscriber_id, None)
        if login is None:
            return
        login.state = "stopped"
        login.ready.set()
        tasks = [t for t in login.tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(login.session.close(), 5.0)

    async def _end(self, login: _Login, state: Literal["failed", "replaced"], reason: str) -> None:
        """The session is over for good (failed, replaced): say so once, show contacts offline."""
        if login.state in ENDED:
            return
        login.state, login.reason = state, reason
        login.ready.set()
        online = [h for h, s in login.presence.items() if s.is_online]
        login.presence.clear()
        for handle in online:
            await self._contact_presence(login, handle, OFFLINE)
        await self._emit(ev.SessionStateChanged(self.network, login.subscriber_id, state, reason))
        self._spawn(login, login.session.close())  # last: it ends the task that called us

    # -- from MSN ---------------------------------------------------------------------------

    async def _on_event(self, login: _Login, event: msn.SessionEvent) -> None:
        if login.state == "stopped":
            return
        sid = login.subscriber_id
        match event:
            case nse.ListSynced():
                await self._synced(login, event)
            case nse.PresenceChanged(handle=raw, status=status, friendly_name=name):
                handle = raw.lower()
                login.stale.discard(handle)
                login.presence[handle] = status
                await self._contact_presence(login, handle)
                if name and handle in login.masks and login.names.get(handle) != name:
                    login.names[handle] = name
                    await self._emit_list(login)
            case nse.PersonalMessageChanged(handle=raw, text=text):
                handle = raw.lower()
                login.psm[handle] = text
                if login.presence.get(handle, Status.FLN).is_online:
                    await self._contact_presence(login, handle)
            case nse.ListChanged():
                await self._list_changed(login, event)
            case MessageReceived(sender=sender, text=text, others=others):
                self.counters["messages_in"] += 1
                key = f"msn:{uuid.uuid4().hex}"  # MSNP has no message ids
                body = mapping.group_marked(text, others)  # said in a group: never passed off as 1:1
                await self._store_message(
                    login, ev.LegacyMessageReceived(self.network, sid, sender.lower(), body, key)
                )
            case msn.JoinedWhileSending():
                self.counters["group_join_races"] += 1
            case TypingReceived(handle=handle):
                await self._emit(ev.ChatStateReceived(self.network, sid, handle.lower(), "composing"))
            case nse.SignedOutElsewhere():
                await self._end(login, "replaced", "your MSN account signed in from another place")
            case msn.Disconnected(reason=reason, reconnecting=True):
                log.info("MSN session of %s lost (%s); logging in again", login.handle, reason)
                login.state = "reconnecting"
                login.stale = {h for h, s in login.presence.items() if s.is_online}
                login.presence.clear()
            case msn.Disconnected(reason=reason):
                await self._end(login, "failed", f"the MSN connection ended ({reason})")
            case msn.Reconnected():
                login.state = "online"
                log.info("MSN session of %s is back", login.handle)
                self._spawn(login, self._settle(login))
            case _:
                pass  # own friendly name, phone properties: nothing to show

    async def _store_message(self, login: _Login, event: ev.LegacyMessageReceived) -> None:
        """A message the sender's switchboard already ACKed: never dropped. If the store
        refuses it, it is kept (in order, with those after it) and retried with a capped
        backoff until the store takes it. Past UNSTORED_KEPT kept messages the switchboard
        that brought this one waits (nothing more is read from it) until there is room."""
        if not login.unstored:
            try:
                await self._emit(event)
                return
            except StorageError as exc:
                log.error("a message from MSN for %s could not be stored (%s); kept and retried",
                          login.handle, exc)  # fmt: skip
        while len(login.unstored) >= UNSTORED_KEPT:
            login.room.clear()
            await login.room.wait()
        login.unstored.append(event)
        if not login.retrying:
            login.retrying = True
            self._spawn(login, self._retry_unstored(login))

    async def _retry_unstored(self, login: _Login) -> None:
        pause = UNSTORED_RETRY_S
        try:
            while login.unstored:
                try:
                    await self._emit(login.unstored[0])
                except StorageError:
                    await asyncio.sleep(pause)
                    pause = min(UNSTORED_RETRY_CAP_S, pause * 2)
                    continue
                except Exception:  # not the store refusing: a bug, which a retry would repeat
                    log.exception("a message from MSN for %s could not be handled; dropped", login.handle)
                login.unstored.popleft()
                login.room.set()
                pause = UNSTORED_RETRY_S
            log.info("the messages from MSN kept for %s are stored", login.handle)
        finally:
            login.retrying = False
            if login.unstored and login.state == "stopped":
                log.error("%d messages from MSN for %s were never stored (the session stopped first)",
                          len(login.unstored), login.handle)  # fmt: skip

    async def _synced(self, login: _Login, event: nse.ListSynced) -> None:
        group_names = {g.guid: g.name for g in event.groups}
        login.masks = {c.handle.lower(): int(c.lists) for c in event.contacts}
        login.names = {c.handle.lower(): c.friendly_name for c in event.contacts}
        login.phones = {c.handle.lower(): c.mobile_phone for c in event.contacts if c.mobile_phone}
        login.groups = {
            c.handle.lower(): tuple(group_names[g] for g in c.groups if g in group_names)
            for c in event.contacts
        }
        await self._emit_list(login)
        for handle, mask in login.masks.items():
            if mapping.asks_to_subscribe(mask) and handle not in login.asked:
                await self._ask(login, handle)

    async def _ask(self, login: _Login, handle: str) -> None:
        login.asked.add(handle)
        name = login.names.get(handle, handle)
        await self._emit(ev.SubscriptionRequested(self.network, login.subscriber_id, handle, name))

    async def _list_changed(self, login: _Login, event: nse.ListChanged) -> None:
        handle = event.handle.lower()
        mask = mapping.mask_after(int(event.lists), (mapping.ListOp(event.added, event.lst),))
        if event.trid is None and event.lst is ListBit.RL and event.added:
            mask = mapping.live_reverse_add(mask)
        login.masks[handle] = mask
        if event.friendly_name:
            login.names.setdefault(handle, event.friendly_name)
        if event.trid is not None:
            return  # the echo of our own command: contact_subscription updates the roster
        if event.lst is ListBit.RL and event.added:
            if mapping.reverse_add_asks(mask):
                await self._ask(login, handle)
                return
            # the subscriber decided already (AL or BL): answer for them, or the server keeps
            # the contact on PL and the gateway would ask at every later login
            self._spawn(login, self._leave_pending(login, handle))
        if event.lst is ListBit.RL and not event.added and not mask & ListBit.FL:
            await self._contact_presence(login, handle, OFFLINE)  # they were only watching us
        await self._emit_list(login)

    async def _leave_pending(self, login: _Login, handle: str) -> None:
        try:
            await login.session.remove_from_list(ListBit.PL, handle)
        except (msn.CommandError, ConnectionError, TimeoutError) as exc:
            log.info("%s stays pending on the MSN list of %s (%s)", handle, login.handle, exc)

    async def _settle(self, login: _Login) -> None:
        await asyncio.sleep(RESYNC_SETTLE_S)
        gone, login.stale = login.stale, set()
        for handle in gone:
            await self._contact_presence(login, handle, OFFLINE)

    def _presence_of(self, login: _Login | None, handle: str) -> Presence:
        if login is None or login.state != "online":
            return OFFLINE
        return mapping.msn_to_xmpp_presence(login.presence.get(handle, Status.FLN), login.psm.get(handle, ""))

    async def _contact_presence(self, login: _Login, handle: str, presence: Presence | None = None) -> None:
        presence = self._presence_of(login, handle) if presence is None else presence
        await self._emit(ev.ContactPresenceChanged(self.network, login.subscriber_id, handle, presence))

    async def _emit_list(self, login: _Login) -> None:
        if login.holding:
            return  # contact_subscription pushes the whole list when it is done
        names, groups = login.names, login.groups
        contacts = tuple(
            ev.LegacyContact(
                h, names.get(h, h), mapping.subscription_for(m), groups.get(h, ()), m, login.phones.get(h, "")
            )
            for h, m in sorted(login.masks.items())
            if mapping.in_roster(m)
        )
        await self._emit(ev.ContactListReceived(self.network, login.subscriber_id, contacts))

    async def _emit(self, event: ev.NetworkEvent) -> None:
        assert self.sink is not None, "start() was not called"
        await self.sink(event)

    @staticmethod
    def _spawn(login: _Login, coro: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("MSN session task of %s failed", login.handle)

        task = asyncio.ensure_future(guarded())
        login.tasks.add(task)
        task.add_done_callback(login.tasks.discard)

    # -- from XMPP --------------------------------------------------------------------------

    async def set_presence(self, subscriber_id: int, presence: Presence) -> None:
        login = self.logins.get(subscriber_id)
        status = mapping.xmpp_to_msn_status(presence)
        if login is None or status is None or login.state in ENDED:
            return
        wanted = (status, mapping.status_text_to_psm(presence.status))
        if login.applied != wanted:  # the same presence comes once per roster contact
            login.applied = wanted
            login.session.set_presence(*wanted)

    async def send_chat_state(self, subscriber_id: int, legacy_id: str, state: str) -> None:
        login = self.logins.get(subscriber_id)
        if login is not None and login.state == "online" and state == "composing":
            login.session.send_typing(legacy_id)

    async def contact_subscription(
        self, subscriber: Subscriber, legacy_id: str, kind: ev.PresenceKind
    ) -> list[SendXmppPresence]:
        assert subscriber.jid is not None
        jid, local = subscriber.jid, self.contact_localpart(legacy_id)
        login = self.logins.get(subscriber.id)
        if kind == "probe":
            if login is not None and not login.ready.is_set():
                # A login brings one probe per roster item: answered once the list and the
                # contacts online are known, with their real presence, instead of "offline"
                # for all (a thousand stanzas competing with the login, then corrected).
                # The wait is counted from the start of the login, not per probe.
                remaining = login.probes_until - asyncio.get_running_loop().time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(login.ready.wait(), max(0.0, remaining))
            return [_presence_action(jid, local, self._presence_of(login, legacy_id))]
        if kind not in ("subscribe", "subscribed", "unsubscribe", "unsubscribed") or login is None:
            return []
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(login.ready.wait(), LOGIN_WAIT_S)
        if login.state != "online":
            log.info(
                "%s to %s not applied: MSN session of %s is %s", kind, legacy_id, login.handle, login.state
            )
            return []
        login.holding += 1
        try:
            for op in mapping.list_operations(kind, login.masks.get(legacy_id, 0)):
                if op.add:
                    await login.session.add_to_list(op.lst, legacy_id, legacy_id)
                else:
                    await login.session.remove_from_list(op.lst, legacy_id)
        except (msn.CommandError, ConnectionError, TimeoutError) as exc:
            log.info("%s to %s: MSN refused a list change (%s)", kind, legacy_id, exc)
        finally:
            login.holding -= 1
        # the roster push goes after the answer below, so the server sees the ordinary
        # subscription flow first (a ``subscribed`` to an item already ``to`` is dropped)
        self._spawn(login, self._emit_list(login))
        after = login.masks.get(legacy_id, 0)
        presence = self._presence_of(login, legacy_id)
        match kind:
            case "subscribe" if after & ListBit.FL:
                replies = [SendXmppPresence(jid, local, "subscribed")]
                # offline is not said here: the server's own NLN may already be on its way
                return replies + ([_presence_action(jid, local, presence)] if presence.online else [])
            case "subscribe":
                return [SendXmppPresence(jid, local, "unsubscribed")]
            case "unsubscribe":
                return [SendXmppPresence(jid, local, "unavailable")]
            case _:
                return []

    async def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        login = self.logins.get(item.subscriber_id) if item.subscriber_id is not None else None
        if login is None:
            return Retry(5.0, "not signed in to MSN (the subscriber is offline)")
        if login.state in ("connecting", "reconnecting"):
            return Retry(2.0, "not signed in to MSN yet")
        if login.state in ENDED:
            reason = f"Not signed in to MSN ({login.reason}); the message was not sent."
            return Failed("network-down", {"reason": reason})
        handle = item.destination
        result = await login.session.send_message(handle, str(item.payload.get("body", "")))
        if result.status is msn.DeliveryStatus.ACKED:
            self.send_errors.pop(item.id, None)
            self.counters["messages_out"] += 1
            return Delivered(reached=True)  # the ACK of a switchboard the contact is in
        if result.status is msn.DeliveryStatus.OFFLINE:
            self.send_errors.pop(item.id, None)
            self.counters["offline_refusals"] += 1
            return Failed("recipient-unavailable", {"reason": f"{handle} is offline on MSN."})
        if login.state != "online":
            return Retry(2.0, result.reason)  # the session dropped under us: not the message's fault
        errors = self.send_errors[item.id] = self.send_errors.get(item.id, 0) + 1
        log.info("message to %s not accepted (%s), try %d", handle, result.reason, errors)
        if errors >= MAX_SEND_ERRORS:
            del self.send_errors[item.id]
            reason = f"The MSN server did not accept the message for {handle}."
            return Failed("recipient-unavailable", {"reason": reason})
        return Retry(min(30.0, 2.0**errors), result.reason)


def _presence_action(jid: BareJid, local: str, presence: Presence) -> SendXmppPresence:
    return SendXmppPresence(jid, local, "available" if presence.online else "unavailable", presence)


def _login_problem(exc: msn.LoginError) -> tuple[str, str]:
    """The user error key and a readable reason for a failed login (never the password)."""
    match exc.failure:
        case LoginFailure.BAD_CREDENTIALS:
            return "bad-credentials", "the MSN server refused this address and password"
        case LoginFailure.UNREACHABLE:
            return "network-down", f"the MSN service could not be reached: {exc.reason}"
        case _:
            return "network-down", f"the MSN server could not sign you in: {exc.reason}"


def _ignore(_event: msn.SessionEvent) -> None:
    return None


def build_msn(config: Config, store: MsnStore) -> MsnTransport:
    assert config.msn is not None
    return MsnTransport(config.msn, store)
