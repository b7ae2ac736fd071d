"""The ``passerelle`` command: exit statuses, one-line errors, no secrets printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    result = CliRunner().invoke(main, ["-c", str(path), "init", "--domain", "example.test"])
    assert result.exit_code == 0, result.output
    return path


def run(cfg: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["-c", str(cfg), *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_init_then_check_config_passes_and_hides_secrets(cfg: Path) -> None:
    code, out, err = run(cfg, "check-config")
    assert code == 0 and out.startswith("OK: sms=sms.example.test msn=msn.example.test")
    secrets = re.findall(r'(?:secret|password) = "([^"]+)"', cfg.read_text())
    assert len(secrets) == 3 and "change-me" not in secrets
    assert not any(s in out + err for s in secrets)
    assert cfg.stat().st_mode & 0o777 == 0o600


def test_init_never_overwrites(cfg: Path) -> None:
    key = cfg.parent / "secret.key"
    before = cfg.read_bytes(), key.read_bytes()
    code, out, _ = run(cfg, "init")
    assert code == 0 and f"kept {cfg} (it exists)" in out and f"kept {key} (it exists)" in out
    assert (cfg.read_bytes(), key.read_bytes()) == before


def test_broken_config_is_one_line_naming_the_key(cfg: Path) -> None:
    cfg.write_text(cfg.read_text().replace("port = 2775", 'port = "abc"'))
    code, out, err = run(cfg, "check-config")
    assert code == 1
    assert err.strip() == 'passerelle: sms.smsc.port: expected an integer 1-65535, got "abc"'
    assert "Traceback" not in out + err


def test_config_path_from_environment(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSERELLE_CONFIG", str(cfg))
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code == 0


def test_user_lifecycle(cfg: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("msn-password\n")
    assert run(cfg, "user", "add", "alice@example.test", "--msisdn", "0612345678")[0] == 0
    assert (
        run(
            cfg,
            "user",
            "add",
            "--msisdn",
            "+33698765432",
            "--msn",
            "bob@msn.test",
            "--msn-password-file",
            str(pw),
        )[0]
        == 0
    )
    code, _, err = run(cfg, "user", "add", "carol@example.test", "--msisdn", "+33612345678")
    assert code == 1 and "already linked" in err
    code, out, _ = run(cfg, "user", "list", "--json")
    rows = json.loads(out)
    assert [(r["jid"], r["msisdn"], r["msn"]) for r in rows] == [
        ("alice@example.test", "+33612345678", None),
        (None, "+33698765432", "bob@msn.test"),
    ]
    assert all(set(r) == {"jid", "msisdn", "msn", "created"} for r in rows)
    code, out, _ = run(cfg, "user", "show", "+33698765432")
    assert code == 0 and "bob@msn.test" in out and "msn-password" not in out
    code, _, err = run(cfg, "user", "remove", "+33698765432")
    assert code == 1 and "--yes" in err  # no terminal: refuse rather than guess
    assert run(cfg, "user", "remove", "+33698765432", "--yes")[0] == 0
    code, _, err = run(cfg, "user", "show", "+33698765432")
    assert code == 1 and "no subscriber" in err
    db = cfg.parent / "passerelle.db"
    assert b"msn-password" not in b"".join(p.read_bytes() for p in db.parent.glob("passerelle.db*"))


def test_usage_errors_exit_2(cfg: Path) -> None:
    assert run(cfg, "user", "add")[0] == 2
    assert run(cfg, "user", "add", "a@example.test", "--msn", "a@msn.test")[0] == 2
    assert run(cfg, "frobnicate")[0] == 2


def test_foreign_domain_and_bad_number(cfg: Path) -> None:
    code, _, err = run(cfg, "user", "add", "eve@elsewhere.test")
    assert code == 1 and "user_domains" in err
    code, _, err = run(cfg, "user", "add", "--msisdn", "12")
    assert code == 1 and "phone number" in err


def test_db_upgrade_and_wrong_key(cfg: Path) -> None:
    code, out, _ = run(cfg, "db", "upgrade")
    assert code == 0 and "schema version" in out
    key = cfg.parent / "secret.key"
    key.unlink()
    code, _, err = run(cfg, "user", "list")
    assert code == 1 and "key file not found" in err
    from cryptography.fernet import Fernet

    key.write_bytes(Fernet.generate_key())
    code, _, err = run(cfg, "user", "list")
    assert code == 1 and "not the one this database was created with" in err


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["init", "--help"],
        ["check-config", "--help"],
        ["db", "upgrade", "--help"],
        ["user", "add", "--help"],
        ["user", "list", "--help"],
        ["user", "show", "--help"],
        ["user", "remove", "--help"],
        ["run", "--help"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_contact_link_and_user_settings(cfg: Path, tmp_path: Path) -> None:
    assert run(cfg, "user", "add", "alice@example.test", "--msisdn", "+33612345678")[0] == 0
    code, out, _ = run(cfg, "contact", "link", "alice@example.test", "Bob@Escargot.test", "0698765432")
    assert code == 0 and "bob@escargot.test" in out and "+33698765432" in out
    code, _, err = run(cfg, "contact", "link", "alice@example.test", "not-a-handle", "+33698765432")
    assert code == 1 and "MSN handle" in err
    code, out, _ = run(cfg, "user", "set", "+33612345678", "--prefer", "sms", "--no-forwarding")
    assert code == 0 and "forwarding=False" in out and "prefer=sms" in out
    assert run(cfg, "user", "set", "+33612345678")[0] == 2

    import asyncio

    from gateway.addressing import BareJid
    from gateway.storage import Cipher, Store

    async def check() -> None:
        store = await Store.open(cfg.parent / "passerelle.db", Cipher.from_file(cfg.parent / "secret.key"))
        sub = await store.subscriber_by_jid(BareJid.parse("alice@example.test"))
        assert sub is not None and sub.settings == {"prefer": "sms", "forwarding": False}
        linked = await store.contact_by_phone(sub.id, "msn", "+33698765432")
        assert linked is not None and linked.legacy_id == "bob@escargot.test" and linked.phone_manual
        await store.close()

    asyncio.run(check())
