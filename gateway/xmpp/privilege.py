"""XEP-0356 (privileged entity), handled by the project itself.

slixmpp's bundled plugin keeps granted privileges in class-level state shared by every
instance, checks the wrong permission for roster sets and leaves forwarded messages in
the component namespace, which Prosody rejects. This module parses the server's grant
per component and builds the stanzas itself; tests pin each behaviour against Prosody.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from gateway.core.model import RosterEntry
from gateway.xmltext import xml_text

NS_PRIVILEGE = ("urn:xmpp:privilege:2", "urn:xmpp:privilege:1")
NS_ROSTER = "jabber:iq:roster"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_HINTS = "urn:xmpp:hints"
NS_JABBER_CLIENT = "jabber:client"


@dataclass
class Grants:
    """What the server allowed this component, by server domain."""

    roster: dict[str, str] = field(default_factory=dict)
    message: dict[str, str] = field(default_factory=dict)
    namespace: dict[str, str] = field(default_factory=dict)

    def update(self, server: str, privilege: ET.Element) -> None:
        ns = privilege.tag.split("}", 1)[0].lstrip("{")
        self.namespace[server] = ns
        for perm in privilege:
            access, kind = perm.get("access", ""), perm.get("type", "none")
            if access == "roster":
                self.roster[server] = kind
            elif access == "message":
                self.message[server] = kind

    def can_set_roster(self, domain: str) -> bool:
        # roster set through privilege:1 (ejabberd before 23.10) is unreliable: fall back
        return self.roster.get(domain) in ("set", "both") and self.namespace.get(domain) == NS_PRIVILEGE[0]

    def can_send_as_user(self, domain: str) -> bool:
        return self.message.get(domain) == "outgoing"


def find_privilege(message: ET.Element) -> ET.Element | None:
    for ns in NS_PRIVILEGE:
        found = message.find(f"{{{ns}}}privilege")
        if found is not None:
            return found
    return None


def roster_query(entries: Iterable[RosterEntry], domain: str, remove: Iterable[str] = ()) -> ET.Element:
    """A ``jabber:iq:roster`` query setting ``entries`` and removing ``remove`` localparts."""
    query = ET.Element(f"{{{NS_ROSTER}}}query")
    for entry in entries:
        item = ET.SubElement(
            query,
            f"{{{NS_ROSTER}}}item",
            {
                "jid": f"{entry.localpart}@{domain}",
                "name": xml_text(entry.name),
                "subscription": entry.subscription,
            },
        )
        for group in entry.groups:
            ET.SubElement(item, f"{{{NS_ROSTER}}}group").text = xml_text(group)
    for local in remove:
        ET.SubElement(query, f"{{{NS_ROSTER}}}item", {"jid": f"{local}@{domain}", "subscription": "remove"})
    return query


def forwarded_message(
    server: str, component: str, inner: ET.Element, ns: str = NS_PRIVILEGE[0]
) -> ET.Element:
    """Wrap ``inner`` (a ``jabber:client`` message from a user's bare JID) for the server to
    route as if that user sent it (XEP-0356 message permission ``outgoing``).

    Prosody's mod_privilege takes the privileged message at the server's own address
    (``to=server``), accepts only a ``<forwarded/>`` child holding a ``jabber:client``
    message whose ``from`` is a bare JID of one of its hosts, and posts that message as
    if the user's client had sent it. ``ns`` is the namespace the server granted in
    (:attr:`Grants.namespace`): ejabberd before 23.10 ignores a ``urn:xmpp:privilege:2``
    wrapper and takes only ``urn:xmpp:privilege:1``.
    """
    outer = ET.Element("{jabber:component:accept}message", {"to": server, "from": component})
    privilege = ET.SubElement(outer, f"{{{ns}}}privilege")
    forwarded = ET.SubElement(privilege, f"{{{NS_FORWARD}}}forwarded")
    forwarded.append(inner)
    return outer


def sent_carbon(user: str, contact: str, body: str, msg_id: str) -> ET.Element:
    """A XEP-0280 ``<sent/>`` carbon of a chat message ``user`` sent to ``contact`` outside
    XMPP (from their phone), addressed from and to the user's bare JID: forwarded through
    :func:`forwarded_message`, it reaches the user's online clients, or their offline store.

    It carries the XEP-0334 ``no-copy`` hint so that the server's own carbons module does
    not wrap it once more for the user's other resources.
    """
    c = NS_JABBER_CLIENT
    carbon = ET.Element(f"{{{c}}}message", {"from": user, "to": user, "type": "chat", "id": msg_id})
    sent = ET.SubElement(carbon, f"{{{NS_CARBONS}}}sent")
    forwarded = ET.SubElement(sent, f"{{{NS_FORWARD}}}forwarded")
    original = ET.SubElement(
        forwarded, f"{{{c}}}message", {"from": user, "to": contact, "type": "chat", "id": msg_id}
    )
    ET.SubElement(original, f"{{{c}}}body").text = body
    ET.SubElement(carbon, f"{{{NS_HINTS}}}no-copy")
    return carbon
