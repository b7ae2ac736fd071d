"""Accounts and contact lists of the fake MSN server (:mod:`.fake_server`); no I/O.

Seeded from code or JSON::

    {"users": [{"handle": "alice@example.com", "password": "pw", "friendly_name": "Alice",
                "phones": {"PHM": "+33612345678"}, "blp": "AL",
                "contacts": [{"handle": "bob@example.com", "lists": ["FL", "AL"],
                              "groups": ["Friends"]}]}]}

``lists`` is a list of names or an integer mask. Putting someone on FL also puts the owner on
that person's RL, as the real server maintains it; give ``PL`` explicitly to seed a pending
contact (mask 19).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .status import ListBit, Status

_NS = uuid.UUID("6f1c3a52-7d0e-4c1e-9a43-0b4b1d2f9e10")


def guid_for(name: str) -> str:
    """A stable guid for a handle or group name (so seeds and tests can predict them)."""
    return str(uuid.uuid5(_NS, name.lower()))


@dataclass
class ListEntry:
    mask: ListBit = field(default_factory=lambda: ListBit(0))
    groups: list[str] = field(default_factory=list)  # group guids


@dataclass
class FakeUser:
    handle: str
    password: str
    friendly_name: str
    phones: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # guid -> name
    lists: dict[str, ListEntry] = field(default_factory=dict)  # lower handle -> entry
    blp: str = "AL"
    gtc: str = "A"
    psm: str = ""
    # live state, maintained by the server
    status: Status = Status.FLN
    caps: int = 0

    @property
    def guid(self) -> str:
        return guid_for(self.handle)

    @property
    def key(self) -> str:
        return self.handle.lower()

    def entry(self, handle: str) -> ListEntry:
        return self.lists.setdefault(handle.lower(), ListEntry())

    def mask_for(self, handle: str) -> ListBit:
        found = self.lists.get(handle.lower())
        return found.mask if found else ListBit(0)

    def allows(self, watcher: str) -> bool:
        """Whether ``watcher`` may see this user's presence (BL, then AL, then BLP)."""
        mask = self.mask_for(watcher)
        if mask & ListBit.BL:
            return False
        return bool(mask & ListBit.AL) or self.blp == "AL"

    def visible_status(self, watcher: str) -> Status:
        """The status ``watcher`` sees: FLN when hidden, offline or not allowed."""
        if not self.status.is_online or not self.allows(watcher):
            return Status.FLN
        return self.status

    def prune(self) -> None:
        for key in [k for k, e in self.lists.items() if not e.mask]:
            del self.lists[key]


def _mask(value: Any) -> ListBit:
    if isinstance(value, int):
        return ListBit(value & 31)
    mask = ListBit(0)
    for name in value:
        bit = ListBit.parse_one(str(name))
        if bit is None:
            raise ValueError(f"unknown list {name!r}")
        mask |= bit
    return mask


class Directory:
    """All accounts of the fake server."""

    def __init__(self) -> None:
        self.users: dict[str, FakeUser] = {}

    def get(self, handle: str) -> FakeUser | None:
        return self.users.get(handle.lower())

    def add_user(
        self,
        handle: str,
        password: str,
        friendly_name: str | None = None,
        *,
        contacts: Iterable[Mapping[str, Any]] = (),
        phones: Mapping[str, str] | None = None,
        blp: str = "AL",
        psm: str = "",
    ) -> FakeUser:
        """Create (or replace) an account and its lists; see the module docstring."""
        user = FakeUser(handle, password, friendly_name or handle, dict(phones or {}), blp=blp, psm=psm)
        self.users[user.key] = user
        for contact in contacts:
            other = str(contact["handle"])
            entry = user.entry(other)
            entry.mask = _mask(contact.get("lists", ["FL", "AL"]))
            for group_name in contact.get("groups", ()):
                gid = guid_for(f"{handle}/{group_name}")
                user.groups[gid] = str(group_name)
                entry.groups.append(gid)
        self._link_reverse_lists()
        return user

    def _link_reverse_lists(self) -> None:
        for owner in self.users.values():
            for key, entry in owner.lists.items():
                other = self.users.get(key)
                if other and entry.mask & ListBit.FL:
                    back = other.entry(owner.handle)
                    if not back.mask & (ListBit.RL | ListBit.PL):
                        back.mask |= ListBit.RL

    def load_json(self, data: Mapping[str, Any]) -> None:
        for item in data.get("users", ()):
            self.add_user(
                str(item["handle"]),
                str(item["password"]),
                item.get("friendly_name"),
                contacts=item.get("contacts", ()),
                phones=item.get("phones"),
                blp=str(item.get("blp", "AL")),
                psm=str(item.get("psm", "")),
            )

    @classmethod
    def from_file(cls, path: str | Path) -> Directory:
        directory = cls()
        directory.load_json(json.loads(Path(path).read_text(encoding="utf-8")))
        return directory
