"""`passerelle run` as an operator runs it: a real process beside a real Prosody."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.devtools.prosody import Prosody
from tests.conftest import DOMAIN, SECRET
from tests.xmpp_client import ScriptedUser
from transports.sms.fake_smsc import FakeSmsc

pytestmark = pytest.mark.e2e
PASSERELLE = [sys.executable, "-c", "from gateway.cli import main; main()"]
SMS = f"sms.{DOMAIN}"


def write_config(tmp_path: Path, prosody: Prosody, smsc: FakeSmsc) -> Path:
    cfg = tmp_path / "passerelle.toml"
    cfg.write_text(
        f'[xmpp]\nport = {prosody.component_port}\nuser_domains = ["{DOMAIN}"]\n'
        f'[storage]\npath = "gw.db"\nkey_file = "secret.key"\n'
        f'[sms]\njid = "{SMS}"\nservice_number = "2020"\n'
        f'[sms.smsc]\nport = {smsc.port}\nsystem_id = "gw"\n'
    )
    from gateway.storage import create_key_file

    create_key_file(tmp_path / "secret.key")
    return cfg


async def cli(cfg: Path, *args: str) -> str:
    env = {**os.environ, "PASSERELLE_SMS_SECRET": SECRET, "PASSERELLE_SMS_SMSC_PASSWORD": "smscpw"}
    proc = await asyncio.create_subprocess_exec(
        *PASSERELLE, "-c", str(cfg), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_run_serves_survives_a_prosody_restart_and_stops_cleanly(
    prosody: Prosody, tmp_path: Path
) -> None:
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    cfg = write_config(tmp_path, prosody, smsc)
    await cli(cfg, "db", "upgrade")  # creates the database (`user add` refuses a missing one)
    await cli(cfg, "user", "add", f"alice@{DOMAIN}", "--msisdn", "+33612345678")
    env = {**os.environ, "PASSERELLE_SMS_SECRET": SECRET, "PASSERELLE_SMS_SMSC_PASSWORD": "smscpw"}
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen([*PASSERELLE, "-c", str(cfg), "-v", "run"], env=env, stderr=log, stdout=log)
    alice = ScriptedUser(f"alice@{DOMAIN}/pc", "pw", prosody.c2s_port)
    try:
        await smsc.wait_for_bind(timeout=20)
        await alice.online()
        alice.send_presence(pto=SMS, ptype="subscribe")
        await alice.next_presence(from_=SMS, type="subscribed", timeout=20)
        info = await alice.plugin["xep_0030"].get_info(jid=SMS, timeout=10)
        assert ("gateway", "sms", None, "Passerelle SMS gateway") in info["disco_info"]["identities"]

        prosody.restart()  # the gateway reconnects by itself
        await alice.close()
        alice = ScriptedUser(f"alice@{DOMAIN}/pc", "pw", prosody.c2s_port)
        await alice.online()
        for _ in range(100):
            try:
                info = await alice.plugin["xep_0030"].get_info(jid=SMS, timeout=2)
                break
            except Exception:
                await asyncio.sleep(0.2)
        assert ("gateway", "sms", None, "Passerelle SMS gateway") in info["disco_info"]["identities"]
        alice.send_message(mto=f"+33698765432@{SMS}", mbody="after the restart", mtype="chat")
        submits = await smsc.wait_for_submits(1, timeout=20)
        assert submits[0].short_message == b"after the restart"

        proc.send_signal(signal.SIGTERM)
        gone = await alice.next_presence(from_=SMS, type="unavailable", timeout=20)
        assert gone is not None
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await alice.close()
        await smsc.stop()
        log.close()
    text = (tmp_path / "gateway.log").read_text()
    assert SECRET not in text and "smscpw" not in text
    assert "Traceback" not in text


async def test_demo_story_runs_non_interactively() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.devtools.demo",
        "--story-only",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "Your Passerelle code is" in text
    assert "bob's phone +33698765432 | SMS from +33612345678: Hi Bob! Dinner at 8? 🍝" in text
    assert "alice (XMPP) | message from +33698765432@sms.demo.test: Sure, see you there!" in text
    assert "bob (MSN) | message from alice@escargot.test: Hello from XMPP!" in text
    assert "alice (XMPP) | message from bob\\40escargot.test@msn.demo.test: Hi Alice, MSN here." in text
    assert "bob (MSN) | Alice is online, personal message: 'On mobile'" in text
    assert "alice's phone +33612345678 | SMS from 2020: Bob: Are you coming tonight?" in text
    assert "bob (MSN) | message from alice@escargot.test: Yes! Leaving now." in text
    assert "SMS from 2020: Online: Bob" in text
    assert "carol's phone +33611223344 | SMS from +33612345678: Carol, are you there?" in text
    assert "message from carol\\40escargot.test@msn.demo.test: On my way!" in text
