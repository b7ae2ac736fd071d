"""Message rates and the reload plan: pure, with the time passed in."""

from __future__ import annotations

from pathlib import Path

from gateway.config import Config, parse
from gateway.ops.rates import RateWindow
from gateway.ops.reload import plan


def test_rate_is_what_was_counted_over_the_last_minute() -> None:
    rates = RateWindow(start=0.0)
    assert rates.per_minute(10.0, {("sms", "to_network"): 3}) == {"sms": {"to_network": 3.0}}
    for t in range(5, 125, 5):
        rates.sample(float(t), {("sms", "to_network"): t // 5})
    # at t=120 the total is 24; at t=60 it was 12: 12 in the last minute
    assert rates.per_minute(120.0, {("sms", "to_network"): 24})["sms"]["to_network"] == 12.0


def test_rate_window_keeps_bounded_history() -> None:
    rates = RateWindow(start=0.0)
    for t in range(0, 10000, 5):
        rates.sample(float(t), {("x", "to_xmpp"): t})
    assert len(rates._samples) <= 14


def config(
    tmp_path: Path, *, admins: list[str], per_hour: int = 60, port: int = 5347, level: str = "info"
) -> Config:
    return parse(
        {
            "xmpp": {"port": port, "user_domains": ["example.org"], "admins": admins},
            "storage": {"path": "gw.db", "key_file": "k"},
            "logging": {"level": level},
            "sms": {
                "jid": "sms.example.org",
                "secret": "s3cret-value",
                "service_number": "2020",
                "smsc": {"system_id": "gw", "password": "pw"},
                "limits": {"per_user_per_hour": per_hour},
            },
        },
        env={},
        source=tmp_path / "passerelle.toml",
    )


def test_reload_applies_live_keys_and_lists_the_rest(tmp_path: Path) -> None:
    running = config(tmp_path, admins=["admin@example.org"])
    reread = config(tmp_path, admins=["root@example.org"], per_hour=5, port=5348, level="debug")
    result = plan(running, reread)
    assert result.config.sms is not None and result.config.sms.limits.per_user_per_hour == 5
    assert [str(a) for a in result.config.xmpp.admins] == ["root@example.org"]
    assert result.config.logging.level == "debug"
    assert result.config.xmpp.port == 5347  # needs a restart: the running value stays
    assert result.applied == (
        "logging.level (info → debug)",
        "sms.limits.per_user_per_hour (60 → 5)",
        "xmpp.admins ([admin@example.org] → [root@example.org])",
    )
    assert result.needs_restart == ("xmpp.port (5347 → 5348)",)
    assert "needs a restart" in result.summary() and "xmpp.port" in result.summary()


def test_reload_never_shows_a_secret_and_reports_nothing_changed(tmp_path: Path) -> None:
    running = config(tmp_path, admins=[])
    assert plan(running, running).summary() == "configuration reloaded: nothing changed"
    changed = parse(
        {
            "xmpp": {"user_domains": ["example.org"]},
            "storage": {"path": "gw.db", "key_file": "k"},
            "sms": {
                "jid": "sms.example.org",
                "secret": "another-secret",
                "service_number": "2020",
                "smsc": {"system_id": "gw", "password": "pw"},
            },
            "msn": {"jid": "msn.example.org", "secret": "msn-secret", "server": {"nexus_url": "http://x/"}},
        },
        env={},
        source=tmp_path / "passerelle.toml",
    )
    summary = plan(running, changed).summary()
    assert "sms.secret (changed)" in summary and "msn (section added or removed)" in summary
    assert "another-secret" not in summary and "s3cret-value" not in summary
