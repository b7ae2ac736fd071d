"""The live state of a running gateway, as data (``status --json``, metrics) and as a table.

:func:`collect` reads the bridge, its transports and the store; :func:`render` is pure.
Transport status dicts are whatever each transport's ``status()`` returns: known keys
get a readable line, the rest are shown as ``key=value``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from importlib import metadata
from typing import Any

from gateway.bridge import Bridge
from gateway.config import Config
from gateway.logs import current_level
from gateway.ops.rates import RateWindow, Totals

HOUR, DAY = 3600.0, 86400.0


def totals(bridge: Bridge) -> Totals:
    """The bridge's running counts as ``(network, direction) -> n``, every network present."""
    counts: dict[tuple[str, str], int] = {}
    for network in bridge.transports:
        counts[(network, "to_network")] = bridge.counters.to_network.get(network, 0)
        counts[(network, "to_xmpp")] = bridge.counters.to_xmpp.get(network, 0)
    return counts


def version() -> str:
    try:
        return metadata.version("passerelle")
    except metadata.PackageNotFoundError:
        return "unknown"


async def over_sms_limit(bridge: Bridge, config: Config, now: float) -> list[dict[str, Any]]:
    """Subscribers who may not send another SMS now: at their hourly or daily limit."""
    if config.sms is None or "sms" not in bridge.transports:
        return []
    limits = config.sms.limits
    found = []
    for account in await bridge.store.accounts("sms"):
        hour, _ = await bridge.store.sms.usage(account.subscriber_id, now - HOUR)
        if hour == 0:
            continue
        day, _ = await bridge.store.sms.usage(account.subscriber_id, now - DAY)
        if hour >= limits.per_user_per_hour or day >= limits.per_user_per_day:
            sub = await bridge.store.subscriber(account.subscriber_id)
            found.append(
                {
                    "jid": str(sub.jid) if sub and sub.jid else None,
                    "msisdn": account.legacy_id,
                    "last_hour": hour,
                    "per_user_per_hour": limits.per_user_per_hour,
                    "last_day": day,
                    "per_user_per_day": limits.per_user_per_day,
                }
            )
    return found


async def collect(
    bridge: Bridge, config: Config, rates: RateWindow, started: float, now: float | None = None
) -> dict[str, Any]:
    """Everything ``passerelle status`` shows, JSON-able."""
    now = time.time() if now is None else now
    base = bridge.status()
    depth, oldest = await bridge.store.outbox_stats()
    queues: dict[str, int] = {}
    for item in await bridge.store.outbox_items():
        queues[item.network] = queues.get(item.network, 0) + 1
    counts = totals(bridge)
    rates.sample(now, counts)
    return {
        "version": version(),
        "pid": os.getpid(),
        "started": started,
        "uptime_s": round(now - started, 1),
        "config": str(config.source) if config.source else None,
        "components": {
            name: {"jid": str(component.boundjid.bare), "connected": bool(base["components"].get(name))}
            for name, component in bridge.components.items()
        },
        "networks": base["transports"],
        "outbox": {
            "depth": depth,
            "oldest_age_s": round(now - oldest, 1) if oldest is not None else None,
            "queues": queues,
        },
        "messages_per_minute": rates.per_minute(now, counts),
        "totals": base["counters"],
        "subscribers": len(await bridge.store.subscribers()),
        "over_sms_limit": await over_sms_limit(bridge, config, now),
        "settings": settings(config),
    }


def settings(config: Config) -> dict[str, Any]:
    """The running values of what a reload can change (they may differ from the file)."""
    limits = config.sms.limits if config.sms else None
    return {
        "log_level": current_level(),
        "admins": [str(a) for a in config.xmpp.admins],
        "user_domains": list(config.xmpp.user_domains),
        "registration": config.xmpp.registration,
        "sms_limits": asdict(limits) if limits else None,
    }


# -- the human table ---------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 2 * 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _network_line(name: str, st: dict[str, Any]) -> str:
    parts = []
    shown: set[str] = set()
    if "smsc" in st:
        parts.append(f"SMSC {st['smsc']}")
        shown.add("smsc")
        if "in_flight" in st and "window" in st:
            parts.append(f"{st['in_flight']}/{st['window']} in flight (window)")
            shown |= {"in_flight", "window"}
    if "logged_in" in st:
        words = [f"{st.get('sessions', 0)} sessions", f"{st['logged_in']} logged in"]
        words += [f"{st[k]} {k}" for k in ("connecting", "failing") if k in st]
        parts.append(", ".join(words))
        shown |= {"sessions", "logged_in", "connecting", "failing"}
    rest = [f"{k}={v}" for k, v in st.items() if k not in shown]
    if rest:
        parts.append(" ".join(rest))
    return f"  {name:8} " + "; ".join(parts or ["-"])


def render(snap: dict[str, Any]) -> str:
    """The table ``passerelle status`` prints."""
    lines = [
        f"Passerelle {snap['version']}, pid {snap['pid']}, up {_duration(snap['uptime_s'])}"
        + (f", config {snap['config']}" if snap.get("config") else ""),
        "",
        "Components",
    ]
    for name, comp in snap["components"].items():
        state = "connected" if comp["connected"] else "DISCONNECTED"
        lines.append(f"  {name:8} {comp['jid']:32} {state}")
    lines += ["", "Networks"]
    lines += [_network_line(name, st) for name, st in snap["networks"].items()]
    outbox = snap["outbox"]
    queues = ", ".join(f"{q} {n}" for q, n in sorted(outbox["queues"].items()))
    lines += [
        "",
        f"Outbox     {outbox['depth']} messages, oldest {_duration(outbox['oldest_age_s'])}"
        + (f" ({queues})" if queues else ""),
        "",
        f"{'Messages/min':12} {'to network':>11} {'to XMPP':>9} {'failed (total)':>15}",
    ]
    failed = snap["totals"].get("failed", {})
    for name, rate in snap["messages_per_minute"].items():
        lines.append(
            f"  {name:10} {rate.get('to_network', 0.0):>11.1f} {rate.get('to_xmpp', 0.0):>9.1f}"
            f" {failed.get(name, 0):>15}"
        )
    running = snap.get("settings") or {}
    if running:
        limits = running.get("sms_limits")
        lines += [
            "",
            f"Running    log level {running['log_level']}; admins {', '.join(running['admins']) or 'none'}"
            + (
                f"; SMS limits {limits['per_user_per_hour']}/hour, {limits['per_user_per_day']}/day per "
                f"subscriber, {limits['global_per_day']}/day in all"
                if limits
                else ""
            ),
        ]
    over = snap["over_sms_limit"]
    lines += ["", f"Subscribers {snap['subscribers']}; over their SMS limit: {len(over) or 'none'}"]
    for row in over:
        lines.append(
            f"  {row['jid'] or '-'} ({row['msisdn']}): {row['last_hour']}/{row['per_user_per_hour']} "
            f"this hour, {row['last_day']}/{row['per_user_per_day']} today"
        )
    return "\n".join(lines)
