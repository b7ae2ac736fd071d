"""Convergence rules as plain tables."""

from __future__ import annotations

import pytest

from gateway.core.convergence import (
    LOOP_WHY,
    STOPPED_WHY,
    BadCommand,
    Breaker,
    Buddy,
    Help,
    Reply,
    SetStatus,
    Start,
    Stop,
    To,
    Who,
    candidates_text,
    forward_text,
    match_buddy,
    merged_presence,
    not_forwarded_text,
    parse_command,
    reply_target,
    route_to_contact,
    short_name,
    status_set_text,
    waiting_text,
    who_text,
)
from gateway.core.model import OFFLINE, Presence, Show

BOB = Buddy("bob@escargot.test", "Bob Smith", online=True)
BOBBY = Buddy("bobby@escargot.test", "Bobby Tables")
CHLOE = Buddy("chloe@escargot.test", "Chloé ♥ <3", alias="")
DAN = Buddy("dan.k@escargot.test", "", alias="Danny Boy")


@pytest.mark.parametrize(
    ("buddy", "name"),
    [(BOB, "Bob"), (CHLOE, "Chloe"), (DAN, "Danny"), (Buddy("x@y.z", "♥♥"), "x"), (Buddy("eve@y.z"), "eve")],
)
def test_short_names(buddy: Buddy, name: str) -> None:
    assert short_name(buddy) == name


@pytest.mark.parametrize(
    ("buddy", "name"),
    [
        (Buddy("bob@example.com", "bob@example.com"), "bob"),  # MSN's default friendly name
        (Buddy("bob@example.com", "Bob@Example.com"), "bob"),
        (Buddy("bob@example.com", "bob%40example.com"), "bob"),  # still URL-encoded
        (Buddy("bob+msn@example.com", " bob+msn@example.com "), "bob+msn"),  # the handle's own part
        (Buddy("bob@example.com", "robert@work.example is away"), "robert"),  # another address
        (Buddy("bob@example.com", "   "), "bob"),
        (Buddy("bob@example.com", "bob@example.com", alias="Bobby B"), "Bobby"),  # an alias wins
        (Buddy("bob@example.com", "", alias="rob@example.org"), "rob"),
    ],
)
def test_a_friendly_name_that_is_an_address_gives_its_local_part(buddy: Buddy, name: str) -> None:
    assert short_name(buddy) == name


def test_a_buddy_named_by_their_address_is_listed_and_matched_by_its_local_part() -> None:
    bob = Buddy("bob@example.com", "bob@example.com", online=True)
    assert who_text([bob]) == "Online: bob"
    assert forward_text(bob, "hi", 160) == "bob: hi"
    assert match_buddy("bob", [bob, BOBBY]) == (bob, [])


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("see you", Reply("see you")),
        ("@bob see you at 8", To("bob", "see you at 8")),
        ("/who", Who()),
        ("/WHO", Who()),
        ("/help", Help()),
        ("/status away at the gym", SetStatus(Show.AWAY, "at the gym")),
        ("/status busy", SetStatus(Show.DND, "")),
        ("STOP", Stop()),
        ("stop", Stop()),
        ("Start", Start()),
        ("stop the car", Reply("stop the car")),
    ],
)
def test_commands(text: str, command: object) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize("text", ["@", "@bob", "/status sleeping", "/frobnicate", "   "])
def test_bad_commands_explain(text: str) -> None:
    result = parse_command(text)
    assert isinstance(result, BadCommand) and len(result.answer) > 10


def test_matching_names() -> None:
    buddies = [BOB, BOBBY, CHLOE, DAN]
    assert match_buddy("bob", buddies) == (BOB, [])
    assert match_buddy("danny", buddies) == (DAN, [])
    assert match_buddy("chloe", buddies) == (CHLOE, [])
    found, candidates = match_buddy("bo", buddies)
    assert found is None and set(candidates) == {BOB, BOBBY}
    assert "@Bob (bob@escargot.test)" in candidates_text("bo", candidates)
    assert match_buddy("zed", buddies) == (None, [])
    assert "No buddy called zed" in candidates_text("zed", [])


def test_who_and_forward() -> None:
    assert who_text([BOB, BOBBY]) == "Online: Bob"
    assert who_text([BOBBY]) == "No buddy is online right now."
    assert forward_text(BOB, "are you coming tonight?", 918) == "Bob: are you coming tonight?"
    cut = forward_text(BOB, "x" * 2000, 306)
    assert len(cut) <= 306 and cut.endswith("[cut: too long for SMS]")


def test_routes_and_presence() -> None:
    assert route_to_contact(True, "+33611111111", "msn") == "msn"
    assert route_to_contact(False, "+33611111111", "msn") == "sms"
    assert route_to_contact(True, "+33611111111", "sms") == "sms"
    assert route_to_contact(False, "", "msn") == "none"
    away = merged_presence(OFFLINE, "+33611111111")
    assert away == Presence(Show.AWAY, "reachable by SMS")
    assert merged_presence(Presence(Show.DND), "+33611111111").show is Show.DND
    assert merged_presence(OFFLINE, "") == OFFLINE


def test_reply_window_and_breaker() -> None:
    assert reply_target("bob@x.y", 100.0, 150.0, 3600) == "bob@x.y"
    assert reply_target("bob@x.y", 100.0, 5000.0, 3600) is None
    assert reply_target(None, None, 1.0, 3600) is None
    breaker = Breaker(limit=3, window=60)
    assert breaker.allows([1.0, 2.0], 10.0)
    assert not breaker.allows([1.0, 2.0, 3.0], 10.0)
    assert breaker.allows([1.0, 2.0, 3.0], 100.0)


def test_what_the_msn_sender_is_told() -> None:
    assert waiting_text() == "(automatic reply) I am away; I will get your message later."
    kept = not_forwarded_text("The SMS centre refused the message (ESME_RINVDSTADR (0x0B)).", kept=True)
    assert kept == (
        "(automatic reply) Your message could not be delivered to me by SMS: The SMS centre refused "
        "the message (ESME_RINVDSTADR (0x0B)). I will read it when I am back online."
    )
    lost = not_forwarded_text(STOPPED_WHY, kept=False)
    assert lost.endswith("I have stopped SMS forwarding. It was not delivered; please send it again later.")
    assert LOOP_WHY in not_forwarded_text(LOOP_WHY, kept=False)
    assert all(t.startswith("(automatic reply)") for t in (kept, lost, waiting_text()))


def test_status_is_confirmed_in_the_phone_s_words() -> None:
    assert status_set_text(Show.DND, "") == "MSN status set to busy."
    assert status_set_text(Show.AWAY, "at lunch") == "MSN status set to away: at lunch."
    assert status_set_text(Show.AVAILABLE, "") == "MSN status set to online."
