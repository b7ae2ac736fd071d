"""The user's contact lists as the notification server describes them (no I/O).

Fed with ``LST``/``LSG``/``BPR`` during a sync and with ``ADC``/``REM`` afterwards; knows the
guid of every contact, which ``REM … FL`` needs.
"""

from __future__ import annotations

import dataclasses

from .codec import Command, url_decode
from .ns_events import Contact, Group, ListChanged, PeerViolation
from .status import ListBit

_MASKS = tuple(ListBit(n) for n in range(32))  # one LST per contact: no enum built per line


class ContactBook:
    """Contacts keyed by lower-cased handle, plus groups in server order."""

    def __init__(self) -> None:
        self.contacts: dict[str, Contact] = {}
        self.groups: list[Group] = []
        self._last_lst: str | None = None

    def clear(self) -> None:
        self.contacts.clear()
        self.groups.clear()
        self._last_lst = None

    def get(self, handle: str) -> Contact | None:
        return self.contacts.get(handle.lower())

    def handle_for_guid(self, guid: str) -> str | None:
        return next((c.handle for c in self.contacts.values() if c.guid == guid), None)

    def apply_lsg(self, cmd: Command) -> None:
        """``LSG <urlencoded name> <guid>``."""
        self.groups.append(Group(cmd.arg(1), url_decode(cmd.arg(0))))

    def apply_lst(self, cmd: Command) -> None:
        """``LST N=… F=… C=… <mask> [<network id>] [<groups>]``; bad lines are ignored."""
        fields: dict[str, str] = {}
        bare: list[str] = []
        for word in cmd.args:
            key, eq, value = word.partition("=")
            if eq and len(key) == 1:
                fields[key] = value
            else:
                bare.append(word)
        handle = fields.get("N", "")
        if not handle or not bare or not (bare[0].isascii() and bare[0].isdigit()):
            return
        # Some servers put a network id (digits) between the mask and the group guids.
        groups = next((w for w in bare[1:] if not (w.isascii() and w.isdigit())), "")
        self.contacts[handle.lower()] = Contact(
            handle,
            url_decode(fields.get("F", handle)),
            fields.get("C"),
            _MASKS[int(bare[0]) & 31],
            tuple(g for g in groups.split(",") if g),
        )
        self._last_lst = handle.lower()

    def apply_bpr(self, cmd: Command) -> tuple[Contact, str, str] | None:
        """``BPR <key> <value>`` after an LST, or ``BPR <handle> <key> <value>`` on its own.

        Returns (contact, key, decoded value), or None when it names no known contact.
        """
        if len(cmd.args) >= 3:
            handle, key, value = cmd.arg(0).lower(), cmd.arg(1), url_decode(cmd.arg(2))
        else:
            handle, key, value = self._last_lst or "", cmd.arg(0), url_decode(cmd.arg(1))
        contact = self.contacts.get(handle)
        if contact is None or not key:
            return None
        props = dict(contact.properties)
        props[key] = value
        contact = dataclasses.replace(contact, properties=tuple(props.items()))
        self.contacts[handle] = contact
        return contact, key, value

    def apply_change(
        self, cmd: Command, our_handle: str | None, trid: int | None
    ) -> ListChanged | PeerViolation:
        """An ``ADC``/``REM`` from the server (an echo of ours when ``trid`` is given).

        ``our_handle`` is the contact our own pending command was about, if any.
        """
        lst = ListBit.parse_one(cmd.arg(0))
        if lst is None:
            return PeerViolation(f"{cmd.name} on unknown list {cmd.arg(0)!r}")
        added = cmd.name == "ADC"
        fields = {w[:1]: w[2:] for w in cmd.args[1:] if w[1:2] == "="}
        if added:
            handle = fields.get("N") or our_handle or ""
        else:
            target = cmd.arg(1)
            handle = target if "@" in target else (self.handle_for_guid(target) or our_handle or target)
        if not handle:
            return PeerViolation(f"{cmd.name} without a contact")
        old = self.contacts.get(handle.lower())
        friendly = url_decode(fields["F"]) if "F" in fields else None
        guid = fields.get("C") or (old.guid if old else None)
        lists = old.lists if old else ListBit(0)
        lists = lists | lst if added else lists & ~lst
        self.contacts[handle.lower()] = Contact(
            old.handle if old else handle,
            friendly or (old.friendly_name if old else handle),
            guid,
            lists,
            old.groups if old else (),
            old.properties if old else (),
        )
        return ListChanged(lst, handle, added, lists, friendly, guid, trid)
