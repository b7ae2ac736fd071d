"""End to end over MSN: a real Prosody, the gateway, the fake MSN server, alice on XMPP and
scripted MSN users (bob, carol…) on their own sessions. Reads like a conversation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway.addressing import BareJid, FullJid
from gateway.app import Gateway
from gateway.core.events import XmppPresenceReceived
from gateway.core.model import Presence, Show
from gateway.devtools.prosody import ComponentSpec, Prosody
from gateway.storage import create_key_file
from tests.conftest import DOMAIN, SECRET
from tests.e2e.msn_fixtures import (
    ALICE,
    ALICE_PW,
    FAST,
    MSN_JID,
    Buddy,
    History,
    jid_of,
    msn_config,
    register,
    seed,
    send_chat_state,
    sign_in,
    until,
)
from tests.xmpp_client import ScriptedUser
from transports.msn.fake_server import FakeMsnServer
from transports.msn.ns_events import ListChanged, PersonalMessageChanged, PresenceChanged
from transports.msn.sb import MessageReceived, TypingReceived
from transports.msn.status import ListBit, Status
from transports.msn.transport import MsnTransport

pytestmark = pytest.mark.e2e
BOB, CAROL, ERIN = jid_of("bob@escargot.test"), jid_of("carol@escargot.test"), jid_of("erin@escargot.test")
ROSTER = {
    BOB,
    CAROL,
    ERIN,
    jid_of("frank@escargot.test"),
    jid_of("gina@escargot.test"),
    jid_of("dave@escargot.test"),
}


@pytest.fixture
async def msn_server() -> AsyncIterator[FakeMsnServer]:
    server = await FakeMsnServer.start(users=seed())
    yield server
    await server.stop()


@pytest.fixture
def msn_prosody(tmp_path: Path) -> Iterator[Prosody]:
    server = Prosody(tmp_path / "prosody", DOMAIN, [ComponentSpec(MSN_JID, SECRET)])
    server.start()
    server.register("alice", "pw")
    yield server
    server.stop()


@pytest.fixture  # overrides tests/conftest.py's ``gateway``: this one serves MSN
async def gateway(msn_prosody: Prosody, msn_server: FakeMsnServer, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = msn_config(tmp_path, msn_prosody.component_port, msn_server)
    create_key_file(config.storage.key_file)
    gateway = Gateway(config)  # the real wiring: build_msn(config, store)
    bridge = await gateway.start()
    transport = bridge.transports["msn"]
    assert isinstance(transport, MsnTransport)
    transport.options.update(FAST)
    await asyncio.wait_for(bridge.components["msn"].online.wait(), 10)
    yield gateway
    # alice has just gone offline: let the bridge finish reacting before it is stopped (a wake-up
    # racing the cancellation of its workers can make the stop wait for its 10 s bound)
    with contextlib.suppress(TimeoutError):
        await until(lambda: not transport.logins, timeout=3)
    await asyncio.sleep(0.1)
    await gateway.stop()


@pytest.fixture  # overrides the echo-network ``alice`` of tests/conftest.py for this module
async def alice(msn_prosody: Prosody) -> AsyncIterator[tuple[ScriptedUser, History]]:
    user = ScriptedUser(f"alice@{DOMAIN}/laptop", "pw", msn_prosody.c2s_port)
    history = History(user)
    await user.online()
    yield user, history
    await user.close()


@pytest.fixture
async def buddies(msn_server: FakeMsnServer) -> AsyncIterator[dict[str, Buddy]]:
    """Scripted MSN users, logged in with :func:`log_in`; logged out at the end."""
    online: dict[str, Buddy] = {}
    yield online
    for buddy in online.values():
        await buddy.session.close()


async def log_in(server: FakeMsnServer, online: dict[str, Buddy], name: str, **options: object) -> Buddy:
    buddy = Buddy(server, f"{name}@escargot.test", **options)
    await buddy.session.login()
    online[name] = buddy
    return buddy


def sees(handle: str, status: Status) -> Callable[[object], bool]:
    return lambda e: isinstance(e, PresenceChanged) and e.handle == handle and e.status is status


async def test_registration_checks_the_password_by_signing_in(
    gateway: Gateway, alice: tuple[ScriptedUser, History], msn_server: FakeMsnServer, tmp_path: Path
) -> None:
    user, history = alice
    form = await user.plugin["xep_0077"].get_registration(jid=MSN_JID, timeout=10)
    assert {"handle", "password"} <= {f.get("var") for f in form.xml.iter("{jabber:x:data}field")}
    info = await user.plugin["xep_0030"].get_info(jid=MSN_JID, timeout=10)
    assert "http://jabber.org/protocol/chatstates" in info["disco_info"]["features"]
    with pytest.raises(IqError) as bad:
        await register(user, ALICE, "not my password")
    assert bad.value.iq["error"]["condition"] == "not-authorized"
    assert "refused" in bad.value.iq["error"]["text"]
    msn_server.advertised_login_url = "http://127.0.0.1:9/login"  # a login URL nobody serves
    with pytest.raises(IqError) as down:
        await register(user, ALICE, ALICE_PW)
    assert down.value.iq["error"]["condition"] == "remote-server-timeout"
    assert "http://127.0.0.1:9/login" in down.value.iq["error"]["text"]
    assert gateway.store is not None and await gateway.store.subscribers() == []
    msn_server.advertised_login_url = None
    await register(user, ALICE, ALICE_PW)
    await history.presence(MSN_JID, type="subscribe")
    sub = await gateway.store.subscriber_by_jid(BareJid.parse(f"alice@{DOMAIN}"))
    assert sub is not None and await gateway.store.account_secret(sub.id, "msn") == ALICE_PW
    assert ALICE_PW.encode() not in (tmp_path / "gw.db").read_bytes()  # encrypted at rest
    # jabber:iq:gateway turns an MSN address into its JID; a JID that is no handle is refused
    iq = user.make_iq_set(ito=MSN_JID)
    ET.SubElement(
        ET.SubElement(iq.xml, "{jabber:iq:gateway}query"), "{jabber:iq:gateway}prompt"
    ).text = "Bob@Escargot.test"
    answer = await iq.send(timeout=10)
    assert answer.xml.findtext(".//{jabber:iq:gateway}jid") == BOB
    mark = history.mark()
    user.send_message(mto=f"bob@{MSN_JID}", mbody="hi", mtype="chat")
    err = await history.message(f"bob@{MSN_JID}", mark, type="error")
    assert err["error"]["condition"] == "jid-malformed" and "not an MSN handle" in err["error"]["text"]


async def test_buddy_list_fills_the_roster_with_names_groups_and_subscriptions(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob", personal_message="Gone fishing")
    carol = await log_in(msn_server, buddies, "carol")
    carol.session.set_presence(Status.BSY)
    await sign_in(user, history, ROSTER)
    roster = user.client_roster
    assert (roster[BOB]["name"], roster[BOB]["subscription"], roster[BOB]["groups"]) == (
        "Bob Ébène",
        "both",
        ["Friends"],
    )
    assert sorted(roster[CAROL]["groups"]) == ["Friends", "Work"]
    expected = {
        BOB: "both",
        CAROL: "both",
        ERIN: "to",
        jid_of("frank@escargot.test"): "to",
        jid_of("gina@escargot.test"): "from",
        jid_of("dave@escargot.test"): "none",
    }
    assert {j: roster[j]["subscription"] for j in expected} == expected
    ask = await history.presence(ERIN, type="subscribe")  # erin added alice while she was away
    assert ask.xml.findtext("{http://jabber.org/protocol/nick}nick") == "Erin"
    await history.presence(BOB, type="available", status="Gone fishing")
    await history.presence(CAROL, type="dnd")
    # alice appears online to her MSN buddies
    await bob.wait_for(sees(ALICE, Status.NLN))


async def test_contact_statuses_and_personal_messages_reach_xmpp(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    await history.presence(BOB, type="available")
    for status, show, psm, text in [
        (Status.BSY, "dnd", "In a meeting", "In a meeting"),
        (Status.AWY, "away", "", ""),
        (Status.IDL, "away", "", "Idle"),
        (Status.NLN, "available", "Back ✓", "Back ✓"),
    ]:
        mark = history.mark()
        bob.session.set_presence(status, psm)
        await history.presence(BOB, mark, type=show, status=text)
    mark = history.mark()
    bob.session.set_presence(Status.HDN)
    await history.presence(BOB, mark, type="unavailable")


SUBSCRIBER_STATUSES = [
    ("away", Status.AWY, "Out for a walk"),
    ("dnd", Status.BSY, "Busy <b>"),
    ("xa", Status.AWY, "Gone home"),
    (None, Status.NLN, ""),
]


async def test_subscriber_presence_from_an_xmpp_client_reaches_msn(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    await bob.wait_for(sees(ALICE, Status.NLN))
    for show, status, text in SUBSCRIBER_STATUSES:
        seen = bob.mark()
        user.send_presence(pshow=show, pstatus=text or None)
        await bob.wait_for(sees(ALICE, status), seen, timeout=3)
        await bob.wait_for(lambda e, t=text: e == PersonalMessageChanged(ALICE, t), seen, timeout=3)


async def test_subscriber_presence_through_the_bridge_reaches_msn(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    """The same as above from the bridge's entry point on: what the component would pass on."""
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    await bob.wait_for(sees(ALICE, Status.NLN))
    assert gateway.bridge is not None
    sender = FullJid.parse(f"alice@{DOMAIN}/laptop")
    for show, status, text in SUBSCRIBER_STATUSES:
        seen = bob.mark()
        presence = Presence(Show(show or ""), text)
        await gateway.bridge.presence_received(
            "msn", XmppPresenceReceived(sender, None, "available", presence)
        )
        await bob.wait_for(sees(ALICE, status), seen)
        await bob.wait_for(lambda e, t=text: e == PersonalMessageChanged(ALICE, t), seen)


async def test_chat_both_ways_with_long_and_non_ascii_text_and_typing(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    user.send_message(mto=BOB, mbody="Grüß dich, Bob 👋", mtype="chat")
    first = await bob.wait_for(lambda e: isinstance(e, MessageReceived))
    assert (first.sender, first.text) == (ALICE, "Grüß dich, Bob 👋")
    long_text = "".join(f"{i} ünïcødé ✓ " for i in range(300))
    assert len(long_text.encode()) > 3 * 1664
    user.send_message(mto=BOB, mbody=long_text, mtype="chat")

    def received() -> str:
        return "".join(e.text for e in bob.events if isinstance(e, MessageReceived))[len(first.text) :]

    await until(lambda: len(received()) >= len(long_text))
    assert received() == long_text  # complete and in order, sent as several MSG
    assert all(len(payload) <= 1664 for _, _, payload in msn_server.messages)
    await bob.session.send_message(ALICE, "Bien reçu, merci ✓")
    reply = await history.message(BOB, type="chat", body="Bien reçu, merci ✓")
    assert reply["to"].bare == f"alice@{DOMAIN}"
    mark = history.mark()
    bob.session.send_typing(ALICE)
    await until(lambda: "composing" in history.chat_states(BOB, mark))
    send_chat_state(user, BOB, "composing")
    await bob.wait_for(lambda e: e == TypingReceived(ALICE))


async def test_a_reply_to_bob_never_reaches_carol_whom_he_called_in(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    """bob calls carol into his switchboard with alice: what is said there reaches alice
    marked as said in a group, and alice's one-to-one chat with bob moves to a switchboard
    of its own (the gateway used to send it on the group one, where carol got it too)."""
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    carol = await log_in(msn_server, buddies, "carol")
    await sign_in(user, history, ROSTER)
    await bob.wait_for(sees(ALICE, Status.NLN))
    assert (await bob.session.send_message(ALICE, "hi alice")).ok
    await history.message(BOB, type="chat", body="hi alice")
    assert (await bob.session.invite(ALICE, "carol@escargot.test")).ok
    assert (await bob.session.say_in_group(ALICE, "meet carol")).ok
    await history.message(BOB, type="chat", body="[with carol] meet carol")
    assert (await carol.session.say_in_group("bob@escargot.test", "hi both")).ok
    await history.message(CAROL, type="chat", body="[with bob] hi both")

    seen = carol.mark()
    user.send_message(mto=BOB, mbody="just for you", mtype="chat")
    got = await bob.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "just for you")
    assert got.others == ()  # a switchboard with bob alone
    relayed = [to for frm, to, body in msn_server.messages if frm == ALICE and body.endswith(b"just for you")]
    assert relayed == [("bob@escargot.test",)]
    assert not [e for e in carol.events[seen:] if isinstance(e, MessageReceived)]


async def test_buddies_added_accepted_removed_and_blocked_from_both_sides(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    henry = await log_in(msn_server, buddies, "henry")
    ivan = await log_in(msn_server, buddies, "ivan")
    bob = await log_in(msn_server, buddies, "bob")
    gina = await log_in(msn_server, buddies, "gina")
    await sign_in(user, history, ROSTER)
    record = msn_server.directory.get(ALICE)
    assert record is not None
    # XMPP subscribe → ADC FL: henry is told alice added him; the gateway answers subscribed
    user.send_presence(pto=jid_of("henry@escargot.test"), ptype="subscribe")
    await henry.wait_for(lambda e: isinstance(e, ListChanged) and e.lst is ListBit.RL and e.added)
    await history.presence(jid_of("henry@escargot.test"), type="subscribed")
    await until(lambda: user.client_roster[jid_of("henry@escargot.test")]["subscription"] == "to")
    # an MSN user adds alice → subscribe from their JID; accepting lets them see alice
    await ivan.session.add_to_list(ListBit.FL, ALICE, "Ivan")
    await history.presence(jid_of("ivan@escargot.test"), type="subscribe")
    user.send_presence(pto=jid_of("ivan@escargot.test"), ptype="subscribed")
    await ivan.wait_for(sees(ALICE, Status.NLN))
    await until(lambda: record.mask_for("ivan@escargot.test") == ListBit.AL | ListBit.RL)
    await until(lambda: user.client_roster[jid_of("ivan@escargot.test")]["subscription"] == "from")
    # accepting erin's pending request: REM PL, and the roster says both
    user.send_presence(pto=ERIN, ptype="subscribed")
    await until(lambda: record.mask_for("erin@escargot.test") == ListBit.FL | ListBit.AL | ListBit.RL)
    await until(lambda: user.client_roster[ERIN]["subscription"] == "both")
    # XMPP unsubscribe → REM FL: bob is told; bob's presence goes away
    mark = history.mark()
    user.send_presence(pto=BOB, ptype="unsubscribe")
    await bob.wait_for(lambda e: isinstance(e, ListChanged) and e.lst is ListBit.RL and not e.added)
    await history.presence(BOB, mark, type="unavailable")
    # an MSN user removes alice (REM FL) → the roster item loses its "from"
    await gina.session.remove_from_list(ListBit.FL, ALICE)
    await until(lambda: user.client_roster[jid_of("gina@escargot.test")]["subscription"] == "none")


async def test_accepting_a_live_add_is_final_and_not_asked_again_at_the_next_login(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    """Someone who adds alice while she is online stays pending (PL) on the server until she
    answers: accepting is ADC AL *and* REM PL, or the server asks again at every login."""
    user, history = alice
    ivan = await log_in(msn_server, buddies, "ivan")
    await sign_in(user, history, ROSTER)
    record = msn_server.directory.get(ALICE)
    assert record is not None
    await ivan.session.add_to_list(ListBit.FL, ALICE, "Ivan")
    await history.presence(jid_of("ivan@escargot.test"), type="subscribe")
    user.send_presence(pto=jid_of("ivan@escargot.test"), ptype="subscribed")
    await ivan.wait_for(sees(ALICE, Status.NLN))
    await until(lambda: record.mask_for("ivan@escargot.test") == ListBit.AL | ListBit.RL)
    # alice signs out and in again: the server lists ivan as accepted, nobody asks again
    seen = ivan.mark()
    user.send_presence(ptype="unavailable")
    await ivan.wait_for(sees(ALICE, Status.FLN), seen)
    mark = history.mark()
    user.send_presence()
    await ivan.wait_for(sees(ALICE, Status.NLN), seen)
    await asyncio.sleep(0.5)  # the list of the new login has been handled well before
    asked = {str(s["from"].bare) for s in history.stanzas[mark:] if s["type"] == "subscribe"}
    assert asked == {ERIN}  # erin still waits for an answer; ivan was answered


async def test_a_live_add_from_someone_already_allowed_is_answered_by_itself(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    """Someone alice already allowed (AL) removes her and adds her again while she is
    online: she decided already, so nobody asks her, and the gateway sends REM PL itself,
    or the server would list them as pending (and the gateway ask) at every later login."""
    user, history = alice
    ivan = await log_in(msn_server, buddies, "ivan")
    await sign_in(user, history, ROSTER)
    record = msn_server.directory.get(ALICE)
    assert record is not None
    await ivan.session.add_to_list(ListBit.FL, ALICE, "Ivan")
    await history.presence(jid_of("ivan@escargot.test"), type="subscribe")
    user.send_presence(pto=jid_of("ivan@escargot.test"), ptype="subscribed")
    await until(lambda: record.mask_for("ivan@escargot.test") == ListBit.AL | ListBit.RL)
    await ivan.session.remove_from_list(ListBit.FL, ALICE)
    await until(lambda: record.mask_for("ivan@escargot.test") == ListBit.AL)
    mark = history.mark()
    await ivan.session.add_to_list(ListBit.FL, ALICE, "Ivan")
    await until(lambda: record.mask_for("ivan@escargot.test") == ListBit.AL | ListBit.RL)
    await asyncio.sleep(0.3)  # a question to alice would have been sent with the same change
    asked = [s for s in history.stanzas[mark:] if s["type"] == "subscribe"]
    assert asked == []


async def test_blocking_a_buddy_from_xmpp(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    carol = await log_in(msn_server, buddies, "carol")
    await sign_in(user, history, ROSTER)
    await carol.wait_for(sees(ALICE, Status.NLN))
    record = msn_server.directory.get(ALICE)
    assert record is not None
    # XMPP unsubscribed → REM AL, ADC BL: carol no longer sees alice, and alice stays signed in
    user.send_presence(pto=CAROL, ptype="unsubscribed")
    await carol.wait_for(sees(ALICE, Status.FLN))
    await until(
        lambda: record.mask_for("carol@escargot.test") == ListBit.FL | ListBit.BL | ListBit.RL, timeout=3
    )
    await until(lambda: user.client_roster[CAROL]["subscription"] == "to", timeout=3)
    await asyncio.sleep(0.5)
    assert msn_server.ns_of(ALICE) is not None  # still signed in


async def test_contact_going_offline_mid_conversation(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    user.send_message(mto=BOB, mbody="still there?", mtype="chat")
    await bob.wait_for(lambda e: isinstance(e, MessageReceived))
    mark = history.mark()
    await bob.session.close()
    await history.presence(BOB, mark, type="unavailable")
    msg = user.make_message(mto=BOB, mbody="hello?", mtype="chat")
    msg["id"] = "m-gone"
    msg.send()
    err = await history.message(BOB, mark, type="error")
    assert err["id"] == "m-gone" and str(err["to"]) == f"alice@{DOMAIN}/laptop"
    assert err["error"]["condition"] == "recipient-unavailable"
    assert err["error"]["text"] == "bob@escargot.test is offline on MSN."


async def test_a_receipt_request_is_answered_once_the_switchboard_acked_it(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    """XEP-0184 over MSN: the ACK of a switchboard bob is in is proof that he got it. Only
    asked-for receipts are sent, with the message's id, from the JID it was sent to; a
    message that cannot be delivered gets its error and no receipt."""
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    info = await user.plugin["xep_0030"].get_info(jid=MSN_JID, timeout=10)
    assert "urn:xmpp:receipts" in info["disco_info"]["features"]

    mark = history.mark()
    for msg_id, asked in (("m-plain", False), ("m-asked", True)):
        msg = user.make_message(mto=BOB, mbody=msg_id, mtype="chat")
        msg["id"] = msg_id
        if asked:
            ET.SubElement(msg.xml, "{urn:xmpp:receipts}request")
        msg.send()
    await bob.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "m-asked")
    got = await history.wait(lambda s: s.xml.find("{urn:xmpp:receipts}received") is not None, mark)
    assert str(got["from"]) == BOB and str(got["to"]) == f"alice@{DOMAIN}/laptop"
    assert got.xml.find("{urn:xmpp:receipts}received").get("id") == "m-asked"
    await asyncio.sleep(0.5)
    receipts = [s for s in history.stanzas[mark:] if s.xml.find("{urn:xmpp:receipts}received") is not None]
    assert len(receipts) == 1, "a receipt nobody asked for, or one sent twice"

    mark = history.mark()
    await bob.session.close()
    await history.presence(BOB, mark, type="unavailable")
    msg = user.make_message(mto=BOB, mbody="are you there?", mtype="chat")
    msg["id"] = "m-offline"
    ET.SubElement(msg.xml, "{urn:xmpp:receipts}request")
    msg.send()
    err = await history.message(BOB, mark, type="error")
    assert err["id"] == "m-offline" and err["error"]["condition"] == "recipient-unavailable"
    await asyncio.sleep(0.5)
    assert not [s for s in history.stanzas[mark:] if s.xml.find("{urn:xmpp:receipts}received") is not None]


async def test_dropped_connection_comes_back_consistent_and_loses_nothing(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    await bob.wait_for(sees(ALICE, Status.NLN))
    await until(lambda: user.client_roster[ERIN]["subscription"] == "to")
    await asyncio.sleep(0.3)  # let the last roster pushes land
    roster = {j: snapshot(user, j) for j in ROSTER}
    pushes, mark, seen = user.roster_pushes.qsize(), history.mark(), bob.mark()
    msn_server.refuse_logins(600, duration=1.5)  # the outage lasts a while
    await msn_server.drop_connections(ALICE)
    await bob.wait_for(sees(ALICE, Status.FLN), seen)
    for n in range(3):
        user.send_message(mto=BOB, mbody=f"during the outage {n}", mtype="chat")
    await bob.wait_for(sees(ALICE, Status.NLN), seen)

    def texts() -> list[str]:
        return [e.text for e in bob.events if isinstance(e, MessageReceived)]

    await until(lambda: len(texts()) >= 3)
    await asyncio.sleep(0.5)  # nothing more may come
    assert texts() == [f"during the outage {n}" for n in range(3)]
    assert user.roster_pushes.qsize() == pushes  # the re-sync changed nothing
    assert {j: snapshot(user, j) for j in ROSTER} == roster
    assert not [s for s in history.stanzas[mark:] if str(s["from"]) == MSN_JID]  # kept quiet
    # signing in elsewhere takes the session over: said once, and not fought
    await log_in(msn_server, buddies, "alice")
    note = await history.presence(MSN_JID, mark, type="xa")
    assert "elsewhere" in note["status"]
    await asyncio.sleep(0.5)
    assert len([s for s in history.stanzas[mark:] if str(s["from"]) == MSN_JID]) == 1


def snapshot(user: ScriptedUser, jid: str) -> tuple[str, str, list[str]]:
    item = user.client_roster[jid]
    return item["name"], item["subscription"], sorted(item["groups"])


async def test_empty_messages_are_not_sent_on_msn_and_the_sender_is_told(
    gateway: Gateway,
    alice: tuple[ScriptedUser, History],
    msn_server: FakeMsnServer,
    buddies: dict[str, Buddy],
) -> None:
    """The rule of the SMS side, on MSN: no MSG for a message without text, an error to its
    sender when it asked for a receipt or carried nothing else; a chat state alone is relayed
    and not answered; ``headline`` is not sent, ``normal`` is sent like ``chat``."""
    user, history = alice
    bob = await log_in(msn_server, buddies, "bob")
    await sign_in(user, history, ROSTER)
    mark, relayed = history.mark(), len(msn_server.messages)

    def message(msg_id: str, body: str | None, *, receipt: bool = False, mtype: str = "chat") -> None:
        msg = user.make_message(mto=BOB, mtype=mtype)
        msg["id"] = msg_id
        if body is not None:
            ET.SubElement(msg.xml, "{jabber:client}body").text = body or None
        if receipt:
            ET.SubElement(msg.xml, "{urn:xmpp:receipts}request")
        msg.send()

    message("e-hello", "hello")  # opens the conversation (typing goes only into one)
    await bob.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "hello")
    message("e-empty", "", receipt=True)
    message("e-bare", "")
    message("e-blank", "  \n ", receipt=True)
    message("e-headline", "breaking news", mtype="headline")
    send_chat_state(user, BOB, "composing")
    await bob.wait_for(lambda e: e == TypingReceived(ALICE))
    message("e-normal", "a normal message", mtype="normal")
    message("e-text", "now with text")
    await bob.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "now with text")
    expected = {"e-empty", "e-bare", "e-blank", "e-headline"}

    def answered() -> dict[str, Any]:
        return {s["id"]: s for s in history.stanzas[mark:] if s.xml.get("type") == "error"}

    await until(lambda: expected <= set(answered()))
    errors = answered()
    assert set(errors) == {"e-empty", "e-bare", "e-blank", "e-headline"}
    for msg_id in ("e-empty", "e-bare", "e-blank"):
        assert errors[msg_id]["error"]["condition"] == "not-acceptable"
        assert "nothing was sent" in errors[msg_id]["error"]["text"]
    assert "headline" in errors["e-headline"]["error"]["text"]
    got = [e.text for e in bob.events if isinstance(e, MessageReceived)]
    assert got == ["hello", "a normal message", "now with text"]
    texts = [p for who, _, p in msn_server.messages[relayed:] if who == ALICE and b"text/plain" in p]
    assert len(texts) == 3  # one MSG for each message with text, none for the others
