"""Presence stanzas as the component passes them to the bridge, in the shape a login brings
them: the user's broadcast copied to every contact, a probe per roster item, then the
presence to the gateway itself (RFC 6121 §4.2, XEP-0100 §4.2)."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree as ET

from slixmpp.stanza import Presence as PresenceStanza
from slixmpp.xmlstream import StanzaBase

from gateway.addressing import BareJid
from gateway.core.events import XmppPresenceReceived
from gateway.xmpp.component import GatewayComponent

GATEWAY = "msn.example.test"
ALICE = "alice@example.test/phone"


def contact(n: int) -> str:
    return f"c{n}\\40example.net@{GATEWAY}"


class Handler:
    """Records what reaches the bridge; a probe takes a turn of the loop, like a store read."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.busy = 0
        self.most_at_once = 0

    def sender_allowed(self, sender: BareJid) -> bool:
        return True

    async def presence_received(self, network: str, event: XmppPresenceReceived) -> None:
        self.busy += 1
        self.most_at_once = max(self.most_at_once, self.busy)
        try:
            await asyncio.sleep(0)
            self.seen.append((event.kind, event.contact))
        finally:
            self.busy -= 1


def component(handler: Handler) -> tuple[GatewayComponent, list[str]]:
    comp = GatewayComponent(
        network="msn",
        jid=GATEWAY,
        secret="s",
        host="127.0.0.1",
        port=1,
        handler=handler,  # type: ignore[arg-type]
        name="test",
        features=frozenset(),
        fields=(),
        instructions="",
        prompt="",
    )
    sent: list[str] = []
    comp.send = lambda stanza, *a, **k: sent.append(str(stanza))  # type: ignore[method-assign]
    return comp, sent


def receive(comp: GatewayComponent, xml: str) -> None:
    element = ET.fromstring(xml.replace("<presence", "<presence xmlns='jabber:component:accept'", 1))
    stanza: StanzaBase = PresenceStanza(comp, xml=element)
    comp.recv_stanza(stanza)


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_a_login_reaches_the_bridge_as_probes_and_the_presence_to_the_gateway() -> None:
    handler = Handler()
    comp, _sent = component(handler)
    receive(comp, f"<presence from='{ALICE}' to='{GATEWAY}'/>")  # the broadcast's copy to the gateway
    for n in range(3):
        receive(comp, f"<presence from='{ALICE}' to='{contact(n)}'/>")  # copies to each contact
    for n in range(3):
        receive(comp, f"<presence from='alice@example.test' to='{contact(n)}' type='probe'/>")
    receive(comp, f"<presence from='{ALICE}' to='{contact(0)}' type='unavailable'/>")
    receive(comp, f"<presence from='{ALICE}' to='{GATEWAY}'><show>away</show></presence>")
    await settle()
    own = [s for s in handler.seen if s[1] is None]
    probes = [s for s in handler.seen if s[0] == "probe"]
    assert own == [("available", None), ("available", None)]
    assert probes == [("probe", f"c{n}\\40example.net") for n in range(3)]  # in the order they came
    assert len(handler.seen) == 5  # the copies addressed to contacts carry nothing for the bridge


async def test_a_users_probes_are_answered_one_after_another() -> None:
    handler = Handler()
    comp, _sent = component(handler)
    for n in range(20):
        receive(comp, f"<presence from='alice@example.test' to='{contact(n)}' type='probe'/>")
    receive(comp, f"<presence from='bob@example.test' to='{contact(0)}' type='probe'/>")
    await settle()
    alice = [c for k, c in handler.seen if k == "probe" and c != "c0\\40example.net"]
    assert alice == [f"c{n}\\40example.net" for n in range(1, 20)]
    assert handler.most_at_once <= 2  # one per user: alice's and bob's
    receive(comp, f"<presence from='alice@example.test' to='{contact(7)}' type='probe'/>")
    await settle()
    assert handler.seen[-1] == ("probe", "c7\\40example.net")  # a later probe is answered too


async def test_subscription_stanzas_all_go_to_the_bridge_and_get_no_answer_of_the_components_own() -> None:
    handler = Handler()
    comp, sent = component(handler)
    for kind in ("subscribe", "unsubscribe", "subscribe", "subscribed", "unsubscribed"):
        receive(comp, f"<presence from='alice@example.test' to='{contact(1)}' type='{kind}'/>")
        await settle()
    kinds = ["subscribe", "unsubscribe", "subscribe", "subscribed", "unsubscribed"]
    assert [k for k, _ in handler.seen] == kinds
    assert sent == []  # the bridge answers (or not); slixmpp's own roster does not
