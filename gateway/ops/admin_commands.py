"""The administrators' commands, independent of how they are asked for (XEP-0050 in
:mod:`gateway.ops.adhoc`). Each takes the running gateway, the component's network and
the submitted values, and returns a :data:`Result` (plain data, rendered elsewhere).

Message bodies are never shown: the outbox lists who, where and when, not what.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from gateway.addressing import E164, AddressError, BareJid
from gateway.bridge import Bridge
from gateway.config import Config, ConfigError
from gateway.core.actions import SendXmppPresence
from gateway.core.model import Presence, Show
from gateway.errors import UserError
from gateway.ops import status
from gateway.storage import Subscriber
from gateway.transport import NeedMore

OUTBOX_SHOWN = 50
SESSIONLESS = frozenset({"sms"})  # networks without per-user logins: nothing to disconnect


class Host(Protocol):
    """What the commands need of the running gateway (``gateway.ops.runtime.Operations``)."""

    @property
    def config(self) -> Config: ...

    @property
    def bridge(self) -> Bridge: ...

    async def reload(self) -> str: ...

    async def snapshot(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    type: Literal["info", "warn", "error"] = "info"


@dataclass(frozen=True, slots=True)
class Fields:
    """A result form of labelled values (``show`` one thing)."""

    title: str
    values: tuple[tuple[str, str, str], ...]  # var, label, value (may hold newlines)


@dataclass(frozen=True, slots=True)
class Table:
    """A result form with ``<reported/>`` columns and one ``<item/>`` per row."""

    title: str
    columns: tuple[tuple[str, str], ...]  # var, label
    rows: tuple[dict[str, str], ...]
    note: str = ""


Result = Note | Fields | Table


@dataclass(frozen=True, slots=True)
class Ask:
    """The one form a command asks for before it runs."""

    var: str
    label: str
    instructions: str


Run = Callable[[Host, str, dict[str, str]], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Command:
    node: str
    name: str
    run: Run
    ask: Ask | None = None


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


async def _subscriber(host: Host, ref: str) -> Subscriber:
    ref = ref.strip()
    region = host.config.sms.default_region if host.config.sms else None
    store = host.bridge.store
    try:
        if ref.startswith("+") or (ref[:1].isdigit() and "@" not in ref):
            sub = await store.subscriber_by_account("sms", str(E164.parse(ref, region)))
        else:
            sub = await store.subscriber_by_jid(BareJid.parse(ref))
    except AddressError as exc:
        raise UserError("bad-form", reason=f"{exc}.") from None
    if sub is None:
        raise UserError("no-such-item", reason=f"No subscriber {ref}.")
    return sub


# -- the commands --------------------------------------------------------------------------


async def show_status(host: Host, _network: str, _values: dict[str, str]) -> Result:
    return Note(status.render(await host.snapshot()))


async def list_subscribers(host: Host, _network: str, _values: dict[str, str]) -> Result:
    store = host.bridge.store
    accounts: dict[int, dict[str, str]] = {}
    for account in await store.accounts():
        accounts.setdefault(account.subscriber_id, {})[account.network] = account.legacy_id
    nets = sorted({n for a in accounts.values() for n in a})
    rows = tuple(
        {
            "jid": str(sub.jid) if sub.jid else "-",
            **{net: accounts.get(sub.id, {}).get(net, "-") for net in nets},
            "created": _when(sub.created),
        }
        for sub in await store.subscribers()
    )
    columns = (("jid", "JID"), *((net, net.upper()) for net in nets), ("created", "Created"))
    return Table("Subscribers", columns, rows, note=f"{len(rows)} subscribers")


async def show_subscriber(host: Host, _network: str, values: dict[str, str]) -> Result:
    bridge = host.bridge
    sub = await _subscriber(host, values.get("subscriber", ""))
    shown: list[tuple[str, str, str]] = [
        ("jid", "JID", str(sub.jid) if sub.jid else "-"),
        ("created", "Created", _when(sub.created)),
    ]
    for net in bridge.transports:
        account = await bridge.store.account(sub.id, net)
        if account is None:
            continue
        contacts = await bridge.store.contacts(sub.id, net)
        online = bridge.resources[net].resources(sub.jid) if sub.jid else ()
        lines = [
            f"account {account.legacy_id} (linked {_when(account.created)})",
            f"{len(contacts)} contacts",
            f"online resources: {', '.join(online) or 'none'}",
        ]
        if net == "sms" and host.config.sms is not None:
            now = time.time()
            hour, _ = await bridge.store.sms.usage(sub.id, now - status.HOUR)
            day, _ = await bridge.store.sms.usage(sub.id, now - status.DAY)
            lim = host.config.sms.limits
            sent = f"{hour}/{lim.per_user_per_hour} this hour, {day}/{lim.per_user_per_day} today"
            lines.append(f"SMS sent: {sent}")
        shown.append((net, net.upper(), "\n".join(lines)))
    return Fields(f"Subscriber {sub.jid or sub.id}", tuple(shown))


async def disconnect_user(host: Host, network: str, values: dict[str, str]) -> Result:
    bridge = host.bridge
    sub = await _subscriber(host, values.get("subscriber", ""))
    if await bridge.store.account(sub.id, network) is None:
        raise UserError("no-such-item", reason=f"{sub.jid or sub.id} has no {network} account.")
    await bridge.transports[network].stop_session(sub.id)
    if sub.jid is not None:
        # their next available presence logs them in again
        bridge.resources[network].forget(sub.jid)
        bridge.components[network].send_xmpp_presence(
            SendXmppPresence(sub.jid, None, "available", Presence(Show.XA, "Disconnected by the operator"))
        )
    return Note(
        f"{sub.jid or sub.id} was disconnected from {network}; they log in again when they next come online."
    )


async def resend_code(host: Host, network: str, values: dict[str, str]) -> Result:
    bridge = host.bridge
    try:
        jid = BareJid.parse(values.get("jid", "").strip())
    except AddressError as exc:
        raise UserError("bad-form", reason=f"{exc}.") from None
    pending = await bridge.store.sms.pending_code(str(jid))
    if pending is None:
        raise UserError("no-such-item", reason=f"No verification code is pending for {jid}.")
    # invalidate the pending code (and its once-a-minute guard), then send a fresh one
    await bridge.store.sms.put_code(str(jid), pending.msisdn, secrets.token_hex(8), 0.0)
    outcome = await bridge.transports[network].register(jid, None, {"phone": pending.msisdn})
    if isinstance(outcome, NeedMore):
        return Note(f"A new code was sent to {pending.msisdn} for {jid}.")
    return Note(f"{jid} is already linked to {pending.msisdn}.", "warn")


async def show_outbox(host: Host, _network: str, _values: dict[str, str]) -> Result:
    store = host.bridge.store
    now = time.time()
    items = await store.outbox_items()
    jids = {s.id: str(s.jid) if s.jid else f"#{s.id}" for s in await store.subscribers()}
    rows = tuple(
        {
            "id": str(item.id),
            "queue": item.network,
            "subscriber": jids.get(item.subscriber_id, "-") if item.subscriber_id else "-",
            "destination": item.destination,
            "state": item.state,
            "attempts": str(item.attempts),
            "age": f"{now - item.created:.0f}s",
            "next": f"in {max(item.next_attempt - now, 0):.0f}s",
        }
        for item in items[:OUTBOX_SHOWN]
    )
    columns = (
        ("id", "Id"),
        ("queue", "Queue"),
        ("subscriber", "Subscriber"),
        ("destination", "To"),
        ("state", "State"),
        ("attempts", "Attempts"),
        ("age", "Age"),
        ("next", "Next attempt"),
    )
    depth, oldest = await store.outbox_stats()
    note = f"{depth} messages" + (f", oldest {now - oldest:.0f}s" if oldest is not None else "")
    if depth > OUTBOX_SHOWN:
        note += f"; the first {OUTBOX_SHOWN} are shown"
    return Table("Outbox", columns, rows, note=note)


async def reload_config(host: Host, _network: str, _values: dict[str, str]) -> Result:
    try:
        return Note(await host.reload())
    except ConfigError as exc:
        return Note(f"not reloaded, the running configuration is kept: {exc}", "error")


SUBSCRIBER = Ask("subscriber", "Subscriber (JID or +E164 number)", "Which subscriber?")


def commands_for(network: str) -> tuple[Command, ...]:
    """The commands a network's component offers, in menu order."""
    found = [
        Command("status", "Gateway status", show_status),
        Command("list-subscribers", "List subscribers", list_subscribers),
        Command("show-subscriber", "Show a subscriber", show_subscriber, SUBSCRIBER),
    ]
    if network not in SESSIONLESS:
        found.append(
            Command(
                "disconnect-user",
                f"Disconnect a subscriber from {network.upper()}",
                disconnect_user,
                SUBSCRIBER,
            )
        )
    if network == "sms":
        found.append(
            Command(
                "resend-code",
                "Resend a verification code",
                resend_code,
                Ask("jid", "JID waiting for a code", "Whose verification code?"),
            )
        )
    found += [
        Command("outbox", "Show the outbox", show_outbox),
        Command("reload-config", "Reload the configuration", reload_config),
    ]
    return tuple(found)
