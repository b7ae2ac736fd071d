"""``kill -9`` of the gateway in the middle of the mixed stream, then a restart.

The only duplicates allowed are the PDUs that were on the wire at that instant on a
protocol with no idempotency (SMPP submit_sm, MSNP MSG): at most the SMPP window plus one
MSG per MSN switchboard the gateway was sending on. They are counted and printed.

The only losses allowed are the messages already handed, at that instant, to a connection
the killed process held on a protocol that has no acknowledgement from it: the XMPP
component stream (XEP-0114: the server wrote them to the dead socket) and the MSN
switchboards (the server ACKs what it relays). Counted and printed; only those sent within
``IN_FLIGHT_S`` before the kill. Nothing the SMSC delivered is ever lost: a deliver_sm is
answered only once its message is stored, and its de-dup marker is stored after it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import MSN_CHATS, SMPP_WINDOW, Fault, World, now

pytestmark = pytest.mark.e2e


async def kill_and_restart(w: World, fault: Fault) -> None:
    assert w.gateway is not None
    fault.start = w.killed_at = now()
    w.gateway.kill9()
    await asyncio.sleep(1.0)  # what a supervisor's restart delay looks like
    w.gateway.start()
    fault.end = now()
    await w.wait_ready(binds=2)
    fault.figures["ready_after_restart_s"] = round(now() - fault.end, 2)


async def test_kill_9_mid_stream_then_restart(world: World) -> None:
    fault = Fault("gateway kill -9 + restart")
    await world.stream(fault, kill_and_restart)
    rows = world.check(fault, gateway_dup_bound=SMPP_WINDOW + MSN_CHATS)
    dups = sum(r["dup_by_gateway"] for r in rows.values())
    print(f"duplicates from PDUs in flight at the kill: {dups} (bound {SMPP_WINDOW + MSN_CHATS})")
