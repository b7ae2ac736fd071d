"""Operating the gateway as an operator does: ``status``, metrics, admin commands over
XMPP, reload and stop signals, backups. A real Prosody; the gateway in-process where
that is enough, as a real process where signals and exit codes matter."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway import config as config_mod
from gateway.addressing import BareJid
from gateway.app import Gateway
from gateway.cli import main
from gateway.devtools.prosody import Prosody
from gateway.ops.adhoc import NS_COMMANDS, NS_DATA
from gateway.storage import create_key_file
from tests.conftest import DOMAIN, SECRET, TEST_JID, RunningGateway, start_gateway
from tests.e2e.test_foundation import register
from tests.xmpp_client import ScriptedUser
from transports.sms.fake_smsc import FakeSmsc

pytestmark = pytest.mark.e2e
PASSERELLE = [sys.executable, "-c", "from gateway.cli import main; main()"]
SMS = f"sms.{DOMAIN}"
ENV = {"PASSERELLE_SMS_SECRET": SECRET, "PASSERELLE_SMS_SMSC_PASSWORD": "smscpw"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    tmp_path: Path,
    prosody: Prosody,
    smsc_port: int = 2775,
    *,
    per_hour: int = 60,
    level: str = "info",
    port: int | None = None,
    metrics: int | None = None,
) -> Path:
    cfg = tmp_path / "passerelle.toml"
    cfg.write_text(
        f'[xmpp]\nport = {port or prosody.component_port}\nuser_domains = ["{DOMAIN}"]\n'
        f'admins = ["admin@{DOMAIN}"]\n'
        f'[storage]\npath = "gw.db"\nkey_file = "secret.key"\n'
        f'[logging]\nlevel = "{level}"\n'
        f'[sms]\njid = "{SMS}"\nservice_number = "2020"\n'
        f"[sms.limits]\nper_user_per_hour = {per_hour}\n"
        f'[sms.smsc]\nport = {smsc_port}\nsystem_id = "gw"\nenquire_link_s = 5\n'
        + (f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n' if metrics else "")
    )
    if not (tmp_path / "secret.key").exists():
        create_key_file(tmp_path / "secret.key")
    return cfg


async def cli(cfg: Path, *args: str) -> Result:
    """The command line, in-process (a thread: the gateway's loop keeps answering)."""
    return await asyncio.to_thread(CliRunner(env=ENV).invoke, main, ["-c", str(cfg), *args])


async def user(prosody: Prosody, name: str) -> ScriptedUser:
    client = ScriptedUser(f"{name}@{DOMAIN}/ops", "pw", prosody.c2s_port)
    await client.online()
    return client


# -- status and metrics -------------------------------------------------------------------


async def test_status_and_metrics_after_known_traffic(
    prosody: Prosody, tmp_path: Path, alice: ScriptedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    cfg = write_config(tmp_path, prosody, metrics=port)
    running = await start_gateway(config_mod.load(cfg))
    try:
        await register(alice)
        contact = f"alpha\\40echo.test@{TEST_JID}"
        for n in range(2):
            alice.send_message(mto=contact, mbody=f"m{n}", mtype="chat")
            await alice.next_message(from_bare=contact)
        for _ in range(100):  # counted once the server confirmed the handover
            if running.bridge.counters.to_xmpp.get("test") == 2:
                break
            await asyncio.sleep(0.05)

        result = await cli(cfg, "status", "--json")
        assert result.exit_code == 0, result.output
        snap = json.loads(result.output)
        assert snap["components"]["test"] == {"jid": TEST_JID, "connected": True}
        assert snap["totals"]["to_network"] == {"test": 2} and snap["totals"]["to_xmpp"] == {"test": 2}
        assert snap["messages_per_minute"]["test"] == {"to_network": 2.0, "to_xmpp": 2.0}
        assert snap["outbox"] == {"depth": 0, "oldest_age_s": None, "queues": {}}
        assert snap["subscribers"] == 1 and snap["over_sms_limit"] == []
        assert snap["networks"]["test"] == {"sessions": len(running.transport.sessions)}
        assert snap["settings"]["admins"] == [f"admin@{DOMAIN}"]

        result = await cli(cfg, "status")
        assert result.exit_code == 0, result.output
        assert f"  test     {TEST_JID:32} connected" in result.output
        assert "Outbox     0 messages, oldest -" in result.output
        assert "  test               2.0       2.0               0" in result.output

        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        test = (("network", "test"),)
        assert values[("passerelle_messages_total", (("direction", "to_network"), *test))] == 2
        assert values[("passerelle_messages_total", (("direction", "to_xmpp"), *test))] == 2
        assert values[("passerelle_messages_per_minute", (("direction", "to_xmpp"), *test))] == 2
        assert values[("passerelle_component_connected", test)] == 1
        assert values[("passerelle_outbox_depth", ())] == 0
        assert values[("passerelle_subscribers", ())] == 1
        assert values[("passerelle_subscribers_over_sms_limit", ())] == 0
    finally:
        await running.gateway.stop()
    result = await cli(cfg, "status")
    assert result.exit_code == 1
    sock = tmp_path / "gw.db.sock"
    assert result.output.strip() == f"passerelle: no gateway is running (nothing answers on {sock})"


# -- admin commands over XMPP (XEP-0050) ---------------------------------------------------


async def command_items(client: ScriptedUser, jid: str) -> list[str]:
    items = await client.plugin["xep_0030"].get_items(jid=jid, node=NS_COMMANDS, timeout=10)
    return [node for _, node, _ in items["disco_items"]["items"]]


async def execute(client: ScriptedUser, to: str, node: str, **values: str) -> ET.Element:
    """Run a command the way a client does: execute, then submit its form if it asks one."""
    iq = client.make_iq_set(ito=to)
    ET.SubElement(iq.xml, f"{{{NS_COMMANDS}}}command", {"node": node, "action": "execute"})
    answer = (await iq.send(timeout=10)).xml.find(f"{{{NS_COMMANDS}}}command")
    assert answer is not None
    if answer.get("status") == "executing":
        iq = client.make_iq_set(ito=to)
        command = ET.SubElement(
            iq.xml,
            f"{{{NS_COMMANDS}}}command",
            {"node": node, "action": "complete", "sessionid": answer.get("sessionid", "")},
        )
        form = ET.SubElement(command, f"{{{NS_DATA}}}x", {"type": "submit"})
        for var, value in values.items():
            field = ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": var})
            ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
        answer = (await iq.send(timeout=10)).xml.find(f"{{{NS_COMMANDS}}}command")
        assert answer is not None
    assert answer.get("status") == "completed"
    return answer


def note(answer: ET.Element) -> str:
    return answer.findtext(f"{{{NS_COMMANDS}}}note") or ""


def values_of(answer: ET.Element) -> dict[str, list[str]]:
    form = answer.find(f"{{{NS_DATA}}}x")
    assert form is not None
    fields: dict[str, list[str]] = {}
    for item in form.iter(f"{{{NS_DATA}}}field"):
        fields.setdefault(item.get("var", ""), []).extend(
            v.text or "" for v in item.findall(f"{{{NS_DATA}}}value")
        )
    return fields


async def forbidden(client: ScriptedUser, jid: str, node: str) -> None:
    iq = client.make_iq_set(ito=jid)
    ET.SubElement(iq.xml, f"{{{NS_COMMANDS}}}command", {"node": node, "action": "execute"})
    with pytest.raises(IqError) as info:
        await iq.send(timeout=10)
    assert info.value.iq["error"]["condition"] == "forbidden"


async def test_admin_commands_for_an_admin_and_a_non_admin(
    prosody: Prosody, tmp_path: Path, alice: ScriptedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    cfg = write_config(tmp_path, prosody)
    running: RunningGateway = await start_gateway(config_mod.load(cfg))
    admin = await user(prosody, "admin")
    try:
        await register(alice)
        await alice.next_presence(from_=TEST_JID, type="subscribe")
        alice.send_presence(pto=TEST_JID, ptype="subscribed")
        alice.send_presence(pto=TEST_JID)  # online towards the gateway: logged in to the network
        for _ in range(100):
            if running.transport.sessions:
                break
            await asyncio.sleep(0.05)
        assert running.transport.sessions

        nodes = await command_items(admin, TEST_JID)
        assert sorted(nodes) == [
            "disconnect-user",
            "list-subscribers",
            "outbox",
            "reload-config",
            "show-subscriber",
            "status",
        ]
        assert await command_items(alice, TEST_JID) == []
        info = await admin.plugin["xep_0030"].get_info(jid=TEST_JID, timeout=10)
        assert NS_COMMANDS in info["disco_info"]["features"]
        for node in nodes:
            await forbidden(alice, TEST_JID, node)

        assert "Components" in note(await execute(admin, TEST_JID, "status"))
        listed = values_of(await execute(admin, TEST_JID, "list-subscribers"))
        assert listed["jid"] == [f"alice@{DOMAIN}"] and listed["test"] == ["alice-echo"]
        shown = values_of(await execute(admin, TEST_JID, "show-subscriber", subscriber=f"alice@{DOMAIN}"))
        assert shown["jid"] == [f"alice@{DOMAIN}"]
        assert shown["test"][0].startswith("account alice-echo") and "2 contacts" in shown["test"]
        with pytest.raises(IqError) as missing:
            await execute(admin, TEST_JID, "show-subscriber", subscriber=f"nobody@{DOMAIN}")
        assert missing.value.iq["error"]["condition"] == "item-not-found"
        outbox = await execute(admin, TEST_JID, "outbox")
        assert note(outbox) == "0 messages"

        done = await execute(admin, TEST_JID, "disconnect-user", subscriber=f"alice@{DOMAIN}")
        assert "was disconnected from test" in note(done)
        assert not running.transport.sessions
        await alice.next_presence(from_=TEST_JID, status="Disconnected by the operator")

        write_config(tmp_path, prosody, per_hour=5, level="warning")
        reloaded = note(await execute(admin, TEST_JID, "reload-config"))
        assert "applied logging.level (info → warning), sms.limits.per_user_per_hour (60 → 5)" in reloaded
        assert running.bridge.config.sms is not None
        assert running.bridge.config.sms.limits.per_user_per_hour == 5
    finally:
        await admin.close()
        await running.gateway.stop()


async def test_resend_verification_code_on_the_sms_component(
    prosody: Prosody, tmp_path: Path, alice: ScriptedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.app import Gateway
    from tests.e2e.test_sms import submit_form

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    gateway = Gateway(config_mod.load(write_config(tmp_path, prosody, smsc.port)))
    admin = await user(prosody, "admin")
    try:
        bridge = await gateway.start()
        await asyncio.wait_for(bridge.components["sms"].online.wait(), 10)
        await smsc.wait_for_bind(timeout=10)
        assert "resend-code" in await command_items(admin, SMS)
        await forbidden(alice, SMS, "resend-code")
        with pytest.raises(IqError):  # a code is texted; the form asks for it
            await submit_form(alice, phone="0612345678")
        first = (await smsc.wait_for_submits(1, timeout=10))[-1].short_message
        done = await execute(admin, SMS, "resend-code", jid=f"alice@{DOMAIN}")
        assert note(done) == f"A new code was sent to +33612345678 for alice@{DOMAIN}."
        second = (await smsc.wait_for_submits(2, timeout=10))[-1].short_message
        assert second != first and b"Your Passerelle code is" in second
        code = second.split(b"code is ")[1][:6].decode()
        await submit_form(alice, phone="0612345678", code=code)  # the new code links the number
        with pytest.raises(IqError) as none:
            await execute(admin, SMS, "resend-code", jid=f"bob@{DOMAIN}")
        assert none.value.iq["error"]["condition"] == "item-not-found"
    finally:
        await admin.close()
        await gateway.stop()
        await smsc.stop()


# -- the real process: JSON logs, SIGHUP, SIGTERM, backup and restore ----------------------


async def run_cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *PASSERELLE,
        "-c",
        str(cfg),
        *args,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_for_log(path: Path, needle: str, timeout: float = 15) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if any(needle in entry["msg"] for entry in lines):
            return lines
        await asyncio.sleep(0.1)
    raise AssertionError(f"no log line with {needle!r}:\n{path.read_text()}")


async def test_reload_stop_backup_and_restore_of_a_running_gateway(prosody: Prosody, tmp_path: Path) -> None:
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    cfg = write_config(tmp_path, prosody, smsc.port)
    assert (await run_cli(cfg, "db", "upgrade"))[0] == 0  # `user add` refuses a missing database
    assert (await run_cli(cfg, "user", "add", f"alice@{DOMAIN}", "--msisdn", "+33612345678"))[0] == 0
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*PASSERELLE, "-c", str(cfg), "--log-format", "json", "run"],
            env={**os.environ, **ENV},
            stdout=log_file,
            stderr=log_file,
        )
    try:
        await smsc.wait_for_bind(timeout=20)
        for _ in range(100):
            code, out, _err = await run_cli(cfg, "status", "--json")
            if code == 0 and json.loads(out)["components"]["sms"]["connected"]:
                break
            await asyncio.sleep(0.2)
        snap = json.loads(out)
        assert snap["networks"]["sms"]["smsc"] == "bound" and snap["pid"] == proc.pid

        backup = tmp_path / "backup.db"
        code, out, err = await run_cli(cfg, "db", "backup", str(backup))
        assert code == 0, err
        assert "1 subscribers" in out and "secret.key" in out
        code, _, err = await run_cli(cfg, "db", "restore", str(backup), "--yes")
        assert code == 1
        assert err.strip() == (
            f"passerelle: a gateway is running (pid {proc.pid}) on this database; "
            "stop it first (systemctl stop passerelle)"
        )

        # SIGHUP: the new limit and log level apply now; the new port needs a restart
        write_config(tmp_path, prosody, smsc.port, per_hour=5, level="debug", port=prosody.component_port + 1)
        proc.send_signal(signal.SIGHUP)
        await wait_for_log(log_path, "configuration reloaded")
        code, out, _ = await run_cli(cfg, "status", "--json")
        settings = json.loads(out)["settings"]
        assert settings["log_level"] == "debug" and settings["sms_limits"]["per_user_per_hour"] == 5

        assert (await run_cli(cfg, "user", "remove", f"alice@{DOMAIN}", "--yes"))[0] == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await smsc.stop()

    entries = [json.loads(line) for line in log_path.read_text().splitlines()]  # every line is JSON
    reload_line = next(e for e in entries if "configuration reloaded" in e["msg"])
    assert reload_line["level"] == "warning"
    assert "applied logging.level (info → debug), sms.limits.per_user_per_hour (60 → 5)" in reload_line["msg"]
    port = prosody.component_port
    restart = f"needs a restart (still running the old value): xmpp.port ({port} → {port + 1})"
    assert restart in reload_line["msg"]
    assert "gateway stopped" in [e["msg"] for e in entries[-5:]]
    assert all("ref" in e for e in entries if e["level"] == "error")
    text = log_path.read_text()
    assert SECRET not in text and "smscpw" not in text
    assert not (tmp_path / "gw.db.sock").exists()

    code, out, err = await run_cli(cfg, "db", "restore", str(backup), "--yes")
    assert code == 0, err
    assert f"the previous database is kept as {tmp_path}/gw.db.bak" in out
    code, out, _ = await run_cli(cfg, "user", "list", "--json")
    assert [row["jid"] for row in json.loads(out)] == [f"alice@{DOMAIN}"]
    code, _, err = await run_cli(cfg, "db", "restore", str(cfg), "--yes")
    assert code == 1 and "not a Passerelle database" in err


# -- management commands applied by a running gateway ---------------------------------------


async def test_user_set_and_contact_remove_reach_a_running_gateway(tmp_path: Path) -> None:
    """An operator gives an existing subscriber their MSN account while their XMPP client is
    online: the running gateway logs them in at once; removing a buddy takes it off their
    MSN list; taking the account away logs them out."""
    from gateway.app import Gateway
    from gateway.devtools.prosody import ComponentSpec
    from tests.e2e.msn_fixtures import ALICE, ALICE_PW, FAST, MSN_JID, History, seed
    from transports.msn.fake_server import FakeMsnServer
    from transports.msn.status import ListBit
    from transports.msn.transport import MsnTransport

    msn = await FakeMsnServer.start(users=seed())
    server = Prosody(tmp_path / "prosody", DOMAIN, [ComponentSpec(MSN_JID, SECRET)])
    server.start()
    server.register("alice", "pw")
    cfg = tmp_path / "passerelle.toml"
    cfg.write_text(
        f'[xmpp]\nport = {server.component_port}\nuser_domains = ["{DOMAIN}"]\n'
        f'[storage]\npath = "gw.db"\nkey_file = "secret.key"\n'
        f'[msn]\njid = "{MSN_JID}"\nsecret = "{SECRET}"\n'
        f'[msn.server]\nport = {msn.ns_port}\nnexus_url = "{msn.nexus_url}"\n'
    )
    create_key_file(tmp_path / "secret.key")
    (tmp_path / "pw").write_text(ALICE_PW)
    alice_jid = f"alice@{DOMAIN}"
    assert (await cli(cfg, "db", "upgrade")).exit_code == 0  # `user add` refuses a missing database
    assert (await cli(cfg, "user", "add", alice_jid)).exit_code == 0
    gateway = Gateway(config_mod.load(cfg))
    alice = ScriptedUser(f"{alice_jid}/laptop", "pw", server.c2s_port)
    try:
        bridge = await gateway.start()
        transport = bridge.transports["msn"]
        assert isinstance(transport, MsnTransport)
        transport.options.update(FAST)
        await asyncio.wait_for(bridge.components["msn"].online.wait(), 10)
        history = History(alice)
        await alice.online()
        alice.send_presence(pto=MSN_JID)  # her client is online; she has no MSN account yet
        await until(lambda: bridge.resources["msn"].is_online(BareJid.parse(alice_jid)))

        result = await cli(
            cfg, "user", "set", alice_jid, "--msn", ALICE, "--msn-password-file", str(tmp_path / "pw")
        )
        assert result.exit_code == 0, result.output
        assert f"the running gateway applied it: msn: logging in as {ALICE}" in result.output
        await history.presence(MSN_JID, type="subscribe")  # the component asks, as after a registration
        await until(lambda: any(login.state == "online" for login in transport.logins.values()))

        directory = msn.directory.get(ALICE)
        assert directory is not None and directory.mask_for("bob@escargot.test") & ListBit.FL
        result = await cli(cfg, "contact", "remove", alice_jid, "bob@escargot.test")
        assert result.exit_code == 0, result.output
        assert "bob@escargot.test removed from the roster and the msn list" in result.output
        assert not directory.mask_for("bob@escargot.test") & ListBit.FL

        result = await cli(cfg, "user", "set", alice_jid, "--no-msn")
        assert result.exit_code == 0 and "the running gateway applied it: msn: logged out" in result.output
        await until(lambda: not transport.logins)
        await history.presence(MSN_JID, type="unsubscribe")
    finally:
        await alice.close()
        await gateway.stop()
        server.stop()
        await msn.stop()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_number_given_with_user_set_receives_sms_at_once(prosody: Prosody, tmp_path: Path) -> None:
    """The running gateway (a real process) had just refused an SMS to the number, and
    keeps such look-ups for a while: told by ``user set``, it accepts the next one."""
    from transports.sms.status import Status

    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    cfg = write_config(tmp_path, prosody, smsc.port)
    assert (await run_cli(cfg, "db", "upgrade"))[0] == 0
    assert (await run_cli(cfg, "user", "add", f"alice@{DOMAIN}"))[0] == 0
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*PASSERELLE, "-c", str(cfg), "run"], env={**os.environ, **ENV}, stdout=log_file, stderr=log_file
        )
    try:
        await smsc.wait_for_bind(timeout=20)
        assert await smsc.inject_mo("33698765432", "33612345678", "before") == [Status.ESME_RINVDSTADR]
        code, out, err = await run_cli(cfg, "user", "set", f"alice@{DOMAIN}", "--msisdn", "+33612345678")
        assert code == 0, err
        assert "the running gateway applied it" in out
        assert await smsc.inject_mo("33698765432", "33612345678", "after") == [Status.ESME_ROK]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await smsc.stop()


async def test_contact_add_reaches_the_roster_of_an_online_subscriber(
    prosody: Prosody, tmp_path: Path
) -> None:
    """``contact add`` while the subscriber is online on the SMS component: the running
    gateway pushes the new contact into their roster at once, not at their next login."""
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    cfg = write_config(tmp_path, prosody, smsc.port)
    assert (await cli(cfg, "db", "upgrade")).exit_code == 0
    alice_jid = f"alice@{DOMAIN}"
    assert (await cli(cfg, "user", "add", alice_jid, "--msisdn", "+33612345678")).exit_code == 0
    gateway = Gateway(config_mod.load(cfg, ENV))
    alice = ScriptedUser(f"{alice_jid}/laptop", "pw", prosody.c2s_port)
    try:
        bridge = await gateway.start()
        await asyncio.wait_for(bridge.components["sms"].online.wait(), 10)
        await alice.online()
        alice.send_presence(pto=SMS)
        await until(lambda: bridge.resources["sms"].is_online(BareJid.parse(alice_jid)))

        result = await cli(cfg, "contact", "add", alice_jid, "+33698765432", "--name", "Bob")
        assert result.exit_code == 0, result.output
        assert "the running gateway applied it: the contact was pushed" in result.output
        async with asyncio.timeout(10):
            while True:
                push = await alice.roster_pushes.get()
                items = push.xml.findall(".//{jabber:iq:roster}item")
                if any(i.get("jid") == f"+33698765432@{SMS}" and i.get("name") == "Bob" for i in items):
                    break
    finally:
        await alice.close()
        await gateway.stop()
        await smsc.stop()
