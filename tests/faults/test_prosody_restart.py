"""Prosody stopped and started again in the middle of the mixed stream.

The gateway's component links and alice's c2s stream break; the gateway reconnects by
itself, alice's client reconnects and resends (same ids) what the server had not confirmed.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import Fault, World, now

pytestmark = pytest.mark.e2e


async def restart_prosody(w: World, fault: Fault) -> None:
    assert w.gateway is not None
    fault.start = now()
    await asyncio.to_thread(w.prosody.stop)
    await asyncio.sleep(2.0)
    text_from = len(w.gateway.log_text())  # before the start: a component may be back before it returns
    await asyncio.to_thread(w.prosody.start)
    fault.end = now()
    async with asyncio.timeout(30):
        while w.gateway.log_text()[text_from:].count("connected to") < 2:
            await asyncio.sleep(0.05)
    fault.figures["components_back_s"] = round(max(0.0, now() - fault.end), 2)


async def test_prosody_restart_mid_stream(world: World) -> None:
    fault = Fault("Prosody stop (2 s) + start")
    await world.stream(fault, restart_prosody)
    world.check(fault)
