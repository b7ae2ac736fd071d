"""One slixmpp component per network: stanzas in, handler calls out; actions to stanzas.

No policy lives here: the :class:`ComponentHandler` (the bridge) decides. This layer
guarantees that every IQ get/set is answered — with a result, the ``UserError`` the
handler raised, or ``internal-server-error`` carrying a reference id that is also in
the log — and that a failing handler never stops the component.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast
from xml.etree import ElementTree as ET

from slixmpp import JID, ComponentXMPP
from slixmpp.exceptions import IqError
from slixmpp.stanza import Iq, Message
from slixmpp.stanza import Presence as PresenceStanza
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.matcher.base import MatcherBase
from slixmpp.xmlstream.xmlstream import NotConnectedError

from gateway.addressing import AddressError, BareJid, FullJid
from gateway.core.actions import (
    PushRoster,
    RemoveRoster,
    SendXmppChatState,
    SendXmppMessage,
    SendXmppPresence,
)
from gateway.core.events import PresenceKind, XmppPresenceReceived
from gateway.core.link import Link, Note
from gateway.core.messages import Refusal, XmppMessage, plan_message
from gateway.core.model import Presence, Show
from gateway.errors import UserError, new_reference
from gateway.transport import FormField
from gateway.xmltext import xml_text
from gateway.xmpp import forms, privilege

log = logging.getLogger(__name__)

NS_CLIENT = "jabber:component:accept"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_NICK = "http://jabber.org/protocol/nick"
NS_PING = "urn:xmpp:ping"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ROSTER_BATCH = 250

_KINDS: dict[str, PresenceKind] = {
    k: k
    for k in ("available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe")
}
PROBES_PER_TURN = 50  # probes answered between two turns given to the rest of the gateway


_IQ_ROUTE = re.compile(r"iq\[@type='(get|set)'\]/(\{[^}]+\}[\w.-]+)")


class _QuietConnectionLost(logging.Filter):
    """slixmpp logs every closed TCP connection at info; the component's own lines (one per
    change of the link's state) say it better, and a server refusing the secret made it a
    line every attempt."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not str(record.msg).startswith("connection_lost")


logging.getLogger("slixmpp.xmlstream.xmlstream").addFilter(_QuietConnectionLost())


class TagMatch(MatcherBase):
    """What ``MatchXPath("{ns}tag[@type='t']/{ns}child")`` matches, without its cost.

    slixmpp tries every handler's matcher on every stanza, and ``MatchXPath`` wraps the
    stanza in a new element and runs an ElementPath query each time: with the component's
    handlers that was a fifth of what a login's two thousand presence stanzas cost.
    """

    def __init__(self, tag: str, type_: str | None = None, child: str | None = None) -> None:
        super().__init__((tag, type_, child))
        self.tag, self.type_, self.child = tag, type_, child

    def match(self, xml: StanzaBase) -> bool:
        element = xml.xml
        return (
            element.tag == self.tag
            and (self.type_ is None or element.get("type") == self.type_)
            and (self.child is None or element.find(self.child) is not None)
        )


class ComponentHandler(Protocol):
    """What the component asks of the bridge. Methods may raise ``UserError``."""

    async def registration_state(self, network: str, sender: FullJid) -> str | None: ...
    async def register(self, network: str, sender: FullJid, values: dict[str, str]) -> None: ...
    async def unregister(self, network: str, sender: FullJid) -> None: ...
    async def gateway_translate(self, network: str, sender: FullJid, text: str) -> str: ...
    async def presence_received(self, network: str, event: XmppPresenceReceived) -> None: ...
    async def message_received(
        self, network: str, sender: FullJid, contact: str | None, body: str, msg_id: str, receipt: bool
    ) -> None: ...
    async def chat_state_received(self, network: str, sender: FullJid, contact: str, state: str) -> None: ...
    async def component_online(self, network: str) -> None: ...
    async def component_offline(self, network: str) -> None: ...
    def sender_allowed(self, sender: BareJid) -> bool: ...


class GatewayComponent(ComponentXMPP):
    """The XEP-0114 component for one network."""

    def __init__(
        self,
        *,
        network: str,
        jid: str,
        secret: str,
        host: str,
        port: int,
        handler: ComponentHandler,
        name: str,
        features: frozenset[str],
        fields: tuple[FormField, ...],
        instructions: str,
        prompt: str,
    ) -> None:
        super().__init__(jid, secret, host, port)
        self.network = network
        self.handler = handler
        self.fields = fields
        self.instructions = instructions
        self.prompt = prompt
        self.grants = privilege.Grants()
        self.generation = 0  # bumped on every new stream: a handover must see one stream
        self.online = asyncio.Event()
        self.closing = False
        self.link = Link(jid, f"{host}:{port}")
        self._failure = "no answer"  # why the last connection attempt failed
        self._stream_error: str | None = None  # a stream error on the current connection
        self._up = False  # the current connection got as far as a stream
        self._stream_gone: asyncio.Future[None] | None = None  # done when the current stream ends
        self._tasks: set[asyncio.Task[None]] = set()
        self._probes: dict[str, deque[StanzaBase]] = {}  # sender's bare JID -> probes to answer
        self._out: list[bytes] = []  # sent in this turn of the loop, written at its end
        self._out_to: asyncio.Transport | None = None  # the connection they are for
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        disco = self.plugin["xep_0030"]
        disco.add_identity(category="gateway", itype=network, name=name)
        for feature in sorted({"jabber:iq:register", forms.NS_GATEWAY, NS_PING, "urn:xmpp:ping", *features}):
            disco.add_feature(feature)
        self.del_event_handler("presence_probe", self._handle_probe)
        self._route("iq[@type='get']/{jabber:iq:register}query", self._on_register_get, iq=True)
        self._route("iq[@type='set']/{jabber:iq:register}query", self._on_register_set, iq=True)
        self._route(f"iq[@type='get']/{{{forms.NS_GATEWAY}}}query", self._on_gateway_get, iq=True)
        self._route(f"iq[@type='set']/{{{forms.NS_GATEWAY}}}query", self._on_gateway_set, iq=True)
        self.register_handler(
            CoroutineCallback("passerelle-message", TagMatch(f"{{{NS_CLIENT}}}message"), self._on_message)
        )
        # slixmpp's own roster is not used: the bridge keeps the state. Its presence handler
        # and the out filter that keeps every sent presence per (contact, user) cost CPU on
        # each presence and memory growing with users × contacts, and its component roster
        # answers some subscription stanzas by itself (``unsubscribed`` to an ``unsubscribe``
        # that follows a ``subscribe``), which is the bridge's call.
        self.remove_handler("Presence")
        self.del_filter("out", self.roster._save_last_status)
        self.register_handler(
            Callback("passerelle-presence", TagMatch(f"{{{NS_CLIENT}}}presence"), self._sort_presence)
        )
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("connection_failed", self._on_connection_failed)

    # -- plumbing ---------------------------------------------------------------------

    def _route(self, xpath: str, func: Callable[[Iq], Awaitable[ET.Element | None]], *, iq: bool) -> None:
        parts = xpath.split("/", 1)
        path = f"{{{NS_CLIENT}}}{parts[0]}/{parts[1]}"
        simple = _IQ_ROUTE.fullmatch(xpath)
        matcher: MatcherBase = (
            TagMatch(f"{{{NS_CLIENT}}}iq", simple[1], simple[2]) if simple else MatchXPath(path)
        )

        async def guarded(stanza: StanzaBase) -> None:
            await self._answer_iq(cast(Iq, stanza), func)

        self.register_handler(CoroutineCallback(f"passerelle-{xpath}", matcher, guarded))

    def add_iq_route(self, xpath: str, func: Callable[[Iq], Awaitable[ET.Element | None]]) -> None:
        """Answer IQs matching ``xpath`` with ``func`` under the same guard (XEP-0050 admin
        commands, ``gateway.ops.adhoc``): every IQ gets a result or an error."""
        self._route(xpath, func, iq=True)

    async def _answer_iq(self, iq: Iq, func: Callable[[Iq], Awaitable[ET.Element | None]]) -> None:
        """Run ``func`` and always answer: result, user error, or internal error with a ref."""
        try:
            if self.closing:
                raise UserError("network-down", reason="The gateway is shutting down; try again shortly.")
            self._check_sender(iq["from"])
            payload = await func(iq)
        except UserError as exc:
            self._error_reply(iq, exc)
            return
        except Exception:
            ref = new_reference()
            log.exception("internal error ref=%s handling iq from %s", ref, iq["from"].bare)
            self._error_reply(iq, UserError("internal", ref=ref))
            return
        reply = iq.reply(clear=True)
        if payload is not None:
            reply.append(payload)
        reply.send()

    def _error_reply(self, stanza: Iq | Message, exc: UserError) -> None:
        reply = stanza.reply(clear=True)
        reply["id"] = stanza["id"]  # the error must name the stanza it answers (RFC 6120 §8.3.1)
        reply["type"] = "error"
        reply["error"]["type"] = exc.type
        reply["error"]["condition"] = exc.condition
        reply["error"]["text"] = xml_text(exc.text)
        reply.send()

    def _check_sender(self, jid: JID) -> BareJid:
        try:
            bare = BareJid.parse(str(jid))
        except AddressError:
            raise UserError("bad-address", reason="Your address is not a valid JID.") from None
        if not self.handler.sender_allowed(bare):
            raise UserError("domain-not-served", domains="the operator's domains")
        return bare

    def spawn(self, coro: Awaitable[None], what: str) -> None:
        """Run a handler in the background; log failures with a reference, never crash."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("internal error ref=%s in %s", new_reference(), what)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def full(jid: JID) -> FullJid:
        return FullJid.parse(str(jid))

    # -- connection lifecycle -----------------------------------------------------------

    def send_raw(self, data: str | bytes) -> None:
        """Write what is sent in one turn of the event loop in one go, in order.

        slixmpp writes every stanza on its own; a login of a user with a thousand contacts
        has the component answer a thousand probes, and a thousand ``send()`` calls, each
        waking the XMPP server, were most of what it spent on them. Data queued for a
        connection that has since gone is dropped, as a write to it would have failed.
        """
        transport = self.transport
        if not transport:
            raise NotConnectedError()
        if isinstance(data, str):
            data = data.encode("utf-8")
        log.debug("SEND: %s", data)
        if self._out_to is not transport:
            self._out.clear()
            self._out_to = transport
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._write_out)

    def _write_out(self) -> None:
        data, transport = b"".join(self._out), self._out_to
        self._out.clear()
        if data and transport is not None and transport is self.transport and not transport.is_closing():
            transport.write(data)

    def abort(self) -> None:
        self._write_out()  # what was sent before goes first, as when every send wrote at once
        super().abort()

    def reschedule_connection_attempt(self) -> asyncio.Future[Any] | None:
        """A TCP connection could not be made: the next attempt after :class:`Link`'s
        pause (capped exponential with jitter; slixmpp's own goes up to 300 s), said once."""
        future: asyncio.Future[Any] | None = super().reschedule_connection_attempt()
        delay, note = self.link.unreachable(self._failure, random.random())
        self._connect_loop_wait = delay  # read by the attempt just scheduled, when it starts
        _write(note)
        return future

    def _on_connection_failed(self, error: object) -> None:
        self._failure = _reason(error)

    async def _on_session_start(self, _event: object) -> None:
        self.generation += 1
        self._up = True
        self._stream_gone = asyncio.get_running_loop().create_future()
        self.online.set()
        _write(self.link.connected())
        self.spawn(self.handler.component_online(self.network), "component_online")

    def _on_disconnected(self, reason: object) -> None:
        self.online.clear()
        self.grants = privilege.Grants()  # granted per stream: the next one grants again
        if self._stream_gone is not None and not self._stream_gone.done():
            self._stream_gone.set_result(None)  # pings waiting on that stream fail now
        was_up, error = self._up, self._stream_error
        self._up, self._stream_error = False, None
        if self.closing:
            return
        if was_up:
            self.spawn(self.handler.component_offline(self.network), "component_offline")
        if was_up:
            why = f"stream error {error}" if error else str(reason or "closed by the server")
            delay, note = self.link.lost(why, random.random())
        elif error is not None:
            delay, note = self.link.refused(error, random.random())
        else:
            closed = f"the server closed the connection before the stream was up ({reason or 'no reason'})"
            delay, note = self.link.unreachable(closed, random.random())
        _write(note)
        asyncio.get_running_loop().call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if not self.closing and not self.online.is_set():
            self.connect()

    def _on_stream_error(self, error: Any) -> None:
        """Noted; said once the connection has closed (:meth:`_on_disconnected`)."""
        self._stream_error = str(error["condition"]) if error is not None else "unknown"

    async def close(self) -> None:
        self.closing = True
        if self.online.is_set():
            self.disconnect(wait=2.0)
            try:
                await asyncio.wait_for(self.disconnected, 3.0)
            except TimeoutError:
                self.abort()
        else:
            self.cancel_connection_attempt()

    # -- IQ handlers ----------------------------------------------------------------------

    async def _on_register_get(self, iq: Iq) -> ET.Element:
        current = await self.handler.registration_state(self.network, self.full(iq["from"]))
        return forms.registration_form(self.fields, self.instructions, current)

    async def _on_register_set(self, iq: Iq) -> ET.Element | None:
        query = iq.xml.find("{jabber:iq:register}query")
        assert query is not None
        values = forms.parse_submission(query, self.fields)
        sender = self.full(iq["from"])
        if values is None:
            await self.handler.unregister(self.network, sender)
        else:
            await self.handler.register(self.network, sender, values)
        return None

    async def _on_gateway_get(self, _iq: Iq) -> ET.Element:
        query = ET.Element(f"{{{forms.NS_GATEWAY}}}query")
        desc = f"Enter the contact's {self.prompt.lower()}."
        ET.SubElement(query, f"{{{forms.NS_GATEWAY}}}desc").text = desc
        ET.SubElement(query, f"{{{forms.NS_GATEWAY}}}prompt").text = self.prompt
        return query

    async def _on_gateway_set(self, iq: Iq) -> ET.Element:
        query = iq.xml.find(f"{{{forms.NS_GATEWAY}}}query")
        text = (query.findtext(f"{{{forms.NS_GATEWAY}}}prompt") if query is not None else None) or ""
        if not text.strip():
            raise UserError("bad-request", reason="Give the address to translate in <prompt/>.")
        jid = await self.handler.gateway_translate(self.network, self.full(iq["from"]), text[:256])
        answer = ET.Element(f"{{{forms.NS_GATEWAY}}}query")
        ET.SubElement(answer, f"{{{forms.NS_GATEWAY}}}jid").text = jid
        ET.SubElement(answer, f"{{{forms.NS_GATEWAY}}}prompt").text = jid  # XEP-0100 legacy clients
        return answer

    # -- messages and presence ---------------------------------------------------------

    async def _on_message(self, stanza: StanzaBase) -> None:
        msg = cast(Message, stanza)
        plan = plan_message(self._read_message(msg))
        if self.closing:
            if plan.send or plan.refuse:
                down = UserError("network-down", reason="The gateway is restarting; send again in a moment.")
                self._error_reply(msg, self._refusal(plan.refuse) if plan.refuse else down)
            return
        mtype = msg["type"]
        if mtype == "error":
            log.debug("error message from %s ignored", msg["from"].bare)
            return
        privilege_el = privilege.find_privilege(msg.xml)
        if privilege_el is not None:
            self.grants.update(msg["from"].domain, privilege_el)
            log.info(
                "XEP-0356 privileges from %s: roster=%s message=%s",
                msg["from"].domain,
                self.grants.roster.get(msg["from"].domain),
                self.grants.message.get(msg["from"].domain),
            )
            return
        if mtype == "groupchat" or not msg["from"].user:
            return
        if plan.chat_state:
            await self._relay_chat_state(msg, plan.chat_state)
        if not plan.send and plan.refuse is None:
            return  # nothing for the network, and nothing its sender waits for (core.messages)
        try:
            self._check_sender(msg["from"])
            if plan.refuse is not None:
                raise self._refusal(plan.refuse)
            sender = self.full(msg["from"])
            contact = msg["to"].user or None
            body = msg.xml.findtext(f"{{{NS_CLIENT}}}body") or ""
            receipt = msg.xml.find(f"{{{NS_RECEIPTS}}}request") is not None
            await self.handler.message_received(self.network, sender, contact, body, msg["id"] or "", receipt)
        except UserError as exc:
            self._error_reply(msg, exc)
        except Exception:
            ref = new_reference()
            log.exception("internal error ref=%s handling a message from %s", ref, msg["from"].bare)
            self._error_reply(msg, UserError("internal", ref=ref))

    @classmethod
    def _read_message(cls, msg: Message) -> XmppMessage:
        xml = msg.xml
        return XmppMessage(
            type=xml.get("type", ""),
            body=xml.findtext(f"{{{NS_CLIENT}}}body"),
            receipt=xml.find(f"{{{NS_RECEIPTS}}}request") is not None,
            chat_state=cls._chat_state(msg),
        )

    def _refusal(self, refusal: Refusal) -> UserError:
        if refusal == "headline":
            return UserError("headline-not-sent", network=self.network.upper())
        return UserError("empty-message")

    async def _relay_chat_state(self, msg: Message, state: str) -> None:
        """A chat state carries no content: what goes wrong relaying it (a badly written
        contact address, a sender not registered) is logged, never answered; a client sends
        one every few keystrokes, and the message with text that follows gets the error."""
        contact = msg["to"].user
        if not contact:
            return
        try:
            self._check_sender(msg["from"])
            await self.handler.chat_state_received(self.network, self.full(msg["from"]), contact, state)
        except UserError as exc:
            log.debug("chat state from %s to %s not relayed: %s", msg["from"].bare, contact, exc.condition)
        except Exception:
            ref = new_reference()
            log.exception("internal error ref=%s relaying a chat state from %s", ref, msg["from"].bare)

    @staticmethod
    def _chat_state(msg: Message) -> str | None:
        for child in msg.xml:
            if child.tag.startswith(f"{{{NS_CHATSTATES}}}"):
                return child.tag.split("}", 1)[1]
        return None

    def _sort_presence(self, stanza: StanzaBase) -> None:
        """Pick, in stream order and without a task each, the presence stanzas the bridge
        acts on. A user's own state is their presence to the component itself (XEP-0100);
        the copies of their broadcast addressed to each contact (one per roster item: a
        thousand at every login of a user with a thousand contacts, ahead of the one that
        starts the session) carry nothing more and are dropped here, as are errors and
        presence from servers."""
        xml = stanza.xml
        ptype = xml.get("type") or "available"  # stanza["type"] answers the <show/>
        if self.closing or ptype not in _KINDS or "@" not in xml.get("from", "").partition("/")[0]:
            return
        to_contact = "@" in xml.get("to", "").partition("/")[0]
        if to_contact and ptype in ("available", "unavailable"):
            return
        if ptype != "probe":
            self.spawn(self._on_presence(stanza), "presence")
            return
        sender = xml.get("from", "").partition("/")[0]
        probes = self._probes.get(sender)
        if probes is None:
            probes = self._probes[sender] = deque()
            self.spawn(self._answer_probes(sender, probes), "probes")
        probes.append(stanza)

    async def _answer_probes(self, sender: str, probes: deque[StanzaBase]) -> None:
        """One user's probes, one after another in one task. A login brings one per roster
        item; a task each made them all read the store at once, and the presence that
        starts the user's session waited behind those reads (half a second for a thousand
        contacts). One at a time, the first read is cached for the others; the pause after
        every few lets a login in progress take its turns, and the answers given between
        two pauses leave in one write."""
        try:
            while probes:
                for _ in range(min(len(probes), PROBES_PER_TURN)):
                    await self._on_presence(probes.popleft())
                await asyncio.sleep(0)
        finally:
            del self._probes[sender]

    async def _on_presence(self, stanza: StanzaBase) -> None:
        pres = cast(PresenceStanza, stanza)
        if self.closing:
            return
        ptype = pres.xml.get("type") or "available"
        try:
            self._check_sender(pres["from"])
        except UserError:
            if ptype == "subscribe":
                self.send_presence(pto=pres["from"].bare, pfrom=pres["to"], ptype="unsubscribed")
            return
        show_text = pres.xml.findtext(f"{{{NS_CLIENT}}}show") or ""
        show = Show(show_text) if show_text in {s.value for s in Show} - {"unavailable"} else Show.AVAILABLE
        presence = Presence(Show.UNAVAILABLE if ptype == "unavailable" else show, pres["status"] or "")
        kind = _KINDS[ptype]
        event = XmppPresenceReceived(self.full(pres["from"]), pres["to"].user or None, kind, presence)
        try:
            await self.handler.presence_received(self.network, event)
        except UserError as exc:
            log.info("presence from %s not handled: %s", pres["from"].bare, exc.condition)
        except Exception:
            if not self.closing:  # during shutdown the store may already be closed
                log.exception("internal error ref=%s handling presence", new_reference())

    # -- actions -> stanzas ---------------------------------------------------------------

    def contact_jid(self, contact: str | None) -> str:
        return f"{contact}@{self.boundjid.bare}" if contact else self.boundjid.bare

    def send_xmpp_presence(self, action: SendXmppPresence) -> None:
        ptype = None if action.type == "available" else action.type
        pres = self.make_presence(pto=str(action.to), pfrom=self.contact_jid(action.contact), ptype=ptype)
        if action.presence is not None and action.presence.online:
            if action.presence.show not in (Show.AVAILABLE, Show.UNAVAILABLE):
                pres["show"] = action.presence.show.value
            if action.presence.status:
                pres["status"] = xml_text(action.presence.status)
        if action.nick:
            nick = ET.SubElement(pres.xml, f"{{{NS_NICK}}}nick")
            nick.text = xml_text(action.nick)
        pres.send()

    def build_message(self, action: SendXmppMessage) -> Message:
        msg = self.make_message(
            mto=str(action.to),
            mfrom=self.contact_jid(action.contact),
            mbody=xml_text(action.body),
            mtype="chat",
        )
        msg["id"] = action.dedup_key[-64:]
        ET.SubElement(msg.xml, f"{{{NS_CHATSTATES}}}active")
        if action.nick:
            ET.SubElement(msg.xml, f"{{{NS_NICK}}}nick").text = xml_text(action.nick)
        return msg

    def send_chat_state(self, action: SendXmppChatState) -> None:
        msg = self.make_message(mto=str(action.to), mfrom=self.contact_jid(action.contact), mtype="chat")
        ET.SubElement(msg.xml, f"{{{NS_CHATSTATES}}}{action.state}")
        msg.send()

    def send_error_message(
        self, to: FullJid | BareJid, contact: str | None, msg_id: str, exc: UserError
    ) -> None:
        """An error about a message: sent to the full JID that sent it (RFC 6121 drops bare)."""
        msg = self.make_message(mto=str(to), mfrom=self.contact_jid(contact), mtype="error")
        msg["id"] = msg_id
        msg["error"]["type"] = exc.type
        msg["error"]["condition"] = exc.condition
        msg["error"]["text"] = xml_text(exc.text)
        msg.send()

    def send_receipt(self, to: FullJid | BareJid, contact: str, msg_id: str) -> None:
        msg = self.make_message(mto=str(to), mfrom=self.contact_jid(contact), mtype="chat")
        ET.SubElement(msg.xml, f"{{{NS_RECEIPTS}}}received", {"id": msg_id})
        msg.send()

    def send_carbon(self, user: BareJid, contact: str, body: str, msg_id: str) -> bool:
        """Show a message ``user`` sent to ``contact`` outside XMPP (by SMS) in the user's
        own XMPP clients: a XEP-0280 sent carbon injected through XEP-0356.

        False, and nothing sent, where the server did not grant the ``outgoing`` message
        privilege for the user's domain or while the component is disconnected.
        """
        if not self.online.is_set() or not self.grants.can_send_as_user(user.domain):
            return False
        carbon = privilege.sent_carbon(str(user), self.contact_jid(contact), xml_text(body), msg_id)
        ns = self.grants.namespace.get(user.domain, privilege.NS_PRIVILEGE[0])
        Message(self, xml=privilege.forwarded_message(user.domain, self.boundjid.bare, carbon, ns)).send()
        return True

    async def handover(self, stanzas: list[Message]) -> bool:
        """Write ``stanzas`` and confirm them with one ping on the same stream.

        The server processes a stream in order, so once the ping is answered every
        stanza before it was accepted. False when the stream changed or the ping failed:
        the caller keeps the messages and tries again.
        """
        if not self.online.is_set():
            return False
        generation, gone = self.generation, self._stream_gone
        for stanza in stanzas:
            stanza.send()
        # send_ping, not ping(): ping() reads the deprecated ``server`` property (a warning each time);
        # from= too: ejabberd closes the stream of a component stanza without one
        server = JID(self.boundjid.domain.split(".", 1)[-1])
        ping = asyncio.ensure_future(
            self.plugin["xep_0199"].send_ping(server, ifrom=self.boundjid, timeout=10)
        )
        if gone is not None:  # a stream that ends never answers: do not wait out the timeout
            await asyncio.wait((ping, gone), return_when=asyncio.FIRST_COMPLETED)
        if not ping.done():
            ping.cancel()
            log.info("handover ping unanswered: the stream ended; messages stay queued")
            return False
        try:
            await ping
        except IqError:
            pass  # an error answer (a server without XEP-0199) still proves it read what came before
        except Exception as exc:  # IqTimeout, disconnection
            log.info("handover ping failed (%s); messages stay queued", type(exc).__name__)
            return False
        return generation == self.generation and self.online.is_set()

    async def push_roster(self, action: PushRoster | RemoveRoster) -> bool:
        """Set roster items through XEP-0356 in batches; False when not privileged."""
        if not self.grants.can_set_roster(action.to.domain):
            return False
        items = action.entries if isinstance(action, PushRoster) else ()
        removes = action.localparts if isinstance(action, RemoveRoster) else ()
        for start in range(0, max(len(items), len(removes)), ROSTER_BATCH):
            query = privilege.roster_query(
                items[start : start + ROSTER_BATCH], self.boundjid.bare, removes[start : start + ROSTER_BATCH]
            )
            iq = self.make_iq_set(ito=str(action.to), ifrom=self.boundjid.bare)
            iq.append(query)
            await iq.send(timeout=30)
        return True


def _write(note: Note | None) -> None:
    if note is not None:
        log.log(logging.getLevelName(note.level.upper()), "%s", note.text)


def _reason(error: object) -> str:
    """A failed attempt in the operator's words: "Connection refused", not the whole repr."""
    if isinstance(error, OSError):
        if error.errno is not None and error.strerror and not error.strerror.startswith("Connect call"):
            return error.strerror
        if error.errno is not None:
            return os.strerror(error.errno)
        return str(error) or type(error).__name__
    return str(error) or "no answer"
