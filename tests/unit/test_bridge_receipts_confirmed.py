"""A delivery report (an SMS receipt or error for the XMPP sender) counts as handed to XMPP
only once the server confirmed the stream it was written on; otherwise the network's report
is refused, so that the SMSC delivers it again (a receipt written on a stream that was
closing, around a Prosody restart, used to be lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.bridge import Bridge
from gateway.core.events import DeliveryReported
from gateway.transport import Delivered
from tests.conftest import base_config
from tests.unit.bridge_fakes import ALICE, FakeComponent, FullableStore, ScriptedTransport


def receipt() -> DeliveryReported:
    return DeliveryReported("sms", 1, "+33698000001", "m1", str(ALICE), ok=True, receipt_requested=True)


async def test_a_receipt_the_server_did_not_confirm_is_refused_then_sent_again(
    tmp_path: Path, store: FullableStore
) -> None:
    xmpp = FakeComponent()
    bridge = Bridge(base_config(tmp_path), store, {"sms": ScriptedTransport("sms", lambda _i: Delivered())})
    bridge.components = {"sms": xmpp}  # type: ignore[dict-item]

    xmpp.confirms = False  # the stream broke after the receipt was written
    with pytest.raises(ConnectionError):
        await bridge.network_event(receipt())
    xmpp.confirms = True  # the SMSC delivers the receipt again
    await bridge.network_event(receipt())

    assert [r[2] for r in xmpp.receipts] == ["m1", "m1"]


async def test_reports_written_together_share_one_confirmation(tmp_path: Path, store: FullableStore) -> None:
    xmpp = FakeComponent()
    bridge = Bridge(base_config(tmp_path), store, {"sms": ScriptedTransport("sms", lambda _i: Delivered())})
    bridge.components = {"sms": xmpp}  # type: ignore[dict-item]
    await asyncio.gather(*(bridge.network_event(receipt()) for _ in range(5)))
    assert len(xmpp.receipts) == 5
    assert xmpp.handovers == 1
