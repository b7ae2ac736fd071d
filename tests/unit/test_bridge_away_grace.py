"""A subscriber whose last XMPP client left is away, and MSN messages go to their phone,
only after a few seconds: a client reconnecting (or the XMPP server restarting) is not the
subscriber leaving. Texting at once made each message arrive twice, by SMS and on XMPP
(the convergence keeps a texted message on XMPP too), around a Prosody restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.bridge import AWAY_GRACE_S, Bridge
from gateway.core.events import LegacyMessageReceived, XmppPresenceReceived
from gateway.core.model import OFFLINE, Presence, Show
from gateway.storage import Contact
from gateway.transport import Delivered, Retry
from tests.conftest import base_config
from tests.unit.bridge_fakes import ALICE, FakeComponent, FullableStore, ScriptedTransport, until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def world(
    tmp_path: Path, store: FullableStore
) -> AsyncIterator[tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int]]:
    alice = await store.add_subscriber(ALICE.bare, 1.0)
    await store.set_account(alice.id, "sms", "+33612345678", None, 1.0)
    await store.set_account(alice.id, "msn", "alice@escargot.test", "pw", 1.0)
    await store.upsert_contacts([Contact(alice.id, "msn", "bob@escargot.test", "Bob", (), 3)])
    clock, sms = Clock(), ScriptedTransport("sms", lambda _item: Delivered())
    bridge = Bridge(
        base_config(tmp_path),
        store,
        {"sms": sms, "msn": ScriptedTransport("msn", lambda _i: Retry(60.0))},
        clock,
    )
    xmpp = FakeComponent()
    bridge.components = {"sms": FakeComponent(), "msn": xmpp}  # type: ignore[dict-item]
    await bridge.start()
    yield bridge, clock, sms, xmpp, alice.id
    await bridge.stop()


async def presence(bridge: Bridge, online: bool) -> None:
    """alice's client, as the XMPP server reports it to both components."""
    state = Presence(Show.AVAILABLE) if online else OFFLINE
    for network in ("msn", "sms"):
        kind = "available" if online else "unavailable"
        await bridge.presence_received(network, XmppPresenceReceived(ALICE, None, kind, state))


async def from_bob(bridge: Bridge, alice_id: int, n: int) -> None:
    await bridge.network_event(
        LegacyMessageReceived("msn", alice_id, "bob@escargot.test", f"hi {n}", f"m{n}")
    )


async def test_a_client_back_within_the_grace_gets_the_message_on_xmpp_only(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    bridge, clock, sms, xmpp, alice_id = world
    await presence(bridge, online=True)
    await presence(bridge, online=False)  # the client's connection broke
    await from_bob(bridge, alice_id, 1)
    await asyncio.sleep(0.5)
    assert sms.calls == [] and xmpp.handed == []  # held for a moment

    clock.now += AWAY_GRACE_S / 2
    await presence(bridge, online=True)  # the client is back
    await until(lambda: len(xmpp.handed) == 1)
    assert xmpp.handed[0].body == "hi 1"
    await asyncio.sleep(0.3)
    assert sms.calls == [], "texted although the client came back"


async def test_away_past_the_grace_the_message_is_texted(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    bridge, clock, sms, _xmpp, alice_id = world
    await presence(bridge, online=True)
    await presence(bridge, online=False)
    await from_bob(bridge, alice_id, 2)
    await asyncio.sleep(0.3)
    assert sms.calls == []
    clock.now += AWAY_GRACE_S + 1
    bridge.wake_xmpp("msn")
    await until(lambda: len(sms.calls) == 1)
    assert sms.calls[0].payload["body"] == "Bob: hi 2"


# -- an XMPP server restart: the grace counts only while a subscriber's presence is unknown --

LONG_GRACE_S = 3600.0  # waiting it out would fail every bounded wait below


async def stream_lost(bridge: Bridge) -> None:
    """Both components' streams end, as when the XMPP server stops."""
    for network in ("msn", "sms"):
        bridge.components[network].online.clear()
        await bridge.component_offline(network)


async def stream_back(bridge: Bridge) -> None:
    for network in ("msn", "sms"):
        bridge.components[network].online.set()
        await bridge.component_online(network)


async def test_a_client_back_after_the_server_restart_gets_the_message_on_xmpp_at_once(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    bridge, _clock, sms, xmpp, alice_id = world
    bridge.away_grace_s = LONG_GRACE_S
    await presence(bridge, online=True)
    await presence(bridge, online=False)  # the server going down closes her stream first
    await stream_lost(bridge)
    await from_bob(bridge, alice_id, 3)
    await asyncio.sleep(0.3)
    assert sms.calls == [] and xmpp.handed == []  # nobody knows where she is: held
    await stream_back(bridge)
    await presence(bridge, online=True)  # the server tells her presence again
    await until(lambda: len(xmpp.handed) == 1)
    assert xmpp.handed[0].body == "hi 3" and sms.calls == []


async def test_a_client_online_at_the_loss_and_back_is_not_texted(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    bridge, _clock, sms, xmpp, alice_id = world
    bridge.away_grace_s = LONG_GRACE_S
    await presence(bridge, online=True)
    await stream_lost(bridge)  # no unavailable came: her client may be back before the component
    await from_bob(bridge, alice_id, 4)
    await asyncio.sleep(0.3)
    assert sms.calls == [] and xmpp.handed == []
    await stream_back(bridge)
    await presence(bridge, online=True)
    await until(lambda: len(xmpp.handed) == 1)
    assert sms.calls == []


async def test_who_was_online_at_the_loss_is_asked_for_at_the_reconnection(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    """A client back before the component was reconnected told a component that was not
    there: the server is asked (a probe) instead of waiting for the client's next presence."""
    bridge, clock, _sms, xmpp, _alice_id = world

    async def probed_after_a_restart() -> list[tuple[str, str | None]]:
        xmpp.presences.clear()
        await stream_lost(bridge)
        await stream_back(bridge)
        return [(str(p.to), p.contact) for p in xmpp.presences if p.type == "probe"]

    await presence(bridge, online=True)
    assert await probed_after_a_restart() == [(str(ALICE.bare), None)]
    await presence(bridge, online=True)  # told
    await presence(bridge, online=False)  # the server closing her stream as it goes down
    assert await probed_after_a_restart() == [(str(ALICE.bare), None)]
    await presence(bridge, online=False)  # told: away
    clock.now += AWAY_GRACE_S + 1
    assert await probed_after_a_restart() == []  # away well before the loss: nothing to ask


async def test_nothing_heard_after_the_loss_the_message_is_texted_once_the_grace_is_over(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    """Online when the stream ended and never heard of since: after the grace she is away
    (before, she stayed online for the gateway and nothing was ever texted)."""
    bridge, clock, sms, _xmpp, alice_id = world
    await presence(bridge, online=True)
    await stream_lost(bridge)
    await stream_back(bridge)
    await from_bob(bridge, alice_id, 5)
    await asyncio.sleep(0.3)
    assert sms.calls == []
    clock.now += AWAY_GRACE_S + 1
    bridge.wake_xmpp("msn")
    await until(lambda: len(sms.calls) == 1)
    assert sms.calls[0].payload["body"] == "Bob: hi 5"


async def test_a_subscriber_away_before_the_restart_is_texted_without_a_new_wait(
    world: tuple[Bridge, Clock, ScriptedTransport, FakeComponent, int],
) -> None:
    bridge, clock, sms, _xmpp, alice_id = world
    bridge.away_grace_s = LONG_GRACE_S
    await presence(bridge, online=True)
    await presence(bridge, online=False)
    clock.now += LONG_GRACE_S + 1  # away for good, long before the restart
    await stream_lost(bridge)
    await from_bob(bridge, alice_id, 6)  # while the server is down
    await until(lambda: len(sms.calls) == 1)
    await stream_back(bridge)
    await from_bob(bridge, alice_id, 7)  # and once it is back
    await until(lambda: len(sms.calls) == 2)
    assert [c.payload["body"] for c in sms.calls] == ["Bob: hi 6", "Bob: hi 7"]
