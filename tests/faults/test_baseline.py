"""No fault: the stream alone, so a fault case's figures have something to be compared with."""

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
