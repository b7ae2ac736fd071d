"""XEP-0050 ad-hoc commands for the gateway's administrators (``xmpp.admins``).

The XML side of :mod:`gateway.ops.admin_commands`: the command list in disco#items
(shown to administrators only), and ``<command/>`` executions. Each command asks for at
most one form, so the protocol is stateless: an execution without a submitted form
gets the form (``executing``), one with it runs the command (``completed``). The IQ is
answered by the component's guard, so a non-administrator gets ``forbidden`` and a
failure ``internal-server-error`` with a reference id.
"""

from __future__ import annotations

import secrets
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp import JID
from slixmpp.plugins.xep_0030.stanza.items import DiscoItems
from slixmpp.stanza import Iq

from gateway.addressing import AddressError, BareJid
from gateway.errors import UserError
from gateway.ops.admin_commands import Ask, Command, Fields, Host, Note, Result, Table, commands_for
from gateway.xmpp.component import GatewayComponent

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
MAX_VALUE = 1024


def _c(tag: str) -> str:
    return f"{{{NS_COMMANDS}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{NS_DATA}}}{tag}"


class AdHoc:
    """The commands of one component."""

    def __init__(self, host: Host, network: str, jid: str) -> None:
        self.host = host
        self.network = network
        self.jid = jid
        self.commands = {c.node: c for c in commands_for(network)}

    def is_admin(self, sender: JID | str) -> bool:
        try:
            return BareJid.parse(str(sender)) in self.host.config.xmpp.admins
        except AddressError:
            return False

    # -- disco -------------------------------------------------------------------------

    def disco_items(self, _jid: Any, _node: Any, ifrom: Any, _data: Any) -> DiscoItems:
        """The ``commands`` node: every command for an administrator, nothing for others."""
        items = DiscoItems()
        items["node"] = NS_COMMANDS
        if ifrom is not None and self.is_admin(ifrom):
            for command in self.commands.values():
                items.add_item(JID(self.jid), command.node, command.name)
        return items

    # -- execution ---------------------------------------------------------------------

    async def execute(self, iq: Iq) -> ET.Element:
        request = iq.xml.find(_c("command"))
        assert request is not None  # the route matched on it
        if not self.is_admin(iq["from"]):
            raise UserError("admin-only")
        node = request.get("node", "")
        command = self.commands.get(node)
        if command is None:
            raise UserError("no-such-item", reason=f"No command '{node[:64]}' here.")
        session = request.get("sessionid") or secrets.token_hex(8)
        action = request.get("action", "execute")
        if action == "cancel":
            return _answer(node, session, "canceled")
        if action not in ("execute", "complete", "next"):
            raise UserError("bad-request", reason=f"Unsupported action '{action[:16]}'.")
        values = _submitted(request)
        if command.ask is not None and values is None:
            return _ask(node, session, command, command.ask)
        if command.ask is not None and not (values or {}).get(command.ask.var, "").strip():
            raise UserError("bad-form", reason=f"The field '{command.ask.label}' is required.")
        result = await command.run(self.host, self.network, values or {})
        return _complete(node, session, result)


def _answer(node: str, session: str, status: str) -> ET.Element:
    return ET.Element(_c("command"), {"node": node, "sessionid": session, "status": status})


def _ask(node: str, session: str, command: Command, ask: Ask) -> ET.Element:
    answer = _answer(node, session, "executing")
    actions = ET.SubElement(answer, _c("actions"), {"execute": "complete"})
    ET.SubElement(actions, _c("complete"))
    form = ET.SubElement(answer, _d("x"), {"type": "form"})
    ET.SubElement(form, _d("title")).text = command.name
    ET.SubElement(form, _d("instructions")).text = ask.instructions
    field = ET.SubElement(form, _d("field"), {"var": ask.var, "label": ask.label, "type": "text-single"})
    ET.SubElement(field, _d("required"))
    return answer


def _submitted(request: ET.Element) -> dict[str, str] | None:
    form = request.find(_d("x"))
    if form is None:
        return None
    if form.get("type") == "cancel":
        return None
    if form.get("type") != "submit":
        raise UserError("bad-form", reason="Submit the form with type 'submit'.")
    values: dict[str, str] = {}
    for field in form.findall(_d("field")):
        value = field.findtext(_d("value"), default="")
        if len(value) > MAX_VALUE:
            raise UserError("bad-form", reason="A field is too long.")
        values[field.get("var", "")] = value
    return values


def _complete(node: str, session: str, result: Result) -> ET.Element:
    answer = _answer(node, session, "completed")
    match result:
        case Note(text=text, type=kind):
            ET.SubElement(answer, _c("note"), {"type": kind}).text = text
        case Fields(title=title, values=values):
            form = ET.SubElement(answer, _d("x"), {"type": "result"})
            ET.SubElement(form, _d("title")).text = title
            for var, label, value in values:
                multi = "\n" in value
                field = ET.SubElement(
                    form,
                    _d("field"),
                    {"var": var, "label": label, "type": "text-multi" if multi else "text-single"},
                )
                for line in value.split("\n"):
                    ET.SubElement(field, _d("value")).text = line
        case Table(title=title, columns=columns, rows=rows, note=note):
            if note:
                ET.SubElement(answer, _c("note"), {"type": "info"}).text = note
            form = ET.SubElement(answer, _d("x"), {"type": "result"})
            ET.SubElement(form, _d("title")).text = title
            reported = ET.SubElement(form, _d("reported"))
            for var, label in columns:
                ET.SubElement(reported, _d("field"), {"var": var, "label": label, "type": "text-single"})
            for row in rows:
                item = ET.SubElement(form, _d("item"))
                for var, _label in columns:
                    field = ET.SubElement(item, _d("field"), {"var": var})
                    ET.SubElement(field, _d("value")).text = row.get(var, "")
    return answer


def install(component: GatewayComponent, host: Host) -> AdHoc:
    """Offer the admin commands on ``component``: disco feature and items, and the IQ route."""
    adhoc = AdHoc(host, component.network, component.boundjid.bare)
    disco = component.plugin["xep_0030"]
    disco.add_feature(NS_COMMANDS)
    for command in adhoc.commands.values():
        disco.add_identity(category="automation", itype="command-node", name=command.name, node=command.node)
        disco.add_feature(NS_COMMANDS, node=command.node)
        disco.add_feature(NS_DATA, node=command.node)
    disco.set_node_handler("get_items", JID(component.boundjid.bare), NS_COMMANDS, adhoc.disco_items)
    component.add_iq_route(f"iq[@type='set']/{{{NS_COMMANDS}}}command", adhoc.execute)
    return adhoc
