"""The gateway beside ejabberd: Debian's ejabberd 23.01 in a temp dir (gateway.devtools.ejabberd),
configured with the very snippet ``passerelle init`` prints, the fake SMSC, the fake MSN server
and scripted users. One set of flows, reusing the Prosody suites' helpers, for what differs on
ejabberd: ``urn:xmpp:privilege:1`` (roster set fails, so rosters fill by subscription; sent
carbons go through privileged messages), one listener for both components
(``global_routes: false``), s2s denied for the gateway's domains, and a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError
from slixmpp.stanza import Presence
from slixmpp.xmlstream import ET

from gateway.app import Gateway
from gateway.devtools.ejabberd import ComponentSpec, Ejabberd, ejabberd_libs
from gateway.storage import create_key_file
from gateway.xmpp.privilege import NS_PRIVILEGE
from tests.conftest import DOMAIN, SECRET
from tests.e2e.msn_fixtures import FAST, MSN_JID, Buddy, History, jid_of, msn_config, register, seed, until
from tests.e2e.test_convergence import ALICE_HANDLE, ALICE_NUMBER, bob_online, start_world, stop_world
from tests.e2e.test_convergence_away import (
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


@pytest.fixture
def ejabberd(tmp_path: Path) -> Iterator[Ejabberd]:
    if ejabberd_libs() is None:
        pytest.fail("ejabberd is not installed: run `make test`, which installs it")
    server = Ejabberd(tmp_path / "ejabberd", DOMAIN, [ComponentSpec(SMS, SECRET), ComponentSpec(MSN_JID, SECRET)])
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
