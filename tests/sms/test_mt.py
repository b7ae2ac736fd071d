"""Outgoing text → submit_sm PDUs (transports/sms/mt.py)."""

from __future__ import annotations

import pytest

from transports.sms.encoding import DC_UCS2, MessageTooLong
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.mt import SmppAddress, build_submits, smpp_address
from transports.sms.pdu import DeliverSm
from transports.sms.reassembly import Reassembler, part_from_deliver


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("+33612345678", SmppAddress(1, 1, "33612345678")),
        ("36111", SmppAddress(0, 1, "36111")),
        ("Passerelle", SmppAddress(5, 0, "Passerelle")),
    ],
)
def test_addresses(address: str, expected: SmppAddress) -> None:
    assert smpp_address(address) == expected


def test_bad_address() -> None:
    with pytest.raises(ValueError, match="alphanumeric"):
        smpp_address("a much too long sender")


def test_long_text_becomes_udh_parts_that_reassemble() -> None:
    text = "Ça marche 😀 " * 20
    pdus = build_submits("36111", "+33698765432", text, ref=9, max_parts=5)
    assert len(pdus) == 4 and all(p.esm_class == 0x40 and p.data_coding == DC_UCS2 for p in pdus)
    assert (pdus[0].dest_addr_ton, pdus[0].destination_addr, pdus[0].registered_delivery) == (
        1,
        "33698765432",
        1,
    )
    # what the handset would reassemble, using the same rules as our MO path
    r = Reassembler(timeout=60)
    as_mo = [
        DeliverSm(esm_class=p.esm_class, data_coding=p.data_coding, short_message=p.short_message)
        for p in pdus
    ]
    done = [m for i, d in enumerate(as_mo) if (m := r.add(part_from_deliver(d, float(i))))]
    assert [m.text for m in done] == [text]


def test_single_part_has_no_udh_and_limit_is_enforced() -> None:
    (pdu,) = build_submits("36111", "+33698765432", "hi", ref=1, max_parts=1)
    assert (pdu.esm_class, pdu.short_message) == (0, b"hi")
    with pytest.raises(MessageTooLong):
        build_submits("36111", "+33698765432", "x" * 161, ref=1, max_parts=1)


async def test_parts_reach_the_smsc() -> None:
    from transports.sms.esme import Esme, EsmeConfig

    async def on_deliver(pdu: DeliverSm) -> int:
        return 0

    async with FakeSmsc(system_id="gw", password="pw") as smsc:
        esme = Esme(EsmeConfig("127.0.0.1", smsc.port, "gw", "pw"), on_deliver)
        esme.start()
        assert await esme.wait_bound(5)
        outcomes = [
            await esme.submit(p) for p in build_submits("36111", "+336", "y" * 400, ref=3, max_parts=3)
        ]
        assert all(o.ok for o in outcomes) and len(smsc.submits) == 3
        assert smsc.submits[2].short_message[:6] == bytes([5, 0, 3, 3, 3, 3])
        await esme.close()
