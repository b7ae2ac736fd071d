"""No fault: the stream alone, so a fault case's figures have something to be compared with;
and every XMPP → MSN message delivered is receipted (XEP-0184 from the switchboard's ACK)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import Fault, World, now

pytestmark = pytest.mark.e2e


async def test_no_fault(world: World) -> None:
    async def nothing(w: World, fault: Fault) -> None:
        fault.start = fault.end = now()
        await asyncio.sleep(0)

    fault = Fault("none")
    await world.stream(fault, nothing)
    world.check(fault)
    # MSN's receipts are not confirmed (a fault can lose one); with no fault, every one arrives
    missing = world.unreceipted("x2m")
    assert not missing, f"x2m delivered without a receipt: {len(missing)}, e.g. {missing[:3]}"
