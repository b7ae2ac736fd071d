"""End to end, against a real Prosody: alice discovers, registers, chats, unregisters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway.addressing import BareJid
from gateway.devtools.prosody import Prosody
from tests.conftest import DOMAIN, TEST_JID, RunningGateway, base_config, start_gateway
from tests.xmpp_client import ScriptedUser

pytestmark = pytest.mark.e2e


async def register(user: ScriptedUser, username: str = "alice-echo", password: str = "secret") -> None:
    iq = user.make_iq_set(ito=TEST_JID)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    form = ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
    for var, value in (("FORM_TYPE", "jabber:iq:register"), ("username", username), ("password", password)):
        field = ET.SubElement(form, "{jabber:x:data}field", {"var": var})
        ET.SubElement(field, "{jabber:x:data}value").text = value
    await iq.send(timeout=10)


async def error_of(coro: object) -> tuple[str, str]:
    with pytest.raises(IqError) as info:
        await coro  # type: ignore[misc]
    return info.value.iq["error"]["condition"], info.value.iq["error"]["text"]


async def test_disco_info_names_a_gateway_with_its_features(
    gateway: RunningGateway, alice: ScriptedUser
) -> None:
    info = await alice.plugin["xep_0030"].get_info(jid=TEST_JID, timeout=10)
    identities = info["disco_info"]["identities"]
    assert ("gateway", "test", None, "Passerelle TEST gateway") in identities
    features = set(info["disco_info"]["features"])
    assert {"jabber:iq:register", "jabber:iq:gateway", "urn:xmpp:ping", "urn:xmpp:receipts"} <= features
    items = await alice.plugin["xep_0030"].get_items(jid=TEST_JID, timeout=10)
    assert items["type"] == "result"


async def test_registration_form_then_subscribe_flow_and_roster(
    gateway: RunningGateway, alice: ScriptedUser
) -> None:
    form = await alice.plugin["xep_0077"].get_registration(jid=TEST_JID, timeout=10)
    fields = {f.get("var") for f in form.xml.iter("{jabber:x:data}field")}
    assert {"username", "password"} <= fields
    await register(alice)
    sub = await alice.next_presence(from_=TEST_JID, type="subscribe")
    assert sub["to"].bare == f"alice@{DOMAIN}"
    # the user accepts and subscribes back; the gateway answers subscribed (XEP-0100 §4.1.1)
    alice.send_presence(pto=TEST_JID, ptype="subscribed")
    alice.send_presence(pto=TEST_JID, ptype="subscribe")
    await alice.next_presence(from_=TEST_JID, type="subscribed")
    # going online again logs in: contacts arrive through XEP-0356 roster pushes
    alice.send_presence()
    pushed: set[str] = set()
    wanted = {f"alpha\\40echo.test@{TEST_JID}", f"beta\\40echo.test@{TEST_JID}"}
    while not wanted <= pushed:
        push = await asyncio.wait_for(alice.roster_pushes.get(), 10)
        pushed |= {str(j) for j in push["roster"]["items"]}
    assert f"beta\\40echo.test@{TEST_JID}" in pushed
    assert alice.client_roster[f"alpha\\40echo.test@{TEST_JID}"]["name"] == "Alpha"
    state = await gateway.bridge.store.subscriber_by_jid(BareJid.parse(f"alice@{DOMAIN}"))
    assert state is not None


async def test_bad_password_is_not_authorized_and_nothing_stored(
    gateway: RunningGateway, alice: ScriptedUser
) -> None:
    condition, text = await error_of(register(alice, password="wrong"))
    assert condition == "not-authorized"
    assert "refused" in text
    assert await gateway.bridge.store.subscribers() == []


async def test_malformed_forms_get_clear_errors(gateway: RunningGateway, alice: ScriptedUser) -> None:
    condition, text = await error_of(register(alice, password=""))
    assert condition == "not-acceptable" and "required" in text
    iq = alice.make_iq_set(ito=TEST_JID)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    form = ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
    ET.SubElement(form, "{jabber:x:data}field", {"var": "shoe-size"})
    condition, text = await error_of(iq.send(timeout=10))
    assert condition == "not-acceptable" and "shoe-size" in text


async def test_message_round_trip_and_errors(gateway: RunningGateway, alice: ScriptedUser) -> None:
    await register(alice)
    contact = f"alpha\\40echo.test@{TEST_JID}"
    alice.send_message(mto=contact, mbody="héllo", mtype="chat")
    reply = await alice.next_message(from_bare=contact)
    assert reply["body"] == "echo: héllo"
    # a contact JID that is no address of the network: jid-malformed, with the reason
    alice.send_message(mto=f"nobody@{TEST_JID}", mbody="x", mtype="chat")
    err = await alice.next_message(type="error")
    assert err["error"]["condition"] == "jid-malformed" and "not an echo address" in err["error"]["text"]
    # delivery failure reaches the full JID that sent the message, tied to its id
    msg = alice.make_message(mto=f"offline\\40echo.test@{TEST_JID}", mbody="are you there", mtype="chat")
    msg["id"] = "m-offline"
    msg.send()
    err = await alice.next_message(type="error")
    assert err["id"] == "m-offline" and err["error"]["condition"] == "recipient-unavailable"


async def test_retry_keeps_order_per_contact(gateway: RunningGateway, alice: ScriptedUser) -> None:
    await register(alice)
    contact = f"slow\\40echo.test@{TEST_JID}"
    for n in range(3):
        alice.send_message(mto=contact, mbody=f"m{n}", mtype="chat")
    bodies = [(await alice.next_message(from_bare=contact))["body"] for _ in range(3)]
    assert bodies == ["echo: m0", "echo: m1", "echo: m2"]


async def test_unregister_removes_account_and_unsubscribes(
    gateway: RunningGateway, alice: ScriptedUser
) -> None:
    await register(alice)
    await alice.next_presence(from_=TEST_JID, type="subscribe")
    alice.send_presence(pto=TEST_JID, ptype="subscribed")
    alice.send_presence(pto=TEST_JID, ptype="subscribe")
    await alice.next_presence(from_=TEST_JID, type="subscribed")
    iq = alice.make_iq_set(ito=TEST_JID)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    ET.SubElement(query, "{jabber:iq:register}remove")
    await iq.send(timeout=10)
    await alice.next_presence(from_=TEST_JID, type="unsubscribed")
    assert await gateway.bridge.store.subscribers() == []
    condition, _ = await error_of(_remove(alice))
    assert condition == "registration-required"


async def _remove(user: ScriptedUser) -> None:
    iq = user.make_iq_set(ito=TEST_JID)
    ET.SubElement(ET.SubElement(iq.xml, "{jabber:iq:register}query"), "{jabber:iq:register}remove")
    await iq.send(timeout=10)


async def test_gateway_translation_and_ping(gateway: RunningGateway, alice: ScriptedUser) -> None:
    iq = alice.make_iq_set(ito=TEST_JID)
    query = ET.SubElement(iq.xml, "{jabber:iq:gateway}query")
    ET.SubElement(query, "{jabber:iq:gateway}prompt").text = "bob@echo.test"
    result = await iq.send(timeout=10)
    assert result.xml.findtext(".//{jabber:iq:gateway}jid") == f"bob\\40echo.test@{TEST_JID}"
    get = alice.make_iq_get(ito=TEST_JID, queryxmlns="jabber:iq:gateway")
    answer = await get.send(timeout=10)
    assert answer.xml.findtext(".//{jabber:iq:gateway}prompt") == "Echo address"
    rtt = await alice.plugin["xep_0199"].ping(jid=TEST_JID, timeout=10)
    assert rtt >= 0


async def test_unknown_iq_is_answered(gateway: RunningGateway, alice: ScriptedUser) -> None:
    iq = alice.make_iq_get(ito=TEST_JID, queryxmlns="urn:example:nothing")
    condition, _ = await error_of(iq.send(timeout=10))
    assert condition in ("feature-not-implemented", "service-unavailable")


async def test_closed_registration_refuses_unknown_users(prosody: Prosody, tmp_path: Path) -> None:
    running = await start_gateway(base_config(tmp_path, prosody.component_port, registration="closed"))
    user = ScriptedUser(f"bob@{DOMAIN}/x", "pw", prosody.c2s_port)
    await user.online()
    try:
        condition, text = await error_of(register(user))
        assert condition == "forbidden" and "closed" in text
    finally:
        await user.close()
        await running.gateway.stop()


async def test_foreign_domain_is_forbidden(prosody: Prosody, tmp_path: Path) -> None:
    running = await start_gateway(base_config(tmp_path, prosody.component_port, user_domains=["other.test"]))
    user = ScriptedUser(f"alice@{DOMAIN}/x", "pw", prosody.c2s_port)
    await user.online()
    try:
        condition, _ = await error_of(register(user))
        assert condition == "forbidden"
        user.send_message(mto=f"a\\40b.c@{TEST_JID}", mbody="hi", mtype="chat")
        err = await user.next_message(type="error")
        assert err["error"]["condition"] == "forbidden"
    finally:
        await user.close()
        await running.gateway.stop()


async def test_survives_prosody_restart(prosody: Prosody, gateway: RunningGateway) -> None:
    component = gateway.bridge.components["test"]
    generation = component.generation
    prosody.restart()
    await asyncio.wait_for(
        _until(lambda: component.generation > generation and component.online.is_set()), 20
    )
    user = ScriptedUser(f"alice@{DOMAIN}/after", "pw", prosody.c2s_port)
    await user.online()
    try:
        await register(user)
        user.send_message(mto=f"alpha\\40echo.test@{TEST_JID}", mbody="after restart", mtype="chat")
        reply = await user.next_message(from_bare=f"alpha\\40echo.test@{TEST_JID}")
        assert reply["body"] == "echo: after restart"
    finally:
        await user.close()


async def _until(predicate: object) -> None:
    while not predicate():  # type: ignore[operator]
        await asyncio.sleep(0.05)


async def test_unexpected_failure_is_internal_error_with_a_logged_reference(
    gateway: RunningGateway, alice: ScriptedUser, caplog: pytest.LogCaptureFixture
) -> None:
    condition, text = await error_of(register(alice, username="explode"))
    assert condition == "internal-server-error"
    assert "boom" not in text and "internal detail" not in text
    ref = text.split("reference ")[1].split()[0]
    assert any(ref in r.getMessage() for r in caplog.records), "the reference must be in the log"
    # the component keeps serving
    await register(alice)
