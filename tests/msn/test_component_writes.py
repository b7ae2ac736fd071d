"""What the component sends in one turn of the event loop reaches the XMPP server in one
write, in order (a login's thousand probe answers were a thousand writes)."""

from __future__ import annotations

import asyncio

from gateway.addressing import BareJid
from gateway.xmpp.component import GatewayComponent


class Handler:
    def sender_allowed(self, sender: BareJid) -> bool:
        return True


class Transport:
    """Stands for the asyncio transport: records writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing


def component() -> GatewayComponent:
    return GatewayComponent(
        network="msn",
        jid="msn.example.test",
        secret="s",
        host="127.0.0.1",
        port=1,
        handler=Handler(),  # type: ignore[arg-type]
        name="test",
        features=frozenset(),
        fields=(),
        instructions="",
        prompt="",
    )


async def test_what_is_sent_in_one_turn_goes_out_in_one_write_in_order() -> None:
    comp = component()
    comp.transport = wire = Transport()  # type: ignore[assignment]
    for n in range(100):
        comp.send_raw(f"<presence n='{n}'/>")
    assert wire.writes == []  # at the end of the turn
    await asyncio.sleep(0)
    assert wire.writes == [b"".join(f"<presence n='{n}'/>".encode() for n in range(100))]
    comp.send_raw(b"<a/>")
    await asyncio.sleep(0)
    assert wire.writes[-1] == b"<a/>"


async def test_nothing_meant_for_a_connection_that_is_gone_reaches_the_next() -> None:
    comp = component()
    comp.transport = old = Transport()  # type: ignore[assignment]
    comp.send_raw("<old/>")
    comp.transport = new = Transport()  # type: ignore[assignment]
    comp.send_raw("<new/>")
    await asyncio.sleep(0)
    assert old.writes == [] and new.writes == [b"<new/>"]
    new.closing = True
    comp.send_raw("<late/>")
    await asyncio.sleep(0)
    assert new.writes == [b"<new/>"]
