"""XEP-0004 data forms and XEP-0077 registration payloads, as plain XML (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

from gateway.errors import UserError
from gateway.transport import FormField

NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_GATEWAY = "jabber:iq:gateway"
MAX_FIELD = 1024


def registration_form(fields: Sequence[FormField], instructions: str, registered: str | None) -> ET.Element:
    """The ``<query xmlns='jabber:iq:register'>`` answer to a registration get."""
    query = ET.Element(f"{{{NS_REGISTER}}}query")
    ET.SubElement(query, f"{{{NS_REGISTER}}}instructions").text = instructions
    if registered is not None:
        ET.SubElement(query, f"{{{NS_REGISTER}}}registered")
    form = ET.SubElement(query, f"{{{NS_DATA}}}x", {"type": "form"})
    ET.SubElement(form, f"{{{NS_DATA}}}title").text = "Registration"
    ET.SubElement(form, f"{{{NS_DATA}}}instructions").text = instructions
    hidden = ET.SubElement(form, f"{{{NS_DATA}}}field", {"type": "hidden", "var": "FORM_TYPE"})
    ET.SubElement(hidden, f"{{{NS_DATA}}}value").text = NS_REGISTER
    for f in fields:
        el = ET.SubElement(form, f"{{{NS_DATA}}}field", {"type": f.type, "var": f.var, "label": f.label})
        if f.desc:
            ET.SubElement(el, f"{{{NS_DATA}}}desc").text = f.desc
        if f.required:
            ET.SubElement(el, f"{{{NS_DATA}}}required")
        if registered is not None and f.type != "text-private" and f.var in ("phone", "handle"):
            ET.SubElement(el, f"{{{NS_DATA}}}value").text = registered
    return query


def parse_submission(query: ET.Element, fields: Sequence[FormField]) -> dict[str, str] | None:
    """The submitted values, or None for a ``<remove/>`` request.

    Accepts a submitted data form, or the legacy plain fields of XEP-0077 named like the
    form's vars. Raises ``UserError('bad-form')`` naming what is wrong.
    """
    if query.find(f"{{{NS_REGISTER}}}remove") is not None:
        return None
    known = {f.var: f for f in fields}
    values: dict[str, str] = {}
    form = query.find(f"{{{NS_DATA}}}x")
    if form is not None:
        if form.get("type") not in ("submit", None):
            raise UserError("bad-form", reason="Submit the form with type 'submit'.")
        for el in form.findall(f"{{{NS_DATA}}}field"):
            var = el.get("var", "")
            if var == "FORM_TYPE":
                continue
            if var not in known:
                raise UserError("bad-form", reason=f"Unknown field '{var[:40]}' in the form.")
            value = el.findtext(f"{{{NS_DATA}}}value", default="")
            values[var] = value
    else:
        for child in query:
            name = child.tag.split("}", 1)[-1]
            if name in known:
                values[name] = child.text or ""
    for var, value in values.items():
        if len(value) > MAX_FIELD:
            raise UserError("bad-form", reason=f"The field '{var}' is too long.")
        values[var] = value.strip() if known[var].type != "text-private" else value
    return values


def require(values: dict[str, str], fields: Sequence[FormField], needed: Sequence[str] = ()) -> None:
    """Raise ``bad-form`` naming the first required field left empty."""
    wanted = needed or [f.var for f in fields if f.required]
    for var in wanted:
        if not values.get(var):
            label = next((f.label for f in fields if f.var == var), var)
            raise UserError("bad-form", reason=f"The field '{label}' is required.")
