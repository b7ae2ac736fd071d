"""Our ESME against an SMSC we did not write: smpp34's Server (Rust core), in-process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpp34

from transports.sms.encoding import encode_text
from transports.sms.esme import Bound, Esme, EsmeConfig, LinkEvent, Unbound
from transports.sms.pdu import DeliverSm, SubmitSm
from transports.sms.reassembly import Reassembler, part_from_deliver
from transports.sms.status import Status


def free_port() -> int:
    # smpp34.Server does not report the port it bound, so pick one first (loopback only)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def server() -> AsyncIterator[tuple[Any, int]]:
    port = free_port()
    srv = smpp34.Server("127.0.0.1", port, system_id="refsmsc")
    await srv.start()
    try:
        yield srv, port
    finally:
        await srv.stop()


async def next_event(srv: Any, kind: type[Any]) -> Any:
    async with asyncio.timeout(5):
        while True:
            event = await srv.next()
            if isinstance(event, kind):
                return event


async def test_bind_submit_and_deliver_against_smpp34(server: tuple[Any, int]) -> None:
    srv, port = server
    delivered: list[DeliverSm] = []
    events: list[LinkEvent] = []

    async def on_deliver(pdu: DeliverSm) -> int:
        delivered.append(pdu)
        # the first MO is addressed to nobody we serve: refuse it
        return Status.ESME_RINVDSTADR if pdu.destination_addr == "00000" else Status.ESME_ROK

    config = EsmeConfig("127.0.0.1", port, "gw", "anypass", response_timeout_s=3.0)
    esme = Esme(config, on_deliver, on_link=events.append)
    esme.start()
    try:
        handle = await next_event(srv, smpp34.Esme)
        assert handle.system_id == "gw"
        assert await esme.wait_bound(5)
        assert events == [Bound("refsmsc")]

        # submit_sm: accepted, then throttled
        text = encode_text("Привет 😀")
        submit = SubmitSm(
            source_addr="SERVICE", destination_addr="33698765432", dest_addr_ton=1, dest_addr_npi=1,
            registered_delivery=1, data_coding=text.data_coding, short_message=text.segments[0],
        )  # fmt: skip
        pending = asyncio.create_task(esme.submit(submit))
        event = await next_event(srv, smpp34.SubmitSmEvent)
        assert (event.destination_addr, event.data_coding, event.registered_delivery) == ("33698765432", 8, 1)
        assert event.short_message == "Привет 😀".encode("utf-16-be")
        event.accept("ref-0001")
        outcome = await pending
        assert outcome.ok and outcome.message_id == "ref-0001"

        pending = asyncio.create_task(esme.submit(submit))
        (await next_event(srv, smpp34.SubmitSmEvent)).reject(Status.ESME_RTHROTTLED)
        outcome = await pending
        assert outcome.retryable and outcome.status == Status.ESME_RTHROTTLED

        # deliver_sm from the reference SMSC: our status reaches it
        refused = await handle.deliver_sm("00000", b"who?", source_addr="33611111111")
        assert refused.command_status == Status.ESME_RINVDSTADR
        udh_parts = encode_text("x" * 200).short_messages(ref=5)
        for part in udh_parts:
            resp = await handle.deliver_sm("SERVICE", part, source_addr="33611111111", esm_class=0x40)
            assert resp.is_success
        r = Reassembler(timeout=60)
        done = [m for i, p in enumerate(delivered[1:]) if (m := r.add(part_from_deliver(p, float(i))))]
        assert [m.text for m in done] == ["x" * 200]
    finally:
        await esme.close()
    await next_event(srv, smpp34.Unbound)
    assert isinstance(events[-1], Unbound)
