"""The gateway beside ejabberd: Debian's ejabberd 23.01 in a temp dir (gateway.devtools.ejabberd),
configured with the very snippet ``passerelle init`` prints, the fake SMSC, the fake MSN server
and scripted users. One set of flows, reusing the Prosody suites' helpers, for what differs on
ejabberd: ``urn:xmpp:privilege:1`` (roster set fails, so rosters fill by subscription; sent
carbons go through privileged messages), one listener for both components
(``global_routes: false``), s2s denied for the gateway's domains, and a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway.app import Gateway
from gateway.devtools.ejabberd import ComponentSpec, Ejabberd, ejabberd_libs
from gateway.storage import create_key_file
from gateway.xmpp.privilege import NS_PRIVILEGE, Grants
from tests.conftest import DOMAIN, SECRET
from tests.e2e.msn_fixtures import ALICE as ALICE_MSN
from tests.e2e.msn_fixtures import ALICE_PW as ALICE_MSN_PW
from tests.e2e.msn_fixtures import FAST, MSN_JID, Buddy, History, jid_of, msn_config, register, seed, until
from tests.e2e.test_convergence import ALICE_HANDLE, ALICE_NUMBER, bob_online, start_world, stop_world
from tests.e2e.test_convergence import BOB_NUMBER as BOB_SMS
from tests.e2e.test_convergence import World as ConvergenceWorld
from tests.e2e.test_convergence_away import (
    alice_seen,
    carbon_of,
    client,
    is_carbon,
    on_mobile,
    received,
    sent_to,
)
from tests.e2e.test_sms import ALICE_NUMBER as SMS_ALICE
from tests.e2e.test_sms import BOB_NUMBER, SMS, link_number, sms_config
from tests.e2e.test_sms import World as SmsWorld
from tests.e2e.test_sms import start as start_sms
from tests.xmpp_client import ScriptedUser
from transports.msn.fake_server import FakeMsnServer
from transports.msn.sb import MessageReceived
from transports.msn.transport import MsnTransport
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.receipts import ReceiptState

pytestmark = pytest.mark.e2e
ALICE = f"alice@{DOMAIN}"
RECEIPTS = "urn:xmpp:receipts"
BOB, CAROL = jid_of("bob@escargot.test"), jid_of("carol@escargot.test")


@pytest.fixture
def ejabberd(tmp_path: Path) -> Iterator[Ejabberd]:
    if ejabberd_libs() is None:
        pytest.fail("ejabberd is not installed: run `make test`, which installs it")
    server = Ejabberd(
        tmp_path / "ejabberd", DOMAIN, [ComponentSpec(SMS, SECRET), ComponentSpec(MSN_JID, SECRET)]
    )
    server.start()
    server.register("alice", "pw")
    yield server
    server.stop()


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    server = FakeSmsc(system_id="gw", password="smscpw")
    await server.start()
    yield server
    await server.stop()


def with_receipt_request(user: ScriptedUser, to: str, body: str, msg_id: str) -> None:
    msg = user.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = msg_id
    ET.SubElement(msg.xml, f"{{{RECEIPTS}}}request")
    msg.send()


async def test_sms_registration_chat_receipts_and_errors_to_the_full_jid(
    ejabberd: Ejabberd, smsc: FakeSmsc, tmp_path: Path
) -> None:
    config = sms_config(tmp_path, ejabberd, smsc)
    alice = ScriptedUser(f"{ALICE}/phone", "pw", ejabberd.c2s_port)
    world = SmsWorld(ejabberd, smsc, config, await start_sms(config, smsc), alice)
    await alice.online()
    try:
        await link_number(world, alice)  # registration, and the XEP-0100 subscription
        assert world.sms.store is not None
        sub = await world.sms.store.subscriber_by_account("sms", SMS_ALICE)
        assert sub is not None and str(sub.jid) == ALICE
        bob = f"{BOB_NUMBER}@{SMS}"
        with_receipt_request(alice, bob, "did you get this", "m-ok")
        got = await alice.next_message(from_bare=bob)
        assert got.xml.find(f"{{{RECEIPTS}}}received").get("id") == "m-ok"
        assert str(got["to"]) == f"{ALICE}/phone"

        smsc.receipt_state = ReceiptState.UNDELIV  # the failed receipt: an error to the full JID
        with_receipt_request(alice, bob, "and this", "m-fail")
        err = await alice.next_message(type="error")
        assert (err["id"], err["error"]["condition"]) == ("m-fail", "recipient-unavailable")
        assert str(err["to"]) == f"{ALICE}/phone" and "UNDELIV" in err["error"]["text"]

        alice.send_message(mto=f"not-a-number@{SMS}", mbody="hi", mtype="chat")
        err = await alice.next_message(type="error")
        assert err["error"]["condition"] == "jid-malformed" and str(err["to"]) == f"{ALICE}/phone"

        await smsc.inject_mo(BOB_NUMBER.lstrip("+"), SMS_ALICE.lstrip("+"), "Crème brûlée 😀", coding=8)
        msg = await alice.next_message(from_bare=bob)
        assert msg["body"] == "Crème brûlée 😀"
    finally:
        await alice.close()
        await world.gateway.stop()


@pytest.fixture
async def msn_server() -> AsyncIterator[FakeMsnServer]:
    server = await FakeMsnServer.start(users=seed())
    yield server
    await server.stop()


async def test_msn_registration_roster_by_subscription_chat_receipts_and_errors(
    ejabberd: Ejabberd, msn_server: FakeMsnServer, tmp_path: Path
) -> None:
    """ejabberd 23.01 grants the roster privilege in ``urn:xmpp:privilege:1``, whose roster
    set fails: the gateway fills the roster by subscription instead (each buddy asks, with
    its name), and uses the message privilege it does grant."""
    config = msn_config(tmp_path, ejabberd.component_port, msn_server)
    create_key_file(config.storage.key_file)
    gateway = Gateway(config)
    bridge = await gateway.start()
    transport = bridge.transports["msn"]
    assert isinstance(transport, MsnTransport)
    transport.options.update(FAST)
    user = ScriptedUser(f"{ALICE}/laptop", "pw", ejabberd.c2s_port)
    history = History(user)
    bob = Buddy(msn_server, "bob@escargot.test", **FAST)
    try:
        await asyncio.wait_for(bridge.components["msn"].online.wait(), 10)
        grants = bridge.components["msn"].grants
        await until(lambda: DOMAIN in grants.namespace)
        assert (grants.namespace[DOMAIN], grants.roster[DOMAIN]) == (NS_PRIVILEGE[1], "both")
        assert not grants.can_set_roster(DOMAIN) and grants.can_send_as_user(DOMAIN)
        await bob.session.login()
        await user.online()
        with pytest.raises(IqError) as bad:
            await register(user, ALICE_MSN, "not my password")
        assert bad.value.iq["error"]["condition"] == "not-authorized"
        await register(user, ALICE_MSN, ALICE_MSN_PW)
        await history.presence(MSN_JID, type="subscribe")
        user.send_presence(pto=MSN_JID, ptype="subscribed")
        user.send_presence(pto=MSN_JID, ptype="subscribe")
        await history.presence(MSN_JID, type="subscribed")
        user.send_presence()

        ask = await history.presence(BOB, type="subscribe")  # the roster, by subscription
        assert ask.xml.findtext("{http://jabber.org/protocol/nick}nick") == "Bob Ébène"
        await history.presence(CAROL, type="subscribe")
        user.send_presence(pto=BOB, ptype="subscribed")
        user.send_presence(pto=BOB, ptype="subscribe")
        await until(lambda: BOB in user.client_roster and user.client_roster[BOB]["subscription"] == "both")
        await history.presence(BOB, type="available")

        mark = history.mark()
        with_receipt_request(user, BOB, "Grüß dich, Bob 👋", "m-asked")
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived))
        assert (got.sender, got.text) == (ALICE_MSN, "Grüß dich, Bob 👋")
        receipt = await history.wait(lambda s: s.xml.find(f"{{{RECEIPTS}}}received") is not None, mark)
        assert str(receipt["from"]) == BOB and str(receipt["to"]) == f"{ALICE}/laptop"
        await bob.session.send_message(ALICE_MSN, "Bien reçu ✓")
        reply = await history.message(BOB, mark, type="chat", body="Bien reçu ✓")
        assert reply["to"].bare == ALICE

        mark = history.mark()
        user.send_message(mto=f"bob@{MSN_JID}", mbody="hi", mtype="chat")  # not an MSN handle
        err = await history.message(f"bob@{MSN_JID}", mark, type="error")
        assert err["error"]["condition"] == "jid-malformed" and str(err["to"]) == f"{ALICE}/laptop"
    finally:
        await bob.session.close()
        await user.close()
        with contextlib.suppress(TimeoutError):
            await until(lambda: not transport.logins, timeout=3)
        await gateway.stop()


@pytest.fixture
async def world(ejabberd: Ejabberd, tmp_path: Path) -> AsyncIterator[ConvergenceWorld]:
    """Both networks; alice has a number and an MSN account (test_convergence's world)."""
    w = await start_world(ejabberd, tmp_path)
    yield w
    await stop_world(w)


async def test_away_msn_goes_by_sms_the_reply_reaches_msn_and_shows_as_a_carbon(
    world: ConvergenceWorld, ejabberd: Ejabberd
) -> None:
    """The sent carbon of the SMS reply goes through a ``urn:xmpp:privilege:1`` privileged
    message, the only namespace ejabberd 23.01 takes."""
    bob = await bob_online(world)
    try:
        await on_mobile(world, bob)
        async with client(world, ejabberd, "tablet", off_gateway=True) as (_, tablet):
            sent = len(world.smsc.submits)
            assert (await bob.session.send_message(ALICE_HANDLE, "are you coming tonight?")).ok
            assert await world.phone_receives(ALICE_NUMBER, sent) == "Bob: are you coming tonight?"
            msg = await tablet.message(BOB)
            assert msg["body"] == "are you coming tonight?"

            mark, seen = tablet.mark(), bob.mark()
            await world.phone_sends("yes, at 8")
            await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
            assert received(bob, seen) == ["yes, at 8"]
            carbon = await tablet.wait(is_carbon, since=mark, timeout=10)
            assert carbon_of(carbon) == sent_to("bob@escargot.test", "yes, at 8")
    finally:
        await bob.session.close()


async def test_components_come_back_after_an_ejabberd_restart(
    world: ConvergenceWorld, ejabberd: Ejabberd
) -> None:
    bridge = world.gateway.bridge
    assert bridge is not None
    before = {network: c.generation for network, c in bridge.components.items()}
    bridge.components["msn"].grants = Grants()  # to see them granted again on the new stream
    await asyncio.to_thread(ejabberd.restart)
    await until(
        lambda: all(c.online.is_set() and c.generation > before[n] for n, c in bridge.components.items()),
        timeout=20,
    )
    grants = bridge.components["msn"].grants
    await until(lambda: grants.can_send_as_user(DOMAIN))
    bob = await bob_online(world)
    try:
        async with client(world, ejabberd, "laptop") as (alice, history):
            await until(lambda: alice_seen(world))  # her presence reaches the gateway (privilege)
            mark = history.mark()
            await bob.session.send_message(ALICE_HANDLE, "still there?")
            assert (await history.message(BOB, mark))["body"] == "still there?"
            seen = bob.mark()
            alice.send_message(mto=BOB, mbody="yes", mtype="chat")
            await bob.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "yes", since=seen)
            sent = len(world.smsc.submits)
            alice.send_message(mto=f"+{BOB_SMS}@{SMS}", mbody="by SMS", mtype="chat")
            await world.smsc.wait_for_submits(sent + 1, timeout=15)
    finally:
        await bob.session.close()


async def test_each_gateway_domain_reaches_its_own_component_only_and_never_s2s(
    ejabberd: Ejabberd, smsc: FakeSmsc, tmp_path: Path
) -> None:
    """With no component connected, ejabberd refuses a stanza for a gateway domain (s2s is
    denied for them) instead of trying the outside world; with only the SMS component
    connected, a stanza for the MSN domain is still refused: the SMS component's connection
    does not carry the MSN domain (``global_routes: false``)."""
    alice = ScriptedUser(f"{ALICE}/phone", "pw", ejabberd.c2s_port)
    await alice.online()

    async def answer_to(to: str) -> Any:
        msg = alice.make_message(mto=to, mbody="anyone?", mtype="chat")
        msg["id"] = f"while-{to}"
        msg.send()
        return await alice.next_message(type="error", id=msg["id"], timeout=5)

    try:
        for to in (f"{BOB_NUMBER}@{SMS}", BOB):
            err = await answer_to(to)
            assert err["error"]["condition"] == "forbidden" and str(err["to"]) == f"{ALICE}/phone"
        gateway = await start_sms(sms_config(tmp_path, ejabberd, smsc), smsc)
        try:
            err = await answer_to(f"{BOB_NUMBER}@{SMS}")  # the SMS component answers: not registered
            assert err["error"]["condition"] == "registration-required"
            err = await answer_to(BOB)
            assert err["error"]["condition"] == "forbidden"
        finally:
            await gateway.stop()
    finally:
        await alice.close()
    assert "Outbound s2s connection" not in ejabberd.log_path.read_text()
