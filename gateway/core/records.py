"""The gateway's stored records as plain values: what storage gives and takes.

They live in the core (no I/O) so that transports, the transport contract and the bridge
can name them without importing a storage module; ``gateway.storage`` implements the
interfaces that store and read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.addressing import BareJid


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    jid: BareJid | None
    created: float
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Account:
    subscriber_id: int
    network: str
    legacy_id: str
    has_secret: bool
    created: float


@dataclass(frozen=True, slots=True)
class Contact:
    subscriber_id: int
    network: str
    legacy_id: str
    name: str
    groups: tuple[str, ...]
    list_bits: int
    phone: str = ""  # a linked E.164 number (from the network, or set by the operator)
    phone_manual: bool = False  # set with `passerelle contact link`: the network does not override it


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    network: str
    subscriber_id: int | None
    dedup_key: str
    destination: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt: float
    created: float
    expires: float
