"""The redelivery rule, sans I/O (times passed in): a copy of an MO taken is the SMSC sending
it again only when the SMSC may not have had our answer; a person sending the same text
again is a new message. The ESME part (answers confirmed by the next response) is tested
against the fake SMSC, which redelivers as SMSCs do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from transports.sms.esme import CURRENT_ARRIVAL, Esme, EsmeConfig
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.pdu import DeliverSm
from transports.sms.redelivery import RESEND_FLOOR_S, AnswerLedger, Arrival, may_be_redelivery

T0 = 1000.0


def answered(ledger: AnswerLedger, at: float, *, confirmed_after: float | None) -> Arrival:
    """A deliver_sm taken at ``at`` on the ledger's bind, answered at once, and confirmed
    ``confirmed_after`` seconds later (None: not confirmed)."""
    arrival = ledger.arrived(ledger.bind, at)
    mark_before = ledger.mark(ledger.bind)
    ledger.answered(arrival, at + 0.01)
    if confirmed_after is not None:
        ledger.confirm(ledger.bind, mark_before + 1, at + confirmed_after)
    return arrival


def test_the_same_text_again_after_a_confirmed_answer_is_a_new_message() -> None:
    ledger = AnswerLedger()
    ledger.new_bind()
    first = answered(ledger, T0, confirmed_after=0.05)
    for later in (0.2, RESEND_FLOOR_S + 1, 120.0):  # soon, or a while after
        assert not may_be_redelivery(first, ledger.arrived(ledger.bind, T0 + later))
    ledger.new_bind()  # also across a lost bind: the SMSC had the answer
    assert not may_be_redelivery(first, ledger.arrived(ledger.bind, T0 + 5))


def test_an_unconfirmed_answer_on_the_same_bind_a_resend_comes_after_the_floor() -> None:
    ledger = AnswerLedger()
    ledger.new_bind()
    first = answered(ledger, T0, confirmed_after=None)  # the SMSC read nothing since
    # sooner than any SMSC's response timer: two messages, not a resend
    assert not may_be_redelivery(first, ledger.arrived(ledger.bind, T0 + 0.3))
    # after the SMSC's timer could run out: the SMSC sending it again
    assert may_be_redelivery(first, ledger.arrived(ledger.bind, T0 + RESEND_FLOOR_S + 0.5))


def test_an_answer_confirmed_late_may_have_come_after_the_smscs_timer() -> None:
    ledger = AnswerLedger()
    ledger.new_bind()
    first = answered(ledger, T0, confirmed_after=RESEND_FLOOR_S + 1)
    assert first.confirmed is not None and not first.confirmed_in_time
    assert may_be_redelivery(first, ledger.arrived(ledger.bind, T0 + RESEND_FLOOR_S + 2))


def test_after_a_lost_bind_an_unconfirmed_answer_may_be_missing() -> None:
    """The SMSC resends right after the rebind. The ambiguous case, as documented: a person
    who sends the same text again on the new bind is dropped too (no SMSC tells them apart)."""
    ledger = AnswerLedger()
    ledger.new_bind()
    first = answered(ledger, T0, confirmed_after=None)
    ledger.new_bind()
    assert may_be_redelivery(first, ledger.arrived(ledger.bind, T0 + 0.5))
    # a confirmation of the old bind arriving late changes nothing
    ledger.confirm(1, 99, T0 + 0.6)
    assert first.confirmed is None


def test_a_response_confirms_only_the_answers_written_before_its_request() -> None:
    ledger = AnswerLedger()
    bind = ledger.new_bind()
    a = ledger.arrived(bind, T0)
    ledger.answered(a, T0)
    mark = ledger.mark(bind)  # a request written now
    b = ledger.arrived(bind, T0)
    ledger.answered(b, T0 + 0.1)  # written after the request
    ledger.confirm(bind, mark, T0 + 0.2)
    assert a.confirmed_in_time and b.confirmed is None
    ledger.confirm(bind, ledger.mark(bind), T0 + 0.3)
    assert b.confirmed_in_time


# -- the ESME: how each deliver_sm arrived, answered and confirmed, against the fake SMSC --------


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[DeliverSm, Arrival]] = []

    async def __call__(self, pdu: DeliverSm) -> int:
        arrival = CURRENT_ARRIVAL.get()
        assert arrival is not None
        self.seen.append((pdu, arrival))
        return 0


@pytest.fixture
async def link() -> AsyncIterator[tuple[FakeSmsc, Esme, Recorder]]:
    smsc = FakeSmsc(system_id="gw", password="pw")
    await smsc.start()
    recorder = Recorder()
    config = EsmeConfig(
        "127.0.0.1", smsc.port, "gw", "pw", enquire_link_s=60.0, backoff_initial_s=0.05, backoff_max_s=0.1
    )
    esme = Esme(config, recorder)
    esme.start()
    assert await esme.wait_bound(5)
    try:
        yield smsc, esme, recorder
    finally:
        await esme.close()
        await smsc.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_each_answer_is_confirmed_in_time_on_a_healthy_link(
    link: tuple[FakeSmsc, Esme, Recorder],
) -> None:
    smsc, _, recorder = link
    for text in ("ok", "ok"):
        assert await smsc.inject_mo("33611111111", "33612345678", text) == [0]
    await wait_for(lambda: all(a.confirmed_in_time for _, a in recorder.seen))
    (_, first), (_, second) = recorder.seen
    assert first.bind == second.bind and not may_be_redelivery(first, second)
    assert smsc.redeliveries == []


async def test_a_withheld_answer_gets_the_pdu_again_on_the_same_bind(
    link: tuple[FakeSmsc, Esme, Recorder],
) -> None:
    smsc, _, recorder = link
    smsc.withhold_responses(1)
    assert await smsc.inject_mo("33611111111", "33612345678", "once", redeliver=True) == [0]
    (pdu, first), (again, copy) = recorder.seen
    assert again.short_message == pdu.short_message and again.sequence != pdu.sequence
    assert len(smsc.redeliveries) == 1 and copy.bind == first.bind
    assert may_be_redelivery(first, copy)
    await wait_for(lambda: smsc.late_responses == 1)  # the late answer was read, and ignored
    await wait_for(lambda: copy.confirmed_in_time)
    assert not first.confirmed_in_time


async def test_an_answer_lost_with_the_bind_gets_the_pdu_again_after_the_rebind(
    link: tuple[FakeSmsc, Esme, Recorder],
) -> None:
    smsc, _, recorder = link
    smsc.lose_bind_on_responses(1)
    assert await smsc.inject_mo("33611111111", "33612345678", "once", redeliver=True) == [0]
    (_, first), (_, copy) = recorder.seen
    assert len(smsc.redeliveries) == 1 and copy.bind == first.bind + 1
    assert first.confirmed is None and may_be_redelivery(first, copy)
