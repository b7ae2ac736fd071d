"""An operator's first steps (issue 14): from the sample config to ``check-config`` OK
(item 13), the Prosody snippet ``init`` prints is the tests' Prosody (item 14), a typo in
``storage.path`` does not create a database (item 15), and creating or upgrading the
schema is one INFO line, not one WARNING per migration (item 16)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import aiosqlite
import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.deploy import ComponentSpec, ejabberd_snippet, prosody_components
from gateway.devtools.ejabberd import Ejabberd
from gateway.devtools.prosody import Prosody
from gateway.storage import Cipher, Store, create_key_file
from gateway.storage.migrations import LATEST
from gateway.storage.store import migrate

ROOT = Path(__file__).resolve().parents[2]


def cli(path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", str(path), *args])


def set_value(text: str, key: str, value: str) -> str:
    """Replace the value of the first ``key = …`` line, keeping its comment."""
    new, count = re.subn(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text, count=1)
    assert count == 1, key
    return new


def test_from_the_sample_config_to_check_config_ok(tmp_path: Path) -> None:
    """The README's path: copy the sample, fill in what only the operator knows, `init`
    creates the key file and the database, `check-config` passes."""
    text = (ROOT / "config" / "passerelle.example.toml").read_text()
    text = set_value(text, "path", str(tmp_path / "data" / "passerelle.db"))
    text = set_value(text, "key_file", str(tmp_path / "keys" / "secret.key"))
    text = set_value(text, "password", "smscpw")  # what the SMSC operator gave
    text = text.replace('secret = "change-me"', 'secret = "a-long-random-component-secret"')
    config = tmp_path / "passerelle.toml"
    config.write_text(text)
    before = config.read_bytes()

    checked = cli(config, "check-config")
    assert checked.exit_code == 1 and "storage.key_file:" in checked.stderr
    assert "passerelle init" in checked.stderr  # and that advice now works:
    done = cli(config, "init")
    assert done.exit_code == 0, done.output
    assert f"kept {config} (it exists)" in done.stdout
    assert f"wrote {tmp_path / 'keys' / 'secret.key'} (mode 0600)" in done.stdout
    assert config.read_bytes() == before
    assert (tmp_path / "keys" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / "passerelle.db").stat().st_mode & 0o777 == 0o600

    checked = cli(config, "check-config")
    assert checked.exit_code == 0 and checked.stdout.startswith("OK: sms=sms.example.org msn=msn.example.org")
    assert cli(config, "user", "list").exit_code == 0


def test_the_sample_placeholders_say_what_to_set(tmp_path: Path) -> None:
    text = (ROOT / "config" / "passerelle.example.toml").read_text()
    text = set_value(text, "path", str(tmp_path / "passerelle.db"))
    text = set_value(text, "key_file", str(tmp_path / "secret.key"))
    config = tmp_path / "passerelle.toml"
    config.write_text(text)
    assert cli(config, "init").exit_code == 0
    result = cli(config, "check-config")
    assert result.exit_code == 1
    expected = "passerelle: sms.secret: still the sample placeholder; set a real secret ("
    assert result.stderr.startswith(expected)


def printed_prosody_snippet(output: str) -> str:
    start = output.index('VirtualHost "')
    return output[start : output.index("ejabberd", start)].rstrip("\n") + "\n"


def test_init_prints_the_prosody_privileges_the_tests_run_with(tmp_path: Path) -> None:
    result = cli(tmp_path / "p.toml", "init", "--domain", "example.test")
    assert result.exit_code == 0, result.output
    snippet = printed_prosody_snippet(result.stdout)
    assert "privileged_entities" in snippet and 'modules_enabled = { "privilege" }' in snippet
    assert 'add "privilege" (mod_privilege' in result.stdout
    test_server = Prosody(
        tmp_path / "prosody",
        "example.test",
        [ComponentSpec(f"{net}.example.test", f"<[{net}] secret>") for net in ("sms", "msn")],
    )
    test_server.write_config()
    written = test_server.config_path.read_text()
    assert snippet in written
    assert re.search(r'(?m)^modules_enabled = \{[^}]*"privilege"', written)  # the global one


def test_init_prints_the_ejabberd_file_the_tests_run_with(tmp_path: Path) -> None:
    result = cli(tmp_path / "p.toml", "init", "--domain", "example.test")
    assert result.exit_code == 0, result.output
    assert "ejabberd (the tests run 23.01): save this as /etc/ejabberd/passerelle.yml" in result.stdout
    assert "`include_config_file: /etc/ejabberd/passerelle.yml` to ejabberd.yml" in result.stdout
    printed = result.stdout[result.stdout.index("\nlisten:\n") + 1 :].rstrip("\n") + "\n"
    test_server = Ejabberd(
        tmp_path / "ejabberd",
        "example.test",
        [ComponentSpec(f"{net}.example.test", f"<[{net}] secret>") for net in ("sms", "msn")],
        component_port=5347,  # init's default; the tests' ejabberd takes a free port
    )
    test_server.write_config()
    assert test_server.snippet_path.read_text() == printed
    assert f"include_config_file: {test_server.snippet_path}\n" in test_server.config_path.read_text()
    for pitfall in ("global_routes: false", "s2s_access: passerelle_s2s", "mod_privilege:"):
        assert pitfall in printed


def test_readme_shows_the_generated_snippets() -> None:
    components = [ComponentSpec(f"{net}.example.org", f"<[{net}] secret>") for net in ("sms", "msn")]
    readme = (ROOT / "README.md").read_text()
    assert prosody_components("example.org", components) in readme
    assert ejabberd_snippet(components) in readme


def test_init_with_an_existing_config_uses_its_components(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    assert cli(config, "init", "--domain", "example.test").exit_code == 0
    config.write_text(config.read_text().replace("msn.example.test", "im.example.test"))
    (tmp_path / "secret.key").unlink()
    (tmp_path / "passerelle.db").unlink()
    result = cli(config, "init", "--domain", "ignored.test")
    assert result.exit_code == 0
    assert '["im.example.test"]' in result.stdout and "ignored.test" not in result.stdout
    assert (tmp_path / "secret.key").exists() and (tmp_path / "passerelle.db").exists()


def test_init_does_not_make_a_new_key_for_an_existing_database(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    assert cli(config, "init", "--domain", "example.test").exit_code == 0
    (tmp_path / "secret.key").unlink()
    result = cli(config, "init")
    assert result.exit_code == 1 and "restore the key file from your backup" in result.stderr
    assert result.stderr.startswith("passerelle: storage.key_file: ")
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("user", "list"),
        ("user", "show", "alice@example.test"),
        ("user", "add", "alice@example.test"),
        ("contact", "add", "alice@example.test", "+33612345678"),
        ("user", "set", "alice@example.test", "--prefer", "sms"),
    ],
)
def test_a_missing_database_is_not_created_by_other_commands(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = tmp_path / "p.toml"
    assert cli(config, "init", "--domain", "example.test").exit_code == 0
    config.write_text(config.read_text().replace("passerelle.db", "pasarelle.db"))  # a typo
    typo = tmp_path / "pasarelle.db"
    result = cli(config, *args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"passerelle: storage.path: database {typo} does not exist "
        "(create it with 'passerelle db upgrade' or start the gateway)\n"
    )
    assert not typo.exists()
    created = cli(config, "db", "upgrade")
    assert created.exit_code == 0 and f"created database {typo} at schema version {LATEST}" in created.stdout
    assert cli(config, "user", "list").exit_code == 0


def store_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    mine = [r for r in caplog.records if r.name == "gateway.storage.store"]
    return [r for r in mine if "database closed" not in r.getMessage()]


async def test_a_new_database_is_one_info_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_key_file(tmp_path / "k.key")
    caplog.set_level(logging.DEBUG)
    store = await Store.open(tmp_path / "db", Cipher.from_file(tmp_path / "k.key"))
    await store.close()
    assert [(r.levelname, r.getMessage()) for r in store_records(caplog)] == [
        ("INFO", f"created database {tmp_path / 'db'} at schema version {LATEST}")
    ]
    caplog.clear()
    store = await Store.open(tmp_path / "db", Cipher.from_file(tmp_path / "k.key"))
    await store.close()
    assert store_records(caplog) == []  # up to date: nothing to say


async def test_an_upgrade_says_from_which_version_to_which_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_key_file(tmp_path / "k.key")
    async with aiosqlite.connect(tmp_path / "db", isolation_level=None) as raw:
        await migrate(raw, target=2)
    caplog.set_level(logging.DEBUG)
    store = await Store.open(tmp_path / "db", Cipher.from_file(tmp_path / "k.key"))
    await store.close()
    assert [(r.levelname, r.getMessage()) for r in store_records(caplog)] == [
        ("INFO", f"upgraded database {tmp_path / 'db'} from schema version 2 to {LATEST}")
    ]


def test_db_upgrade_says_what_it_did(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    assert cli(config, "init", "--domain", "example.test").exit_code == 0
    db = tmp_path / "passerelle.db"
    db.unlink()

    async def old() -> None:
        async with aiosqlite.connect(db, isolation_level=None) as raw:
            await migrate(raw, target=3)

    asyncio.run(old())
    result = cli(config, "db", "upgrade")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == f"upgraded database {db} from schema version 3 to {LATEST}\n"
    result = cli(config, "db", "upgrade")
    assert result.stdout == f"database {db} is at schema version {LATEST}, nothing to do\n"
