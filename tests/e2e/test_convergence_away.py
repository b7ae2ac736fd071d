"""Convergence while the subscriber is away from XMPP, end to end.

What the phone received and sent shows in the subscriber's XMPP clients (the forward as a
message to the bare JID, the SMS reply as a XEP-0280 sent carbon injected through
XEP-0356); forwards over the SMS limit wait; an auto-responder ping-pong is cut; a
forward the SMS side refuses is answered on MSN. Real Prosody (here with mod_carbons, as in
Prosody's default configuration; mod_offline is always loaded), the fake SMSC, the fake MSN
server, scripted MSN users and a scripted phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET

from gateway.addressing import BareJid
from gateway.devtools.ejabberd import XmppServer
from gateway.devtools.prosody import ComponentSpec, Prosody
from tests.conftest import DOMAIN, SECRET
from tests.e2e.msn_fixtures import Buddy, History, jid_of, until
from tests.e2e.test_convergence import (
    ALICE_HANDLE,
    ALICE_NUMBER,
    DAN_NUMBER,
    MSN,
    World,
    bob_online,
    start_world,
    stop_world,
)
from tests.xmpp_client import ScriptedUser
from transports.msn.ns_events import PersonalMessageChanged
from transports.msn.sb import MessageReceived
from transports.sms.receipts import ReceiptState
from transports.sms.status import Status

pytestmark = pytest.mark.e2e
ALICE = f"alice@{DOMAIN}"
BOB = "bob@escargot.test"
CARBONS = "urn:xmpp:carbons:2"
FORWARDED = f"{{{CARBONS}}}sent/{{urn:xmpp:forward:0}}forwarded/{{jabber:client}}message"


@contextlib.contextmanager
def carbon_prosody(tmp_path: Path, *, message: str = "outgoing") -> Iterator[Prosody]:
    """The test Prosody with mod_carbons; ``message`` is the MSN component's XEP-0356
    message permission (roster and presence are granted)."""
    if shutil.which("prosody") is None:
        pytest.fail("prosody is not installed: run `make test`, which installs it")
    components = [ComponentSpec(f"sms.{DOMAIN}", SECRET), ComponentSpec(MSN, SECRET, message=message)]
    server = Prosody(tmp_path / "prosody", DOMAIN, components, extra_modules=("carbons",))
    server.start()
    try:
        server.register("alice", "pw")
        yield server
    finally:
        server.stop()


@pytest.fixture
def away_prosody(tmp_path: Path) -> Iterator[Prosody]:
    with carbon_prosody(tmp_path) as server:
        yield server


@pytest.fixture
async def away(away_prosody: Prosody, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(away_prosody, tmp_path)
    yield w
    await stop_world(w)


@contextlib.asynccontextmanager
async def client(
    world: World, prosody: XmppServer, resource: str, *, off_gateway: bool = False
) -> AsyncIterator[tuple[ScriptedUser, History]]:
    """alice on an XMPP client. Its presence reaches the gateway (XEP-0356 presence
    privilege), so she is back unless ``off_gateway``: then, with carbons enabled, it logs
    out of both gateway components (directed unavailable presence, XEP-0100) while staying
    online on XMPP, and for the gateway she stays away."""
    user = ScriptedUser(f"{ALICE}/{resource}", "pw", prosody.c2s_port)
    history = History(user)
    await user.online()
    if off_gateway:
        iq = user.make_iq_set()
        ET.SubElement(iq.xml, f"{{{CARBONS}}}enable")
        await iq.send(timeout=10)
        await until(lambda: alice_seen(world))
        for component in (f"sms.{DOMAIN}", MSN):
            user.send_presence(pto=component, ptype="unavailable")
        await asyncio.sleep(0.5)
        await until(lambda: not alice_seen(world))
    try:
        yield user, history
    finally:
        await user.close()


def alice_seen(world: World) -> bool:
    """Whether the gateway counts one of alice's XMPP clients online (on either component)."""
    bridge = world.gateway.bridge
    assert bridge is not None
    return any(book.is_online(BareJid.parse(ALICE)) for book in bridge.resources.values())


def is_carbon(stanza: Any) -> bool:
    return isinstance(stanza, Message) and stanza.xml.find(FORWARDED) is not None


def carbon_of(stanza: Message) -> dict[str, str]:
    """The sent carbon as the client reads it: who wrapped it (its ``to`` is the account,
    or absent, as Prosody leaves out a ``to`` equal to the sender's bare JID), and the
    message inside."""
    inner = stanza.xml.find(FORWARDED)
    assert inner is not None
    return {
        "from": str(stanza["from"]),
        "inner_from": inner.get("from", ""),
        "inner_to": inner.get("to", ""),
        "type": inner.get("type", ""),
        "body": inner.findtext("{jabber:client}body") or "",
    }


def sent_to(handle: str, text: str) -> dict[str, str]:
    return {
        "from": ALICE,
        "inner_from": ALICE,
        "inner_to": jid_of(handle),
        "type": "chat",
        "body": text,
    }


async def on_mobile(world: World, buddy: Buddy, handle: str = ALICE_HANDLE) -> None:
    """``buddy`` sees the subscriber ``handle`` on mobile, and the gateway has its buddy list
    (a message arriving before the list would come from a stranger, who is never texted)."""
    await buddy.wait_for(
        lambda e: isinstance(e, PersonalMessageChanged) and e.handle == handle and e.text == "On mobile",
        timeout=15,
    )
    sub = await world.store.subscriber_by_account("msn", handle)
    assert sub is not None
    async with asyncio.timeout(15):
        while buddy.handle not in {c.legacy_id for c in await world.store.contacts(sub.id, "msn")}:
            await asyncio.sleep(0.05)


def received(buddy: Buddy, since: int = 0) -> list[str]:
    return [e.text for e in buddy.events[since:] if isinstance(e, MessageReceived)]


# -- what the subscriber received and sent by SMS, in their XMPP clients ---------------------


async def test_an_xmpp_client_sees_the_forward_and_a_carbon_of_the_sms_reply(
    away: World, away_prosody: Prosody
) -> None:
    bob = await bob_online(away)
    try:
        await on_mobile(away, bob)
        async with client(away, away_prosody, "tablet", off_gateway=True) as (_, tablet):
            sent = len(away.smsc.submits)
            assert (await bob.session.send_message(ALICE_HANDLE, "are you coming tonight?")).ok
            assert await away.phone_receives(ALICE_NUMBER, sent) == "Bob: are you coming tonight?"
            msg = await tablet.message(jid_of(BOB))
            assert msg["body"] == "are you coming tonight?" and msg["type"] == "chat"

            mark, seen = tablet.mark(), bob.mark()
            await away.phone_sends("yes, at 8")
            await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
            carbon = await tablet.wait(is_carbon, since=mark, timeout=10)
            assert carbon_of(carbon) == sent_to(BOB, "yes, at 8")
            assert carbon["type"] == "chat"

            mark = tablet.mark()
            await away.phone_sends("@bob see you")
            carbon = await tablet.wait(is_carbon, since=mark, timeout=10)
            assert carbon_of(carbon) == sent_to(BOB, "see you")
            await bob.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "see you", since=seen)
            assert received(bob, seen) == ["yes, at 8", "see you"]
            await asyncio.sleep(1.0)  # and each carbon once: the server did not copy it again
            assert len([s for s in tablet.stanzas if is_carbon(s)]) == 2
    finally:
        await bob.session.close()


async def test_a_client_signing_in_later_gets_the_exchange_from_offline_storage(
    away: World, away_prosody: Prosody
) -> None:
    bob = await bob_online(away)
    try:
        await on_mobile(away, bob)
        sent, seen = len(away.smsc.submits), bob.mark()
        assert (await bob.session.send_message(ALICE_HANDLE, "still on for 8?")).ok
        assert await away.phone_receives(ALICE_NUMBER, sent) == "Bob: still on for 8?"
        await away.phone_sends("yes")
        await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
        await asyncio.sleep(0.5)  # the carbon is on its way to the server
        async with client(away, away_prosody, "laptop") as (_, laptop):
            msg = await laptop.message(jid_of(BOB))
            assert msg["body"] == "still on for 8?"
            assert msg.xml.find("{urn:xmpp:delay}delay") is not None  # kept while nobody was online
            carbon = await laptop.wait(is_carbon, timeout=10)
            assert carbon_of(carbon) == sent_to(BOB, "yes")
    finally:
        await bob.session.close()


async def test_without_the_message_privilege_there_is_no_carbon_and_the_reply_still_goes(
    tmp_path: Path,
) -> None:
    with carbon_prosody(tmp_path, message="none") as prosody:
        world = await start_world(prosody, tmp_path)
        bob = await bob_online(world)
        try:
            await on_mobile(world, bob)
            assert world.gateway.bridge is not None
            grants = world.gateway.bridge.components["msn"].grants
            assert grants.roster == {DOMAIN: "both"} and not grants.can_send_as_user(DOMAIN)
            async with client(world, prosody, "tablet", off_gateway=True) as (_, tablet):
                sent, seen = len(world.smsc.submits), bob.mark()
                assert (await bob.session.send_message(ALICE_HANDLE, "there?")).ok
                assert await world.phone_receives(ALICE_NUMBER, sent) == "Bob: there?"
                await world.phone_sends("yes")
                await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
                assert received(bob, seen) == ["yes"]
                await tablet.message(jid_of(BOB))  # the forward still reaches XMPP
                await asyncio.sleep(1.5)
                assert not [s for s in tablet.stanzas if is_carbon(s)]
        finally:
            await bob.session.close()
            await stop_world(world)


# -- the SMS limit ----------------------------------------------------------------------------


def near_hour_end(seconds_left: float) -> Callable[[], float]:
    """A clock that is ``seconds_left`` before the end of a clock hour now, then runs."""
    offset = (3600 - seconds_left - time.time() % 3600) % 3600
    return lambda: time.time() + offset


def use_clock(world: World, clock: Callable[[], float]) -> None:
    """The gateway's one clock (the bridge, convergence and the SMS quotas read it)."""
    bridge = world.gateway.bridge
    assert bridge is not None
    bridge.clock = clock
    bridge.convergence.clock = clock
    setattr(bridge.transports["sms"], "clock", clock)  # noqa: B010 - the transport protocol has no clock


@pytest.fixture
async def limited(away_prosody: Prosody, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(away_prosody, tmp_path, sms_limits={"per_user_per_hour": 2})
    yield w
    await stop_world(w)


async def fill_the_limit(world: World, bob: Buddy) -> None:
    """Two forwards pass, the next two wait, and bob is told once that they will."""
    sent, seen = len(world.smsc.submits), bob.mark()
    for n in range(1, 5):
        assert (await bob.session.send_message(ALICE_HANDLE, f"message {n}")).ok
    await world.smsc.wait_until(lambda: len(world.texts_to(ALICE_NUMBER, sent)) >= 2, 15)
    await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
    await asyncio.sleep(1.0)
    assert world.texts_to(ALICE_NUMBER, sent) == ["Bob: message 1", "Bob: message 2"]
    assert received(bob, seen) == ["(automatic reply) I am away; I will get your message later."]


async def test_forwards_over_the_sms_limit_wait_for_the_limit_to_reset(limited: World) -> None:
    use_clock(limited, near_hour_end(6.0))
    bob = await bob_online(limited)
    try:
        await on_mobile(limited, bob)
        sent, seen = len(limited.smsc.submits), bob.mark()
        await fill_the_limit(limited, bob)
        await limited.smsc.wait_until(lambda: len(limited.texts_to(ALICE_NUMBER, sent)) >= 4, 20)
        await asyncio.sleep(1.0)
        assert limited.texts_to(ALICE_NUMBER, sent) == [f"Bob: message {n}" for n in range(1, 5)]
        assert len(received(bob, seen)) == 1  # told once, for the whole conversation
    finally:
        await bob.session.close()


async def test_forwards_over_the_sms_limit_go_to_xmpp_when_the_subscriber_comes_back(
    limited: World, away_prosody: Prosody
) -> None:
    bob = await bob_online(limited)
    try:
        await on_mobile(limited, bob)
        sent, seen = len(limited.smsc.submits), bob.mark()
        await fill_the_limit(limited, bob)
        async with client(limited, away_prosody, "laptop") as (_, laptop):
            await laptop.wait(lambda s: len(bodies_from(laptop, BOB)) >= 4, timeout=15)
            await asyncio.sleep(1.0)
            # 1 and 2 from offline storage (also texted), 3 and 4 once she is back
            assert bodies_from(laptop, BOB) == [f"message {n}" for n in range(1, 5)]
        assert limited.texts_to(ALICE_NUMBER, sent) == ["Bob: message 1", "Bob: message 2"]
        assert received(bob, seen) == ["(automatic reply) I am away; I will get your message later."]
    finally:
        await bob.session.close()


# -- the circuit breaker ------------------------------------------------------------------------


async def auto_reply_on_msn(bot: Buddy, to: str) -> None:
    """An MSN bot answering every message it gets."""
    seen = bot.mark()
    while True:
        await bot.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=3600)
        new = received(bot, seen)
        seen = len(bot.events)
        for _ in new:
            await bot.session.send_message(to, "I am a bot and I answer everything.")


async def auto_reply_by_sms(world: World, replies: list[str]) -> None:
    """alice's phone answering every forward (each answer a little different, as
    auto-responders that quote the time are)."""
    seen = len(world.smsc.submits)
    while True:
        while len(world.smsc.submits) <= seen:
            await asyncio.sleep(0.01)
        new, seen = world.smsc.submits[seen:], len(world.smsc.submits)
        for submit in new:
            if submit.destination_addr == ALICE_NUMBER and submit.source_addr == "2020":
                replies.append(f"Driving, I will call you back ({len(replies) + 1})")
                await world.phone_sends(replies[-1])


async def test_auto_responder_ping_pong_between_msn_and_the_phone_is_cut(
    away_prosody: Prosody, tmp_path: Path
) -> None:
    world = await start_world(away_prosody, tmp_path, convergence={"max_forwards_per_minute": 3})
    bot = Buddy(world.msn, "auto@escargot.test")
    await bot.session.login()
    phone_replies: list[str] = []
    tasks = [
        asyncio.ensure_future(auto_reply_on_msn(bot, ALICE_HANDLE)),
        asyncio.ensure_future(auto_reply_by_sms(world, phone_replies)),
    ]
    try:
        await on_mobile(world, bot)
        sent = len(world.smsc.submits)
        assert (await bot.session.send_message(ALICE_HANDLE, "Hello!")).ok
        await world.smsc.wait_until(lambda: len(world.texts_to(ALICE_NUMBER, sent)) >= 3, 30)
        await asyncio.sleep(3.0)  # the loop had every chance to go on
        phone = world.texts_to(ALICE_NUMBER, sent)
        assert phone == ["Auto: Hello!"] + ["Auto: I am a bot and I answer everything."] * 2
        assert received(bot) == phone_replies == [f"Driving, I will call you back ({n})" for n in (1, 2, 3)]
        # the bot's fourth message was held for XMPP, where alice finds all four
        async with client(world, away_prosody, "laptop") as (_, laptop):
            await laptop.wait(
                lambda s: len(bot_messages(laptop)) >= 4 and len(carbons(laptop)) >= 3, timeout=10
            )
            assert bot_messages(laptop) == ["Hello!"] + ["I am a bot and I answer everything."] * 3
            assert [carbon_of(c)["body"] for c in carbons(laptop)] == phone_replies
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bot.session.close()
        await stop_world(world)


def bot_messages(history: History) -> list[str]:
    return [
        str(s["body"])
        for s in history.stanzas
        if isinstance(s, Message) and str(s["from"].bare) == jid_of("auto@escargot.test") and s["body"]
    ]


def carbons(history: History) -> list[Message]:
    return [s for s in history.stanzas if is_carbon(s)]


# -- refused forwards ---------------------------------------------------------------------------


REFUSED = (
    "(automatic reply) Your message could not be delivered to me by SMS: The SMS centre refused "
    "the message (ESME_RINVDSTADR (0x0B))."
)


async def test_a_forward_the_smsc_refuses_is_answered_on_msn_and_kept_for_xmpp(
    away: World, away_prosody: Prosody
) -> None:
    bob = await bob_online(away)
    try:
        await on_mobile(away, bob)
        seen = bob.mark()
        away.smsc.reject_next(Status.ESME_RINVDSTADR)
        assert (await bob.session.send_message(ALICE_HANDLE, "call me")).ok
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
        assert got.text == f"{REFUSED} I will read it when I am back online."
        assert got.sender == ALICE_HANDLE
        away.smsc.reject_next(Status.ESME_RINVDSTADR)
        assert (await bob.session.send_message(ALICE_HANDLE, "please")).ok
        await asyncio.sleep(1.5)
        assert len(received(bob, seen)) == 1  # once per conversation
        async with client(away, away_prosody, "laptop") as (_, laptop):
            await laptop.wait(lambda s: len(bodies_from(laptop, BOB)) >= 2, timeout=10)
            assert bodies_from(laptop, BOB) == ["call me", "please"]
    finally:
        await bob.session.close()


async def test_a_forward_reported_undelivered_later_is_answered_on_msn(away: World) -> None:
    """The SMSC takes the forward, then its delivery receipt says UNDELIV: the buddy is told
    (once per conversation, as the message also waits for XMPP), and the subscriber's own
    number does not turn up as a contact of theirs."""
    bob = await bob_online(away)
    try:
        await on_mobile(away, bob)
        sub = await away.store.subscriber_by_account("msn", ALICE_HANDLE)
        assert sub is not None
        away.smsc.receipt_state = ReceiptState.UNDELIV
        seen, sent = bob.mark(), len(away.smsc.submits)
        assert (await bob.session.send_message(ALICE_HANDLE, "are you there")).ok
        assert "are you there" in await away.phone_receives(ALICE_NUMBER, sent)
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
        assert got.text == (
            "(automatic reply) Your message could not be delivered to me by SMS: The SMS network "
            "could not deliver it to my phone. I will read it when I am back online."
        )
        assert (await bob.session.send_message(ALICE_HANDLE, "hello?")).ok
        await asyncio.sleep(1.5)
        assert len(received(bob, seen)) == 1  # once per conversation
        assert ALICE_NUMBER not in {c.legacy_id for c in await away.store.contacts(sub.id, "sms")}
    finally:
        await bob.session.close()


async def test_sms_only_subscriber_who_stopped_forwards_gets_the_sender_told(away: World) -> None:
    bob = await bob_online(away)
    try:
        await on_mobile(away, bob, "dan@escargot.test")
        sent = len(away.smsc.submits)
        await away.smsc.inject_mo(DAN_NUMBER, "2020", "STOP")
        assert await away.phone_receives(DAN_NUMBER, sent) == "Forwarding stopped. Text START to resume."
        sent, seen = len(away.smsc.submits), bob.mark()
        assert (await bob.session.send_message("dan@escargot.test", "lunch?")).ok
        got = await bob.wait_for(lambda e: isinstance(e, MessageReceived), since=seen, timeout=15)
        assert got.sender == "dan@escargot.test"
        lost = (
            "(automatic reply) Your message could not be delivered to me by SMS: I have stopped SMS "
            "forwarding. It was not delivered; please send it again later."
        )
        assert got.text == lost
        # nothing keeps these messages (no XMPP account): each one is answered
        assert (await bob.session.send_message("dan@escargot.test", "lunch tomorrow then?")).ok
        await bob.wait_for(lambda e: len(received(bob, seen)) >= 2, timeout=15)
        await asyncio.sleep(1.0)
        assert received(bob, seen) == [lost, lost]
        assert away.texts_to(DAN_NUMBER, sent) == []
    finally:
        await bob.session.close()


def bodies_from(history: History, handle: str) -> list[str]:
    return [
        str(s["body"])
        for s in history.stanzas
        if isinstance(s, Message) and str(s["from"].bare) == jid_of(handle) and s["body"]
    ]
