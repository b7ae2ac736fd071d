"""The asyncio ESME against our fake SMSC, over loopback TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from transports.sms.encoding import encode_text
from transports.sms.esme import BindFailed, Bound, Esme, EsmeConfig, LinkEvent, Unbound
from transports.sms.fake_mo import Split
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.pdu import DeliverSm, EnquireLink, SubmitSm, Unbind
from transports.sms.reassembly import Reassembler, part_from_deliver
from transports.sms.receipts import ReceiptState, ids_match, parse_receipt
from transports.sms.status import Status


@dataclass
class Harness:
    smsc: FakeSmsc
    delivered: list[DeliverSm] = field(default_factory=list)
    events: list[LinkEvent] = field(default_factory=list)
    status: int = 0
    esmes: list[Esme] = field(default_factory=list)

    async def on_deliver(self, pdu: DeliverSm) -> int:
        self.delivered.append(pdu)
        return self.status

    def esme(
        self,
        *,
        password: str = "pw",
        system_id: str = "gw",
        on_deliver: Callable[[DeliverSm], Awaitable[int]] | None = None,
        **overrides: object,
    ) -> Esme:
        settings: dict[str, object] = {
            "window": 10,
            "enquire_link_s": 30.0,
            "response_timeout_s": 2.0,
            "backoff_initial_s": 0.02,
            "backoff_max_s": 0.1,
            "close_timeout_s": 1.0,
        }
        settings.update(overrides)
        config = EsmeConfig("127.0.0.1", self.smsc.port, system_id, password, **settings)  # type: ignore[arg-type]
        esme = Esme(config, on_deliver or self.on_deliver, on_link=self.events.append)
        esme.start()
        self.esmes.append(esme)
        return esme

    async def wait_event(self, kind: type[object], timeout: float = 5.0) -> object:
        async with asyncio.timeout(timeout):
            while not any(isinstance(e, kind) for e in self.events):
                await asyncio.sleep(0.005)
        return next(e for e in self.events if isinstance(e, kind))


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    smsc = FakeSmsc(system_id="gw", password="pw")
    await smsc.start()
    harness = Harness(smsc)
    try:
        yield harness
    finally:
        for esme in harness.esmes:
            await esme.close()
        await smsc.stop()


def sms(text: str = "hello", **kw: object) -> SubmitSm:
    data = encode_text(text)
    return SubmitSm(
        source_addr="SERVICE", destination_addr="33698765432", dest_addr_ton=1, dest_addr_npi=1,
        data_coding=data.data_coding, short_message=data.segments[0], **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_bind_and_submit(h: Harness) -> None:
    esme = h.esme()
    assert await esme.wait_bound(5)
    assert h.events == [Bound("gw")]
    outcome = await esme.submit(sms("hello €"))
    assert outcome.ok and outcome.message_id == "A001" and not outcome.retryable
    (rec,) = h.smsc.submits
    assert (rec.destination_addr, rec.pdu.data_coding, rec.short_message) == (
        "33698765432",
        0,
        b"hello \x1b\x65",
    )
    assert h.smsc.binds[0].system_id == "gw"


@pytest.mark.parametrize(
    ("system_id", "password", "status", "hint"),
    [
        ("gw", "wrong", Status.ESME_RINVPASWD, "wrong password"),
        ("nobody", "pw", Status.ESME_RINVSYSID, "unknown system_id"),
    ],
)
async def test_bind_refused_is_named(
    h: Harness, system_id: str, password: str, status: int, hint: str
) -> None:
    esme = h.esme(system_id=system_id, password=password)
    failed = await h.wait_event(BindFailed)
    assert isinstance(failed, BindFailed) and failed.status == status
    assert hint in failed.reason and password not in failed.reason.replace(hint, "")
    assert not esme.bound
    outcome = await esme.submit(sms())
    assert outcome.retryable and outcome.status is None and "not bound" in outcome.reason


async def test_window_limits_in_flight(h: Harness) -> None:
    esme = h.esme(window=3)
    assert await esme.wait_bound(5)
    h.smsc.stop_answering()
    tasks = [asyncio.create_task(esme.submit(sms(f"m{i}"))) for i in range(8)]
    await h.smsc.wait_until(lambda: h.smsc.submits_seen == 3)
    await asyncio.sleep(0.1)
    assert (esme.in_flight, h.smsc.submits_seen) == (3, 3)
    await h.smsc.drop_connections()
    outcomes = await asyncio.gather(*tasks)
    assert all(o.retryable and o.status is None for o in outcomes)
    assert sum(o.maybe_sent for o in outcomes) == 3  # the three that left may have arrived
    assert esme.in_flight == 0


async def test_throttling_is_returned_not_retried(h: Harness) -> None:
    esme = h.esme()
    assert await esme.wait_bound(5)
    h.smsc.throttle(count=2)
    h.smsc.reject_next(Status.ESME_RMSGQFUL)  # rejects are served before throttling
    h.smsc.reject_next(Status.ESME_RINVDSTADR)
    outcomes = [await esme.submit(sms()) for _ in range(5)]
    assert [(o.status, o.retryable) for o in outcomes] == [
        (Status.ESME_RMSGQFUL, True),
        (Status.ESME_RINVDSTADR, False),
        (Status.ESME_RTHROTTLED, True),
        (Status.ESME_RTHROTTLED, True),
        (Status.ESME_ROK, False),
    ]
    assert "ESME_RTHROTTLED" in outcomes[2].reason
    assert len(h.smsc.submits) == 5  # exactly one submit_sm per call: no silent retry


async def test_deliver_answered_only_after_callback(h: Harness) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def slow(pdu: DeliverSm) -> int:
        seen.append(pdu.short_message.decode())
        await release.wait()  # e.g. the database commit
        return Status.ESME_RINVDSTADR  # no subscriber owns the destination

    esme = h.esme(on_deliver=slow)
    assert await esme.wait_bound(5)
    inject = asyncio.create_task(h.smsc.inject_mo("33611111111", "33700000000", "hi"))
    await h.smsc.wait_until(lambda: seen == ["hi"])
    await asyncio.sleep(0.1)
    assert not inject.done()  # no deliver_sm_resp yet
    release.set()
    assert await inject == [Status.ESME_RINVDSTADR]


async def test_callback_exception_becomes_rsyserr(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(pdu: DeliverSm) -> int:
        raise RuntimeError("database is locked")

    esme = h.esme(on_deliver=broken)
    assert await esme.wait_bound(5)
    assert await h.smsc.inject_mo("1", "2", "secret body") == [Status.ESME_RSYSERR]
    assert "on_deliver failed" in caplog.text and "secret body" not in caplog.text
    assert (await esme.submit(sms())).ok  # still working


async def test_enquire_link_timeout_rebinds(h: Harness) -> None:
    esme = h.esme(enquire_link_s=0.1, response_timeout_s=0.2)
    assert await esme.wait_bound(5)
    h.smsc.stop_answering()
    unbound = await h.wait_event(Unbound)
    assert isinstance(unbound, Unbound) and "enquire_link" in unbound.reason
    h.smsc.stop_answering(False)
    await h.smsc.wait_for_bind(count=2)
    assert await esme.wait_bound(5)
    assert (await esme.submit(sms())).ok


async def test_drop_and_restart_rebind_with_capped_backoff(h: Harness) -> None:
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0.01)

    config = EsmeConfig("127.0.0.1", h.smsc.port, "gw", "pw", backoff_initial_s=1.0, backoff_max_s=4.0)
    esme = Esme(config, h.on_deliver, on_link=h.events.append, sleep=fake_sleep, rand=lambda: 0.5)
    h.esmes.append(esme)
    esme.start()
    assert await esme.wait_bound(5)
    await h.smsc.drop_connections()
    await h.smsc.wait_for_bind(count=2)
    assert delays == [0.75]  # after a bound session: the initial delay, jittered
    assert isinstance(h.events[1], Unbound) and "closed by the SMSC" in h.events[1].reason

    await h.smsc.stop()  # refuse connections for a while
    await h.smsc.wait_until(lambda: len(delays) >= 6)
    await h.smsc.start()  # same port
    await h.smsc.wait_for_bind(count=3)
    # 1s doubling, capped at 4s, equal jitter (rand 0.5 → 75% of the base)
    assert delays[1:6] == [0.75, 0.75, 1.5, 3.0, 3.0]
    assert any(isinstance(e, BindFailed) and "cannot connect" in e.reason for e in h.events)
    assert (await esme.submit(sms())).ok


async def test_garbage_gets_generic_nack_and_session_goes_on(h: Harness) -> None:
    esme = h.esme()
    assert await esme.wait_bound(5)
    await h.smsc.send_garbage()
    await h.smsc.wait_until(lambda: len(h.smsc.generic_nacks) == 1)
    assert h.smsc.generic_nacks[0].status == Status.ESME_RINVCMDLEN
    assert (await esme.submit(sms())).ok
    assert await h.smsc.inject_mo("1", "2", "after garbage") == [0]
    assert len(h.smsc.binds) == 1  # no rebind was needed


async def test_smsc_enquire_link_and_unbind_are_answered(h: Harness) -> None:
    esme = h.esme()
    assert await esme.wait_bound(5)
    assert await h.smsc.request(EnquireLink()) == 0
    assert await h.smsc.request(Unbind()) == 0
    unbound = await h.wait_event(Unbound)
    assert isinstance(unbound, Unbound) and "SMSC unbound" in unbound.reason
    await h.smsc.wait_for_bind(count=2)


@pytest.mark.parametrize("decimal", [False, True])
async def test_receipt_matches_submit_id(h: Harness, decimal: bool) -> None:
    h.smsc.receipt_id_decimal = decimal
    h.smsc.receipt_state = ReceiptState.UNDELIV
    esme = h.esme()
    assert await esme.wait_bound(5)
    outcome = await esme.submit(sms(registered_delivery=1))
    await h.smsc.wait_until(lambda: len(h.delivered) == 1)
    receipt = parse_receipt(h.delivered[0])
    assert receipt is not None and outcome.message_id is not None
    assert ids_match(outcome.message_id, receipt.raw_id)
    assert receipt.state is ReceiptState.UNDELIV
    assert h.smsc.receipt_statuses == [0]


@pytest.mark.parametrize(
    ("split", "coding"), [("udh", 0), ("udh16", 8), ("sar", 3), ("sar", 8), ("payload", 0), ("payload", 8)]
)
async def test_multipart_mo_end_to_end(h: Harness, split: Split, coding: int) -> None:
    text = ("Ünïcödé 😀 " if coding == 8 else "Grüße à tous ") * 30
    if coding == 3:
        text = "Grüße à tous, ça va? " * 20
    esme = h.esme()
    assert await esme.wait_bound(5)
    statuses = await h.smsc.inject_mo("33611111111", "33700000000", text, coding=coding, split=split)
    assert set(statuses) == {0}
    r = Reassembler(timeout=60)
    done = [m for pdu in h.delivered if (m := r.add(part_from_deliver(pdu, time.monotonic())))]
    assert [m.text for m in done] == [text]


async def test_max_rate_paces_submits(h: Harness) -> None:
    esme = h.esme(max_rate=50.0)
    assert await esme.wait_bound(5)
    start = time.monotonic()
    outcomes = await asyncio.gather(*(esme.submit(sms()) for _ in range(6)))
    assert all(o.ok for o in outcomes)
    assert time.monotonic() - start >= 5 / 50 - 0.01


async def test_close_unbinds_gracefully(h: Harness) -> None:
    esme = h.esme()
    assert await esme.wait_bound(5)
    await esme.close()
    assert not esme.bound
    assert isinstance(h.events[-1], Unbound)
    await h.smsc.wait_until(lambda: h.smsc.bound_count == 0)
    outcome = await esme.submit(sms())
    assert outcome.retryable and "closing" in outcome.reason


async def test_alert_notification_reaches_the_handler(h: Harness) -> None:
    alerts: list[str] = []

    async def on_alert(alert: object) -> None:
        alerts.append(getattr(alert, "source_addr", ""))

    config = EsmeConfig("127.0.0.1", h.smsc.port, "gw", "pw")
    esme = Esme(config, h.on_deliver, on_alert=on_alert)
    h.esmes.append(esme)
    esme.start()
    assert await esme.wait_bound(5)
    await h.smsc.send_alert("33698765432", "SERVICE", availability=0)
    await h.smsc.wait_until(lambda: alerts == ["33698765432"])


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [("password", "123456789", "password is limited to 8"), ("system_id", "x" * 16, "system_id is limited")],
)
def test_config_refuses_what_every_bind_would_fail(field_name: str, value: str, message: str) -> None:
    kwargs = {"host": "127.0.0.1", "port": 1, "system_id": "gw", "password": "pw", field_name: value}
    with pytest.raises(ValueError, match=message):
        EsmeConfig(**kwargs)  # type: ignore[arg-type]
    assert "123456789" not in repr(EsmeConfig("h", 1, "gw", "12345678"))  # password hidden


async def test_close_while_reconnecting_is_prompt(h: Harness) -> None:
    esme = h.esme(password="wrong", backoff_initial_s=30.0, backoff_max_s=30.0)
    await h.wait_event(BindFailed)
    start = time.monotonic()
    await esme.close()
    assert time.monotonic() - start < 0.5
