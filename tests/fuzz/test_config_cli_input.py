"""Generated config files and command lines: the answer is always exit 0, or exit 1 with
one line ``passerelle: <key or file>: …`` on stderr, or exit 2 with click's usage text.
Never a traceback, whatever the file holds."""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.cli import main
from gateway.storage import create_key_file
from tests.fuzz import fuzz

VALID: dict[str, Any] = {
    "xmpp": {"host": "127.0.0.1", "port": 5347, "user_domains": ["example.org"], "admins": ["a@example.org"]},
    "storage": {"path": "gw.db", "key_file": "secret.key"},
    "sms": {
        "jid": "sms.example.org",
        "secret": "a-real-secret",
        "service_number": "2020",
        "smsc": {"host": "127.0.0.1", "port": 2775, "system_id": "gw", "password": "pw"},
        "limits": {"per_user_per_hour": 60},
    },
    "msn": {
        "jid": "msn.example.org",
        "secret": "another-secret",
        "server": {"nexus_url": "http://127.0.0.1/n"},
    },
    "logging": {"level": "info"},
}


def _paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        out.append(path)
        if isinstance(value, dict):
            out += _paths(value, path)
    return out


PATHS = _paths(VALID)
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=50),
    st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), max_size=2),
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value > 0 else "-inf")
            if value in (float("inf"), float("-inf"))
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is JSON-compatible for these
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(tree: dict[str, Any], prefix: str = "") -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    for key, value in tree.items():
        if isinstance(value, dict):
            name = f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key)
            lines.append(f"\n[{name}]")
            lines.append(to_toml(value, name))
    return "\n".join(lines)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    tree = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS)).split(".")
        parent = tree
        for part in path[:-1]:
            node = parent.get(part)
            if not isinstance(node, dict):
                break
            parent = node
        else:
            action = draw(st.sampled_from(["replace", "delete", "extra"]))
            if action == "replace":
                parent[path[-1]] = draw(scalars)
            elif action == "delete":
                parent.pop(path[-1], None)
            else:
                parent[draw(st.text(st.sampled_from("abcxyz_-"), min_size=1, max_size=8))] = draw(scalars)
    return tree


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) [\w.]+: ")


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=True)


def assert_clean(result: Result, *, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    assert result.exit_code in allowed, result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), f"traceback: {result.exception!r}"
    if result.exit_code == 1:
        lines = result.stderr.strip().splitlines()
        # one error line, last; anything before it is a log line (e.g. "database migrated")
        assert lines and lines[-1].startswith("passerelle: "), result.stderr
        assert all(LOG_LINE.match(line) for line in lines[:-1]), result.stderr
        assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "Usage:" in result.stderr or "Error:" in result.stderr, result.stderr


@fuzz(60, cost=5)
@given(mutated())
@example({**VALID, "xmpp": {**VALID["xmpp"], "port": "abc"}})
def test_generated_configs_fail_in_one_line_naming_the_key(tree: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        create_key_file(Path(tmp) / "secret.key")
        cfg = Path(tmp) / "p.toml"
        cfg.write_text(to_toml(tree))
        result = run(["-c", str(cfg), "check-config"])
        assert_clean(result, allowed=(0, 1))
        if result.exit_code == 1:
            line = result.stderr.strip().splitlines()[-1]
            named = [p for p in PATHS if f" {p}:" in f" {line[len('passerelle: ') :]}"]
            # the line names a dotted key (or the file itself when it is not TOML at all)
            assert named or str(cfg) in line or ": unknown key" in line or "sms, msn:" in line, line


@fuzz(60, cost=5)
@given(st.binary(max_size=300))
@example(b"\xff\xfe[xmpp]")
@example(b"[xmpp\n")
def test_garbage_config_files_fail_in_one_line(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "p.toml"
        cfg.write_bytes(data)
        result = run(["-c", str(cfg), "check-config"])
        assert_clean(result, allowed=(1,))


tokens = st.sampled_from(
    ["check-config", "db", "upgrade", "user", "list", "show", "add", "remove", "contact", "status",
     "--json", "--yes", "--msisdn", "--msn", "--msn-password-file", "--name", "-v", "-vv",
     "--log-format", "json", "xml", "--bogus", "-c", "alice@example.org", "+33612345678", "06",
     "not a jid", "@@", "", "-", "--", "\u00e9\u00e8", "/nonexistent/file", "--help"]
)  # fmt: skip


@fuzz(80, cost=5)
@given(st.lists(tokens, max_size=6))
@example(["user", "add", "--msn", "x@y.z"])
@example(["user", "show", "not a jid"])
@example(["--log-format", "xml", "check-config"])
def test_generated_command_lines_exit_0_1_or_2_without_traceback(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        create_key_file(Path(tmp) / "secret.key")
        cfg = Path(tmp) / "p.toml"
        cfg.write_text(to_toml(VALID))
        old = os.getcwd()
        os.chdir(tmp)  # `init` and relative paths land in the throwaway directory
        try:
            result = run(argv, env={"PASSERELLE_CONFIG": str(cfg)})
        finally:
            os.chdir(old)
        assert_clean(result)
