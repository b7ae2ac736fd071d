"""End to end: a real Prosody, the gateway's SMS component, the fake SMSC, scripted users.

Reads like a conversation: alice links her number, texts phones, and phones text her.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway.app import Gateway
from gateway.config import Config, parse
from gateway.devtools.ejabberd import XmppServer
from gateway.devtools.prosody import Prosody
from gateway.storage import create_key_file
from tests.conftest import DOMAIN, SECRET
from tests.xmpp_client import ScriptedUser
from transports.sms.encoding import decode_text
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.receipts import ReceiptState
from transports.sms.status import Status
from transports.sms.transport import SmsTransport

pytestmark = pytest.mark.e2e
SMS = f"sms.{DOMAIN}"
ALICE_NUMBER = "+33612345678"
BOB_NUMBER = "+33698765432"


def sms_config(tmp_path: Path, prosody: XmppServer, smsc: FakeSmsc, **limits: int) -> Config:
    return parse(
        {
            "xmpp": {"port": prosody.component_port, "user_domains": [DOMAIN]},
            "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
            "sms": {
                "jid": SMS,
                "secret": SECRET,
                "service_number": "2020",
                "max_parts": 3,
                "smsc": {"port": smsc.port, "system_id": "gw", "password": "smscpw", "enquire_link_s": 5},
                "limits": {"per_user_per_hour": 60, "per_user_per_day": 300, **limits},
            },
        },
        env={},
    )


@dataclass
class World:
    prosody: XmppServer
    smsc: FakeSmsc
    config: Config
    gateway: Gateway
    alice: ScriptedUser

    @property
    def sms(self) -> SmsTransport:
        assert self.gateway.bridge is not None
        transport = self.gateway.bridge.transports["sms"]
        assert isinstance(transport, SmsTransport)
        return transport

    async def restart_gateway(self) -> None:
        await self.gateway.stop()
        self.gateway = await start(self.config, self.smsc)


async def start(config: Config, smsc: FakeSmsc) -> Gateway:
    if not config.storage.key_file.exists():
        create_key_file(config.storage.key_file)
    gateway = Gateway(config)
    try:
        bridge = await gateway.start()
        await asyncio.wait_for(bridge.components["sms"].online.wait(), 10)
        transport = bridge.transports["sms"]
        assert isinstance(transport, SmsTransport)
        assert await transport.esme.wait_bound(10)
    except BaseException:
        await gateway.stop()
        raise
    return gateway


@pytest.fixture
async def world(prosody: Prosody, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    limits: dict[str, int] = getattr(request, "param", {})
    smsc = FakeSmsc(system_id="gw", password="smscpw")
    await smsc.start()
    config = sms_config(tmp_path, prosody, smsc, **limits)
    gateway = await start(config, smsc)
    alice = ScriptedUser(f"alice@{DOMAIN}/phone", "pw", prosody.c2s_port)
    await alice.online()
    w = World(prosody, smsc, config, gateway, alice)
    yield w
    await alice.close()
    await w.gateway.stop()
    await smsc.stop()


async def submit_form(user: ScriptedUser, **values: str) -> Any:
    iq = user.make_iq_set(ito=SMS)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    form = ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
    for var, value in values.items():
        field = ET.SubElement(form, "{jabber:x:data}field", {"var": var})
        ET.SubElement(field, "{jabber:x:data}value").text = value
    return await iq.send(timeout=10)


async def link_number(w: World, user: ScriptedUser, national: str = "0612345678") -> None:
    """The whole verification dance: phone alone, read the SMS, phone and code."""
    before = len(w.smsc.submits)
    with pytest.raises(IqError) as info:
        await submit_form(user, phone=national)
    assert info.value.iq["error"]["condition"] == "not-acceptable"
    assert "code was sent" in info.value.iq["error"]["text"]
    (sent,) = await w.smsc.wait_for_submits(before + 1, timeout=15)
    assert sent.destination_addr == ALICE_NUMBER.lstrip("+") and sent.source_addr == "2020"
    code = decode_text(sent.short_message, sent.pdu.data_coding).text.split("code is ")[1][:6]
    await submit_form(user, phone=national, code=code)
    await user.next_presence(from_=SMS, type="subscribe")
    user.send_presence(pto=SMS, ptype="subscribed")
    user.send_presence(pto=SMS, ptype="subscribe")
    await user.next_presence(from_=SMS, type="subscribed")
    user.send_presence()  # now the component tracks alice's resource


def sent_text(w: World, index: int) -> tuple[int, bytes]:
    pdu = w.smsc.submits[index].pdu
    return pdu.data_coding, pdu.short_message


async def test_link_number_by_code(world: World) -> None:
    await link_number(world, world.alice)
    store = world.sms.store
    sub = await store.subscriber_by_account("sms", ALICE_NUMBER)
    assert sub is not None and str(sub.jid) == f"alice@{DOMAIN}"
    # the code is stored hashed, never in clear
    db = b"".join(p.read_bytes() for p in world.config.storage.path.parent.glob("gw.db*") if p.is_file())
    code = decode_text(world.smsc.submits[0].short_message, 0).text.split("code is ")[1][:6]
    assert code.encode() not in db


async def test_wrong_code_and_conflict(world: World, prosody: Prosody) -> None:
    with pytest.raises(IqError):
        await submit_form(world.alice, phone=ALICE_NUMBER)
    (sent,) = await world.smsc.wait_for_submits(1, timeout=15)
    code = decode_text(sent.short_message, 0).text.split("code is ")[1][:6]
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(IqError) as info:
        await submit_form(world.alice, phone=ALICE_NUMBER, code=wrong)
    assert info.value.iq["error"]["text"] == "Wrong code; 4 attempts left."
    with pytest.raises(IqError) as info:  # asking again within a minute does not send another SMS
        await submit_form(world.alice, phone=ALICE_NUMBER)
    assert "already sent" in info.value.iq["error"]["text"] and len(world.smsc.submits) == 1
    await submit_form(world.alice, phone=ALICE_NUMBER, code=code)
    assert await world.sms.store.subscriber_by_account("sms", ALICE_NUMBER) is not None
    bob = ScriptedUser(f"bob@{DOMAIN}/x", "pw", prosody.c2s_port)
    await bob.online()
    try:
        with pytest.raises(IqError) as info:
            await submit_form(bob, phone=ALICE_NUMBER)
        assert info.value.iq["error"]["condition"] == "conflict"
    finally:
        await bob.close()


async def test_texts_leave_with_the_right_bytes(world: World) -> None:
    await link_number(world, world.alice)
    n = len(world.smsc.submits)
    to = f"{BOB_NUMBER}@{SMS}"
    world.alice.send_message(mto=to, mbody="Hello Bob", mtype="chat")
    await world.smsc.wait_for_submits(n + 1, timeout=15)
    submit = world.smsc.submits[n].pdu
    assert (submit.source_addr_ton, submit.source_addr_npi, submit.source_addr) == (1, 1, "33612345678")
    assert (submit.dest_addr_ton, submit.destination_addr) == (1, "33698765432")
    assert sent_text(world, n) == (0, b"Hello Bob")
    world.alice.send_message(mto=to, mbody="price: 5€ [ok]", mtype="chat")
    await world.smsc.wait_for_submits(n + 2, timeout=15)
    assert sent_text(world, n + 1) == (0, b"price: 5\x1be \x1b<ok\x1b>")
    world.alice.send_message(mto=to, mbody="ok 👍", mtype="chat")
    await world.smsc.wait_for_submits(n + 3, timeout=15)
    assert sent_text(world, n + 2) == (8, "ok 👍".encode("utf-16-be"))
    long_text = "".join(f"word{i} " for i in range(60))  # ~400 GSM-7 characters: 3 parts
    world.alice.send_message(mto=to, mbody=long_text, mtype="chat")
    parts = (await world.smsc.wait_for_submits(n + 6, timeout=15))[n + 3 :]
    assert all(p.pdu.esm_class & 0x40 for p in parts)
    udhs = [p.short_message[:6] for p in parts]
    assert [u[:3] for u in udhs] == [b"\x05\x00\x03"] * 3 and [u[4:] for u in udhs] == [
        b"\x03\x01",
        b"\x03\x02",
        b"\x03\x03",
    ]
    assert b"".join(p.short_message[6:] for p in parts).decode("ascii") == long_text


async def test_too_long_and_bad_addresses(world: World) -> None:
    await link_number(world, world.alice)
    world.alice.send_message(mto=f"{BOB_NUMBER}@{SMS}", mbody="x" * 2000, mtype="chat")
    err = await world.alice.next_message(type="error")
    assert err["error"]["condition"] == "not-acceptable" and "3 SMS parts" in err["error"]["text"]
    world.alice.send_message(mto=f"0698765432@{SMS}", mbody="hi", mtype="chat")
    err = await world.alice.next_message(type="error")
    assert err["error"]["condition"] == "jid-malformed"
    assert f"{BOB_NUMBER}@{SMS}" in err["error"]["text"]
    world.alice.send_message(mto=f"not-a-number-at-all@{SMS}", mbody="hi", mtype="chat")
    err = await world.alice.next_message(type="error")
    assert err["error"]["condition"] == "jid-malformed" and "not a phone number" in err["error"]["text"]


async def test_mo_in_each_coding_and_split(world: World) -> None:
    await link_number(world, world.alice)
    sender = f"{BOB_NUMBER}@{SMS}"
    cases = [
        (0, "udh", "Hello {alice} ~ €"),
        (3, "udh", "Crème brûlée"),
        (8, "udh", "Привет 😀"),
        (0, "udh", "long " * 70),
        (8, "sar", "ÿ" * 150),
        (0, "payload", "payload " * 40),
    ]
    for coding, split, text in cases:
        statuses = await world.smsc.inject_mo(
            BOB_NUMBER.lstrip("+"), ALICE_NUMBER.lstrip("+"), text, coding=coding, split=split
        )
        assert set(statuses) == {Status.ESME_ROK}
        msg = await world.alice.next_message(from_bare=sender)
        assert msg["body"] == text


async def test_mo_to_unknown_number_is_refused_and_redeliveries_arrive_once(world: World) -> None:
    statuses = await world.smsc.inject_mo("33698765432", "33600000000", "anyone?")
    assert statuses == [Status.ESME_RINVDSTADR]
    assert world.sms.counters["mo_unknown_destination"] == 1
    await link_number(world, world.alice)
    sender = f"{BOB_NUMBER}@{SMS}"
    # the SMSC sends a PDU again when its response timer ran out before it read our answer
    world.smsc.withhold_responses(1)
    await world.smsc.inject_mo("33698765432", "33612345678", "only once please", redeliver=True)
    # ... and after a rebind, when the bind was lost before it read our answer
    world.smsc.lose_bind_on_responses(1)
    await world.smsc.inject_mo("33698765432", "33612345678", "once after a rebind", redeliver=True)
    assert len(world.smsc.redeliveries) == 2
    assert (await world.alice.next_message(from_bare=sender))["body"] == "only once please"
    assert (await world.alice.next_message(from_bare=sender))["body"] == "once after a rebind"
    with pytest.raises(TimeoutError):
        await world.alice.next_message(timeout=1.0, from_bare=sender)
    assert world.sms.counters["mo_duplicates"] == 2


async def test_the_same_text_twice_reaches_xmpp_twice(world: World) -> None:
    """A person sending "ok" twice sends two messages: both arrive, at once or later (the
    second one used to be dropped as a redelivery for 5 minutes)."""
    await link_number(world, world.alice)
    sender = f"{BOB_NUMBER}@{SMS}"
    for _ in range(2):
        assert await world.smsc.inject_mo("33698765432", "33612345678", "ok", redeliver=True) == [0]
    await asyncio.sleep(2.5)  # the scenario: typing it again a little later (past the resend floor)
    assert await world.smsc.inject_mo("33698765432", "33612345678", "ok", redeliver=True) == [0]
    for _ in range(3):
        assert (await world.alice.next_message(from_bare=sender))["body"] == "ok"
    assert world.smsc.redeliveries == [] and world.sms.counters["mo_duplicates"] == 0


async def test_short_code_sender_is_readable_and_not_repliable(world: World) -> None:
    await link_number(world, world.alice)
    await world.smsc.inject_mo("36665", "33612345678", "Your parcel arrives today")
    msg = await world.alice.next_message(from_bare=f"36665@{SMS}")
    assert msg["body"] == "Your parcel arrives today"
    world.alice.send_message(mto=f"36665@{SMS}", mbody="thanks", mtype="chat")
    err = await world.alice.next_message(type="error")
    assert "cannot receive SMS replies" in err["error"]["text"]


async def test_receipts_become_xep0184_and_failures_become_errors(world: World) -> None:
    await link_number(world, world.alice)
    msg = world.alice.make_message(mto=f"{BOB_NUMBER}@{SMS}", mbody="did you get this", mtype="chat")
    msg["id"] = "m-ok"
    ET.SubElement(msg.xml, "{urn:xmpp:receipts}request")
    msg.send()
    got = await world.alice.next_message(from_bare=f"{BOB_NUMBER}@{SMS}")
    assert got.xml.find("{urn:xmpp:receipts}received").get("id") == "m-ok"
    world.smsc.receipt_state = ReceiptState.UNDELIV
    msg = world.alice.make_message(mto=f"{BOB_NUMBER}@{SMS}", mbody="and this", mtype="chat")
    msg["id"] = "m-fail"
    msg.send()
    err = await world.alice.next_message(type="error")
    assert err["id"] == "m-fail" and err["error"]["condition"] == "recipient-unavailable"
    assert "UNDELIV" in err["error"]["text"]


@pytest.mark.parametrize("world", [{"per_user_per_hour": 2}], indirect=True)
async def test_hourly_limit(world: World) -> None:
    await link_number(world, world.alice)
    for n in range(3):
        msg = world.alice.make_message(mto=f"{BOB_NUMBER}@{SMS}", mbody=f"msg {n}", mtype="chat")
        msg["id"] = f"q{n}"
        msg.send()
    err = await world.alice.next_message(type="error")
    assert err["id"] == "q2" and err["error"]["condition"] == "resource-constraint"
    assert "2 per hour" in err["error"]["text"] and "resets at" in err["error"]["text"]


async def test_throttling_and_smsc_restart_lose_nothing(world: World) -> None:
    await link_number(world, world.alice)
    start = len(world.smsc.submits)
    world.smsc.throttle(count=3)
    for n in range(5):
        world.alice.send_message(mto=f"+3369876{5400 + n}@{SMS}", mbody=f"t{n}", mtype="chat")
    await world.smsc.wait_until(lambda: sum(1 for s in world.smsc.submits[start:] if s.status == 0) >= 5, 30)
    await world.smsc.restart(down_s=1.0)
    for n in range(5):
        world.alice.send_message(mto=f"{BOB_NUMBER}@{SMS}", mbody=f"r{n}", mtype="chat")
    await world.smsc.wait_until(lambda: sum(1 for s in world.smsc.submits[start:] if s.status == 0) >= 10, 30)
    ok = [
        decode_text(s.short_message, s.pdu.data_coding).text
        for s in world.smsc.submits[start:]
        if s.status == 0
    ]
    assert sorted(ok) == sorted([f"t{n}" for n in range(5)] + [f"r{n}" for n in range(5)])
    assert [t for t in ok if t.startswith("r")] == [f"r{n}" for n in range(5)]  # order per contact kept


async def test_gateway_restart_with_queued_messages(world: World) -> None:
    await link_number(world, world.alice)
    first = len(world.smsc.submits)
    world.smsc.stop_answering(True)  # SMSC hangs: messages stay queued in the outbox
    for n in range(4):
        world.alice.send_message(mto=f"{BOB_NUMBER}@{SMS}", mbody=f"q{n}", mtype="chat")
    await asyncio.sleep(1.0)
    await world.gateway.stop()
    world.smsc.stop_answering(False)
    await world.smsc.drop_connections()
    world.gateway = await start(world.config, world.smsc)
    await world.smsc.wait_until(
        lambda: (
            {f"q{n}" for n in range(4)}
            <= {
                decode_text(s.short_message, s.pdu.data_coding).text
                for s in world.smsc.submits[first:]
                if s.status == 0
            }
        ),
        30,
    )
    await asyncio.sleep(1.0)
    accepted = [decode_text(s.short_message, 0).text for s in world.smsc.submits[first:] if s.status == 0]
    assert sorted(accepted) == [f"q{n}" for n in range(4)]  # none lost, none twice


async def test_phone_contact_from_roster_and_cli(world: World, tmp_path: Path) -> None:
    await link_number(world, world.alice)
    contact = f"{BOB_NUMBER}@{SMS}"
    world.alice.send_presence(pto=contact, ptype="subscribe")
    await world.alice.next_presence(from_=contact, type="subscribed")
    shown = await world.alice.next_presence(from_bare=contact)
    assert shown["status"] == "reachable by SMS"
    # an operator adds a contact with the CLI; it reaches the roster at the next login
    from click.testing import CliRunner

    from gateway.cli import main

    cfg = tmp_path / "cli.toml"
    cfg.write_text(
        f'[xmpp]\nuser_domains = ["{DOMAIN}"]\n[storage]\npath = "{world.config.storage.path}"\n'
        f'key_file = "{world.config.storage.key_file}"\n[sms]\njid = "{SMS}"\nsecret = "{SECRET}"\n'
        f'service_number = "2020"\n[sms.smsc]\nsystem_id = "gw"\npassword = "smscpw"\n'
    )
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["-c", str(cfg), "contact", "add", f"alice@{DOMAIN}", "0611223344", "--name", "Carol"],
    )
    assert result.exit_code == 0, result.output
    world.alice.send_presence(ptype="unavailable")
    await asyncio.sleep(0.3)
    world.alice.send_presence()
    pushed: set[str] = set()
    while "+33611223344@" + SMS not in pushed:
        push = await asyncio.wait_for(world.alice.roster_pushes.get(), 10)
        pushed |= {str(j) for j in push["roster"]["items"]}
    assert world.alice.client_roster["+33611223344@" + SMS]["name"] == "Carol"


async def test_multipart_mo_survives_a_gateway_restart(world: World) -> None:
    from transports.sms.fake_mo import mo_pdus

    await link_number(world, world.alice)
    text = "this message is long enough to need two parts " * 4
    first, second = mo_pdus("33698765432", "33612345678", text, coding=0, split="udh", ref=77)
    assert await world.smsc.deliver(first) == Status.ESME_ROK  # acknowledged: it is stored
    await world.restart_gateway()
    assert await world.smsc.deliver(second) == Status.ESME_ROK
    msg = await world.alice.next_message(from_bare=f"{BOB_NUMBER}@{SMS}")
    assert msg["body"] == text


def blank_message(
    w: World, msg_id: str, body: str | None, *, receipt: bool = False, mtype: str = "chat"
) -> Any:
    """A message to bob as a client may write it: ``body`` None leaves <body/> out, "" is <body/>."""
    msg = w.alice.make_message(mto=f"{BOB_NUMBER}@{SMS}", mtype=mtype)
    msg["id"] = msg_id
    if body is not None:
        ET.SubElement(msg.xml, "{jabber:client}body").text = body or None
    if receipt:
        ET.SubElement(msg.xml, "{urn:xmpp:receipts}request")
    return msg


async def errors_until(user: ScriptedUser, last_id: str) -> dict[str, Any]:
    """Every error ``user`` gets, by the id it answers, up to the one answering ``last_id``."""
    errors: dict[str, Any] = {}
    while last_id not in errors:
        err = await user.next_message(type="error")
        assert err["id"] not in errors, f"{err['id']} answered twice"
        errors[err["id"]] = err
    return errors


async def test_empty_messages_are_not_texted_and_the_sender_is_told(world: World) -> None:
    """Nothing goes to the SMSC for a message without text; the sender is told when it asked
    for a receipt or carried nothing else. ``normal`` is texted like ``chat``; ``headline``
    (a notification) is not texted, and its sender is told."""
    await link_number(world, world.alice)
    n = len(world.smsc.submits)
    blank_message(world, "e-empty", "", receipt=True).send()  # <body/> with a receipt request
    unknown = blank_message(world, "e-unknown", "")  # <body></body> and an unknown child
    ET.SubElement(unknown.xml, "{urn:example:unknown}thing").text = "not a text"
    unknown.send()
    blank_message(world, "e-blank", " \n\t ", receipt=True).send()  # only whitespace
    blank_message(world, "e-headline", "breaking news", mtype="headline").send()
    blank_message(world, "e-normal", "a normal message", mtype="normal").send()
    blank_message(world, "e-last", "", receipt=True).send()
    errors = await errors_until(world.alice, "e-last")
    assert set(errors) == {"e-empty", "e-unknown", "e-blank", "e-headline", "e-last"}
    for msg_id in ("e-empty", "e-unknown", "e-blank", "e-last"):
        error = errors[msg_id]["error"]
        assert error["condition"] == "not-acceptable", msg_id
        assert "no text" in error["text"] and "nothing was sent" in error["text"], error["text"]
    headline = errors["e-headline"]["error"]
    assert headline["condition"] == "not-acceptable" and "headline" in headline["text"]
    # a message with text after them, to the same number: the outbox keeps each number's
    # order, so anything queued for the ones before would have left first
    blank_message(world, "e-text", "now with text").send()

    def texts() -> list[str]:
        return [decode_text(s.short_message, s.pdu.data_coding).text for s in world.smsc.submits[n:]]

    await world.smsc.wait_until(lambda: "now with text" in texts(), 15)
    assert texts() == ["a normal message", "now with text"]


async def test_chat_states_to_a_badly_written_number_are_not_answered(world: World) -> None:
    """Chat states carry no content: a malformed contact JID gets no error for them, and the
    message with a body that follows gets exactly one."""
    await link_number(world, world.alice)
    to = f"0698765432@{SMS}"
    for n, state in enumerate(("composing", "paused", "active")):
        msg = world.alice.make_message(mto=to, mtype="chat")
        msg["id"] = f"cs-{n}"
        ET.SubElement(msg.xml, f"{{http://jabber.org/protocol/chatstates}}{state}")
        msg.send()
    msg = world.alice.make_message(mto=to, mbody="hi Bob", mtype="chat")
    msg["id"] = "cs-body"
    ET.SubElement(msg.xml, "{http://jabber.org/protocol/chatstates}active")
    msg.send()
    sentinel = world.alice.make_message(mto=to, mbody="still there?", mtype="chat")
    sentinel["id"] = "cs-sentinel"
    sentinel.send()
    errors = await errors_until(world.alice, "cs-sentinel")
    assert set(errors) == {"cs-body", "cs-sentinel"}
    assert errors["cs-body"]["error"]["condition"] == "jid-malformed"
    assert f"{BOB_NUMBER}@{SMS}" in errors["cs-body"]["error"]["text"]
