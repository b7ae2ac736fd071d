"""An MO SMS the store refuses (disk full) after its de-dup marker was committed: the
deliver_sm is answered with an error and the SMSC's redelivery is taken, not dropped as a
duplicate (it used to be: the marker held, the message did not). Both for the service
number (commands and replies) and for a subscriber's own number, and across a restart. Also:
an SMS part the SMSC accepted whose record the store refuses is not submitted again, and a
receipt that came before its part was recorded is not lost when it cannot be reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.addressing import BareJid
from gateway.config import parse
from gateway.core.events import DeliveryReported, LegacyMessageReceived, NetworkEvent, ServiceSmsReceived
from gateway.storage import Cipher, OutboxItem, StorageError, Store, create_key_file
from gateway.transport import Delivered
from transports.sms.esme_types import SubmitOutcome
from transports.sms.fake_mo import mo_pdus
from transports.sms.pdu import DeliverSm, SubmitSm
from transports.sms.receipts import ReceiptState, format_receipt_text
from transports.sms.status import Status
from transports.sms.transport import SmsTransport

SAM, SAM_DIGITS, ALICE_NUMBER = "+33611111111", "33611111111", "+33612345678"


class RefusingSink:
    """The bridge over a store that refuses the first ``refusals`` messages, and an XMPP
    server that does not confirm the first ``unconfirmed`` delivery reports."""

    def __init__(self, refusals: int, unconfirmed: int = 0) -> None:
        self.refusals, self.unconfirmed = refusals, unconfirmed
        self.taken: list[NetworkEvent] = []

    async def __call__(self, event: NetworkEvent) -> None:
        if isinstance(event, ServiceSmsReceived | LegacyMessageReceived) and self.refusals:
            self.refusals -= 1
            raise StorageError("database or disk is full")
        if isinstance(event, DeliveryReported) and self.unconfirmed:
            self.unconfirmed -= 1
            raise ConnectionError("the XMPP server did not confirm a delivery report")
        self.taken.append(event)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    create_key_file(tmp_path / "secret.key")
    opened = await Store.open(tmp_path / "gw.db", Cipher.from_file(tmp_path / "secret.key"))
    sam = await opened.add_subscriber(None, 1.0)
    await opened.set_account(sam.id, "sms", SAM, None, 1.0)
    alice = await opened.add_subscriber(BareJid.parse("alice@example.test"), 1.0)
    await opened.set_account(alice.id, "sms", ALICE_NUMBER, None, 1.0)
    yield opened
    await opened.close()


def transport_with(tmp_path: Path, store: Store, sink: RefusingSink) -> SmsTransport:
    config = parse(
        {
            "xmpp": {"user_domains": ["example.test"]},
            "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
            "sms": {
                "jid": "sms.example.test", "secret": "s", "service_number": "2020",
                "smsc": {"system_id": "gw", "password": "pw"},
            },
        },
        env={},
    ).sms  # fmt: skip
    assert config is not None
    transport = SmsTransport(config, store.sms)
    transport.sink = sink  # not started: no SMSC link is needed to take a deliver_sm
    return transport


async def answer(transport: SmsTransport, pdu: DeliverSm) -> int:
    """The deliver_sm_resp status, as the ESME answers it (an exception is ESME_RSYSERR)."""
    try:
        return await transport._on_deliver(pdu)
    except Exception:
        return Status.ESME_RSYSERR


def mo(source: str, dest: str, text: str) -> DeliverSm:
    (pdu,) = mo_pdus(source, dest, text, coding=0, split="udh", ref=1)
    return pdu


async def test_a_command_to_the_service_number_the_store_refuses_is_taken_on_redelivery(
    tmp_path: Path, store: Store
) -> None:
    sink = RefusingSink(refusals=1)
    transport = transport_with(tmp_path, store, sink)
    pdu = mo(SAM_DIGITS, "2020", "@carol see you at 8")

    assert await answer(transport, pdu) != Status.ESME_ROK  # refused: the SMSC delivers again
    assert await answer(transport, pdu) == Status.ESME_ROK  # the redelivery
    assert [e.text for e in sink.taken if isinstance(e, ServiceSmsReceived)] == ["@carol see you at 8"]

    assert await answer(transport, pdu) == Status.ESME_ROK  # a redelivery of a stored one
    assert len(sink.taken) == 1, "a stored message was taken twice"


async def test_an_sms_to_a_subscriber_the_store_refuses_is_taken_on_redelivery(
    tmp_path: Path, store: Store
) -> None:
    sink = RefusingSink(refusals=2)
    transport = transport_with(tmp_path, store, sink)
    pdu = mo("33697000001", ALICE_NUMBER.lstrip("+"), "hello alice")

    assert await answer(transport, pdu) != Status.ESME_ROK
    assert await answer(transport, pdu) != Status.ESME_ROK
    assert await answer(transport, pdu) == Status.ESME_ROK
    assert await answer(transport, pdu) == Status.ESME_ROK
    taken = [e for e in sink.taken if isinstance(e, LegacyMessageReceived)]
    assert [e.body for e in taken] == ["hello alice"]


async def test_an_sms_whose_hand_over_a_crash_interrupted_is_taken_after_the_restart(
    tmp_path: Path, store: Store
) -> None:
    """kill -9 between the de-dup marker and the message: the restarted gateway (nothing in
    memory) must take the SMSC's redelivery, not drop it as a duplicate."""
    pdu = mo("33697000001", ALICE_NUMBER.lstrip("+"), "hello after the crash")
    before = transport_with(tmp_path, store, RefusingSink(refusals=1))  # the message never committed
    assert await answer(before, pdu) != Status.ESME_ROK

    sink = RefusingSink(refusals=0)
    after = transport_with(tmp_path, store, sink)  # the gateway started again
    assert await answer(after, pdu) == Status.ESME_ROK
    assert [e.body for e in sink.taken if isinstance(e, LegacyMessageReceived)] == ["hello after the crash"]
    assert await answer(after, pdu) == Status.ESME_ROK  # a late redelivery: not taken twice
    assert len(sink.taken) == 1


async def test_a_part_the_smsc_accepted_is_not_submitted_again_when_its_record_is_refused(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = transport_with(tmp_path, store, RefusingSink(refusals=0))
    submitted: list[SubmitSm] = []

    async def accepting(pdu: SubmitSm) -> SubmitOutcome:
        submitted.append(pdu)
        return SubmitOutcome(Status.ESME_ROK, f"id{len(submitted)}", False, "accepted")

    async def refused(*_args: object) -> None:
        raise StorageError("database or disk is full")

    monkeypatch.setattr(transport.esme, "submit", accepting)
    alice = await store.subscriber_by_account("sms", ALICE_NUMBER)
    assert alice is not None
    item = OutboxItem(1, "sms", alice.id, "x2s:1", "+33698000001", {"body": "hi"}, "sending", 1, 0, 0, 9e9)
    with monkeypatch.context() as disk_full:
        disk_full.setattr(store.sms, "record_sent", refused)
        assert await transport.deliver(item) == Delivered()
        assert await transport.deliver(item) == Delivered()  # tried again: nothing submitted again
    assert len(submitted) == 1
    await transport._record_unrecorded()  # the store takes writes again
    assert await store.sms.sent_seqs("x2s:1") == {1}


async def test_a_retry_after_a_crash_skips_the_parts_sent_even_without_a_stored_attempt(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 'sending' mark commits with the message's count, not before the send: after a
    crash the stored item can read 0 attempts although its first part went out. The
    count says so, and the part recorded as accepted is not submitted again."""
    submitted: list[SubmitSm] = []

    async def accepting(pdu: SubmitSm) -> SubmitOutcome:
        submitted.append(pdu)
        if len(submitted) == 2:
            raise RuntimeError("killed before the second part's answer")
        return SubmitOutcome(Status.ESME_ROK, f"id{len(submitted)}", False, "accepted")

    alice = await store.subscriber_by_account("sms", ALICE_NUMBER)
    assert alice is not None
    body = "long " * 60  # two parts
    item = OutboxItem(7, "sms", alice.id, "x2s:7", "+33698000001", {"body": body}, "queued", 0, 0, 0, 9e9)
    before = transport_with(tmp_path, store, RefusingSink(refusals=0))
    monkeypatch.setattr(before.esme, "submit", accepting)
    with pytest.raises(RuntimeError):
        await before.deliver(item)
    assert await store.sms.sent_seqs("x2s:7") == {1}

    after = transport_with(tmp_path, store, RefusingSink(refusals=0))  # restarted: nothing in memory
    monkeypatch.setattr(after.esme, "submit", accepting)
    assert await after.deliver(item) == Delivered()  # the same stored item: 0 attempts
    assert len(submitted) == 3
    parts = [pdu.short_message for pdu in submitted]
    assert parts[2] == parts[1] != parts[0]  # only the second part again


async def test_an_early_receipt_that_cannot_be_reported_is_applied_later(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = RefusingSink(refusals=0, unconfirmed=1)  # XMPP restarting when the part is recorded
    transport = transport_with(tmp_path, store, sink)

    async def accepting(pdu: SubmitSm) -> SubmitOutcome:
        return SubmitOutcome(Status.ESME_ROK, "5a1", False, "accepted")

    monkeypatch.setattr(transport.esme, "submit", accepting)
    stamp = "2611261200"
    text = format_receipt_text("5a1", ReceiptState.DELIVRD, submit_date=stamp, done_date=stamp)
    receipt = DeliverSm(source_addr="33698000001", destination_addr="33612345678", esm_class=0x04,
                        short_message=text.encode("ascii"))  # fmt: skip
    assert await answer(transport, receipt) == Status.ESME_ROK  # before the submit_sm_resp was recorded

    alice = await store.subscriber_by_account("sms", ALICE_NUMBER)
    assert alice is not None
    payload = {"body": "hi", "from": "alice@example.test/laptop", "id": "x1", "receipt": True}
    item = OutboxItem(2, "sms", alice.id, "x2s:2", "+33698000001", payload, "sending", 1, 0, 0, 9e9)
    assert await transport.deliver(item) == Delivered()  # the report failed: not the send
    assert not [e for e in sink.taken if isinstance(e, DeliveryReported)]

    await transport._record_unrecorded()  # the housekeeping tick, XMPP back
    reports = [e for e in sink.taken if isinstance(e, DeliveryReported)]
    assert [(r.msg_id, r.ok) for r in reports] == [("x1", True)]


def receipt_for(smsc_id: str, state: ReceiptState = ReceiptState.DELIVRD) -> DeliverSm:
    stamp = "2611261200"
    text = format_receipt_text(smsc_id, state, submit_date=stamp, done_date=stamp)
    return DeliverSm(source_addr="33698000001", destination_addr="33612345678", esm_class=0x04,
                     short_message=text.encode("ascii"))  # fmt: skip


async def sent_by(transport: SmsTransport, monkeypatch: pytest.MonkeyPatch, item: OutboxItem) -> None:
    async def accepting(pdu: SubmitSm) -> SubmitOutcome:
        return SubmitOutcome(Status.ESME_ROK, "5b1", False, "accepted")

    monkeypatch.setattr(transport.esme, "submit", accepting)
    assert await transport.deliver(item) == Delivered()


async def test_a_receipt_whose_report_is_not_confirmed_is_reported_on_redelivery(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender asked for a receipt: the sent part stays recorded until the XMPP server
    confirmed the report, so the SMSC's redelivery of a refused receipt still finds it."""
    sink = RefusingSink(refusals=0, unconfirmed=1)
    transport = transport_with(tmp_path, store, sink)
    alice = await store.subscriber_by_account("sms", ALICE_NUMBER)
    assert alice is not None
    payload = {"body": "hi", "from": "alice@example.test/laptop", "id": "x3", "receipt": True}
    await sent_by(transport, monkeypatch, OutboxItem(3, "sms", alice.id, "x2s:3", "+33698000001",
                                                     payload, "sending", 1, 0, 0, 9e9))  # fmt: skip
    assert await answer(transport, receipt_for("5b1")) != Status.ESME_ROK  # not confirmed
    assert await answer(transport, receipt_for("5b1")) == Status.ESME_ROK  # the redelivery
    reports = [e for e in sink.taken if isinstance(e, DeliveryReported)]
    assert [(r.msg_id, r.ok) for r in reports] == [("x3", True)]
    assert await store.sms.sent_seqs("x2s:3") == set()  # forgotten once reported


async def test_a_delivered_forward_is_forgotten_with_its_receipt(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forward (from the service number) has nobody to report to: its receipt marks and
    forgets it in one write."""
    sink = RefusingSink(refusals=0)
    transport = transport_with(tmp_path, store, sink)
    alice = await store.subscriber_by_account("sms", ALICE_NUMBER)
    assert alice is not None
    payload = {"body": "Bob: hi", "from_service": True, "reply_network": "msn", "id": "fw"}
    await sent_by(transport, monkeypatch, OutboxItem(4, "sms", alice.id, "fwd:4", ALICE_NUMBER,
                                                     payload, "sending", 1, 0, 0, 9e9))  # fmt: skip
    commits = store.commit_stats[0]
    assert await answer(transport, receipt_for("5b1")) == Status.ESME_ROK
    assert store.commit_stats[0] - commits == 1
    assert await store.sms.sent_seqs("fwd:4") == set()
    assert [r.ok for r in sink.taken if isinstance(r, DeliveryReported)] == [True]


async def test_a_redelivery_is_dropped_within_the_window_and_taken_after_it(
    tmp_path: Path, store: Store
) -> None:
    """The de-dup marker is committed once the message is, holds across a restart, and
    lasts MO_DUPLICATE_WINDOW_S."""
    now = [1_800_000_000.0]
    sink = RefusingSink(refusals=0)
    transport = transport_with(tmp_path, store, sink)
    transport.clock = lambda: now[0]
    pdu = mo("33697000001", ALICE_NUMBER.lstrip("+"), "once")
    assert await answer(transport, pdu) == Status.ESME_ROK
    now[0] += 200
    restarted = transport_with(tmp_path, store, sink)
    restarted.clock = lambda: now[0]
    assert await answer(restarted, pdu) == Status.ESME_ROK  # a redelivery: dropped
    assert len(sink.taken) == 1
    now[0] += 302  # past the window since the marker: the same text again is a new message
    assert await answer(restarted, pdu) == Status.ESME_ROK
    assert [e.body for e in sink.taken if isinstance(e, LegacyMessageReceived)] == ["once", "once"]
