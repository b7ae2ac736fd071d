"""Config errors name the dotted key and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load, parse


def good() -> dict[str, Any]:
    return {
        "xmpp": {"user_domains": ["example.org"], "admins": ["admin@example.org"]},
        "storage": {"path": "db.sqlite", "key_file": "secret.key"},
        "sms": {
            "jid": "sms.example.org",
            "secret": "s3cret-value",
            "service_number": "2020",
            "smsc": {"system_id": "gw", "password": "pw"},
        },
    }


def error(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, env or {})
    return str(info.value)


def test_good_config_has_defaults() -> None:
    cfg = parse(good(), {})
    assert cfg.xmpp.port == 5347 and cfg.xmpp.registration == "open"
    assert cfg.sms is not None and cfg.sms.smsc.port == 2775 and cfg.sms.max_parts == 6
    assert cfg.msn is None
    assert "s3cret" not in repr(cfg) and "s3cret" not in cfg.summary()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("sms", "smsc", "port"), "abc", 'sms.smsc.port: expected an integer 1-65535, got "abc"'),
        (("xmpp", "port"), 70000, "xmpp.port: expected an integer 1-65535, got 70000"),
        (("xmpp", "registration"), "maybe", 'xmpp.registration: expected "open" or "closed", got "maybe"'),
        (("xmpp", "user_domains"), "example.org", "xmpp.user_domains: expected a list of strings"),
        (("sms", "max_parts"), True, "sms.max_parts: expected an integer 1-255, got True"),
        (("sms", "default_region"), "XX", 'sms.default_region: expected a region code like "FR"'),
        (("sms", "colour"), "blue", "sms.colour: unknown key"),
        (("xmpp", "admins"), ["not a jid@"], "xmpp.admins:"),
    ],
)
def test_errors_name_the_key(path: tuple[str, ...], value: object, message: str) -> None:
    data = good()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert error(data).startswith(message)


def test_unknown_section_and_missing_sections() -> None:
    data = good()
    data["smss"] = {}
    assert error(data) == "smss: unknown key"
    data = good()
    del data["sms"]
    assert "configure at least one network section" in error(data)
    data = good()
    del data["storage"]
    assert error(data) == "storage: required key is missing"


def test_placeholder_secret_is_refused() -> None:
    data = good()
    data["sms"]["secret"] = "change-me"
    assert "sms.secret: still the sample placeholder" in error(data)


def test_secret_from_file_and_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "sms.secret"
    secret_file.write_text("from-a-file\n")
    data = good()
    del data["sms"]["secret"]
    data["sms"]["secret_file"] = str(secret_file)
    cfg = parse(data, {})
    assert cfg.sms is not None and cfg.sms.secret.value == "from-a-file"
    del data["sms"]["secret_file"]
    cfg = parse(data, {"PASSERELLE_SMS_SECRET": "from-env"})
    assert cfg.sms is not None and cfg.sms.secret.value == "from-env"
    assert "PASSERELLE_SMS_SECRET" in error(data)
    data["sms"]["secret_file"] = str(tmp_path / "missing")
    assert error(data).startswith("sms.secret_file: cannot read")


def test_load_reports_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[xmpp\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "none.toml")


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "p.toml"
    path.parent.mkdir()
    path.write_text(
        '[xmpp]\nuser_domains = ["example.org"]\n[storage]\npath = "db.sqlite"\nkey_file = "k.key"\n'
        '[msn]\njid = "msn.example.org"\nsecret = "abc"\n[msn.server]\nnexus_url = "http://127.0.0.1:1/n"\n'
    )
    cfg = load(path)
    assert cfg.storage.path == path.parent.resolve() / "db.sqlite"
    assert cfg.msn is not None and cfg.msn.server.port == 1863
