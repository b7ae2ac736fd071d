"""Helpers for the MSN end-to-end tests: the seeded buddy list, scripted MSN users, and a
stanza history for XMPP users that keeps what a test has not looked at yet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slixmpp.stanza import Message, Presence
from slixmpp.xmlstream import ET, StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from gateway.config import Config, parse
from tests.conftest import DOMAIN, SECRET
from tests.xmpp_client import ScriptedUser
from transports.msn.client import MsnSession, SessionConfig, SessionEvent
from transports.msn.fake_server import FakeMsnServer

MSN_JID = f"msn.{DOMAIN}"
ALICE = "alice@escargot.test"
ALICE_PW = "alice pw"
CHATSTATES = "http://jabber.org/protocol/chatstates"
FAST = {"timeout": 3.0, "login_timeout": 5.0, "backoff_initial": 0.2, "backoff_max": 0.5}


def seed() -> list[dict[str, Any]]:
    """alice's lists cover every subscription state; the others are scripted MSN users."""

    def back(*lists: str) -> list[dict[str, Any]]:
        return [{"handle": ALICE, "lists": list(lists)}]

    return [
        {
            "handle": ALICE,
            "password": ALICE_PW,
            "friendly_name": "Alice",
            "contacts": [
                {"handle": "bob@escargot.test", "lists": ["FL", "AL"], "groups": ["Friends"]},
                {"handle": "carol@escargot.test", "lists": ["FL", "AL"], "groups": ["Friends", "Work"]},
                {"handle": "erin@escargot.test", "lists": ["FL", "AL", "PL"]},  # added alice while away
                {"handle": "frank@escargot.test", "lists": ["FL"]},  # alice watches, frank does not
                {"handle": "gina@escargot.test", "lists": ["AL"]},  # gina watches, alice does not
                {"handle": "dave@escargot.test", "lists": ["BL"]},  # blocked
            ],
        },
        {
            "handle": "bob@escargot.test",
            "password": "bob pw",
            "friendly_name": "Bob Ébène",
            "contacts": back("FL", "AL"),
        },
        {
            "handle": "carol@escargot.test",
            "password": "carol pw",
            "friendly_name": "Carol",
            "contacts": back("FL", "AL"),
        },
        {
            "handle": "erin@escargot.test",
            "password": "erin pw",
            "friendly_name": "Erin",
            "contacts": back("FL", "AL"),
        },
        {"handle": "frank@escargot.test", "password": "frank pw", "friendly_name": "Frank"},
        {
            "handle": "gina@escargot.test",
            "password": "gina pw",
            "friendly_name": "Gina",
            "contacts": back("FL", "AL"),
        },
        {
            "handle": "dave@escargot.test",
            "password": "dave pw",
            "friendly_name": "Dave",
            "contacts": back("FL"),
        },
        {"handle": "henry@escargot.test", "password": "henry pw", "friendly_name": "Henry"},
        {"handle": "ivan@escargot.test", "password": "ivan pw", "friendly_name": "Ivan"},
    ]


def msn_config(tmp_path: Path, component_port: int, server: FakeMsnServer) -> Config:
    return parse(
        {
            "xmpp": {"host": "127.0.0.1", "port": component_port, "user_domains": [DOMAIN]},
            "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
            "msn": {
                "jid": MSN_JID,
                "secret": SECRET,
                "server": {"host": "127.0.0.1", "port": server.ns_port, "nexus_url": server.nexus_url},
            },
        },
        env={},
    )


def jid_of(handle: str) -> str:
    return handle.replace("@", "\\40") + "@" + MSN_JID


class Buddy:
    """A scripted MSN user: a second MsnSession on the fake server, recording its events."""

    def __init__(self, server: FakeMsnServer, handle: str, **options: Any) -> None:
        user = server.directory.get(handle)
        assert user is not None
        config = SessionConfig(
            handle,
            user.password,
            ns_host="127.0.0.1",
            ns_port=server.ns_port,
            nexus_url=server.nexus_url,
            **{**FAST, **options},
        )
        self.handle = handle
        self.events: list[SessionEvent] = []
        self._changed = asyncio.Event()
        self.session = MsnSession(config, self._record)

    def _record(self, event: SessionEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def mark(self) -> int:
        return len(self.events)

    async def wait_for(self, predicate: Callable[[Any], bool], since: int = 0, timeout: float = 8.0) -> Any:
        async with asyncio.timeout(timeout):
            seen = since
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()


class History:
    """Every presence and message an XMPP user received, searchable after the fact."""

    def __init__(self, user: ScriptedUser) -> None:
        self.stanzas: list[StanzaBase] = []
        self._changed = asyncio.Event()
        user.register_handler(Callback("e2e-msg", MatchXPath("{jabber:client}message"), self._add))
        user.add_event_handler("presence", self._add)

    def _add(self, stanza: StanzaBase) -> None:
        if stanza.xml.find("{urn:xmpp:privilege:2}privilege") is None:
            self.stanzas.append(stanza)
            self._changed.set()

    def mark(self) -> int:
        return len(self.stanzas)

    async def wait(self, predicate: Callable[[Any], bool], since: int = 0, timeout: float = 8.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for stanza in self.stanzas[since:]:
                    if predicate(stanza):
                        return stanza
                self._changed.clear()
                await self._changed.wait()

    async def presence(self, frm: str, since: int = 0, **fields: str) -> Presence:
        return await self.wait(lambda s: isinstance(s, Presence) and _matches(s, frm, fields), since)

    async def message(self, frm: str, since: int = 0, **fields: str) -> Message:
        return await self.wait(lambda s: isinstance(s, Message) and _matches(s, frm, fields), since)

    def chat_states(self, frm: str, since: int = 0) -> list[str]:
        return [
            child.tag.split("}")[1]
            for s in self.stanzas[since:]
            if isinstance(s, Message) and str(s["from"].bare) == frm
            for child in s.xml
            if child.tag.startswith(f"{{{CHATSTATES}}}")
        ]


def _matches(stanza: StanzaBase, frm: str, fields: dict[str, str]) -> bool:
    if str(stanza["from"].bare) != frm and str(stanza["from"]) != frm:
        return False
    return all(str(stanza[k]) == v for k, v in fields.items())


async def register(user: ScriptedUser, handle: str, password: str) -> None:
    iq = user.make_iq_set(ito=MSN_JID)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    form = ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
    for var, value in (("FORM_TYPE", "jabber:iq:register"), ("handle", handle), ("password", password)):
        field = ET.SubElement(form, "{jabber:x:data}field", {"var": var})
        ET.SubElement(field, "{jabber:x:data}value").text = value
    await iq.send(timeout=15)


async def sign_in(user: ScriptedUser, history: History, expected: set[str]) -> None:
    """Register alice's MSN account, accept the gateway (XEP-0100), wait for the roster."""
    await register(user, ALICE, ALICE_PW)
    await history.presence(MSN_JID, type="subscribe")
    user.send_presence(pto=MSN_JID, ptype="subscribed")
    user.send_presence(pto=MSN_JID, ptype="subscribe")
    await history.presence(MSN_JID, type="subscribed")
    user.send_presence()
    await until(lambda: expected <= set(user.client_roster.keys()))


async def until(predicate: Callable[[], bool], timeout: float = 8.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def send_chat_state(user: ScriptedUser, to: str, state: str) -> None:
    msg = user.make_message(mto=to, mtype="chat")
    ET.SubElement(msg.xml, f"{{{CHATSTATES}}}{state}")
    msg.send()
