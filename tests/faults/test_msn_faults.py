"""The MSN server misbehaving mid-stream: dropped connections while refusing logins; 217."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import ALICE_MSN, BUDDIES, SAM_MSN, Fault, World, now

pytestmark = pytest.mark.e2e


async def drop_and_refuse(w: World, fault: Fault) -> None:
    assert w.msn is not None
    server = w.msn
    fault.start = now()
    server.refuse_logins(600, duration=4.0)  # "server is busy" to every login for 4 s
    await server.drop_connections()  # every NS and switchboard connection, no goodbye
    await asyncio.sleep(4.0)
    fault.end = now()
    await w.smsc.wait_until(
        lambda: server.ns_of(ALICE_MSN) is not None and server.ns_of(SAM_MSN) is not None, 30
    )
    fault.figures["gateway_sessions_back_s"] = round(now() - fault.end, 2)


async def test_msn_drops_connections_and_refuses_logins(world: World) -> None:
    fault = Fault("MSN drops every connection + refuses logins (600) for 4 s")
    await world.stream(fault, drop_and_refuse)
    world.check(fault)


async def answer_217(w: World, fault: Fault) -> None:
    assert w.msn is not None
    fault.start = now()
    w.msn.force_217(BUDDIES["bob"])  # every CAL to bob fails with 217 (offline)
    for _ in range(15):  # bob keeps leaving: the gateway's next message must call him again
        await w.buddies["bob"].session.end_chat(ALICE_MSN)
        await asyncio.sleep(0.2)
    w.msn.force_217(BUDDIES["bob"], False)
    fault.end = now()
    x2m = w.flows["x2m"]
    fault.figures["x2m_refused_217"] = sum(1 for t in x2m.sent if x2m.errors[t])


async def test_msn_answers_217(world: World) -> None:
    fault = Fault("MSN answers 217 to every call to bob for 3 s")
    await world.stream(fault, answer_217)
    world.check(fault)
