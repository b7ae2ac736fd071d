"""Hostile SMPP from the SMSC side: what the ESME and the SMS transport answer, and that the
link keeps serving afterwards.

* An undecodable frame (unknown command_id, body cut short, broken TLV, command_length out
  of range) is answered ``generic_nack`` carrying the frame's own sequence number and the
  status the SMPP 3.4 spec names for the fault; the next deliver_sm is served as usual.
* A deliver_sm with hostile content (any esm_class, a broken UDH, every data_coding,
  invalid UTF-16, SAR TLVs with nonsense values, a huge ``message_payload``) is answered
  ESME_ROK when a subscriber owns the destination (ESME_RINVDSTADR otherwise; receipts are
  always acknowledged), a frame over the 64 KiB cap gets generic_nack(ESME_RINVCMDLEN), and
  what reaches the subscriber is text. Never an exception, never a dead link.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.addressing import BareJid
from gateway.config import parse
from gateway.core.events import LegacyMessageReceived, NetworkEvent
from gateway.storage import Cipher, Store, create_key_file
from tests.e2e.test_sms import BOB_NUMBER, SMS, World, link_number, world  # noqa: F401  (fixture)
from tests.fuzz import fuzz
from transports.sms.codec import HEADER, encode
from transports.sms.esme import Esme, EsmeConfig
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.framing import DEFAULT_MAX_LENGTH
from transports.sms.pdu import KNOWN_COMMAND_IDS, DeliverSm, Tag, Tlv
from transports.sms.receipts import is_receipt
from transports.sms.status import Status
from transports.sms.transport import SmsTransport

OWNER = "33612345678"
SENDER = "33698765432"

# -- frames the ESME cannot decode, each with the generic_nack status it must get ------------

sequences = st.integers(min_value=1, max_value=0x7FFFFFFF)


def _frame(command_id: int, sequence: int, body: bytes, *, length: int | None = None) -> bytes:
    return HEADER.pack(16 + len(body) if length is None else length, command_id, 0, sequence) + body


def _deliver_body(pdu: DeliverSm) -> bytes:
    return encode(pdu)[16:]


@st.composite
def undecodable(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """(frame, sequence, status the generic_nack must carry)."""
    seq = draw(sequences)
    kind = draw(st.sampled_from(["unknown-command", "truncated", "bad-tlv", "length-low", "length-high"]))
    mo = DeliverSm(
        source_addr=SENDER,
        destination_addr=OWNER,
        short_message=draw(st.binary(max_size=40)),
    )
    body = _deliver_body(mo)
    if kind == "unknown-command":
        command_id = draw(st.integers(0, 0xFFFFFFFF).filter(lambda c: c not in KNOWN_COMMAND_IDS))
        return _frame(command_id, seq, draw(st.binary(max_size=64))), seq, Status.ESME_RINVCMDID
    if kind == "truncated":
        cut = draw(st.integers(0, len(body) - 1))
        return _frame(0x00000005, seq, body[:cut]), seq, Status.ESME_RINVCMDLEN
    if kind == "bad-tlv":
        tail = draw(
            st.one_of(
                st.binary(min_size=1, max_size=3),  # a TLV header cut short
                st.integers(1, 0xFFFF).map(lambda n: struct.pack(">HH", Tag.MESSAGE_PAYLOAD, n)),
            )
        )
        return _frame(0x00000005, seq, body + tail), seq, Status.ESME_RINVOPTPARSTREAM
    if kind == "length-low":
        return _frame(0x00000005, seq, body, length=draw(st.integers(0, 15))), seq, Status.ESME_RINVCMDLEN
    high = draw(st.integers(DEFAULT_MAX_LENGTH + 1, 0xFFFFFFFF))
    return _frame(0x00000005, seq, body[:32], length=high), seq, Status.ESME_RINVCMDLEN


async def _with_bound_esme(check: Callable[[FakeSmsc, list[DeliverSm]], Any]) -> None:
    smsc = FakeSmsc(system_id="gw", password="pw")
    await smsc.start()
    delivered: list[DeliverSm] = []

    async def on_deliver(pdu: DeliverSm) -> int:
        delivered.append(pdu)
        return Status.ESME_ROK

    esme = Esme(
        EsmeConfig("127.0.0.1", smsc.port, "gw", "pw", response_timeout_s=2.0, close_timeout_s=1.0),
        on_deliver,
    )
    esme.start()
    try:
        assert await esme.wait_bound(5)
        await check(smsc, delivered)
    finally:
        await esme.close()
        await smsc.stop()


@fuzz(12, cost=40)
@given(undecodable())
def test_undecodable_frames_get_generic_nack_with_their_sequence(case: tuple[bytes, int, int]) -> None:
    frame, seq, status = case

    async def check(smsc: FakeSmsc, delivered: list[DeliverSm]) -> None:
        await smsc.send_garbage(frame)
        await smsc.wait_until(lambda: len(smsc.generic_nacks) >= 1, 5)
        nack = smsc.generic_nacks[0]
        assert (nack.sequence, nack.status) == (seq, status)
        # the session goes on: the next MO is decoded and acknowledged
        assert await smsc.inject_mo(SENDER, OWNER, "after the bad frame") == [Status.ESME_ROK]
        assert delivered[-1].short_message == b"after the bad frame"

    asyncio.run(check_timeout(_with_bound_esme(check)))


async def check_timeout(coro: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):  # a hang is a failure, not a stuck suite
        await coro


# -- deliver_sm with hostile content, through the real SMS transport -------------------------

addresses = st.one_of(
    st.sampled_from([OWNER, "+" + OWNER, "33600000000", "", "36665", "ACME", " 33612345678"]),
    st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=20),
)
udh_like = st.one_of(
    st.binary(max_size=254),
    # a UDH announcing more octets than there are, or concatenation IEs with nonsense values
    st.tuples(st.integers(0, 255), st.sampled_from([0x00, 0x08, 0x24]), st.binary(max_size=12)).map(
        lambda t: bytes([t[0], t[1], len(t[2])]) + t[2]
    ),
)
utf16_garbage = st.one_of(
    st.binary(max_size=254),  # odd lengths, lone surrogates (D800-DFFF), U+0000, U+FFFE
    st.lists(st.integers(0xD800, 0xDFFF), max_size=60).map(
        lambda us: b"".join(struct.pack(">H", u) for u in us)
    ),
)


@st.composite
def huge_payload(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(1000, 0xFFFF))
    head = draw(st.binary(max_size=16))
    return (head + draw(st.sampled_from([b"\x00", b"\xd8\x3d", b"A", b"\xff\xfe", b"\x1b"])) * size)[:size]


@st.composite
def hostile_mo(draw: st.DrawFn) -> DeliverSm:
    tlvs: list[Tlv] = []
    if draw(st.booleans()):
        tlvs.append(Tlv(Tag.MESSAGE_PAYLOAD, draw(st.one_of(st.binary(max_size=300), huge_payload()))))
    if draw(st.booleans()):
        for tag in (Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM):
            tlvs.append(Tlv(tag, draw(st.binary(max_size=3))))
    coding = draw(st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 3, 8, 0xF0])))
    return DeliverSm(
        source_addr=draw(addresses),
        destination_addr=draw(addresses),
        esm_class=draw(st.one_of(st.integers(0, 255), st.sampled_from([0x00, 0x40, 0x04]))),
        data_coding=coding,
        short_message=draw(utf16_garbage if coding == 8 else udh_like),
        tlvs=tuple(draw(st.permutations(tlvs))),
    )


def _expected(pdu: DeliverSm) -> int:
    if len(encode(pdu)) > DEFAULT_MAX_LENGTH:
        return Status.ESME_RINVCMDLEN  # over the frame cap: generic_nack, the frame skipped
    if is_receipt(pdu.esm_class):
        return Status.ESME_ROK  # receipts are always acknowledged, readable or not
    return (
        Status.ESME_ROK if "+" + pdu.destination_addr.lstrip("+") == "+" + OWNER else Status.ESME_RINVDSTADR
    )


async def _sms_world(run: Callable[[FakeSmsc, list[NetworkEvent]], Any]) -> None:
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    with tempfile.TemporaryDirectory() as tmp:
        config = parse(
            {
                "xmpp": {"user_domains": ["example.test"]},
                "storage": {"path": f"{tmp}/gw.db", "key_file": f"{tmp}/k"},
                "sms": {
                    "jid": "sms.example.test",
                    "secret": "s3cret-for-fuzz",
                    "service_number": "2020",
                    "smsc": {"port": smsc.port, "system_id": "gw", "password": "smscpw"},
                },
            },
            env={},
        )
        assert config.sms is not None
        create_key_file(Path(tmp) / "k")
        store = await Store.open(config.storage.path, Cipher.from_file(config.storage.key_file))
        sub = await store.add_subscriber(BareJid.parse("alice@example.test"), 1.0)
        await store.set_account(sub.id, "sms", "+" + OWNER, None, 1.0)
        events: list[NetworkEvent] = []

        async def sink(event: NetworkEvent) -> None:
            events.append(event)

        transport = SmsTransport(config.sms, store.sms)
        await transport.start(sink)
        try:
            assert await transport.esme.wait_bound(5)
            await run(smsc, events)
        finally:
            await transport.stop()
            await store.close()
            await smsc.stop()


@fuzz(15, cost=40)
@given(st.lists(hostile_mo(), min_size=1, max_size=4))
def test_hostile_deliver_sm_gets_a_defined_status_and_the_link_goes_on(pdus: list[DeliverSm]) -> None:
    async def run(smsc: FakeSmsc, events: list[NetworkEvent]) -> None:
        for pdu in pdus:
            assert await smsc.deliver(pdu) == _expected(pdu), pdu
        for event in events:
            if isinstance(event, LegacyMessageReceived):
                assert isinstance(event.body, str)
                event.body.encode("utf-8")  # no lone surrogate reaches the XMPP side
        # the link still serves an ordinary MO, decoded exactly
        before = sum(isinstance(e, LegacyMessageReceived) for e in events)
        assert await smsc.inject_mo(SENDER, OWNER, "still here", coding=0) == [Status.ESME_ROK]
        texts = [e.body for e in events if isinstance(e, LegacyMessageReceived)]
        assert len(texts) == before + 1 and texts[-1] == "still here"

    asyncio.run(check_timeout(_sms_world(run), 30))


# -- end to end: what an MO text may contain must not break the XMPP stream -----------------


@pytest.mark.e2e
async def test_mo_with_control_characters_does_not_poison_the_component(world: World) -> None:  # noqa: F811
    await link_number(world, world.alice)
    sender = f"{BOB_NUMBER}@{SMS}"
    assert await world.smsc.inject_mo(SENDER, OWNER, "ctl \x01 inside", coding=3) == [Status.ESME_ROK]
    assert await world.smsc.inject_mo(SENDER, OWNER, "plain after", coding=0) == [Status.ESME_ROK]
    bodies = [(await world.alice.next_message(from_bare=sender, timeout=3))["body"] for _ in range(2)]
    assert bodies[1] == "plain after"
    assert bodies[0].startswith("ctl ") and "\x01" not in bodies[0]
