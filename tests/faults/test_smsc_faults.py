"""The SMSC misbehaving mid-stream: dropped binds and throttling; errors and late receipts."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import SAM_NUMBER, Fault, World, now
from transports.sms.status import Status

pytestmark = pytest.mark.e2e


async def drop_and_throttle(w: World, fault: Fault) -> None:
    fault.start = now()
    w.smsc.throttle(share=0.3)  # ESME_RTHROTTLED to 30 % of submits for the whole fault
    for _ in range(3):  # the bind dropped three times, a second apart
        await w.smsc.drop_connections()
        await asyncio.sleep(1.0)
    w.smsc.throttle()
    fault.end = now()
    await w.smsc.wait_until(lambda: w.smsc.bound_count >= 1, 20)
    fault.figures["rebound_after_s"] = round(now() - fault.end, 2)
    fault.figures["throttled"] = sum(s.status == Status.ESME_RTHROTTLED for s in w.smsc.submits)
    fault.figures["binds"] = sum(b.status == 0 for b in w.smsc.binds)


async def test_smsc_drops_the_bind_and_throttles(world: World) -> None:
    fault = Fault("SMSC drops the bind x3 + throttles 30 %")
    await world.stream(fault, drop_and_throttle)
    world.check(fault)


async def errors_and_late_receipts(w: World, fault: Fault) -> None:
    fault.start = now()
    w.smsc.receipt_delay_s = 3.0
    w.smsc.reject_next(Status.ESME_RSYSERR, 15)  # transient: retried
    w.smsc.reject_next(Status.ESME_RMSGQFUL, 10)  # transient: retried
    for n in range(3):  # permanent, for three of alice's destinations: she must be told
        w.smsc.reject_to[f"336980{n:05d}"] = [Status.ESME_RINVDSTADR]
    await asyncio.sleep(3.0)
    w.smsc.receipt_delay_s = 0.0
    fault.end = now()
    fault.figures["rejected"] = sum(s.status != 0 for s in w.smsc.submits)


async def test_smsc_answers_errors_and_delays_receipts(world: World) -> None:
    fault = Fault("SMSC answers 25 transient + 3 permanent errors, receipts 3 s late")
    await world.stream(fault, errors_and_late_receipts)
    world.check(fault)


async def refuse_forwards(w: World, fault: Fault) -> None:
    fault.start = now()
    w.smsc.reject_to[SAM_NUMBER.lstrip("+")] = [Status.ESME_RINVDSTADR] * 3  # sam's phone, permanently
    await asyncio.sleep(1.0)
    fault.end = now()


async def test_smsc_refuses_a_forward_permanently(world: World) -> None:
    fault = Fault("SMSC refuses 3 forwards to sam's phone permanently")
    await world.stream(fault, refuse_forwards)
    world.check(fault)
