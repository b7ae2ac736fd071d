"""Every documented key set out of range: ``check-config`` and ``run`` both answer with the
same one line ``passerelle: <key>: …`` and exit 1, never a traceback (issue 14, item 11:
``check-config`` used to pass SMPP fields that ``run`` then crashed on)."""

from __future__ import annotations

import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gateway.app import Gateway
from gateway.cli import main
from gateway.storage.migrations import LATEST
from tests.fuzz.test_config_cli_input import to_toml

Tree = dict[str, Any]

# (dotted key, value): the key the one line must name comes first in each case
CASES: list[tuple[str, Any]] = [
    ("xmpp.host", ""),
    ("xmpp.port", 0),
    ("xmpp.port", 65536),
    ("xmpp.user_domains", []),
    ("xmpp.admins", ["not a jid@"]),
    ("xmpp.registration", "maybe"),
    ("storage.path", ""),
    ("storage.key_file", ""),
    ("logging.level", "loud"),
    ("logging.format", "xml"),
    ("metrics.listen", "9464"),
    ("sms.jid", "someone@sms.example.test"),
    ("sms.secret", "change-me"),
    ("sms.default_region", "XX"),
    ("sms.service_number", ""),
    ("sms.service_number", "1" * 21),
    ("sms.service_number", "a sender name too long"),
    ("sms.service_number", "+33612345678"),
    ("sms.max_parts", 0),
    ("sms.max_parts", 256),
    ("sms.validity_s", 59),
    ("sms.validity_s", 7 * 86400 + 1),
    ("sms.transliterate", "yes"),
    ("sms.smsc.host", ""),
    ("sms.smsc.port", 0),
    ("sms.smsc.system_id", "x" * 16),
    ("sms.smsc.system_id", "café-ß-€"),
    ("sms.smsc.password", "p" * 9),
    ("sms.smsc.password", "change-me"),
    ("sms.smsc.system_type", "t" * 13),
    ("sms.smsc.window", 0),
    ("sms.smsc.window", 1001),
    ("sms.smsc.max_rate", 0),
    ("sms.smsc.enquire_link_s", 0.5),
    ("sms.limits.per_user_per_hour", -1),
    ("sms.limits.per_user_per_day", -1),
    ("sms.limits.global_per_day", -1),
    ("convergence.always_connected", "yes"),
    ("convergence.prefer", "xmpp"),
    ("convergence.reply_window_s", 59),
    ("convergence.mobile_status_text", 5),
    ("convergence.max_forwards_per_minute", 0),
    ("msn.jid", "sms.example.test"),
    ("msn.secret", "change-me"),
    ("msn.server.host", ""),
    ("msn.server.port", 70000),
    ("msn.server.nexus_url", "ftp://nexus.example.test/"),
    ("msn.server.nexus_url", "http://"),
    ("msn.server.nexus_url", "http://nexus.example.test:99999/"),
    ("msn.server.login_url", "https:///login"),
]


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """A valid config from ``init`` (no database yet: init's own is removed)."""
    path = tmp_path / "p.toml"
    result = CliRunner().invoke(main, ["-c", str(path), "init", "--domain", "example.test"])
    assert result.exit_code == 0, result.output
    (tmp_path / "passerelle.db").unlink(missing_ok=True)
    return tomllib.loads(path.read_text())


def put(tree: Tree, dotted: str, value: Any) -> None:
    *sections, name = dotted.split(".")
    node = tree
    for section in sections:
        node = node.setdefault(section, {})
    node[name] = value


def cli(path: Path, command: str) -> Result:
    return CliRunner().invoke(main, ["-c", str(path), command])


@pytest.fixture
def run_stops_after_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` goes through the whole start-up (store, transports, components) and stops
    instead of serving: a config that gets that far fails the test, as does a traceback."""

    async def start_then_stop(self: Gateway) -> None:
        try:
            await self.start()
        finally:
            await self.stop()
        raise AssertionError("run started with an out-of-range config")

    monkeypatch.setattr(Gateway, "run_until_signal", start_then_stop)


def assert_one_line(result: Result, key: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"passerelle: {key}: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def check_both(path: Path, key: str) -> None:
    line = assert_one_line(cli(path, "check-config"), key)
    assert assert_one_line(cli(path, "run"), key) == line


@pytest.mark.usefixtures("run_stops_after_start")
@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v!r}"[:60] for k, v in CASES])
def test_out_of_range_key_is_one_line_for_check_config_and_run(
    tree: Tree, tmp_path: Path, key: str, value: Any
) -> None:
    put(tree, key, value)
    path = tmp_path / "p.toml"
    path.write_text(to_toml(tree))
    check_both(path, key)


def _long_socket(tree: Tree, tmp: Path) -> None:
    put(tree, "admin.socket", str(tmp / ("s" * 120)))


def _missing_key(tree: Tree, tmp: Path) -> None:
    (tmp / "secret.key").unlink()


def _newer_database(tree: Tree, tmp: Path) -> None:
    with sqlite3.connect(tmp / "passerelle.db") as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")


def _other_key(tree: Tree, tmp: Path) -> None:
    from gateway.storage import create_key_file

    assert CliRunner().invoke(main, ["-c", str(tmp / "p.toml"), "db", "upgrade"]).exit_code == 0
    (tmp / "secret.key").unlink()
    create_key_file(tmp / "secret.key")


def _not_a_database(tree: Tree, tmp: Path) -> None:
    (tmp / "passerelle.db").write_bytes(b"not sqlite at all" * 100)


@pytest.mark.usefixtures("run_stops_after_start")
@pytest.mark.parametrize(
    ("key", "spoil"),
    [
        ("admin.socket", _long_socket),
        ("storage.key_file", _missing_key),
        ("storage.path", _newer_database),
        ("storage.key_file", _other_key),
        ("storage.path", _not_a_database),
    ],
)
def test_files_the_config_names_are_checked_too(
    tree: Tree, tmp_path: Path, key: str, spoil: Callable[[Tree, Path], None]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(to_toml(tree))
    spoil(tree, tmp_path)
    path.write_text(to_toml(tree))
    check_both(path, key)


def test_limits_match_what_the_esme_refuses() -> None:
    """The loader's SMPP limits are the ESME's own: a value at the limit builds the ESME's
    settings, one past it is refused by both."""
    from gateway.config import SMPP_TEXT_MAX
    from transports.sms.esme_types import EsmeConfig

    for name, limit in SMPP_TEXT_MAX.items():
        fields = {"system_id": "gw", "password": "pw", "system_type": ""} | {name: "x" * limit}
        EsmeConfig("127.0.0.1", 2775, **fields)
        with pytest.raises(ValueError):
            EsmeConfig("127.0.0.1", 2775, **(fields | {name: "x" * (limit + 1)}))
