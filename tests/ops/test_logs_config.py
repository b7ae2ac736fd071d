"""Log lines (one per event, JSON parseable, a ref on every error, secrets masked) and
the [metrics] section."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_without_secrets, parse
from gateway.logs import HumanFormatter, JsonFormatter


def record(msg: str, *args: object, level: int = logging.INFO, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("gateway.test", level, __file__, 1, msg, args, exc_info)


def test_json_lines_parse_and_carry_the_users_reference() -> None:
    fmt = JsonFormatter(["hunter2-secret"])
    line = fmt.format(
        record("internal error ref=%s handling iq from %s", "1a2b3c4d", "alice@x", level=40, exc=True)
    )
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["ref"] == "1a2b3c4d" and entry["level"] == "error" and "ValueError" in entry["exc"]


def test_every_error_line_gets_a_reference_and_info_lines_do_not() -> None:
    fmt = JsonFormatter()
    assert len(json.loads(fmt.format(record("outbox round failed", level=40)))["ref"]) == 8
    assert "ref" not in json.loads(fmt.format(record("component connected")))


def test_secrets_are_masked_in_both_formats() -> None:
    for fmt in (JsonFormatter(["hunter2-secret", 'q"uo\\te']), HumanFormatter(["hunter2-secret"])):
        line = fmt.format(record("bind with password %s", "hunter2-secret"))
        assert "hunter2-secret" not in line and "***" in line
    line = JsonFormatter(['q"uo\\te']).format(record("secret %s", 'q"uo\\te'))
    assert json.loads(line)["msg"] == "secret ***"


def test_human_lines_are_one_line_even_with_a_traceback() -> None:
    line = HumanFormatter().format(record("it failed\nbadly", level=40, exc=True))
    assert "\n" not in line
    assert "ERROR gateway.test: it failed\\nbadly ref=" in line
    assert "| ValueError: boom" in line and "test_logs_config.py:" in line


def data(**metrics: object) -> dict[str, object]:
    return {
        "xmpp": {"user_domains": ["example.org"]},
        "storage": {"path": "gw.db", "key_file": "k"},
        "sms": {
            "jid": "sms.example.org",
            "secret": "xyz-secret",
            "service_number": "2020",
            "smsc": {"system_id": "gw", "password": "pw"},
        },
        "metrics": metrics,
    }


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)), ("", None)],
)
def test_metrics_listen(listen: str, expected: tuple[str, int] | None) -> None:
    assert parse(data(listen=listen), env={}).metrics.listen == expected


@pytest.mark.parametrize("listen", ["9464", "localhost", "127.0.0.1:99999", ":9464", "127.0.0.1:http"])
def test_metrics_listen_errors_name_the_key(listen: str) -> None:
    with pytest.raises(ConfigError, match=r'^metrics.listen: expected "host:port"'):
        parse(data(listen=listen), env={})
    with pytest.raises(ConfigError, match=r"metrics\.port: unknown key"):
        parse(data(port=1), env={})


def test_paths_only_loading_needs_no_secret(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        '[xmpp]\nuser_domains = ["example.org"]\n[storage]\npath = "gw.db"\nkey_file = "k"\n'
        '[sms]\njid = "sms.example.org"\nservice_number = "1"\n[sms.smsc]\nsystem_id = "gw"\n'
    )
    assert load_without_secrets(cfg).admin.socket == tmp_path / "gw.db.sock"
