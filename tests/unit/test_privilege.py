"""XEP-0356 stanzas as Prosody's mod_privilege needs them, and the carbons built on them."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from gateway.addressing import BareJid
from gateway.xmpp import privilege
from gateway.xmpp.component import GatewayComponent

CLIENT = "{jabber:client}"
SENT = "{urn:xmpp:carbons:2}sent/{urn:xmpp:forward:0}forwarded/{jabber:client}message"
BOB = "bob\\40escargot.test@msn.example.test"


def grant(message: str, ns: str = "urn:xmpp:privilege:2") -> privilege.Grants:
    grants = privilege.Grants()
    advert = ET.fromstring(
        f"<privilege xmlns='{ns}'>"
        f"<perm access='roster' type='both'/><perm access='message' type='{message}'/></privilege>"
    )
    grants.update("example.test", advert)
    return grants


def test_only_the_outgoing_message_permission_allows_sending_as_a_user() -> None:
    assert grant("outgoing").can_send_as_user("example.test")
    assert not grant("none").can_send_as_user("example.test")
    assert not grant("outgoing").can_send_as_user("other.test")


def test_a_sent_carbon_is_from_and_to_the_users_bare_jid_and_not_copied_again() -> None:
    carbon = privilege.sent_carbon("alice@example.test", BOB, "yes, at 8", "sms-1")
    assert carbon.tag == f"{CLIENT}message"
    assert (carbon.get("from"), carbon.get("to"), carbon.get("type")) == (
        "alice@example.test",
        "alice@example.test",
        "chat",
    )
    inner = carbon.find(SENT)
    assert inner is not None
    assert (inner.get("from"), inner.get("to"), inner.get("type")) == ("alice@example.test", BOB, "chat")
    assert inner.findtext(f"{CLIENT}body") == "yes, at 8"
    assert carbon.find("{urn:xmpp:hints}no-copy") is not None
    assert carbon.find(f"{CLIENT}body") is None  # the body is only in the forwarded message


def test_the_privileged_wrapper_goes_to_the_server_with_one_forwarded_client_message() -> None:
    carbon = privilege.sent_carbon("alice@example.test", BOB, "hi", "sms-1")
    outer = privilege.forwarded_message("example.test", "msn.example.test", carbon)
    assert outer.tag == "{jabber:component:accept}message"
    assert (outer.get("to"), outer.get("from")) == ("example.test", "msn.example.test")
    priv = outer.find("{urn:xmpp:privilege:2}privilege")
    assert priv is not None and len(priv) == 1
    forwarded = priv.find("{urn:xmpp:forward:0}forwarded")
    assert forwarded is not None and len(forwarded) == 1
    assert forwarded[0] is carbon  # in jabber:client, which mod_privilege looks for
    text = ET.tostring(outer, encoding="unicode")
    assert "jabber:client" in text and "urn:xmpp:carbons:2" in text


class _Handler:
    def sender_allowed(self, sender: BareJid) -> bool:
        return True


def component() -> GatewayComponent:
    return GatewayComponent(
        network="msn",
        jid="msn.example.test",
        secret="s",
        host="127.0.0.1",
        port=1,
        handler=_Handler(),  # type: ignore[arg-type]
        name="test",
        features=frozenset(),
        fields=(),
        instructions="",
        prompt="",
    )


async def test_a_carbon_is_sent_only_with_the_message_privilege_and_a_connection() -> None:
    comp = component()
    sent: list[ET.Element] = []
    comp.send = lambda stanza, *a, **k: sent.append(stanza.xml)  # type: ignore[method-assign]
    alice = BareJid.parse("alice@example.test")
    comp.online.set()
    comp.grants = grant("none")
    assert not comp.send_carbon(alice, "bob\\40escargot.test", "hi", "k")
    comp.grants = grant("outgoing")
    comp.online.clear()
    assert not comp.send_carbon(alice, "bob\\40escargot.test", "hi", "k")
    assert sent == []
    comp.online.set()
    assert comp.send_carbon(alice, "bob\\40escargot.test", "hi <3", "k")
    [outer] = sent
    assert (outer.get("to"), outer.get("from")) == ("example.test", "msn.example.test")
    inner = outer.find(
        f"{{urn:xmpp:privilege:2}}privilege/{{urn:xmpp:forward:0}}forwarded/{CLIENT}message/{SENT}"
    )
    assert inner is not None
    assert inner.get("to") == BOB and inner.findtext(f"{CLIENT}body") == "hi <3"


async def test_a_carbon_is_wrapped_in_the_namespace_the_server_granted_in() -> None:
    """ejabberd 23.01 grants in ``urn:xmpp:privilege:1`` and ignores a ``:2`` wrapper."""
    comp = component()
    sent: list[ET.Element] = []
    comp.send = lambda stanza, *a, **k: sent.append(stanza.xml)  # type: ignore[method-assign]
    comp.online.set()
    comp.grants = grant("outgoing", "urn:xmpp:privilege:1")
    assert not comp.grants.can_set_roster("example.test")  # roster set through :1 fails
    assert comp.send_carbon(BareJid.parse("alice@example.test"), "bob\\40escargot.test", "hi", "k")
    [outer] = sent
    assert outer.find("{urn:xmpp:privilege:2}privilege") is None
    path = f"{{urn:xmpp:privilege:1}}privilege/{{urn:xmpp:forward:0}}forwarded/{CLIENT}message/{SENT}"
    inner = outer.find(path)
    assert inner is not None and inner.findtext(f"{CLIENT}body") == "hi"


async def test_grants_end_with_their_stream() -> None:
    """A server grants privileges per component stream: after a disconnection the gateway
    uses none until the new stream grants them again (an operator may have withdrawn one
    and restarted the server)."""
    comp = component()
    comp.grants = grant("outgoing")
    comp.closing = True  # no reconnection is scheduled by this test
    comp._on_disconnected(None)
    assert not comp.grants.can_send_as_user("example.test")
    assert not comp.grants.can_set_roster("example.test")
