"""What the MSN transport makes of a group conversation's traffic: lines are marked with the
other participants before they reach the subscriber (XMPP or SMS), and a JOI that raced a
one-to-one message is counted in the transport's status (and so in the metrics)."""

from __future__ import annotations

from tests.msn.test_transport_store_fault import FullStoreSink, signed_in, until
from transports.msn.chat import JoinedWhileSending
from transports.msn.sb import MessageReceived


async def test_group_lines_are_marked_and_join_races_counted() -> None:
    sink = FullStoreSink()
    sink.full = False
    transport, session = await signed_in(sink)
    try:
        assert transport.status()["group_join_races"] == 0
        await session.on_event(MessageReceived("bob@escargot.test", "Bob", "just us"))
        await session.on_event(
            MessageReceived("bob@escargot.test", "Bob", "meet carol", None, ("carol@escargot.test",))
        )
        await until(lambda: len(sink.stored) == 2)
        assert sink.stored == ["just us", "[with carol] meet carol"]
        await session.on_event(JoinedWhileSending("bob@escargot.test", "carol@escargot.test"))
        assert transport.status()["group_join_races"] == 1
    finally:
        await transport.stop()
