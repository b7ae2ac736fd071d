"""The component's cheap stanza matcher picks exactly what the XPath it replaces picked."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.matcher import MatchXPath

from gateway.xmpp.component import TagMatch

NS = "{jabber:component:accept}"
STANZAS = [
    "<iq type='get' id='1'><query xmlns='jabber:iq:register'/></iq>",
    "<iq type='set' id='2'><query xmlns='jabber:iq:register'><username>x</username></query></iq>",
    "<iq type='get' id='3'><query xmlns='jabber:iq:gateway'/></iq>",
    "<iq type='set' id='4'><command xmlns='http://jabber.org/protocol/commands'/></iq>",
    "<iq type='result' id='5'><query xmlns='jabber:iq:register'/></iq>",
    "<iq type='get' id='6'><x><query xmlns='jabber:iq:register'/></x></iq>",  # nested deeper
    "<iq type='get' id='7'/>",
    "<message type='chat'><body>hi</body></message>",
    "<presence type='probe'/>",
    "<presence><query xmlns='jabber:iq:register'/></presence>",
]
ROUTES = [
    ("get", "{jabber:iq:register}query"),
    ("set", "{jabber:iq:register}query"),
    ("get", "{jabber:iq:gateway}query"),
    ("set", "{http://jabber.org/protocol/commands}command"),
]


def stanza(xml: str) -> StanzaBase:
    tag = xml[1:].split(" ", 1)[0].split(">", 1)[0].rstrip("/")
    return StanzaBase(xml=ET.fromstring(xml.replace(f"<{tag}", f"<{tag} xmlns='jabber:component:accept'", 1)))


@pytest.mark.parametrize("xml", STANZAS)
def test_the_same_stanzas_as_the_xpath(xml: str) -> None:
    s = stanza(xml)
    for type_, child in ROUTES:
        xpath = MatchXPath(f"{NS}iq[@type='{type_}']/{child}")
        assert TagMatch(f"{NS}iq", type_, child).match(s) == xpath.match(s), (type_, child)
    for tag in ("message", "presence", "iq"):
        assert TagMatch(f"{NS}{tag}").match(s) == MatchXPath(f"{NS}{tag}").match(s)
