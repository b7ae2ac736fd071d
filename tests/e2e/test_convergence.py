"""Convergence end to end: one subscriber, reachable on XMPP, on MSN and by plain SMS.

alice has a number (+33612345678) and an MSN account; bob is her MSN buddy. Real Prosody,
the fake SMSC and the fake MSN server; bob is a scripted MSN user, alice's phone is the
SMSC's view of +33612345678.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.addressing import BareJid
from gateway.app import Gateway
from gateway.config import parse
from gateway.devtools.ejabberd import XmppServer
from gateway.devtools.prosody import Prosody
from gateway.storage import Cipher, Store, create_key_file
from tests.conftest import DOMAIN, SECRET
from tests.e2e.msn_fixtures import FAST, Buddy, History, jid_of
from tests.xmpp_client import ScriptedUser
from transports.msn.fake_server import FakeMsnServer
from transports.msn.ns_events import PersonalMessageChanged
from transports.msn.sb import MessageReceived
from transports.msn.transport import MsnTransport
from transports.sms.encoding import decode_text
from transports.sms.fake_smsc import FakeSmsc

pytestmark = pytest.mark.e2e
ALICE_NUMBER, BOB_NUMBER, DAN_NUMBER = "33612345678", "33698765432", "33600000001"
MSN = f"msn.{DOMAIN}"
ALICE_HANDLE = "alice@escargot.test"


def users() -> list[dict[str, Any]]:
    back = [{"handle": ALICE_HANDLE, "lists": ["FL", "AL"]}]
    return [
        {
            "handle": ALICE_HANDLE,
            "password": "alice pw",
            "friendly_name": "Alice",
            "contacts": [
                {"handle": "bob@escargot.test", "lists": ["FL", "AL"]},
                {"handle": "bobby@escargot.test", "lists": ["FL", "AL"]},
                {"handle": "carol@escargot.test", "lists": ["FL", "AL"]},
                {"handle": "auto@escargot.test", "lists": ["FL", "AL"]},  # an auto-responder
            ],
        },
        {
            "handle": "bob@escargot.test",
            "password": "bob pw",
            "friendly_name": "Bob Ébène",
            "contacts": [*back, {"handle": "dan@escargot.test", "lists": ["FL", "AL"]}],
        },
        {"handle": "bobby@escargot.test", "password": "bobby pw", "friendly_name": "Bobby", "contacts": back},
        {"handle": "carol@escargot.test", "password": "carol pw", "friendly_name": "Carol", "contacts": back},
        {"handle": "auto@escargot.test", "password": "auto pw", "friendly_name": "Auto", "contacts": back},
        {  # dan has no XMPP account: an SMS-only subscriber
            "handle": "dan@escargot.test",
            "password": "dan pw",
            "friendly_name": "Dan",
            "contacts": [{"handle": "bob@escargot.test", "lists": ["FL", "AL"]}],
        },
    ]


@dataclass
class World:
    prosody: XmppServer
    smsc: FakeSmsc
    msn: FakeMsnServer
    gateway: Gateway
    store: Store

    def texts_to(self, number: str, since: int = 0) -> list[str]:
        return [
            decode_text(s.short_message, s.pdu.data_coding).text
            for s in self.smsc.submits[since:]
            if s.destination_addr == number and s.status == 0
        ]

    async def phone_receives(self, number: str, since: int, timeout: float = 15) -> str:
        await self.smsc.wait_until(lambda: bool(self.texts_to(number, since)), timeout)
        return self.texts_to(number, since)[0]

    async def phone_sends(self, text: str) -> None:
        await self.smsc.inject_mo(ALICE_NUMBER, "2020", text)


async def start_world(
    prosody: XmppServer,
    tmp_path: Path,
    *,
    msn_users: list[dict[str, Any]] | None = None,
    **sections: dict[str, Any],
) -> World:
    """The gateway with both networks; ``sections`` add to the config (``convergence``,
    ``sms_limits``, ``sms``); ``msn_users`` replaces the fake MSN server's directory."""
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    msn = await FakeMsnServer.start(users=users() if msn_users is None else msn_users)
    config = parse(
        {
            "xmpp": {"port": prosody.component_port, "user_domains": [DOMAIN]},
            "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
            "sms": {
                "jid": f"sms.{DOMAIN}",
                "secret": SECRET,
                "service_number": "2020",
                "smsc": {"port": smsc.port, "system_id": "gw", "password": "smscpw"},
                "limits": sections.get("sms_limits", {}),
                **sections.get("sms", {}),
            },
            "msn": {
                "jid": MSN,
                "secret": SECRET,
                "server": {"port": msn.ns_port, "nexus_url": msn.nexus_url},
            },
            "convergence": {"reply_window_s": 3600, **sections.get("convergence", {})},
        },
        env={},
    )
    create_key_file(config.storage.key_file)
    setup = await Store.open(config.storage.path, Cipher.from_file(config.storage.key_file))
    sub = await setup.add_subscriber(BareJid.parse(f"alice@{DOMAIN}"), time.time())
    await setup.set_account(sub.id, "sms", "+" + ALICE_NUMBER, None, time.time())
    await setup.set_account(sub.id, "msn", ALICE_HANDLE, "alice pw", time.time())
    dan = await setup.add_subscriber(None, time.time())
    await setup.set_account(dan.id, "sms", "+" + DAN_NUMBER, None, time.time())
    await setup.set_account(dan.id, "msn", "dan@escargot.test", "dan pw", time.time())
    await setup.close()
    gateway = Gateway(config)
    bridge = await gateway.start()
    transport = bridge.transports["msn"]
    assert isinstance(transport, MsnTransport)
    transport.options.update(FAST)
    await asyncio.wait_for(bridge.components["msn"].online.wait(), 10)
    assert gateway.store is not None
    return World(prosody, smsc, msn, gateway, gateway.store)


async def stop_world(w: World) -> None:
    await w.gateway.stop()  # the gateway running now (a test may have restarted it)
    await w.msn.stop()
    await w.smsc.stop()


@pytest.fixture
async def world(prosody: Prosody, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(prosody, tmp_path)
    yield w
    await stop_world(w)


async def bob_online(world: World, name: str = "bob") -> Buddy:
    bob = Buddy(world.msn, f"{name}@escargot.test", **FAST)
    await bob.session.login()
    return bob


async def test_away_from_xmpp_msn_becomes_sms_and_sms_replies_reach_msn(world: World) -> None:
    bob = await bob_online(world)
    try:
        # alice has no XMPP client online: her MSN session stays up, saying she is on mobile
        await bob.wait_for(
            lambda e: (
                isinstance(e, PersonalMessageChanged) and e.handle == ALICE_HANDLE and e.text == "On mobile"
            ),
            timeout=15,
        )
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "are you coming tonight?")).ok
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Bob: are you coming tonight?"
        assert world.smsc.submits[sent].source_addr == "2020"

        mark = bob.mark()
        await world.phone_sends("yes, at 8")  # a plain reply goes to whoever wrote last
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=mark, timeout=15)
        assert got.text == "yes, at 8" and got.sender == ALICE_HANDLE

        sent = len(world.smsc.submits)
        await world.phone_sends("/who")
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Online: Bob"

        sent = len(world.smsc.submits)
        await world.phone_sends("@bo hello")  # bob and bobby: ambiguous
        answer = await world.phone_receives(ALICE_NUMBER, sent)
        assert "bo could be:" in answer and "bob@escargot.test" in answer and "bobby@escargot.test" in answer

        mark = bob.mark()
        await world.phone_sends("@bob see you")
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=mark, timeout=15)
        assert got.text == "see you"

        sent = len(world.smsc.submits)
        await world.phone_sends("STOP")
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Forwarding stopped. Text START to resume."
        await bob.wait_for(
            lambda e: isinstance(e, PersonalMessageChanged) and e.handle == ALICE_HANDLE and e.text == "",
            since=mark,
            timeout=15,
        )
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "still there?")).ok
        await asyncio.sleep(1.5)
        assert world.texts_to(ALICE_NUMBER, sent) == []  # stopped: nothing forwarded
        await world.phone_sends("START")
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Forwarding resumed. Text STOP to stop."
    finally:
        await bob.session.close()


async def test_group_lines_are_marked_by_sms_and_sms_replies_stay_private(world: World) -> None:
    """bob calls carol into his switchboard with alice, who is on her phone: the forward
    says it was said with carol, and neither a plain reply nor ``@bob`` goes into the group."""
    bob = await bob_online(world)
    carol = await bob_online(world, "carol")
    try:
        await bob.wait_for(
            lambda e: (
                isinstance(e, PersonalMessageChanged) and e.handle == ALICE_HANDLE and e.text == "On mobile"
            ),
            timeout=15,
        )
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "hi alice")).ok
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Bob: hi alice"
        assert (await bob.session.invite(ALICE_HANDLE, "carol@escargot.test")).ok
        sent = len(world.smsc.submits)
        assert (await bob.session.say_in_group(ALICE_HANDLE, "meet carol")).ok
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Bob: [with carol] meet carol"

        seen = carol.mark()
        for text, expected in (("see you, bob", "see you, bob"), ("@bob only you", "only you")):
            mark = bob.mark()
            await world.phone_sends(text)
            got = await bob.wait_for(
                lambda e, x=expected: isinstance(e, MessageReceived) and e.text == x, since=mark, timeout=15
            )
            assert got.others == ()  # on a switchboard with bob alone
        relayed = [to for frm, to, _ in world.msn.messages if frm == ALICE_HANDLE]
        assert relayed == [("bob@escargot.test",)] * 2
        assert not [e for e in carol.events[seen:] if isinstance(e, MessageReceived)]
    finally:
        await carol.session.close()
        await bob.session.close()


async def test_coming_back_to_xmpp_switches_the_route(world: World, prosody: Prosody) -> None:
    bob = await bob_online(world)
    alice = ScriptedUser(f"alice@{DOMAIN}/laptop", "pw", prosody.c2s_port)
    history = History(alice)
    await alice.online()
    try:
        alice.send_presence(pto=MSN)  # alice's client is online for the MSN component
        await asyncio.sleep(1.0)
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "at your desk?")).ok
        msg = await history.message(jid_of("bob@escargot.test"))
        assert msg["body"] == "at your desk?"
        await asyncio.sleep(0.5)
        assert world.texts_to(ALICE_NUMBER, sent) == []  # on XMPP: no SMS
    finally:
        await alice.close()
        await bob.session.close()


async def test_linked_buddy_is_one_contact_with_an_sms_route(world: World, prosody: Prosody) -> None:
    sub = await world.store.subscriber_by_jid(BareJid.parse(f"alice@{DOMAIN}"))
    assert sub is not None
    await world.store.link_phone(sub.id, "msn", "carol@escargot.test", "+" + BOB_NUMBER)
    alice = ScriptedUser(f"alice@{DOMAIN}/laptop", "pw", prosody.c2s_port)
    history = History(alice)
    await alice.online()
    try:
        alice.send_presence(pto=MSN)
        await asyncio.sleep(1.0)
        # carol is not on MSN: a message to her MSN JID leaves by SMS from alice's number
        sent = len(world.smsc.submits)
        alice.send_message(mto=jid_of("carol@escargot.test"), mbody="call me", mtype="chat")
        assert await world.phone_receives(BOB_NUMBER, sent) == "call me"
        assert world.smsc.submits[sent].source_addr == ALICE_NUMBER
        # and an SMS from carol's number arrives from her MSN JID
        await world.smsc.inject_mo(BOB_NUMBER, ALICE_NUMBER, "calling now")
        msg = await history.message(jid_of("carol@escargot.test"))
        assert msg["body"] == "calling now"
    finally:
        await alice.close()


async def test_sms_only_subscriber_chats_with_msn(world: World) -> None:
    bob = await bob_online(world)
    try:
        await bob.wait_for(
            lambda e: (
                isinstance(e, PersonalMessageChanged)
                and e.handle == "dan@escargot.test"
                and e.text == "On mobile"
            ),
            timeout=15,
        )
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message("dan@escargot.test", "hi Dan")).ok
        assert await world.phone_receives(DAN_NUMBER, sent) == "Bob: hi Dan"
        mark = bob.mark()
        await world.smsc.inject_mo(DAN_NUMBER, "2020", "hello Bob")
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=mark, timeout=15)
        assert got.text == "hello Bob" and got.sender == "dan@escargot.test"
    finally:
        await bob.session.close()


async def test_gateway_restart_mid_forward_loses_and_duplicates_nothing(world: World) -> None:
    bob = await bob_online(world)
    try:
        await bob.wait_for(
            lambda e: (
                isinstance(e, PersonalMessageChanged) and e.handle == ALICE_HANDLE and e.text == "On mobile"
            ),
            timeout=15,
        )
        world.smsc.stop_answering(True)  # the SMSC hangs: the forwards wait in the outbox
        sent = len(world.smsc.submits)
        for n in range(3):
            assert (await bob.session.send_message(ALICE_HANDLE, f"forward {n}")).ok
        await asyncio.sleep(1.5)
        await world.gateway.stop()
        world.smsc.stop_answering(False)
        await world.smsc.drop_connections()
        restarted = Gateway(world.gateway.config)
        bridge = await restarted.start()
        world.gateway = restarted
        await asyncio.wait_for(bridge.components["msn"].online.wait(), 10)
        wanted = {f"Bob: forward {n}" for n in range(3)}
        await world.smsc.wait_until(lambda: wanted <= set(world.texts_to(ALICE_NUMBER, sent)), 30)
        await asyncio.sleep(1.0)
        texts = world.texts_to(ALICE_NUMBER, sent)
        assert sorted(texts) == sorted(wanted)  # each once
    finally:
        await bob.session.close()
