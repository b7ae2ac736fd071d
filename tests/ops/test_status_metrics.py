"""The status table and the Prometheus families, from one snapshot (pure)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gateway.ops.metrics import families
from gateway.ops.status import render

SNAP: dict[str, Any] = {
    "version": "0.1.0",
    "pid": 4242,
    "started": 1700000000.0,
    "uptime_s": 7384.0,
    "config": "/etc/passerelle/passerelle.toml",
    "components": {
        "sms": {"jid": "sms.example.org", "connected": True},
        "msn": {"jid": "msn.example.org", "connected": False},
    },
    "networks": {
        "sms": {"smsc": "bound", "in_flight": 2, "window": 10, "submitted_parts": 120, "throttled": 3},
        "msn": {"sessions": 14, "logged_in": 12, "connecting": 1, "failing": 1, "logins_failed": 4},
    },
    "outbox": {"depth": 3, "oldest_age_s": 42.0, "queues": {"sms": 2, "xmpp:msn": 1}},
    "messages_per_minute": {"sms": {"to_network": 4.0, "to_xmpp": 2.0}, "msn": {"to_network": 10.0}},
    "totals": {
        "to_network": {"sms": 100, "msn": 7},
        "to_xmpp": {"sms": 50},
        "failed": {"sms": 2},
        "replayed_after_restart": 1,
    },
    "subscribers": 31,
    "over_sms_limit": [
        {
            "jid": "alice@example.org",
            "msisdn": "+33612345678",
            "last_hour": 60,
            "per_user_per_hour": 60,
            "last_day": 120,
            "per_user_per_day": 300,
        }
    ],
}


def test_the_table_shows_every_part() -> None:
    text = render(SNAP)
    assert (
        text.splitlines()[0]
        == "Passerelle 0.1.0, pid 4242, up 2h 03m, config /etc/passerelle/passerelle.toml"
    )
    assert "  msn      msn.example.org                  DISCONNECTED" in text
    assert "SMSC bound; 2/10 in flight (window); submitted_parts=120 throttled=3" in text
    assert "14 sessions, 12 logged in, 1 connecting, 1 failing; logins_failed=4" in text
    assert "Outbox     3 messages, oldest 42s (sms 2, xmpp:msn 1)" in text
    assert "  sms                4.0       2.0               2" in text
    assert "alice@example.org (+33612345678): 60/60 this hour, 120/300 today" in text


class Fixed(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        yield from families(SNAP)


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_match_the_status() -> None:
    got = samples()
    assert got[("passerelle_messages_total", (("direction", "to_network"), ("network", "sms")))] == 100
    assert got[("passerelle_messages_total", (("direction", "to_xmpp"), ("network", "sms")))] == 50
    assert got[("passerelle_message_failures_total", (("network", "sms"),))] == 2
    assert got[("passerelle_component_connected", (("network", "msn"),))] == 0
    assert got[("passerelle_smsc_bound", (("network", "sms"),))] == 1
    assert got[("passerelle_network_in_flight", (("network", "sms"),))] == 2
    assert got[("passerelle_network_logged_in", (("network", "msn"),))] == 12
    assert got[("passerelle_network_failing", (("network", "msn"),))] == 1
    assert got[("passerelle_network_throttled_total", (("network", "sms"),))] == 3
    assert got[("passerelle_outbox_depth", ())] == 3
    assert got[("passerelle_outbox_oldest_age_seconds", ())] == 42
    assert got[("passerelle_outbox_queue_depth", (("queue", "xmpp:msn"),))] == 1
    assert got[("passerelle_messages_per_minute", (("direction", "to_network"), ("network", "msn")))] == 10
    assert got[("passerelle_subscribers_over_sms_limit", ())] == 1
    assert got[("passerelle_subscribers", ())] == 31
    assert all(name.startswith("passerelle_") for name, _ in got)
