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
    assert run(cfg, "user", "add", "a@example.test", "--msn-password-file", "pw")[0] == 2
    code, _, err = run(cfg, "user", "add", "a@example.test", "--msn", "a@msn.test")
    assert code == 1 and "--msn-password-file FILE (there is no terminal to ask on)" in err
    assert run(cfg, "user", "add", "a@example.test")[0] == 0
    code, _, err = run(cfg, "user", "add", "a@example.test", "--msisdn", "+33612345678")
    assert code == 1 and "already a subscriber; change them with passerelle user set a@example.test" in err
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
        ["status", "--help"],
        ["user", "set", "--help"],
        ["contact", "list", "--help"],
        ["contact", "remove", "--help"],
        ["contact", "unlink", "--help"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_contact_link_and_user_settings(cfg: Path, tmp_path: Path) -> None:
    assert run(cfg, "user", "add", "alice@example.test", "--msisdn", "+33612345678")[0] == 0
    code, _, err = run(cfg, "contact", "link", "alice@example.test", "bob@escargot.test", "0698765432")
    assert code == 1 and err.strip() == (
        "passerelle: alice@example.test has no MSN account, so has no MSN buddies to link; "
        "give them one first (passerelle user set alice@example.test --msn HANDLE)"
    )
    (tmp_path / "pw").write_text("pw\n")
    assert (
        run(
            cfg,
            "user",
            "set",
            "alice@example.test",
            "--msn",
            "alice@escargot.test",
            "--msn-password-file",
            str(tmp_path / "pw"),
        )[0]
        == 0
    )
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


def test_user_set_gives_changes_and_takes_accounts(
    cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret one\n")
    assert run(cfg, "user", "add", "alice@example.test")[0] == 0
    assert run(cfg, "user", "add", "--msisdn", "+33698765432")[0] == 0
    code, out, err = run(cfg, "user", "set", "alice@example.test", "--msisdn", "0612345678")
    assert code == 0, err
    assert (
        "msisdn=+33612345678" in out and "no gateway is running; it applies the change when it starts" in out
    )
    code, _, err = run(cfg, "user", "set", "alice@example.test", "--msisdn", "+33698765432")
    assert code == 1 and err.strip() == (
        "passerelle: +33698765432 already belongs to subscriber +33698765432; take it from them "
        "first (passerelle user set +33698765432 --no-msisdn)"
    )
    code, _, err = run(cfg, "user", "set", "alice@example.test", "--msn", "alice@escargot.test")
    assert code == 1 and "--msn-password-file FILE (there is no terminal to ask on)" in err
    code, out, err = run(
        cfg,
        "user",
        "set",
        "alice@example.test",
        "--msn",
        "alice@escargot.test",
        "--msn-password-file",
        str(pw),
    )
    assert code == 0 and "msn=alice@escargot.test" in out and "secret one" not in out + err
    monkeypatch.setattr("gateway.cli._has_terminal", lambda: True)
    code, out, err = run(cfg, "user", "set", "+33612345678", "--msn-password-file", str(pw), "--no-msn")
    assert code == 2  # contradictory
    code, out, _ = run(cfg, "user", "set", "+33698765432", "--msn", "bob@escargot.test", input="typed pw\n")
    assert code == 0 and "MSN password for bob@escargot.test" in out and "typed pw" not in out
    assert run(cfg, "user", "set", "alice@example.test", "--prefer", "sms")[0] == 0

    code, out, _ = run(cfg, "user", "show", "alice@example.test", "--json")
    shown = json.loads(out)
    assert (shown["msisdn"], shown["msn"]) == ("+33612345678", "alice@escargot.test")
    assert shown["settings"] == {
        "prefer": "sms",
        "always_connected": True,
        "mobile_status_text": "On mobile",
        "forwarding": True,
    }
    assert shown["set"] == ["prefer"]
    code, out, _ = run(cfg, "user", "show", "alice@example.test")
    assert "prefer:             sms\n" in out and "forwarding:         true  (default)\n" in out

    assert run(cfg, "user", "set", "alice@example.test", "--no-msn", "--no-msisdn")[0] == 0
    code, out, _ = run(cfg, "user", "show", "alice@example.test", "--json")
    assert (json.loads(out)["msisdn"], json.loads(out)["msn"]) == (None, None)
    assert run(cfg, "user", "set", "+33698765432", "--no-msn")[0] == 0
    code, _, err = run(cfg, "user", "set", "+33698765432", "--no-msisdn")
    assert code == 1 and "remove the subscriber instead (passerelle user remove)" in err

    async def stored_password() -> str | None:
        from gateway.storage import Cipher, Store

        store = await Store.open(cfg.parent / "passerelle.db", Cipher.from_file(cfg.parent / "secret.key"))
        try:
            sub = await store.subscriber_by_account("sms", "+33698765432")
            assert sub is not None
            return await store.account(sub.id, "msn") and await store.account_secret(sub.id, "msn")
        finally:
            await store.close()

    import asyncio

    assert asyncio.run(stored_password()) is None


def test_contact_list_remove_and_unlink(cfg: Path, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw")
    alice = "alice@example.test"
    assert (
        run(
            cfg,
            "user",
            "add",
            alice,
            "--msn",
            "alice@escargot.test",
            "--msn-password-file",
            str(tmp_path / "pw"),
        )[0]
        == 0
    )
    assert run(cfg, "contact", "add", alice, "0698765432", "--name", "Mum")[0] == 0
    assert run(cfg, "contact", "link", alice, "bob@escargot.test", "+33611111111")[0] == 0
    code, out, _ = run(cfg, "contact", "list", alice, "--json")
    assert json.loads(out) == [
        {"network": "sms", "contact": "+33698765432", "name": "Mum", "phone": None, "phone_source": None},
        {
            "network": "msn",
            "contact": "bob@escargot.test",
            "name": "bob@escargot.test",
            "phone": "+33611111111",
            "phone_source": "operator",
        },
    ]
    code, out, _ = run(cfg, "contact", "list", alice)
    assert code == 0 and "+33611111111 (operator)" in out

    code, out, _ = run(cfg, "contact", "unlink", alice, "bob@escargot.test")
    assert code == 0 and "unlinked bob@escargot.test" in out
    code, out, _ = run(cfg, "contact", "list", alice, "--json")
    assert json.loads(out)[1]["phone"] is None and json.loads(out)[1]["phone_source"] == "unlinked"
    code, _, err = run(cfg, "contact", "unlink", alice, "carol@escargot.test")
    assert code == 1 and "has no MSN buddy carol@escargot.test (see passerelle contact list" in err

    assert run(cfg, "contact", "remove", alice, "+33698765432")[0] == 0
    assert run(cfg, "contact", "remove", alice, "bob@escargot.test")[0] == 0
    code, out, _ = run(cfg, "contact", "list", alice, "--json")
    assert json.loads(out) == []
    code, _, err = run(cfg, "contact", "remove", alice, "bob@escargot.test")
    assert code == 1 and "has no contact bob@escargot.test" in err


class FakeGateway:
    """An admin socket answering like a running gateway, recording what it was told."""

    def __init__(self, path: Path, refuse: bool = False) -> None:
        from gateway.ops.admin_socket import AdminServer

        self.told: list[tuple[str, dict[str, object]]] = []
        self.refuse = refuse
        self.server = AdminServer(path, self.handle)

    async def handle(self, command: str, args: dict[str, object]) -> dict[str, object]:
        self.told.append((command, args))
        if command == "status":
            return {"status": {"pid": 1}}
        if self.refuse:
            raise LookupError(f"unknown command {command!r}")
        return {"applied": "msn: logging in as alice@escargot.test"}


async def test_changes_are_sent_to_the_running_gateway(cfg: Path, tmp_path: Path) -> None:
    import asyncio

    assert (await asyncio.to_thread(run, cfg, "user", "add", "alice@example.test"))[0] == 0
    (tmp_path / "pw").write_text("pw")
    gateway = FakeGateway(cfg.parent / "passerelle.db.sock")
    await gateway.server.start()
    try:
        code, out, _ = await asyncio.to_thread(
            run,
            cfg,
            "user",
            "set",
            "alice@example.test",
            "--msn",
            "alice@escargot.test",
            "--msn-password-file",
            str(tmp_path / "pw"),
        )
        assert code == 0
        assert "the running gateway applied it: msn: logging in as alice@escargot.test" in out
        assert gateway.told == [("subscriber-changed", {"subscriber": 1, "relogin": ["msn"]})]
        await asyncio.to_thread(
            run, cfg, "contact", "link", "alice@example.test", "bob@escargot.test", "+33611111111"
        )
        await asyncio.to_thread(run, cfg, "contact", "remove", "alice@example.test", "bob@escargot.test")
        assert gateway.told[-1] == (
            "subscriber-changed",
            {"subscriber": 1, "removed": [["msn", "bob@escargot.test"]]},
        )
        gateway.refuse = True  # an older gateway: the operator is told to restart it
        code, _, err = await asyncio.to_thread(
            run, cfg, "user", "set", "alice@example.test", "--prefer", "sms"
        )
        assert code == 0
        assert "restart it (systemctl restart passerelle) for the change to apply now" in err
    finally:
        await gateway.server.stop()


async def test_status_needs_only_the_socket_path(cfg: Path, tmp_path: Path) -> None:
    import asyncio

    cfg.write_text(cfg.read_text().replace("port = 2775", 'port = "abc"'))  # broken after the start
    socket = cfg.parent / "passerelle.db.sock"
    code, _, err = await asyncio.to_thread(run, cfg, "status")
    assert code == 1 and err.strip() == f"passerelle: no gateway is running (nothing answers on {socket})"
    gateway = FakeGateway(socket)
    await gateway.server.start()
    try:
        code, out, err = await asyncio.to_thread(run, cfg, "status", "--json")
        assert code == 0, err
        assert json.loads(out) == {"pid": 1}
        elsewhere = tmp_path / "nothing-here.toml"
        code, out, err = await asyncio.to_thread(run, elsewhere, "status", "--json", "--socket", str(socket))
        assert code == 0 and json.loads(out) == {"pid": 1}
        code, _, err = await asyncio.to_thread(run, elsewhere, "status")
        assert code == 1 and "no such file; give the socket with --socket PATH" in err
    finally:
        await gateway.server.stop()
