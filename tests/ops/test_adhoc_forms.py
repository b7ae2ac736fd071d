"""XEP-0050 payloads for each kind of result (XML out, no network)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from gateway.ops.adhoc import NS_COMMANDS, NS_DATA, _ask, _complete, _submitted
from gateway.ops.admin_commands import SUBSCRIBER, Command, Fields, Note, Table, commands_for, show_status

C, D = f"{{{NS_COMMANDS}}}", f"{{{NS_DATA}}}"


def test_each_network_offers_its_commands() -> None:
    assert [c.node for c in commands_for("sms")] == [
        "status",
        "list-subscribers",
        "show-subscriber",
        "resend-code",
        "outbox",
        "reload-config",
    ]
    assert "disconnect-user" in [c.node for c in commands_for("msn")]
    assert "resend-code" not in [c.node for c in commands_for("msn")]


def test_a_command_asks_its_one_form_then_completes() -> None:
    asked = _ask("show-subscriber", "s1", Command("show-subscriber", "Show", show_status), SUBSCRIBER)
    assert asked.get("status") == "executing" and asked.get("sessionid") == "s1"
    assert asked.find(f"{C}actions/{C}complete") is not None
    assert asked.find(f"{D}x/{D}field").get("var") == "subscriber"  # type: ignore[union-attr]
    request = ET.fromstring(
        f"<command xmlns='{NS_COMMANDS}' node='show-subscriber' sessionid='s1' action='complete'>"
        f"<x xmlns='{NS_DATA}' type='submit'><field var='subscriber'><value>alice@x.org</value></field></x>"
        "</command>"
    )
    assert _submitted(request) == {"subscriber": "alice@x.org"}


def test_results_render_as_notes_fields_and_tables() -> None:
    note = _complete("reload-config", "s", Note("nothing changed"))
    assert note.get("status") == "completed" and note.findtext(f"{C}note") == "nothing changed"
    fields = _complete(
        "show-subscriber", "s", Fields("Subscriber", (("sms", "SMS", "account +33\n2 contacts"),))
    )
    field = fields.find(f"{D}x/{D}field")
    assert field is not None and field.get("type") == "text-multi"
    assert [v.text for v in field.findall(f"{D}value")] == ["account +33", "2 contacts"]
    table = _complete("outbox", "s", Table("Outbox", (("id", "Id"),), ({"id": "7"},), note="1 messages"))
    assert table.find(f"{D}x/{D}reported/{D}field").get("var") == "id"  # type: ignore[union-attr]
    assert table.findtext(f"{D}x/{D}item/{D}field/{D}value") == "7"
