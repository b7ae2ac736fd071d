"""Secrets never show: a whole gateway scenario (an SMS number linked by code, an MSN account
registered, texts both ways, wrong codes and passwords, CLI commands), then everything it
produced is scanned for each secret in plain, URL-encoded and base64 forms: every log line
at every level, the CLI's output, every stanza the user received (error texts included) and
the database files. Message bodies are not in the log at the default level (info)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway.app import Gateway
from gateway.cli import _secret_values, main
from gateway.config import Config, parse
from gateway.devtools.prosody import Prosody
from gateway.logs import HumanFormatter, JsonFormatter, set_level
from gateway.storage import create_key_file
from tests.conftest import DOMAIN, SECRET
from tests.e2e.msn_fixtures import History
from tests.xmpp_client import ScriptedUser
from transports.msn.fake_server import FakeMsnServer
from transports.msn.transport import MsnTransport
from transports.sms.encoding import decode_text
from transports.sms.fake_smsc import FakeSmsc

pytestmark = pytest.mark.e2e
SMS, MSN = f"sms.{DOMAIN}", f"msn.{DOMAIN}"
SMSC_PASSWORD = "Sm$c+pw/"  # characters that URL-encoding and base64 change
MSN_PASSWORD = "msn pw+&=/ü"
CLI_MSN_PASSWORD = "cli-msn-pw+/"
BODY_OUT, BODY_IN = "BODY-OUT-4711 secret plans", "BODY-IN-0815 see you"


def forms(secret: str) -> set[str]:
    """The secret as it could leak: plain, URL-encoded, base64 at each byte alignment."""
    raw = secret.encode()
    found = {secret, quote(secret), quote_plus(secret), quote(secret, safe="")}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            text = encode(b"\0" * offset + raw).decode()
            start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6  # chars fixed by the secret alone
            found.add(text[start:end])
    return {f for f in found if len(f) >= 4}


def leaks(secret: str, haystacks: dict[str, str | bytes]) -> list[str]:
    hits = []
    for where, hay in haystacks.items():
        for form in forms(secret):
            needle: str | bytes = form.encode() if isinstance(hay, bytes) else form
            if needle in hay:  # type: ignore[operator]
                hits.append(f"{where}: {form!r}")
    return hits


class Capture(logging.Handler):
    """Every record, raw and as the gateway's formatters write it (what journald would get)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.formatters = [HumanFormatter(secrets), JsonFormatter(secrets)]

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines += [f.format(record) for f in self.formatters]

    def raw(self, min_level: int = logging.DEBUG) -> str:
        out = []
        for r in self.records:
            if r.levelno >= min_level:
                out.append(r.getMessage())
                if r.exc_info and r.exc_info[1] is not None:
                    out.append(repr(r.exc_info[1]))
        return "\n".join(out)


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture([])
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    set_level("debug")  # what `-vv` does (slixmpp and aiosqlite stay at info)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def config_for(tmp: Path, prosody: Prosody, smsc: FakeSmsc, msn: FakeMsnServer) -> Config:
    return parse(
        {
            "xmpp": {"port": prosody.component_port, "user_domains": [DOMAIN], "admins": [f"admin@{DOMAIN}"]},
            "storage": {"path": str(tmp / "gw.db"), "key_file": str(tmp / "secret.key")},
            "sms": {
                "jid": SMS,
                "secret": SECRET,
                "service_number": "2020",
                "smsc": {
                    "port": smsc.port,
                    "system_id": "gw",
                    "password": SMSC_PASSWORD,
                    "enquire_link_s": 5,
                },
            },
            "msn": {
                "jid": MSN,
                "secret": SECRET,
                "server": {"host": "127.0.0.1", "port": msn.ns_port, "nexus_url": msn.nexus_url},
            },
        },
        env={},
    )


async def submit(user: ScriptedUser, to: str, **values: str) -> str | None:
    """Submit a registration form; the error text, or None on success."""
    iq = user.make_iq_set(ito=to)
    form = ET.SubElement(
        ET.SubElement(iq.xml, "{jabber:iq:register}query"), "{jabber:x:data}x", {"type": "submit"}
    )
    for var, value in values.items():
        ET.SubElement(
            ET.SubElement(form, "{jabber:x:data}field", {"var": var}), "{jabber:x:data}value"
        ).text = value
    try:
        await iq.send(timeout=15)
    except IqError as exc:
        return str(exc.iq["error"]["text"])
    return None


async def test_secrets_never_appear_anywhere(prosody: Prosody, tmp_path: Path, capture: Capture) -> None:
    smsc = FakeSmsc(system_id="gw", password=SMSC_PASSWORD)
    await smsc.start()
    msn = await FakeMsnServer.start(
        users=[{"handle": "alice@escargot.test", "password": MSN_PASSWORD, "friendly_name": "Alice"}]
    )
    config = config_for(tmp_path, prosody, smsc, msn)
    capture.formatters = [HumanFormatter(_secret_values(config)), JsonFormatter(_secret_values(config))]
    create_key_file(config.storage.key_file)
    gateway = Gateway(config)
    alice = ScriptedUser(f"alice@{DOMAIN}/phone", "pw", prosody.c2s_port)
    history = History(alice)
    code = ""
    try:
        bridge = await gateway.start()
        transport = bridge.transports["msn"]
        assert isinstance(transport, MsnTransport)
        transport.options.update(
            {"timeout": 3.0, "login_timeout": 5.0, "backoff_initial": 0.2, "backoff_max": 0.5}
        )
        for component in bridge.components.values():
            await asyncio.wait_for(component.online.wait(), 10)
        await alice.online()
        # SMS: ask for a code, guess wrong once, then link
        assert "code was sent" in (await submit(alice, SMS, phone="0612345678") or "")
        (sent,) = await smsc.wait_for_submits(1, timeout=15)
        code = decode_text(sent.short_message, sent.pdu.data_coding).text.split("code is ")[1][:6]
        wrong = "000000" if code != "000000" else "111111"
        assert "Wrong code" in (await submit(alice, SMS, phone="0612345678", code=wrong) or "")
        assert await submit(alice, SMS, phone="0612345678", code=code) is None
        # MSN: a wrong password, then the right one
        assert (
            await submit(alice, MSN, handle="alice@escargot.test", password="not-" + MSN_PASSWORD) is not None
        )
        assert await submit(alice, MSN, handle="alice@escargot.test", password=MSN_PASSWORD) is None
        alice.send_presence()
        # texts both ways, with bodies we can look for
        alice.send_message(mto=f"+33698765432@{SMS}", mbody=BODY_OUT, mtype="chat")
        await smsc.wait_for_submits(2, timeout=15)
        await smsc.inject_mo("33698765432", "33612345678", BODY_IN)
        await history.message(f"+33698765432@{SMS}")
        # a registration form read back shows the handle, never the password
        form = await alice.plugin["xep_0077"].get_registration(jid=MSN, timeout=10)
        assert MSN_PASSWORD not in str(form)
    finally:
        await alice.close()
        await gateway.stop()
        await msn.stop()
        await smsc.stop()

    # the CLI, on the same files
    cfg = tmp_path / "cli.toml"
    cfg.write_text(
        f'[xmpp]\nuser_domains = ["{DOMAIN}"]\n[storage]\npath = "{config.storage.path}"\n'
        f'key_file = "{config.storage.key_file}"\n[sms]\njid = "{SMS}"\nsecret = "{SECRET}"\n'
        f'service_number = "2020"\n[sms.smsc]\nsystem_id = "gw"\npassword = "{SMSC_PASSWORD}"\n'
    )
    (tmp_path / "pw.txt").write_text(CLI_MSN_PASSWORD)
    cli_output = []
    for argv in (
        ["check-config"],
        [
            "-vv",
            "user",
            "add",
            f"bob@{DOMAIN}",
            "--msn",
            "bob@escargot.test",
            "--msn-password-file",
            str(tmp_path / "pw.txt"),
        ],
        ["user", "list"],
        ["user", "list", "--json"],
        ["user", "show", f"alice@{DOMAIN}"],
        ["-vv", "user", "show", "+33612345678"],
        ["status"],
    ):
        result = await asyncio.to_thread(CliRunner().invoke, main, ["-c", str(cfg), *argv])
        assert result.exit_code == (1 if argv == ["status"] else 0), (argv, result.output, result.exception)
        cli_output.append(result.output + result.stderr)
    assert "passerelle: no gateway is running" in cli_output[-1]

    stanzas = "\n".join(str(s) for s in history.stanzas)
    database = b"".join(p.read_bytes() for p in tmp_path.glob("gw.db*") if p.is_file())
    everywhere: dict[str, str | bytes] = {
        "log lines": "\n".join(capture.lines),
        "cli": "\n".join(cli_output),
        "stanzas": stanzas,
        "database": database,
    }
    for secret in (SECRET, SMSC_PASSWORD, MSN_PASSWORD, CLI_MSN_PASSWORD):
        assert leaks(secret, everywhere) == [], secret
    # what the masking formatter cannot know must not be logged at all, at any level
    raw = capture.raw(logging.DEBUG)
    for secret in (MSN_PASSWORD, CLI_MSN_PASSWORD, code):
        assert leaks(secret, {"raw log records": raw}) == []
    assert leaks(code, {"stanzas": stanzas, "cli": "\n".join(cli_output)}) == []
    # message bodies are not logged at the default level
    info = capture.raw(logging.INFO)
    assert BODY_OUT not in info and BODY_IN not in info
    assert capture.records  # the scan saw a real log, not an empty one


def test_the_scan_finds_each_form() -> None:
    secret = "pa ss+w/ord"
    for text in (
        secret,
        quote(secret),
        quote_plus(secret),
        base64.b64encode(b"xy" + secret.encode()).decode(),
    ):
        assert leaks(secret, {"t": f"...{text}..."}), text
