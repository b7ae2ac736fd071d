"""The component's link to the XMPP server, as an operator reads it in the log.

Nothing on the component port, a server refusing the component secret (a scripted
XEP-0114 listener that counts the attempts, and a real Prosody with another secret), and a
stream that ends while a hand-over waits for its ping: one line per change of state, with
the next retry time, attempts backing off, and no wait for an answer that cannot come.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.addressing import BareJid, FullJid
from gateway.core.events import XmppPresenceReceived
from gateway.devtools.prosody import ComponentSpec, Prosody, free_port
from gateway.xmpp.component import GatewayComponent
from tests.conftest import DOMAIN, SECRET

pytestmark = pytest.mark.e2e
JID = f"sms.{DOMAIN}"
LOGGER = "gateway.xmpp.component"
NOT_AUTHORIZED = (
    b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    b"</stream:stream>"
)


class Listener:
    """A component port that answers the stream header and then, by ``mode``: refuses the
    handshake (``refuse``), or accepts it and drops the connection when the first IQ comes
    (``drop``). Counts connections and when each came."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = free_port()
        self.attempts: list[float] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts.append(time.monotonic())
        self.writers.append(writer)
        try:
            await reader.readuntil(b">")  # the stream header (after any <?xml ...?>)
            writer.write(
                b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
                b"xmlns='jabber:component:accept' id='s1' from='" + JID.encode() + b"'>"
            )
            await reader.readuntil(b"</handshake>")
            if self.mode == "refuse":
                writer.write(NOT_AUTHORIZED)
                await writer.drain()
                writer.close()
                return
            writer.write(b"<handshake/>")
            await reader.readuntil(b"<iq")  # the first IQ (the hand-over's ping): never answered
            writer.transport.abort()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


class Handler:
    """The bridge, as far as the link goes."""

    def __init__(self) -> None:
        self.online = 0
        self.offline = 0

    async def component_online(self, network: str) -> None:
        self.online += 1

    async def component_offline(self, network: str) -> None:
        self.offline += 1

    async def presence_received(self, network: str, event: XmppPresenceReceived) -> None:
        return None

    def sender_allowed(self, sender: BareJid) -> bool:
        return True


@pytest.fixture
async def component_at() -> AsyncIterator[object]:
    made: list[GatewayComponent] = []

    def make(port: int, secret: str = SECRET) -> GatewayComponent:
        component = GatewayComponent(
            network="sms",
            jid=JID,
            secret=secret,
            host="127.0.0.1",
            port=port,
            handler=Handler(),  # type: ignore[arg-type]  # the link's part of the bridge only
            name="test",
            features=frozenset(),
            fields=(),
            instructions="",
            prompt="",
        )
        made.append(component)
        component.connect()
        return component

    yield make
    for component in made:
        await component.close()


@pytest.fixture
def component_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the operator reads about the link at the default level (info)."""
    return [
        f"{r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.startswith(("gateway.xmpp", "slixmpp"))
    ]


async def test_nothing_on_the_component_port_is_said_once_with_the_retry_time(
    component_at: object, component_log: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nobody listens there
    component_at(port)  # type: ignore[operator]
    async with asyncio.timeout(10):
        while not lines(component_log):
            await asyncio.sleep(0.05)
    await asyncio.sleep(3.0)  # more attempts fail meanwhile: nothing more is said
    said = lines(component_log)
    assert len(said) == 1, said
    assert said[0].startswith(f"WARNING component {JID} cannot reach the XMPP server at 127.0.0.1:{port}: ")
    assert "Connection refused; retrying in " in said[0]


async def test_a_refused_secret_is_said_once_and_attempts_back_off(
    component_at: object, component_log: pytest.LogCaptureFixture
) -> None:
    async with Listener("refuse") as server:
        component_at(server.port)  # type: ignore[operator]
        async with asyncio.timeout(10):
            while not server.attempts:
                await asyncio.sleep(0.05)
        await asyncio.sleep(6.0 - (time.monotonic() - server.attempts[0]))
        attempts = list(server.attempts)
    said = lines(component_log)
    assert len(said) == 1, said
    assert said[0].startswith(f"ERROR the XMPP server at 127.0.0.1:{server.port} refused the secret of ")
    assert "component_secret" in said[0] and SECRET not in said[0]
    # pauses of 0.5-1 s, 1-2 s, 2-4 s...: at most 4 attempts in 6 s (twice a second before)
    assert 2 <= len(attempts) <= 4, attempts
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.45 and all(g >= 0.95 for g in gaps[1:]), gaps  # 0.5 s, then 1 s or more


async def test_a_prosody_with_another_secret_is_said_once(
    component_at: object, component_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    server = Prosody(tmp_path / "prosody", DOMAIN, [ComponentSpec(JID, SECRET)])
    server.start()
    try:
        component_at(server.component_port, "another secret")  # type: ignore[operator]
        async with asyncio.timeout(10):
            while not lines(component_log):
                await asyncio.sleep(0.05)
        await asyncio.sleep(4.0)
    finally:
        server.stop()
    said = lines(component_log)
    assert len(said) == 1, said
    assert "refused the secret of component" in said[0] and "another secret" not in said[0]


async def test_a_hand_over_ends_when_its_stream_does_not_after_the_ping_timeout(
    component_at: object, component_log: pytest.LogCaptureFixture
) -> None:
    """The hand-over confirms stanzas with a ping on the same stream. A stream that ends
    never answers it: waiting for the ping's own timeout (10 s) held every message of the
    network, the SMS forwards included, for that long after an XMPP server restart."""
    async with Listener("drop") as server:
        component = component_at(server.port)  # type: ignore[operator]
        await asyncio.wait_for(component.online.wait(), 10)
        started = time.monotonic()
        msg = component.make_message(mto=str(FullJid.parse(f"alice@{DOMAIN}/pc")), mbody="hi", mtype="chat")
        confirmed = await asyncio.wait_for(component.handover([msg]), 9.0)
        assert confirmed is False
        assert time.monotonic() - started < 3.0
        said = lines(component_log)
        assert any(f"WARNING component {JID} lost its connection" in line for line in said), said


# -- `passerelle run` as an operator starts it ---------------------------------------------


async def run_gateway(tmp_path: Path, port: int, secret: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``passerelle run`` (default log level) with its SMS component pointed at ``port``."""
    from tests.e2e.test_run_command import PASSERELLE, write_config
    from transports.sms.fake_smsc import FakeSmsc

    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    server = Prosody(tmp_path / "unused", DOMAIN, [])
    server.component_port = port
    cfg = write_config(tmp_path, server, smsc)
    env = {**os.environ, "PASSERELLE_SMS_SECRET": secret, "PASSERELLE_SMS_SMSC_PASSWORD": "smscpw"}
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*PASSERELLE, "-c", str(cfg), "run"], env=env, stderr=log, stdout=log)
    proc.smsc = smsc  # type: ignore[attr-defined]  # stopped by stop_gateway
    return proc, log_path


async def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await proc.smsc.stop()  # type: ignore[attr-defined]


def link_lines(log_path: Path) -> list[str]:
    """The log lines about the component's link (the logger is in each human-format line)."""
    return [
        line.split(" ", 2)[2]
        for line in log_path.read_text().splitlines()
        if " gateway.xmpp.component: " in line or " slixmpp." in line
    ]


async def until_lines(log_path: Path, n: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while len(link_lines(log_path)) < n:
            await asyncio.sleep(0.1)


async def test_run_says_once_that_the_xmpp_server_is_unreachable_then_that_it_connected(
    tmp_path: Path,
) -> None:
    if shutil.which("prosody") is None:
        pytest.fail("prosody is not installed: run `make test`, which installs it")
    server = Prosody(tmp_path / "prosody", DOMAIN, [ComponentSpec(JID, SECRET)])  # not started yet
    proc, log_path = await run_gateway(tmp_path, server.component_port, SECRET)
    try:
        await until_lines(log_path, 1)
        await asyncio.sleep(4.0)  # attempts go on failing: nothing more is said
        said = link_lines(log_path)
        assert len(said) == 1, said
        assert said[0].startswith(
            f"WARNING gateway.xmpp.component: component {JID} cannot reach the XMPP server at "
            f"127.0.0.1:{server.component_port}: Connection refused; retrying in "
        ), said
        server.start()
        try:
            await until_lines(log_path, 2)
            said = link_lines(log_path)
            assert said[1] == (
                f"INFO gateway.xmpp.component: component {JID} connected to the XMPP server at "
                f"127.0.0.1:{server.component_port}"
            ), said
        finally:
            server.stop()
    finally:
        await stop_gateway(proc)


async def test_run_says_once_that_the_server_refused_the_component_secret(
    prosody: Prosody, tmp_path: Path
) -> None:
    wrong = "not-the-prosody-secret"
    proc, log_path = await run_gateway(tmp_path, prosody.component_port, wrong)
    try:
        await until_lines(log_path, 1)
        await asyncio.sleep(4.0)
    finally:
        await stop_gateway(proc)
    said = link_lines(log_path)
    assert len(said) == 1, said
    assert said[0].startswith(
        f"ERROR gateway.xmpp.component: the XMPP server at 127.0.0.1:{prosody.component_port} refused "
        f"the secret of component {JID} (stream error not-authorized): check that the component_secret"
    ), said
    assert wrong not in log_path.read_text() and "Traceback" not in log_path.read_text()


# -- presence after the XMPP server restarted --------------------------------------------------


async def test_a_client_back_before_the_component_is_known_again_after_a_server_restart(
    tmp_path: Path,
) -> None:
    """Without the XEP-0356 presence privilege nothing tells the component, at its
    reconnection, who is online: a client that came back first sent its presence to a
    component that was not there. The gateway asks (a probe) for whoever was online, or
    left just before, when the stream ended; else she would count as away (her MSN
    messages texted) until her client's next presence."""
    from tests.conftest import TEST_JID, base_config, start_gateway
    from tests.e2e.test_foundation import register
    from tests.xmpp_client import ScriptedUser

    server = Prosody(tmp_path / "prosody", DOMAIN, [ComponentSpec(TEST_JID, SECRET, privileged=False)])
    server.start()
    server.register("alice", "pw")
    running = await start_gateway(base_config(tmp_path, server.component_port))
    alice = ScriptedUser(f"alice@{DOMAIN}/laptop", "pw", server.c2s_port)
    jid = BareJid.parse(f"alice@{DOMAIN}")
    try:
        await alice.online()
        await register(alice)
        await alice.next_presence(from_=TEST_JID, type="subscribe")
        alice.send_presence(pto=TEST_JID, ptype="subscribed")
        alice.send_presence(pto=TEST_JID, ptype="subscribe")
        await alice.next_presence(from_=TEST_JID, type="subscribed")
        alice.send_presence()
        bridge, component = running.bridge, running.bridge.components["test"]
        async with asyncio.timeout(10):
            while not bridge.resources["test"].is_online(jid):
                await asyncio.sleep(0.05)

        held = asyncio.Event()  # the component waits for this before reconnecting
        reconnect = component._reconnect
        component._reconnect = lambda: held.set()  # type: ignore[method-assign]
        await asyncio.to_thread(server.restart)
        await alice.close()
        alice = ScriptedUser(f"alice@{DOMAIN}/laptop", "pw", server.c2s_port)
        await alice.online()  # her presence goes to a component that is not connected
        await asyncio.wait_for(held.wait(), 10)
        assert not bridge.resources["test"].is_online(jid)
        component._reconnect = reconnect  # type: ignore[method-assign]
        component.connect()
        async with asyncio.timeout(10):  # asked, and told by the server
            while not bridge.resources["test"].is_online(jid):
                await asyncio.sleep(0.05)
        assert bridge.away.unknown() == ()
    finally:
        await alice.close()
        await running.gateway.stop()
        server.stop()
