"""Hostile XMPP, end to end against a real Prosody: generated forms, addresses, bodies and
unknown namespaces sent to a component, each answered with the exact XMPP error condition
the error registry defines, and another user served right after.

Plus one pure property: whatever text a network hands over (an SMS, an MSN message, a
friendly name), the stanza the component writes is well-formed XML.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree import ElementTree as StdET

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from gateway.addressing import BareJid, FullJid, escape_node
from gateway.core.actions import SendXmppMessage, SendXmppPresence
from gateway.core.model import Presence, Show
from gateway.devtools.prosody import Prosody
from gateway.xmpp.component import GatewayComponent
from gateway.xmpp.forms import MAX_FIELD
from tests.conftest import DOMAIN, TEST_JID, RunningGateway
from tests.fuzz import fuzz
from tests.xmpp_client import ScriptedUser

# text an XMPP client can put in a stanza (XML 1.0 characters; CR is normalised away)
xml_text = st.text(
    st.characters(exclude_categories=["Cs", "Cc", "Cn"], exclude_characters="\ufffe\uffff") | st.just("\n"),
    max_size=40,
)
long_text = st.integers(MAX_FIELD - 2, MAX_FIELD + 40).map(lambda n: "é" * n)


@pytest.fixture
async def bob(prosody: Prosody) -> AsyncIterator[ScriptedUser]:
    user = ScriptedUser(f"bob@{DOMAIN}/desk", "pw", prosody.c2s_port)
    await user.online()
    yield user
    await user.close()


async def served(user: ScriptedUser) -> None:
    """Another user is answered right away: the component is alive and not wedged."""
    form = await user.plugin["xep_0077"].get_registration(jid=TEST_JID, timeout=5)
    assert form["type"] == "result"


def _drain(user: ScriptedUser) -> None:
    while not user.messages.empty():
        user.messages.get_nowait()


# -- registration forms: missing, extra, oversized, mistyped ---------------------------------


@st.composite
def submissions(draw: st.DrawFn) -> tuple[str | None, list[tuple[str, str | None]]]:
    form_type = draw(st.sampled_from(["submit", None, "form", "cancel", "result", "x"]))
    var = st.sampled_from(["FORM_TYPE", "username", "password"]) | st.sampled_from(
        ["", "shoe-size", "user name"]
    )
    value = st.none() | xml_text | long_text | st.sampled_from(["wrong", "  ", "bob"])
    return form_type, draw(st.lists(st.tuples(var, value), max_size=5))


def expected_register(form_type: str | None, fields: list[tuple[str, str | None]]) -> tuple[str, str]:
    """(condition or 'result', a word of the text) per forms.parse_submission and the echo network."""
    if form_type not in ("submit", None):
        return "not-acceptable", "type 'submit'"
    values: dict[str, str] = {}
    for var, value in fields:
        if var == "FORM_TYPE":
            continue
        if var not in ("username", "password"):
            return "not-acceptable", "Unknown field"
        values[var] = value or ""
    for value in values.values():
        if len(value) > MAX_FIELD:
            return "not-acceptable", "too long"
    username = values.get("username", "").strip()
    password = values.get("password", "")
    if not username or not password:
        return "not-acceptable", "required"
    if password == "wrong":
        return "not-authorized", "refused"
    return "result", ""


@fuzz(25, cost=80)
@given(submissions())
@example(("submit", [("username", "a"), ("password", "p"), ("shoe-size", "44")]))
@example(("submit", [("username", "é" * (MAX_FIELD + 1)), ("password", "p")]))
@example(("form", [("username", "a"), ("password", "p")]))
async def test_registration_forms_get_the_defined_error(
    gateway: RunningGateway,
    alice: ScriptedUser,
    bob: ScriptedUser,
    case: tuple[str | None, list[tuple[str, str | None]]],
) -> None:
    form_type, fields = case
    iq = alice.make_iq_set(ito=TEST_JID)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    form = ET.SubElement(query, "{jabber:x:data}x", {"type": form_type} if form_type else {})
    for var, value in fields:
        field = ET.SubElement(form, "{jabber:x:data}field", {"var": var})
        if value is not None:
            ET.SubElement(field, "{jabber:x:data}value").text = value
    condition, word = expected_register(form_type, fields)
    if condition == "result":
        assert (await iq.send(timeout=5))["type"] == "result"
    else:
        with pytest.raises(IqError) as info:
            await iq.send(timeout=5)
        error = info.value.iq["error"]
        assert (error["condition"], word in error["text"]) == (condition, True), error["text"]
    await served(bob)


# -- messages: malformed contact addresses, huge bodies, unknown extensions ------------------

handles = st.text(st.sampled_from("abcxyz019.-_@ &'/:<>\"é"), min_size=1, max_size=24).filter(
    lambda h: h.strip() == h and not h.startswith(("offline@", "slow@"))
)
# (a message without a body is a chat state or nothing: never answered, see the chat states
# a blank body is answered "no text", whatever the address)
bodies = st.one_of(xml_text.filter(bool), st.integers(1, 60000).map(lambda n: ("xé😀" * n)[:n]))


@fuzz(20, cost=80)
@given(handles, bodies, st.booleans())
@example("no-at-sign", "hi", False)
@example("bob@echo.test", "x" * 60000, True)
@example("bob@echo.test", " \n ", False)
@example("no-at-sign", "\n", True)
async def test_messages_get_the_echo_or_the_defined_error(
    gateway: RunningGateway, alice: ScriptedUser, bob: ScriptedUser, handle: str, body: str, extension: bool
) -> None:
    await _registered(alice)
    _drain(alice)
    contact = f"{escape_node(handle)}@{TEST_JID}"
    msg = alice.make_message(mto=contact, mbody=body, mtype="chat")
    msg["id"] = f"fz-{len(body)}-{abs(hash(handle))}"
    if extension:
        ET.SubElement(msg.xml, "{urn:example:unknown}thing", {"a": "b"}).text = "ignored"
    msg.send()
    if not body.strip():  # no text: nothing is sent, whatever the address (gateway.core.messages)
        err = await alice.next_message(type="error", timeout=5)
        assert err["error"]["condition"] == "not-acceptable" and "no text" in err["error"]["text"]
    elif "@" in handle:
        reply = await alice.next_message(from_bare=contact, timeout=5)
        assert reply["body"] == "echo: " + body
    else:
        err = await alice.next_message(type="error", timeout=5)
        assert err["error"]["condition"] == "jid-malformed"
        assert "not an echo address" in err["error"]["text"]
    await served(bob)


async def test_message_errors_carry_the_id_of_the_message(
    gateway: RunningGateway, alice: ScriptedUser
) -> None:
    await _registered(alice)
    msg = alice.make_message(mto=f"no-at-sign@{TEST_JID}", mbody="hi", mtype="chat")
    msg["id"] = "m-bad-address"
    msg.send()
    err = await alice.next_message(type="error", timeout=5)
    assert err["error"]["condition"] == "jid-malformed"
    assert err["id"] == "m-bad-address"


chat_states = st.sampled_from(["active", "composing", "paused", "inactive", "gone"])


@fuzz(10, cost=80)
@given(handles, st.lists(chat_states, min_size=1, max_size=4), st.booleans())
@example("no-at-sign", ["composing", "paused", "active"], True)
async def test_chat_states_are_never_answered_whatever_the_address(
    gateway: RunningGateway, alice: ScriptedUser, handle: str, states: list[str], registered: bool
) -> None:
    """A chat state carries no content: no error for it, to any address, registered or not;
    the message with text after it is the first one answered."""
    if registered:
        await _registered(alice)
    _drain(alice)
    contact = f"{escape_node(handle)}@{TEST_JID}"
    for state in states:
        msg = alice.make_message(mto=contact, mtype="chat")
        ET.SubElement(msg.xml, f"{{http://jabber.org/protocol/chatstates}}{state}")
        msg.send()
    sentinel = alice.make_message(mto=f"no-at-sign@{TEST_JID}", mbody="hi", mtype="chat")
    sentinel["id"] = "after-the-states"
    sentinel.send()
    err = await alice.next_message(type="error", timeout=5)
    assert err["id"] == "after-the-states"


async def _registered(user: ScriptedUser) -> None:
    iq = user.make_iq_set(ito=TEST_JID)
    form = ET.SubElement(
        ET.SubElement(iq.xml, "{jabber:iq:register}query"), "{jabber:x:data}x", {"type": "submit"}
    )
    for var, value in (("username", "fuzz"), ("password", "pw")):
        ET.SubElement(
            ET.SubElement(form, "{jabber:x:data}field", {"var": var}), "{jabber:x:data}value"
        ).text = value
    await iq.send(timeout=5)


# -- IQs in namespaces nobody serves, and jabber:iq:gateway prompts --------------------------

namespaces = st.one_of(
    st.sampled_from(
        ["urn:example:nothing", "jabber:iq:version", "jabber:iq:roster", "vcard-temp", "jabber:x:data"]
    ),
    st.text(st.sampled_from("abcxyz:./-"), min_size=1, max_size=30).map(lambda s: "urn:fz:" + s),
)


@fuzz(15, cost=80)
@given(namespaces, st.sampled_from(["get", "set"]))
async def test_unknown_namespaces_are_answered_with_an_error(
    gateway: RunningGateway, alice: ScriptedUser, bob: ScriptedUser, namespace: str, kind: str
) -> None:
    iq = (
        alice.make_iq_get(ito=TEST_JID, queryxmlns=namespace)
        if kind == "get"
        else alice.make_iq_set(ito=TEST_JID)
    )
    if kind == "set":
        ET.SubElement(iq.xml, f"{{{namespace}}}query")
    with pytest.raises(IqError) as info:
        await iq.send(timeout=5)
    assert info.value.iq["error"]["condition"] in ("service-unavailable", "feature-not-implemented")
    await served(bob)


@fuzz(15, cost=80)
@given(xml_text | long_text)
@example("")
@example("   ")
async def test_gateway_prompts_get_a_jid_or_the_defined_error(
    gateway: RunningGateway, alice: ScriptedUser, bob: ScriptedUser, prompt: str
) -> None:
    iq = alice.make_iq_set(ito=TEST_JID)
    ET.SubElement(
        ET.SubElement(iq.xml, "{jabber:iq:gateway}query"), "{jabber:iq:gateway}prompt"
    ).text = prompt
    text = prompt[:256]
    if not text.strip():
        expected = "bad-request"
    elif "@" not in text.strip():
        expected = "jid-malformed"
    else:
        expected = "result"
    if expected == "result":
        result = await iq.send(timeout=5)
        assert result.xml.findtext(".//{jabber:iq:gateway}jid", "").endswith("@" + TEST_JID)
    else:
        with pytest.raises(IqError) as info:
            await iq.send(timeout=5)
        assert info.value.iq["error"]["condition"] == expected
    await served(bob)


# -- what the component writes is well-formed, whatever a network sent -----------------------


class _NoHandler:
    def sender_allowed(self, sender: BareJid) -> bool:
        return True


def _component() -> GatewayComponent:
    return GatewayComponent(
        network="test", jid=TEST_JID, secret="x", host="127.0.0.1", port=1, handler=_NoHandler(),  # type: ignore[arg-type]
        name="t", features=frozenset(), fields=(), instructions="", prompt="Address",
    )  # fmt: skip


_COMPONENT: list[GatewayComponent] = []


def _well_formed(xml: str) -> None:
    StdET.fromstring(xml.encode("utf-8"))


@fuzz(100)
@given(st.text(max_size=30))
@example("ctl \x01 in an SMS")
def test_stanzas_written_for_network_text_are_well_formed(text: str) -> None:
    if not _COMPONENT:
        _COMPONENT.append(_component())
    component = _COMPONENT[0]
    to = FullJid.parse(f"alice@{DOMAIN}/x")
    clean = "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)  # str from bytes never has these
    msg = component.build_message(SendXmppMessage(to, "bob\\40x", clean, "k", clean))
    _well_formed(str(msg))
    sent: list[str] = []
    component.send = lambda data, use_filters=True: sent.append(str(data))  # type: ignore[method-assign]
    component.send_xmpp_presence(
        SendXmppPresence(to, "bob\\40x", "available", Presence(Show.AWAY, clean), nick=clean)
    )
    assert sent, "the presence was written"
    _well_formed(sent[-1])
