"""The core's rules, as plain function calls; and the core stays free of I/O."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.addressing import BareJid, FullJid
from gateway.core import roster, xep0100
from gateway.core.actions import SendXmppPresence
from gateway.core.events import LegacyContact, XmppPresenceReceived
from gateway.core.model import OFFLINE, Presence, Show
from gateway.core.presence import ResourceBook

ALICE = BareJid.parse("alice@example.org")


def test_core_imports_no_io() -> None:
    forbidden = {"asyncio", "slixmpp", "aiosqlite", "socket", "sqlite3", "time"}
    core = Path(__file__).parents[2] / "gateway" / "core"
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_resource_book_transitions() -> None:
    book = ResourceBook()
    t = book.update(FullJid(ALICE, "phone"), Presence(Show.AWAY))
    assert t.came_online and not t.went_offline and t.aggregate.show is Show.AWAY
    t = book.update(FullJid(ALICE, "pc"), Presence(Show.AVAILABLE))
    assert not t.came_online and t.aggregate.show is Show.AVAILABLE  # most available wins
    t = book.update(FullJid(ALICE, "pc"), OFFLINE)
    assert not t.went_offline and t.aggregate.show is Show.AWAY
    t = book.update(FullJid(ALICE, "phone"), OFFLINE)
    assert t.went_offline and not book.is_online(ALICE)


def test_xep0100_component_subscription_rules() -> None:
    sub = XmppPresenceReceived(FullJid(ALICE, "r"), None, "subscribe", OFFLINE)
    assert [a.type for a in xep0100.to_component(sub, registered=True)] == ["subscribed", "available"]
    assert [a.type for a in xep0100.to_component(sub, registered=False)] == ["unsubscribed"]
    probe = XmppPresenceReceived(FullJid(ALICE, "r"), None, "probe", OFFLINE)
    assert [a.type for a in xep0100.to_component(probe, registered=True)] == ["available"]
    assert xep0100.after_registration(ALICE)[0] == SendXmppPresence(ALICE, None, "subscribe")
    assert [a.type for a in xep0100.after_unregistration(ALICE)] == [
        "unsubscribe",
        "unsubscribed",
        "unavailable",
    ]


def test_roster_diff_pushes_only_changes() -> None:
    a = LegacyContact("a", "A", "both")
    b = LegacyContact("b", "B", "to")
    assert roster.diff([a, b], [a, b]).empty
    renamed = LegacyContact("b", "Bee", "to")
    change = roster.diff([a, b], [renamed, LegacyContact("c", "C", "none")])
    assert {c.legacy_id for c in change.changed} == {"b", "c"}
    assert change.removed == ("a",)
