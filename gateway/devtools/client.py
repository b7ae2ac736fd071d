"""A small scripted XMPP user for the demo (a real slixmpp client on plaintext loopback)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

from slixmpp import ClientXMPP
from slixmpp.stanza import Message, Presence
from slixmpp.xmlstream import ET, StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

_SSL = ssl.create_default_context()
SENT_CARBON = "{urn:xmpp:carbons:2}sent/{urn:xmpp:forward:0}forwarded/{jabber:client}message"


class LoopbackClient(ClientXMPP):
    """A slixmpp client for a throwaway Prosody: plaintext loopback, PLAIN, one shared CA store."""

    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(
            jid,
            password,
            sasl_mech="PLAIN",
            plugin_config={"feature_mechanisms": {"unencrypted_plain": True}},
        )
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        self.ssl_context = _SSL
        self.port = port


class DemoUser(LoopbackClient):
    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(jid, password, port)
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.presences: asyncio.Queue[Presence] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.auto_authorize = None
        self.register_handler(Callback("demo-messages", MatchXPath("{jabber:client}message"), self._message))
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("session_start", self._start)

    async def _start(self, _: Any) -> None:
        self.send_presence()
        await self.get_roster()
        self.ready.set()

    def _message(self, stanza: StanzaBase) -> None:
        msg = cast(Message, stanza)
        if msg.xml.find("{urn:xmpp:privilege:2}privilege") is None:
            self.messages.put_nowait(msg)

    async def online(self) -> None:
        self.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self.ready.wait(), 15)

    async def register(self, component: str, **values: str) -> None:
        iq = self.make_iq_set(ito=component)
        query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
        form = ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
        for var, value in values.items():
            field = ET.SubElement(form, "{jabber:x:data}field", {"var": var})
            ET.SubElement(field, "{jabber:x:data}value").text = value
        await iq.send(timeout=15)

    async def accept_gateway(self, component: str) -> None:
        """Answer the component's subscription request and subscribe back (XEP-0100)."""
        await self.next_presence(component, "subscribe")
        self.send_presence(pto=component, ptype="subscribed")
        self.send_presence(pto=component, ptype="subscribe")
        await self.next_presence(component, "subscribed")
        self.send_presence()

    async def next_presence(self, sender: str, ptype: str, timeout: float = 15) -> Presence:
        async with asyncio.timeout(timeout):
            while True:
                pres = await self.presences.get()
                if pres["from"].bare == sender and pres["type"] == ptype:
                    return pres

    async def next_message(self, from_bare: str, timeout: float = 15) -> Message:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.messages.get()
                if msg["from"].bare == from_bare and msg["body"]:
                    return msg

    def sent_carbon(self, msg: Message) -> tuple[str, str] | None:
        """(to, body) of the message a XEP-0280 sent carbon from the account itself copies
        (what the user sent from elsewhere, e.g. by SMS); None for any other message."""
        inner = msg.xml.find(SENT_CARBON)
        if inner is None or msg["from"].bare != self.boundjid.bare:
            return None
        return inner.get("to", ""), inner.findtext("{jabber:client}body") or ""

    async def close(self) -> None:
        self.disconnect()
        try:
            await asyncio.wait_for(self.disconnected, 3)
        except (TimeoutError, asyncio.CancelledError):
            self.abort()
