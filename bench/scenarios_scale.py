"""The scale scenarios: ``startup``, ``growth`` and ``memory``.

A **scale world** of size N is one gateway with both networks (the config of
:mod:`bench.scenarios_convergence`), the SMSC and the MSN server processes, and:

- N **idle subscribers** ``idle<i>@<domain>``, each with a linked MSISDN and an MSN account whose
  list holds 100 contacts (offline: they are not accounts of the MSN server), and no XMPP resource
  online, so the gateway keeps every one of their MSN sessions up (``always_connected``). They are
  in the gateway's database with their contacts as an earlier sync left them (written through
  ``gateway.storage`` by :mod:`bench.populate`), so a start is a restart: each login finds its
  list unchanged and pushes no roster item (checked: no idle user gets a stored roster in
  Prosody). Their Prosody accounts are written as files (``prosodyctl`` takes ~0.5 s a user);
- ``ACTIVE`` **active subscribers** (SMS only, online with raw clients), who carry the relay load.

Scenarios (they share the running world through ``ctx.shared``: ``startup`` leaves its world up for
``growth``, which measures that size first):

- ``startup``: N = 2,000 (``--quick``: 200) idle subscribers × 100 contacts. The time from
  starting ``passerelle run`` until the MSN server has seen every session set its status (the CHG
  that ends an MSN login), the gateway's CPU time and RSS then; the gateway's own count of logged-in
  sessions is read over its admin socket (``status``) as a cross-check.
- ``growth``: with 10, 200 and 2,000 (``--quick``: 10, 200) idle subscribers logged in, the
  XMPP → SMS and SMS → XMPP relay of the active subscribers: throughput and gateway CPU per message
  (it must stay flat as subscribers are added), and the gateway's idle CPU. Then roster work against
  changes: one subscriber with 1,000 contacts (first login and sync, then re-logins with 0, 10 and
  100 contacts changed at the MSN server in between): roster items pushed, time until the last one
  arrived (or, with no change, until the session is back), gateway and Prosody CPU.
- ``memory``: (gateway RSS with the largest number of idle sessions − RSS with 10) / the difference
  in sessions, each read 5 s after the last login, before any relay load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config import load_without_secrets
from gateway.ops.admin_socket import AdminSocketError, NotRunning, request

from .ceiling import BENCH_PASSWORD, ManagedProcess
from .populate import Seed, SeedContact, populate_gateway, prosody_roster_files, write_prosody_accounts
from .rawclient import RawClient
from .scenarios_convergence import start_fakes, start_gateway
from .scenarios_msn import (
    MSN_DOMAIN,
    RELOGIN_SETTLE_S,
    Control,
    MsnWorld,
    RosterWatch,
    _available,
    _fetch_roster,
    _sync_users,
    _unavailable,
    contact_handle,
    contact_jid,
    start_world,
)
from .scenarios_sms import (
    MO_WINDOW,
    SmscControl,
    SmsWorld,
    _cli,
    _cpu_figures,
    _online,
    _size,
    mo_run,
    mt_closed_loop,
    subscriber_number,
)
from .stats import CpuMeter, Row, Target, cpu_seconds, rss_kib

if TYPE_CHECKING:
    from .__main__ import BenchContext

CONTACTS = 100  # per idle subscriber
GROUPS = 10
ACTIVE = 4
STARTUP_SIZE, STARTUP_SIZE_QUICK = 2000, 200
GROWTH_SIZES, GROWTH_SIZES_QUICK = (10, 200, 2000), (10, 200)
STARTUP_TARGET_S = 60.0
MEMORY_TARGET_KIB = 200.0
FLAT_TARGET = 1.25  # "flat": CPU per message at the largest size within 25 % (run-to-run noise) of 10
SETTLE_S = 5.0  # after the last login, before reading the idle RSS
IDLE_S = 5.0  # idle CPU reading
ROSTER_SIZES = (100, 1000)  # contacts of the two subscribers of the roster part of growth
ROSTER_CHANGES = (0, 10, 100)  # re-logins of the larger one
LIST_BITS = 11  # FL | AL | RL: "both"


def idle_user(i: int) -> str:
    return f"idle{i}"


def idle_handle(i: int) -> str:
    return f"idle{i}@{MSN_DOMAIN}"


def idle_number(i: int) -> str:
    return f"+33697{i:06d}"


def buddy_handle(j: int) -> str:
    return f"buddy{j}@{MSN_DOMAIN}"


def _idle_contacts() -> tuple[list[dict[str, Any]], tuple[SeedContact, ...]]:
    """The idle subscribers' MSN list, as the server seeds it and as the gateway stores it after a
    sync (lower-cased handle; the friendly name of a non-account is its handle)."""
    server = [
        {"handle": buddy_handle(j), "lists": LIST_BITS, "groups": [f"Group {j % GROUPS}"]}
        for j in range(CONTACTS)
    ]
    stored = tuple(
        SeedContact(buddy_handle(j).lower(), buddy_handle(j).lower(), (f"Group {j % GROUPS}",), LIST_BITS)
        for j in range(CONTACTS)
    )
    return server, stored


@dataclass
class ScaleWorld:
    size: int
    gateway: ManagedProcess
    smsc: ManagedProcess
    smsc_ctl: SmscControl
    server: ManagedProcess
    server_ctl: Control
    sms_jid: str
    numbers: list[str]
    prosody_pid: int | None
    record: dict[str, Any]
    clients: list[RawClient] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # error messages the clients got, by id
    stopped: bool = False

    def sms_world(self) -> SmsWorld:
        """The active subscribers as an :class:`SmsWorld`, for the SMS relay drivers."""
        return SmsWorld(
            f"scale-{self.size}",
            self.sms_jid,
            self.gateway,
            self.smsc,
            self.smsc_ctl,
            self.clients,
            self.numbers,
            self.prosody_pid,
            self.errors,
        )

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.gateway.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.gateway.proc.send_signal(signal.SIGTERM)
        await self.gateway.stop(timeout=30.0)  # stopping 2,000 sessions takes a while
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        await self.server_ctl.close()
        await self.smsc_ctl.close()
        await self.server.stop()
        await self.smsc.stop()


@dataclass
class _Worlds:
    """The scale world running now (one at a time) and what each size measured at its start."""

    current: ScaleWorld | None = None
    records: dict[int, dict[str, Any]] = field(default_factory=dict)

    async def close(self) -> None:
        if self.current is not None:
            await self.current.stop()
            self.current = None


def _worlds(ctx: BenchContext) -> _Worlds:
    found = ctx.shared.get("scale")
    if not isinstance(found, _Worlds):
        found = ctx.shared["scale"] = _Worlds()
        ctx.stack.push_async_callback(found.close)
    return found


async def scale_world(ctx: BenchContext, size: int) -> ScaleWorld:
    """The world with ``size`` idle subscribers: the running one, or a new one (stopping the old)."""
    worlds = _worlds(ctx)
    if worlds.current is not None and worlds.current.size == size and not worlds.current.stopped:
        return worlds.current
    await worlds.close()
    world = await _start(ctx, size)
    worlds.current = world
    worlds.records[size] = world.record
    return world


async def _start(ctx: BenchContext, size: int) -> ScaleWorld:
    name = f"scale-{size}"
    base = ctx.workdir / name
    base.mkdir(parents=True, exist_ok=True)
    perf = time.perf_counter
    t_setup = perf()
    idle = [idle_user(i) for i in range(size)]
    active = [f"act{size}x{i}" for i in range(ACTIVE)]
    numbers = [subscriber_number(i + 1) for i in range(ACTIVE)]
    passwords = [secrets.token_hex(6) for _ in idle]
    server_list, stored_list = _idle_contacts()
    users_file = base / "msn-users.json"
    users_file.write_text(
        json.dumps(
            {
                "users": [
                    {
                        "handle": idle_handle(i),
                        "password": pw,
                        "friendly_name": idle_user(i),
                        "contacts": server_list,
                    }
                    for i, pw in enumerate(passwords)
                ]
            }
        ),
        encoding="utf-8",
    )
    await asyncio.to_thread(write_prosody_accounts, ctx.prosody, idle + active, BENCH_PASSWORD)

    stack = contextlib.AsyncExitStack()
    try:
        fakes = await start_fakes(ctx, name, users_file, stack, msn_timeout=180.0)
        server, server_ctl, smsc, smsc_ctl, config = (
            fakes.server, fakes.server_ctl, fakes.smsc, fakes.smsc_ctl, fakes.config
        )  # fmt: skip
        await asyncio.gather(
            *(
                _cli(config, "user", "add", f"{u}@{ctx.domain}", "--msisdn", n)
                for u, n in zip(active, numbers, strict=True)
            )
        )
        seeds = [
            Seed(f"{u}@{ctx.domain}", idle_number(i), idle_handle(i), passwords[i], stored_list)
            for i, u in enumerate(idle)
        ]
        populated = await populate_gateway(base / "passerelle.db", base / "secret.key", seeds)
        setup_s = perf() - t_setup

        wanted = {idle_handle(i).lower() for i in range(size)}
        up: dict[str, float] = {}
        first_login: list[float] = []
        all_up = asyncio.get_running_loop().create_future()

        def on_event(kind: str, t: float, words: list[str]) -> None:
            handle = words[0].lower() if words else ""
            if kind == "L" and not first_login:
                first_login.append(t)
            if kind == "P" and handle in wanted and words[1] == "NLN" and handle not in up:
                up[handle] = t
                if len(up) >= size and not all_up.done():
                    all_up.set_result(None)

        server_ctl.on_event = on_event
        t0 = perf()
        gateway = await start_gateway(ctx, name, config, smsc_ctl, timeout=120.0)
        stack.push_async_callback(gateway.stop)
        t_ready = perf()
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(all_up), 120.0 if ctx.quick else 300.0)
        except TimeoutError:
            timed_out = True
        server_ctl.on_event = None
        t_up = max(up.values()) if up else perf()
        cpu_up = cpu_seconds(gateway.pid)
        rss_up = gateway.rss_kib()
        await asyncio.sleep(SETTLE_S)
        meter = CpuMeter({"gateway": gateway.pid})
        meter.start()
        await asyncio.sleep(IDLE_S)
        idle_cpu = meter.stop().get("gateway", {}).get("cpu_pct")
        rss_idle = gateway.rss_kib()
        status = await _gateway_status(config)
        rosters = await asyncio.to_thread(prosody_roster_files, ctx.prosody, idle)
        record: dict[str, Any] = {
            "size": size,
            "contacts_each": CONTACTS,
            "setup_s": round(setup_s, 2),
            "populate": populated,
            "gateway_ready_s": round(t_ready - t0, 3),
            "first_msn_login_s": round(first_login[0] - t0, 3) if first_login else None,
            "all_sessions_up_s": round(t_up - t0, 3),
            "sessions_up": len(up),
            "timed_out": timed_out,
            "gateway_cpu_s_until_up": cpu_up,
            "gateway_rss_kib_when_up": rss_up,
            "gateway_rss_kib_idle": rss_idle,
            "gateway_idle_cpu_pct": idle_cpu,
            "prosody_rss_kib": rss_kib(ctx.prosody.process.pid) if ctx.prosody.process else None,
            "msn_server_rss_kib": server.rss_kib(),
            "gateway_status_msn": status,
            "idle_users_with_a_stored_roster": rosters,
        }
        world = ScaleWorld(
            size,
            gateway,
            smsc,
            smsc_ctl,
            server,
            server_ctl,
            ctx.component("sms").jid,
            numbers,
            ctx.prosody.process.pid if ctx.prosody.process else None,
            record,
        )
        stack.pop_all()
    except BaseException:
        await stack.aclose()
        raise
    try:
        for user in active:
            world.clients.append(await _online(ctx, user, world.sms_jid, world.errors))
    except BaseException:
        await world.stop()
        raise
    return world


async def _gateway_status(config_path: Path) -> dict[str, Any] | None:
    """The MSN part of ``passerelle status`` (over the admin socket), or None."""
    try:
        socket_path = load_without_secrets(config_path).admin.socket
        answer = await asyncio.to_thread(request, socket_path, "status", 30.0)
    except (NotRunning, AdminSocketError, OSError) as exc:
        return {"error": str(exc)}
    networks: dict[str, Any] = answer.get("status", {}).get("networks", {})
    return networks.get("msn")


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


# --------------------------------------------------------------------------- startup


async def scenario_startup(ctx: BenchContext) -> list[Row]:
    size = STARTUP_SIZE_QUICK if ctx.quick else STARTUP_SIZE
    world = await scale_world(ctx, size)
    r = world.record
    ctx.details["startup"] = r
    label = f"{size:,} × {CONTACTS}"
    status = r.get("gateway_status_msn") or {}
    rows = [
        Row(
            "startup",
            f"all sessions up, {label}",
            r["all_sessions_up_s"],
            "s",
            target=Target("<=", STARTUP_TARGET_S),
            note="timed out" if r["timed_out"] else "",
        ),
        Row(
            "startup",
            "  sessions up at the MSN server",
            r["sessions_up"],
            "sessions",
            target=Target(">=", size),
        ),
        Row(
            "startup",
            "  logged in, as the gateway counts",
            float(status.get("logged_in", math.nan)),
            "sessions",
            target=Target(">=", size),
        ),
        Row("startup", "  gateway ready (components connected)", r["gateway_ready_s"], "s"),
        Row("startup", "  first MSN login", _num(r["first_msn_login_s"]), "s"),
        Row("startup", "  gateway CPU until all up", _num(r["gateway_cpu_s_until_up"]), "s"),
        Row("startup", "  gateway RSS, all up", (r["gateway_rss_kib_when_up"] or 0) / 1024.0, "MiB"),
        Row(
            "startup",
            "  roster pushes at start-up (users with a stored roster)",
            r["idle_users_with_a_stored_roster"],
            "users",
            target=Target("<=", 0),
        ),
    ]
    return rows


# --------------------------------------------------------------------------- growth


async def _relay_cost(ctx: BenchContext, world: ScaleWorld) -> dict[str, Any]:
    sms = world.sms_world()
    sizes = ctx.sizes
    warm = await mt_closed_loop(sms, 300, sizes.window, sizes.timeout)
    if warm.received == 0:
        raise RuntimeError(f"no message reached the SMSC: {warm.summary()}\n{world.gateway.log_tail()}")
    n = _size(warm.throughput, 3.0 if ctx.quick else 6.0, 500, sizes.ceiling_n // 4)
    meter = sms.meter()
    meter.start()
    out = await mt_closed_loop(sms, n, sizes.window, sizes.timeout)
    out_cpu = _cpu_figures(meter.stop(), out.received)
    meter.start()
    inb = await mo_run(sms, n, rate=0, window=MO_WINDOW, timeout=sizes.timeout)
    in_cpu = _cpu_figures(meter.stop(), inb.received)
    return {
        "xmpp_sms": out.summary(),
        "xmpp_sms_cpu": out_cpu,
        "sms_xmpp": inb.summary(),
        "sms_xmpp_cpu": in_cpu,
        "lost": (out.sent - out.received) + (inb.sent - inb.received),
        "duplicated": out.duplicates + inb.duplicates,
        "idle_cpu_pct": world.record.get("gateway_idle_cpu_pct"),
    }


async def _login_and_count(
    world: MsnWorld, client: RawClient, watch: RosterWatch, expected: int, timeout: float
) -> dict[str, Any]:
    """Available presence, then wait for ``expected`` roster items (or, for 0, the online contact's
    presence: the session is back); count pushes for a while longer. Time and CPU of the login."""
    meter = world.meter()
    watch.reset(expected)
    meter.start()
    t0 = time.perf_counter()
    _available(client, world.msn_jid)
    timed_out = False
    try:
        await asyncio.wait_for((watch.reached if expected else watch.presence_seen).wait(), timeout)
    except TimeoutError:
        timed_out = True
    end = watch.last if expected else (watch.presences[0] if watch.presences else math.nan)
    await asyncio.sleep(RELOGIN_SETTLE_S)  # late or extra pushes still count
    cpu = meter.stop()
    return {
        "pushed": watch.items,
        "done_s": round(end - t0, 4),
        "timed_out": timed_out,
        "gateway_cpu_ms": cpu.get("gateway", {}).get("cpu_s", math.nan) * 1000.0,
        "prosody_cpu_ms": cpu.get("prosody", {}).get("cpu_s", math.nan) * 1000.0,
        "cpu": cpu,
    }


async def _roster_changes(ctx: BenchContext) -> tuple[list[Row], dict[str, Any]]:
    """Subscribers with 100 and 1,000 contacts: first sync, then re-logins with 0 changes (both)
    and with 10 and 100 changes (1,000 contacts)."""
    users_json, subscribers = _sync_users(ROSTER_SIZES, prefix="grow")
    online = contact_handle(0)  # on every list, logged in by the peers process
    world = await start_world(
        ctx, "growth-roster", users_json, subscribers, [{"handle": online, "password": "pw0"}]
    )
    details: dict[str, Any] = {}
    rows: list[Row] = []
    try:
        for n, (user, handle, _pw) in zip(ROSTER_SIZES, subscribers, strict=True):
            client = await ctx.client(user, presence=False)
            world.clients.append(client)
            watch = RosterWatch(client, world.msn_jid, contact_jid(online, world.msn_jid))
            await _fetch_roster(client)
            first = await _login_and_count(world, client, watch, n, max(120.0, n * 0.1))
            details[f"{n}_first_login"] = first
            rows.append(
                Row(
                    "growth",
                    f"roster: first login + sync, {n:,} contacts",
                    first["done_s"],
                    "s",
                    note="timed out" if first["timed_out"] else "",
                )
            )
            for k in ROSTER_CHANGES if n == max(ROSTER_SIZES) else (0,):
                await asyncio.sleep(1.0)
                mark = len(world.server_ctl.events)
                _unavailable(client, world.msn_jid)
                await world.server_ctl.wait_event("D", handle, mark, 15.0)
                await asyncio.sleep(0.5)
                if k:
                    await world.server_ctl.request(
                        "change", "CHANGED", 10.0, handle=handle, count=k, group=f"Moved {k}"
                    )
                r = details[f"{n}_relogin_{k}_changes"] = await _login_and_count(
                    world, client, watch, k, 60.0
                )
                label = f"{n:,} contacts, {k} change{'s' if k != 1 else ''}"
                rows += [
                    Row(
                        "growth",
                        f"roster: re-login, {label}: pushes",
                        r["pushed"],
                        "items",
                        target=Target("<=", k),
                    ),
                    Row(
                        "growth",
                        "  done",
                        r["done_s"] * 1000.0,
                        "ms",
                        note="timed out"
                        if r["timed_out"]
                        else ("last push" if k else "contact's presence back"),
                    ),
                    Row("growth", "  gateway CPU", r["gateway_cpu_ms"], "ms"),
                    Row("growth", "  Prosody CPU", r["prosody_cpu_ms"], "ms"),
                ]
    finally:
        await world.stop()
    big = max(ROSTER_SIZES)
    none, most = (
        details.get(f"{big}_relogin_0_changes"),
        details.get(f"{big}_relogin_{max(ROSTER_CHANGES)}_changes"),
    )
    if none and most:
        extra = (most["prosody_cpu_ms"] - none["prosody_cpu_ms"]) / max(ROSTER_CHANGES)
        rows.append(
            Row(
                "growth",
                f"roster: Prosody CPU per changed item ({big:,} contacts)",
                extra,
                "ms",
                note="mod_privilege saves the whole roster per item",
            )
        )
    return rows, details


async def scenario_growth(ctx: BenchContext) -> list[Row]:
    worlds = _worlds(ctx)
    sizes = list(GROWTH_SIZES_QUICK if ctx.quick else GROWTH_SIZES)
    running = worlds.current.size if worlds.current is not None else None
    order = sorted(sizes, key=lambda n: (n != running, -n))  # the running world first, then downwards
    relay: dict[int, dict[str, Any]] = {}
    try:
        for n in order:
            relay[n] = await _relay_cost(ctx, await scale_world(ctx, n))
    finally:
        await worlds.close()
    rows: list[Row] = []
    for n in sorted(relay):
        r = relay[n]
        out_us, in_us = (
            r["xmpp_sms_cpu"]["gateway_cpu_us_per_msg"],
            r["sms_xmpp_cpu"]["gateway_cpu_us_per_msg"],
        )
        rows += [
            Row(
                "growth",
                f"{n:,} subscribers: XMPP → SMS throughput",
                r["xmpp_sms"]["throughput_per_s"],
                "msg/s",
                ceiling=ctx.ceiling_throughput,
            ),
            Row("growth", "  XMPP → SMS gateway CPU per message", _num(out_us), "µs"),
            Row(
                "growth",
                "  SMS → XMPP throughput",
                r["sms_xmpp"]["throughput_per_s"],
                "msg/s",
                ceiling=ctx.ceiling_throughput,
            ),
            Row("growth", "  SMS → XMPP gateway CPU per message", _num(in_us), "µs"),
            Row("growth", "  gateway idle CPU", _num(r["idle_cpu_pct"]), "% core"),
            Row("growth", "  lost / duplicated", r["lost"] + r["duplicated"], "msg", target=Target("<=", 0)),
        ]
    lo, hi = min(relay), max(relay)
    for key, what in (("xmpp_sms_cpu", "XMPP → SMS"), ("sms_xmpp_cpu", "SMS → XMPP")):
        a, b = relay[lo][key]["gateway_cpu_us_per_msg"], relay[hi][key]["gateway_cpu_us_per_msg"]
        if a and b:
            rows.append(
                Row(
                    "growth",
                    f"{what} CPU per message, {hi:,} vs {lo:,} subscribers",
                    b / a,
                    "x",
                    target=Target("<=", FLAT_TARGET),
                    note="flat: within 25 %",
                )
            )
    roster_rows, roster = await _roster_changes(ctx)
    ctx.details["growth"] = {
        "relay": {str(n): relay[n] for n in sorted(relay)},
        "roster": roster,
        "worlds": {str(n): worlds.records.get(n) for n in sorted(relay)},
    }
    return rows + roster_rows


# --------------------------------------------------------------------------- memory


async def scenario_memory(ctx: BenchContext) -> list[Row]:
    worlds = _worlds(ctx)
    big = STARTUP_SIZE_QUICK if ctx.quick else STARTUP_SIZE
    small = min(GROWTH_SIZES)
    try:
        for n in (
            n
            for n in sorted({small, big}, key=lambda s: s != (worlds.current.size if worlds.current else 0))
            if n not in worlds.records
        ):
            await scale_world(ctx, n)
    finally:
        await worlds.close()
    lo, hi = worlds.records[small], worlds.records[big]
    rss_lo, rss_hi = lo["gateway_rss_kib_idle"], hi["gateway_rss_kib_idle"]
    per = (rss_hi - rss_lo) / (big - small) if rss_lo and rss_hi else math.nan
    ctx.details["memory"] = {
        "small": small,
        "big": big,
        "rss_small_kib": rss_lo,
        "rss_big_kib": rss_hi,
        "kib_per_session": per,
        "prosody_rss_kib": hi.get("prosody_rss_kib"),
        "msn_server_rss_kib": hi.get("msn_server_rss_kib"),
    }
    return [
        Row("memory", f"gateway RSS, {small:,} idle sessions", (rss_lo or 0) / 1024.0, "MiB"),
        Row("memory", f"gateway RSS, {big:,} idle sessions", (rss_hi or 0) / 1024.0, "MiB"),
        Row(
            "memory",
            "per idle subscriber session",
            per,
            "KiB",
            target=Target("<=", MEMORY_TARGET_KIB),
            note=f"({big:,} − {small:,} sessions)",
        ),
    ]
