"""The MSN ↔ XMPP translation tables, row by row (pure functions, no sockets)."""

from __future__ import annotations

import pytest

from gateway.core.model import OFFLINE, Presence, Show
from transports.msn.mapping import (
    PSM_MAX_CHARS,
    ListOp,
    answer_subscribe_at_once,
    asks_to_subscribe,
    group_marked,
    in_roster,
    list_operations,
    live_reverse_add,
    mask_after,
    msn_to_xmpp_presence,
    psm_to_status_text,
    reverse_add_asks,
    status_text_to_psm,
    subscription_for,
    xmpp_to_msn_status,
)
from transports.msn.status import ListBit, Status

FL, AL, BL, RL, PL = ListBit.FL, ListBit.AL, ListBit.BL, ListBit.RL, ListBit.PL


@pytest.mark.parametrize(
    ("mask", "subscription"),
    [
        (FL | AL | RL, "both"),  # the ordinary friend
        (FL | RL | AL | PL, "both"),  # PL is a question, not a state
        (FL, "to"),  # FL only
        (FL | AL, "to"),  # they have not added the subscriber (no RL)
        (FL | RL, "to"),  # RL without AL: they may not see the subscriber
        (FL | AL | RL | BL, "to"),  # blocked: they do not see the subscriber
        (FL | BL | RL, "to"),
        (FL | AL | PL, "to"),  # pending at login (mask 19)
        (AL | RL, "from"),
        (AL | RL | PL, "from"),
        (RL, "none"),  # undecided
        (BL | RL, "none"),
        (AL, "none"),
        (PL, "none"),
        (0, "none"),
    ],
)
def test_list_mask_to_subscription(mask: int, subscription: str) -> None:
    assert subscription_for(int(mask)) == subscription


@pytest.mark.parametrize(
    ("mask", "listed", "asks", "asks_live"),
    [
        (FL | AL | RL, True, False, False),
        (FL | AL | PL, True, True, False),
        (PL, False, True, True),  # asking only: a subscribe, no roster item yet
        (RL, False, False, True),  # a live ADC 0 RL from a stranger: ask
        (AL | RL, True, False, False),  # already allowed: nothing to ask
        (BL | RL, True, False, False),  # blocked: not asked again
        (BL, True, False, False),
        (0, False, False, True),
    ],
)
def test_roster_membership_and_requests(mask: int, listed: bool, asks: bool, asks_live: bool) -> None:
    assert in_roster(int(mask)) is listed
    assert asks_to_subscribe(int(mask)) is asks
    assert reverse_add_asks(int(mask)) is asks_live


def ops(*items: tuple[bool, ListBit]) -> tuple[ListOp, ...]:
    return tuple(ListOp(add, lst) for add, lst in items)


ADD, REM = True, False


@pytest.mark.parametrize(
    ("kind", "mask", "expected"),
    [
        ("subscribe", 0, ops((ADD, FL), (ADD, AL))),
        ("subscribe", RL, ops((ADD, FL), (ADD, AL))),
        ("subscribe", AL | RL, ops((ADD, FL))),
        ("subscribe", FL | AL, ops()),  # already there: answered at once
        ("subscribe", BL | RL, ops((ADD, FL))),  # subscribing does not unblock
        ("subscribed", FL | AL | PL, ops((REM, PL))),
        ("subscribed", RL, ops((ADD, AL))),
        ("subscribed", PL, ops((REM, PL), (ADD, AL))),
        ("subscribed", BL | RL, ops((REM, BL), (ADD, AL))),  # REM BL before ADC AL (219)
        ("subscribed", AL | RL, ops()),
        ("unsubscribe", FL | AL | RL, ops((REM, FL))),
        ("unsubscribe", AL | RL, ops()),
        ("unsubscribed", FL | AL | RL, ops((REM, AL), (ADD, BL))),
        ("unsubscribed", FL | AL | PL, ops((REM, AL), (REM, PL), (ADD, BL))),
        ("unsubscribed", RL, ops((ADD, BL))),
        ("unsubscribed", BL | RL, ops()),
        ("probe", FL | AL | RL, ops()),
        ("available", 0, ops()),
    ],
)
def test_subscription_stanzas_to_list_operations(kind: str, mask: int, expected: tuple[ListOp, ...]) -> None:
    assert list_operations(kind, int(mask)) == expected


@pytest.mark.parametrize(
    ("mask", "applied", "after"),
    [
        (FL | AL | PL, ops((REM, PL)), FL | AL | RL),  # accepted: the server lists RL from now on
        (PL, ops((REM, PL), (ADD, AL)), AL | RL),
        (FL | AL | RL, ops((REM, AL), (ADD, BL)), FL | BL | RL),
        (0, ops((ADD, FL), (ADD, AL)), FL | AL),
        (FL | AL | RL, ops((REM, RL)), FL | AL),
    ],
)
def test_mask_after_operations(mask: int, applied: tuple[ListOp, ...], after: int) -> None:
    assert mask_after(int(mask), applied) == after


def test_accepting_a_live_reverse_add_leaves_pl() -> None:
    """A live ``ADC 0 RL`` leaves the contact pending on the server (PL, RL hidden):
    accepting it must send REM PL as well as ADC AL, and then they are on RL."""
    rl, al, pl = int(ListBit.RL), int(ListBit.AL), int(ListBit.PL)
    pending = live_reverse_add(rl)
    assert pending == pl
    ops = list_operations("subscribed", pending)
    assert ListOp(False, ListBit.PL) in ops and ListOp(True, ListBit.AL) in ops
    assert mask_after(pending, ops) == al | rl
    assert live_reverse_add(pl | al) == pl | al  # already pending: unchanged


def test_lines_from_a_group_conversation_are_marked() -> None:
    assert group_marked("hello", ()) == "hello"
    assert group_marked("hello", ("carol@escargot.test",)) == "[with carol] hello"
    assert group_marked("hi", ("carol@x.org", "dave@y.org")) == "[with carol, dave] hi"


def test_subscribe_answered_at_once_only_when_on_forward_list() -> None:
    assert answer_subscribe_at_once(int(FL | AL))
    assert not answer_subscribe_at_once(int(AL | RL))


@pytest.mark.parametrize(
    ("status", "psm", "presence"),
    [
        (Status.NLN, "", Presence(Show.AVAILABLE)),
        (Status.NLN, " At work ", Presence(Show.AVAILABLE, "At work")),
        (Status.BSY, "", Presence(Show.DND)),
        (Status.PHN, "", Presence(Show.DND, "On the phone")),
        (Status.PHN, "Call me", Presence(Show.DND, "Call me")),
        (Status.AWY, "", Presence(Show.AWAY)),
        (Status.BRB, "", Presence(Show.AWAY, "Be right back")),
        (Status.LUN, "", Presence(Show.AWAY, "Out to lunch")),
        (Status.IDL, "", Presence(Show.AWAY, "Idle")),
        (Status.HDN, "secret", OFFLINE),
        (Status.FLN, "gone", OFFLINE),
    ],
)
def test_msn_status_to_contact_presence(status: Status, psm: str, presence: Presence) -> None:
    assert msn_to_xmpp_presence(status, psm) == presence


@pytest.mark.parametrize(
    ("show", "status"),
    [
        (Show.AVAILABLE, Status.NLN),
        (Show.CHAT, Status.NLN),
        (Show.AWAY, Status.AWY),
        (Show.XA, Status.AWY),
        (Show.DND, Status.BSY),
        (Show.UNAVAILABLE, None),
    ],
)
def test_subscriber_presence_to_msn_status(show: Show, status: Status | None) -> None:
    assert xmpp_to_msn_status(Presence(show, "text")) is status


@pytest.mark.parametrize(
    ("text", "psm"),
    [
        ("", ""),
        ("On mobile", "On mobile"),
        ("  two\nlines\t here ", "two lines here"),
        ("Gone <fishing> & back", "Gone <fishing> & back"),  # escaped by the UUX codec
        ("x" * 300, "x" * PSM_MAX_CHARS),
    ],
)
def test_status_text_to_personal_message(text: str, psm: str) -> None:
    assert status_text_to_psm(text) == psm


def test_personal_message_to_status_text() -> None:
    assert psm_to_status_text("  Grüß dich ✓ ") == "Grüß dich ✓"
    assert psm_to_status_text("") == ""
