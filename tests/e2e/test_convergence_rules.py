"""Convergence rules end to end, one rule per test: the SMS commands not covered by the
conversation in ``test_convergence``, the reply window, leaving XMPP switching the route to
SMS, ``prefer = "sms"``, the buddy's published mobile number (PHM) linking them
automatically (a manual link wins), a long forward cut with a marker, and STOP / START
confirmed even over the SMS limit.

Real Prosody, the fake SMSC and the fake MSN server; bob is a scripted MSN user, alice's
phone is the SMSC's view of her number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.addressing import BareJid
from gateway.core.convergence import HELP_TEXT
from gateway.devtools.prosody import Prosody
from tests.conftest import DOMAIN
from tests.e2e.msn_fixtures import History, jid_of
from tests.e2e.test_convergence import (
    ALICE_HANDLE,
    ALICE_NUMBER,
    BOB_NUMBER,
    MSN,
    World,
    bob_online,
    start_world,
    stop_world,
    users,
)
from tests.e2e.test_convergence_away import on_mobile, received
from tests.xmpp_client import ScriptedUser
from transports.msn.ns_events import PersonalMessageChanged, PresenceChanged
from transports.msn.sb import MessageReceived
from transports.msn.status import Status
from transports.sms.encoding import decode_text
from transports.sms.reassembly import split_user_data

pytestmark = pytest.mark.e2e
ALICE = f"alice@{DOMAIN}"
BOB = "bob@escargot.test"
OTHER_NUMBER = "33611112222"
CAROL = "carol@escargot.test"


@pytest.fixture
async def world(prosody: Prosody, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(prosody, tmp_path)
    yield w
    await stop_world(w)


def alice_says(text: str) -> Callable[[Any], bool]:
    """An MSN event: alice's personal message is now ``text``."""
    return lambda e: isinstance(e, PersonalMessageChanged) and e.handle == ALICE_HANDLE and e.text == text


def whole_sms(world: World, since: int) -> str:
    """The first SMS alice's phone got since ``since``, its parts joined (a concatenated
    SMS arrives as several submit_sm, each with a UDH)."""
    parts = []
    for s in world.smsc.submits[since:]:
        if s.destination_addr == ALICE_NUMBER and s.status == 0:
            data, udh = split_user_data(s.pdu)  # type: ignore[arg-type]  # a submit_sm reads the same
            parts.append((udh, decode_text(data, s.pdu.data_coding).text))
    if not parts or parts[0][0] is None:
        return parts[0][1] if parts else ""
    first = parts[0][0]
    same = sorted((u.seq, t) for u, t in parts if u is not None and u.reference == first.reference)
    return "".join(t for _, t in same) if len(same) == first.total else ""


async def answer_to(world: World, text: str) -> str:
    """What alice's phone gets back for ``text`` sent to the service number."""
    sent = len(world.smsc.submits)
    await world.phone_sends(text)
    await world.smsc.wait_until(lambda: bool(whole_sms(world, sent)), 15)
    return whole_sms(world, sent)


async def test_help_status_unknown_names_and_commands(world: World) -> None:
    bob = await bob_online(world)
    try:
        await on_mobile(world, bob)
        assert await answer_to(world, "/help") == HELP_TEXT
        assert await answer_to(world, "@zed hello") == "No buddy called zed. /who lists who is online."
        assert await answer_to(world, "/dance") == f"Unknown command /dance. {HELP_TEXT}"
        assert await answer_to(world, "/status sleepy") == (
            "Use /status online, /status away or /status busy, optionally with a text."
        )
        seen = bob.mark()
        assert await answer_to(world, "/status busy In a meeting") == "MSN status set to busy: In a meeting."
        await bob.wait_for(
            lambda e: isinstance(e, PresenceChanged) and e.handle == ALICE_HANDLE and e.status is Status.BSY,
            since=seen,
            timeout=15,
        )
        await bob.wait_for(
            lambda e: (
                isinstance(e, PersonalMessageChanged)
                and e.handle == ALICE_HANDLE
                and e.text == "In a meeting"
            ),
            since=seen,
            timeout=15,
        )
        assert received(bob, seen) == []  # commands never reach a buddy
    finally:
        await bob.session.close()


async def test_a_plain_reply_outside_the_reply_window_is_explained(world: World) -> None:
    bob = await bob_online(world)
    try:
        await on_mobile(world, bob)
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "ping")).ok
        assert await world.phone_receives(ALICE_NUMBER, sent) == "Bob: ping"
        sub = await world.store.subscriber_by_jid(BareJid.parse(ALICE))
        assert sub is not None
        # bob wrote two hours ago: past the world's one-hour reply window
        await world.store.set_last_correspondent(sub.id, BOB, time.time() - 7200)
        seen = bob.mark()
        assert await answer_to(world, "pong") == (
            "Nobody wrote to you recently. Write @name text to message a buddy; /who lists who is online."
        )
        await asyncio.sleep(1.0)
        assert received(bob, seen) == []  # not sent to bob after all
    finally:
        await bob.session.close()


async def test_leaving_xmpp_switches_the_route_to_sms(world: World, prosody: Prosody) -> None:
    bob = await bob_online(world)
    alice = ScriptedUser(f"{ALICE}/laptop", "pw", prosody.c2s_port)
    history = History(alice)
    await alice.online()
    try:
        alice.send_presence(pto=MSN)
        await bob.wait_for(
            alice_says(""),
            timeout=15,
        )
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "at your desk?")).ok
        assert (await history.message(jid_of(BOB)))["body"] == "at your desk?"
        seen = bob.mark()
        await alice.close()  # alice leaves her PC
        await bob.wait_for(
            lambda e: (
                isinstance(e, PersonalMessageChanged) and e.handle == ALICE_HANDLE and e.text == "On mobile"
            ),
            since=seen,
            timeout=15,
        )
        assert world.texts_to(ALICE_NUMBER, sent) == []  # what she read on XMPP is not texted
        assert (await bob.session.send_message(ALICE_HANDLE, "gone already?")).ok
        assert await world.phone_receives(ALICE_NUMBER, sent, timeout=30) == "Bob: gone already?"
    finally:
        await alice.close()
        await bob.session.close()


async def test_prefer_sms_texts_a_linked_buddy_even_while_online_on_msn(
    prosody: Prosody, tmp_path: Path
) -> None:
    world = await start_world(prosody, tmp_path, convergence={"prefer": "sms"})
    bob = await bob_online(world)
    sub = await world.store.subscriber_by_jid(BareJid.parse(ALICE))
    assert sub is not None
    await world.store.link_phone(sub.id, "msn", BOB, "+" + BOB_NUMBER)
    alice = ScriptedUser(f"{ALICE}/laptop", "pw", prosody.c2s_port)
    await alice.online()
    try:
        alice.send_presence(pto=MSN)
        await bob.wait_for(
            alice_says(""),
            timeout=15,
        )
        sent, seen = len(world.smsc.submits), bob.mark()
        alice.send_message(mto=jid_of(BOB), mbody="by text please", mtype="chat")
        assert await world.phone_receives(BOB_NUMBER, sent) == "by text please"
        assert world.smsc.submits[sent].source_addr == ALICE_NUMBER  # from alice's own number
        await asyncio.sleep(1.0)
        assert received(bob, seen) == []  # not over MSN, although bob is online there
    finally:
        await alice.close()
        await bob.session.close()
        await stop_world(world)


def users_with_bob_phone() -> list[dict[str, Any]]:
    """The usual directory, with bob publishing his mobile number on MSN (PHM)."""
    return [{**u, "phones": {"PHM": "+" + BOB_NUMBER}} if u["handle"] == BOB else u for u in users()]


async def test_a_published_mobile_number_links_the_buddy_and_a_manual_link_wins(
    prosody: Prosody, tmp_path: Path
) -> None:
    world = await start_world(prosody, tmp_path, msn_users=users_with_bob_phone())
    alice = ScriptedUser(f"{ALICE}/laptop", "pw", prosody.c2s_port)
    history = History(alice)
    await alice.online()
    try:
        alice.send_presence(pto=MSN)
        sub = await world.store.subscriber_by_jid(BareJid.parse(ALICE))
        assert sub is not None

        async def bob_phone() -> str:
            contact = next((c for c in await world.store.contacts(sub.id, "msn") if c.legacy_id == BOB), None)
            return contact.phone if contact else ""

        async with asyncio.timeout(15):
            while await bob_phone() != "+" + BOB_NUMBER:
                await asyncio.sleep(0.05)
        # bob is offline on MSN: alice sees him reachable by SMS, as one contact
        presence = await history.presence(jid_of(BOB), status="reachable by SMS")
        assert presence["show"] == "away"
        # an SMS from his number arrives from his MSN JID
        await world.smsc.inject_mo(BOB_NUMBER, ALICE_NUMBER, "on the train")
        assert (await history.message(jid_of(BOB)))["body"] == "on the train"

        await world.store.link_phone(sub.id, "msn", BOB, "+" + OTHER_NUMBER)  # the operator's link
        bob = await bob_online(world)  # his next sign-in publishes his PHM again
        try:
            await asyncio.sleep(2.0)
            assert await bob_phone() == "+" + OTHER_NUMBER  # the manual link stays
        finally:
            await bob.session.close()
    finally:
        await alice.close()
        await stop_world(world)


async def test_a_forward_longer_than_max_parts_is_cut_with_a_marker(prosody: Prosody, tmp_path: Path) -> None:
    world = await start_world(prosody, tmp_path, sms={"max_parts": 1})
    bob = await bob_online(world)
    try:
        await on_mobile(world, bob)
        sent = len(world.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "word " * 100)).ok
        text = await world.phone_receives(ALICE_NUMBER, sent)
        assert text.startswith("Bob: word word") and text.endswith(" [cut: too long for SMS]")
        assert len(text) <= 160
        await asyncio.sleep(1.0)
        assert len(world.texts_to(ALICE_NUMBER, sent)) == 1
    finally:
        await bob.session.close()
        await stop_world(world)


async def test_stop_and_start_are_confirmed_over_the_sms_limit(prosody: Prosody, tmp_path: Path) -> None:
    world = await start_world(prosody, tmp_path, sms_limits={"per_user_per_hour": 1})
    try:
        assert await answer_to(world, "/who") == "No buddy is online right now."
        sent = len(world.smsc.submits)
        await world.phone_sends("/help")  # over the limit: no answer
        await asyncio.sleep(1.5)
        assert world.texts_to(ALICE_NUMBER, sent) == []
        assert await answer_to(world, "STOP") == "Forwarding stopped. Text START to resume."
        assert await answer_to(world, "START") == "Forwarding resumed. Text STOP to stop."
    finally:
        await stop_world(world)


def users_with_carol_unnamed() -> list[dict[str, Any]]:
    """The usual directory, with carol never having set a friendly name: MSN shows her address."""
    return [
        {k: v for k, v in u.items() if k != "friendly_name"} if u["handle"] == CAROL else u for u in users()
    ]


async def test_a_buddy_named_by_their_address_is_called_by_its_local_part(
    prosody: Prosody, tmp_path: Path
) -> None:
    world = await start_world(prosody, tmp_path, msn_users=users_with_carol_unnamed())
    carol = await bob_online(world, "carol")
    try:
        await on_mobile(world, carol)
        sent = len(world.smsc.submits)
        assert (await carol.session.send_message(ALICE_HANDLE, "lunch?")).ok
        assert await world.phone_receives(ALICE_NUMBER, sent) == "carol: lunch?"
        assert await answer_to(world, "/who") == "Online: carol"
        seen = carol.mark()
        await world.phone_sends("@carol yes, at noon")
        await carol.wait_for(
            lambda e: isinstance(e, MessageReceived) and e.text == "yes, at noon", since=seen, timeout=15
        )
    finally:
        await carol.session.close()
        await stop_world(world)


async def test_a_command_texted_twice_is_answered_twice_and_a_redelivery_once(world: World) -> None:
    """/who texted twice gets two answers (the second used to be dropped as a redelivery);
    the SMSC sending the PDU again (its timer ran out before it read our answer) gets one."""
    assert await answer_to(world, "/who") == "No buddy is online right now."
    assert await answer_to(world, "/who") == "No buddy is online right now."
    sent = len(world.smsc.submits)
    world.smsc.withhold_responses(1)
    assert await world.smsc.inject_mo(ALICE_NUMBER, "2020", "/who", redeliver=True) == [0]
    assert len(world.smsc.redeliveries) == 1
    await world.smsc.wait_until(lambda: bool(whole_sms(world, sent)), 15)
    await asyncio.sleep(1.5)  # time for a second answer, were one coming
    assert world.texts_to(ALICE_NUMBER, sent) == ["No buddy is online right now."]
