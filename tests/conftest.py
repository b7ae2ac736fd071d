"""Shared fixtures: a throwaway Prosody, a gateway with the test transport, users."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.bridge import Bridge
from gateway.config import Config, parse
from gateway.devtools.prosody import ComponentSpec, Prosody
from gateway.storage import create_key_file
from tests.echo_transport import EchoTransport
from tests.xmpp_client import ScriptedUser

# The fault-injection suite (tests/faults, about 30 s a case) is part of the default run;
# PASSERELLE_FAULTS=0 leaves it out.
collect_ignore = ["faults"] if os.environ.get("PASSERELLE_FAULTS") == "0" else []

DOMAIN = "example.test"
TEST_JID = f"test.{DOMAIN}"
SECRET = secrets.token_hex(12)


def base_config(tmp_path: Path, port: int = 5347, **xmpp: Any) -> Config:
    data = {
        "xmpp": {
            "host": "127.0.0.1",
            "port": port,
            "user_domains": [DOMAIN],
            "admins": [f"admin@{DOMAIN}"],
            **xmpp,
        },
        "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
        "sms": {
            "jid": f"sms.{DOMAIN}",
            "secret": SECRET,
            "service_number": "2020",
            "smsc": {"system_id": "passerelle", "password": "smscpw"},  # SMPP: at most 8
        },
    }
    return parse(data, env={})


@pytest.fixture
def prosody(tmp_path: Path) -> Iterator[Prosody]:
    if shutil.which("prosody") is None:
        pytest.fail("prosody is not installed: run `make test`, which installs it")
    components = [ComponentSpec(jid, SECRET) for jid in (TEST_JID, f"sms.{DOMAIN}", f"msn.{DOMAIN}")]
    server = Prosody(tmp_path / "prosody", DOMAIN, components)
    server.start()
    for user in ("alice", "bob", "admin"):
        server.register(user, "pw")
    yield server
    server.stop()


class RunningGateway:
    def __init__(self, gateway: Gateway, transport: EchoTransport) -> None:
        self.gateway = gateway
        self.transport = transport

    @property
    def bridge(self) -> Bridge:
        assert self.gateway.bridge is not None
        return self.gateway.bridge

    async def online(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self.bridge.components["test"].online.wait(), timeout)


async def start_gateway(config: Config, transport: EchoTransport | None = None) -> RunningGateway:
    transport = transport or EchoTransport()
    if not config.storage.key_file.exists():
        create_key_file(config.storage.key_file)
    gateway = Gateway(config, {"test": transport}, {"test": (TEST_JID, SECRET)})
    running = RunningGateway(gateway, transport)
    try:
        await gateway.start()
        await running.online()
    except BaseException:
        await gateway.stop()
        raise
    return running


@pytest.fixture
async def gateway(prosody: Prosody, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(base_config(tmp_path, prosody.component_port))
    yield running
    await running.gateway.stop()


@pytest.fixture
async def alice(prosody: Prosody) -> AsyncIterator[ScriptedUser]:
    user = ScriptedUser(f"alice@{DOMAIN}/laptop", "pw", prosody.c2s_port)
    await user.online()
    yield user
    await user.close()
