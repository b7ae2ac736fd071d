"""AwayBook: since when a subscriber is away, and whose presence is unknown after a
component's stream ended (pure, time passed in)."""

from __future__ import annotations

from gateway.addressing import BareJid
from gateway.core.presence import AwayBook

ALICE, BOB = BareJid.parse("alice@example.test"), BareJid.parse("bob@example.test")
GRACE, STARTED = 8.0, 100.0


def test_before_anything_is_heard_the_grace_counts_from_the_start() -> None:
    assert AwayBook().texting_from(ALICE, GRACE, STARTED) == STARTED + GRACE


def test_a_client_leaving_starts_the_grace_and_one_coming_back_ends_it() -> None:
    book = AwayBook()
    book.left(ALICE, 200.0)
    book.left(ALICE, 205.0)  # the first counts
    assert book.texting_from(ALICE, GRACE, STARTED) == 208.0
    book.back(ALICE)
    assert book.texting_from(ALICE, GRACE, STARTED) == STARTED + GRACE


def test_a_loss_makes_who_was_online_unknown_and_leaves_who_was_away_alone() -> None:
    book = AwayBook()
    book.left(BOB, 150.0)  # away before the loss
    book.lost((ALICE,), 300.0, GRACE)
    assert book.unknown() == (ALICE,)
    assert book.texting_from(ALICE, GRACE, STARTED) == 308.0
    assert book.texting_from(BOB, GRACE, STARTED) == 158.0  # no new wait
    book.back(ALICE)  # the server told us again
    assert book.unknown() == ()


def test_told_away_after_a_loss_counts_from_the_loss() -> None:
    book = AwayBook()
    book.lost((ALICE,), 300.0, GRACE)
    book.left(ALICE, 302.0)
    assert book.unknown() == ()
    assert book.texting_from(ALICE, GRACE, STARTED) == 308.0


def test_who_left_just_before_the_loss_is_unknown_since_they_left() -> None:
    """The server going down sends its users' unavailable presence, then closes the stream."""
    book = AwayBook()
    book.left(BOB, 299.9)
    book.lost((), 300.0, GRACE)
    assert book.unknown() == (BOB,)
    assert book.texting_from(BOB, GRACE, STARTED) == 307.9  # no longer wait than before
