"""The convergence scenario ``msn-sms`` (MSN → SMS forward) and the world it shares with the
scale scenarios and the soak run: one gateway with both networks.

- the **gateway**: ``passerelle run`` with ``[sms]``, ``[msn]`` and ``[convergence]`` (the SMS
  config of :mod:`bench.scenarios_sms` plus the MSN sections of :mod:`bench.scenarios_msn`; the
  carrier rate, the per-user SMS limits and the forward loop breaker — at most
  ``max_forwards_per_minute`` forwards from one buddy — lifted as far as the config allows);
- the **SMSC** and the **MSN server** processes of those modules, and the scripted **MSN peers**;
- **away subscribers**: a linked MSISDN and an MSN account, no XMPP resource online, so the gateway
  keeps their MSN session up (``always_connected``) and forwards what their buddies write by SMS
  from the service number (``gateway/convergence.py``, as ``tests/e2e/test_convergence.py`` sets
  it up); they are added with the storage API (:mod:`bench.populate`), their first login syncs
  the peers into their roster;
- **online subscribers** (used by the soak run): the same plus a raw XMPP client online to both
  components, so MSN messages reach XMPP instead.

``msn-sms``: the peers send to the away subscribers over switchboards (``window`` sends awaiting
their ACK); a message is done when its unique token reaches the SMSC in a submit_sm
(``Peer: <token>``). Throughput: the closed-window run; latency: open loop at half that rate
(MSG written by the peer → submit_sm at the SMSC). Every token is checked: lost, duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ceiling import BENCH_PASSWORD, ManagedProcess
from .populate import Seed, populate_gateway, write_prosody_accounts
from .rawclient import RawClient
from .scenarios_msn import (
    MSN_DOMAIN,
    PEER_LATENCY_WINDOW,
    PEER_WINDOW,
    Control,
    _available,
    _fetch_roster,
    msn_sections,
    peer_handle,
    start_msn_peers,
    start_msn_server,
)
from .scenarios_sms import (
    SETTLE_S,
    Run,
    SmscControl,
    SmsWorld,
    _cli,
    _cpu_figures,
    _online,
    _passerelle,
    _size,
    start_smsc,
    write_gateway_config,
)
from .stats import CpuMeter, Row, Target, added_latency_rows

if TYPE_CHECKING:
    from .__main__ import BenchContext

PEERS = 50  # scripted MSN buddies; every subscriber has every peer on its list
AWAY = 4  # away subscribers in msn-sms (K × P conversations)
RATIO_TARGET = 0.4
MAX_FORWARDS_PER_MINUTE = 1000  # the config's upper bound for the loop breaker (default 10)
LOGIN_TIMEOUT_S = 60.0


def away_user(i: int) -> str:
    return f"away{i}"


def away_number(i: int) -> str:
    return f"+33696{i:06d}"


def online_user(i: int) -> str:
    return f"both{i}"


def online_number(i: int) -> str:
    return f"+33695{i:06d}"


def handle_of(user: str) -> str:
    return f"{user}@{MSN_DOMAIN}"


def convergence_sections(max_forwards_per_minute: int = MAX_FORWARDS_PER_MINUTE) -> str:
    return f"""
[convergence]
always_connected = true
max_forwards_per_minute = {max_forwards_per_minute}
"""


def both_networks_config(
    ctx: BenchContext,
    path: Path,
    *,
    smsc_port: int,
    system_id: str,
    password: str,
    ns_port: int,
    http_port: int,
) -> None:
    """The gateway's config with both networks and convergence (secrets from the bench Prosody)."""
    sms, msn = ctx.component("sms"), ctx.component("msn")
    write_gateway_config(
        path,
        domain=ctx.domain,
        component_port=ctx.prosody.component_port,
        sms_jid=sms.jid,
        secret=sms.secret,
        smsc_port=smsc_port,
        system_id=system_id,
        password=password,
        extra=msn_sections(msn_jid=msn.jid, secret=msn.secret, ns_port=ns_port, http_port=http_port)
        + convergence_sections(),
    )


async def start_gateway(
    ctx: BenchContext, name: str, config: Path, smsc: SmscControl, timeout: float = 60.0
) -> ManagedProcess:
    """``passerelle run``, ready once both components are connected and the SMSC sees a bind."""
    log_name = f"{name}-gateway"
    log_path = ctx.workdir / f"{log_name}.log"
    wanted = [f"component {ctx.component(n).jid} connected" for n in ("sms", "msn")]

    async def ready() -> bool:
        try:
            text = log_path.read_text(errors="replace")
        except OSError:
            return False
        if "gateway running" not in text or any(w not in text for w in wanted):
            return False
        return int((await smsc.stats())["bound"]) >= 1

    return await ctx.process(
        [*_passerelle(), "-c", str(config), "-v", "run"],
        log_name,
        ready_marker=None,
        ready_check=ready,
        timeout=timeout,
    )


def peers_spec(count: int = PEERS) -> list[dict[str, str]]:
    return [{"handle": peer_handle(j), "password": f"peer pw {j}"} for j in range(count)]


def users_json(subscribers: list[tuple[str, str]], peers: list[dict[str, str]]) -> dict[str, Any]:
    """The MSN server's accounts: the peers (with every subscriber on their lists) and the
    subscribers ``(handle, password)`` with every peer on theirs."""
    lists = ["FL", "AL", "RL"]
    to_subscribers = [{"handle": h, "lists": lists} for h, _pw in subscribers]
    to_peers = [{"handle": p["handle"], "lists": lists, "groups": ["Peers"]} for p in peers]
    users: list[dict[str, Any]] = [
        {**p, "friendly_name": f"Peer {j}", "contacts": to_subscribers} for j, p in enumerate(peers)
    ]
    users += [
        {"handle": h, "password": pw, "friendly_name": h.split("@")[0], "contacts": to_peers}
        for h, pw in subscribers
    ]
    return {"users": users}


@dataclass
class ConvergenceWorld:
    """The gateway with both networks, the SMSC, the MSN server, the peers and the subscribers."""

    name: str
    gateway: ManagedProcess
    smsc: ManagedProcess
    smsc_ctl: SmscControl
    server: ManagedProcess
    server_ctl: Control
    peers: ManagedProcess
    peers_ctl: Control
    prosody_pid: int | None
    away_handles: list[str]
    away_numbers: list[str]
    online_users: list[str]
    online_handles: list[str]
    online_numbers: list[str]
    sms_jid: str
    msn_jid: str
    clients: list[RawClient] = field(default_factory=list)  # the online subscribers', in order
    errors: Counter[str] = field(default_factory=Counter)  # error messages the clients got, by id
    stopped: bool = False

    def sms_world(self) -> SmsWorld:
        """The online subscribers as an :class:`SmsWorld`, for the SMS relay drivers."""
        return SmsWorld(
            self.name,
            self.sms_jid,
            self.gateway,
            self.smsc,
            self.smsc_ctl,
            self.clients,
            self.online_numbers,
            self.prosody_pid,
            self.errors,
        )

    def meter(self) -> CpuMeter:
        return CpuMeter(
            {
                "gateway": self.gateway.pid,
                "prosody": self.prosody_pid,
                "smsc": self.smsc.pid,
                "msn_server": self.server.pid,
                "msn_peers": self.peers.pid,
                "load_client": os.getpid(),
            }
        )

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.gateway.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.gateway.proc.send_signal(signal.SIGTERM)  # the gateway stops cleanly on SIGTERM
        await self.gateway.stop()
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        for ctl in (self.peers_ctl, self.server_ctl):
            await ctl.close()
        await self.smsc_ctl.close()
        for proc in (self.peers, self.server, self.smsc):
            await proc.stop()


@dataclass
class Fakes:
    """A world's fake MSN server and fake SMSC, and the gateway config for both networks."""

    server: ManagedProcess
    server_ctl: Control
    ns_port: int
    http_port: int
    smsc: ManagedProcess
    smsc_ctl: SmscControl
    config: Path


async def start_fakes(
    ctx: BenchContext,
    name: str,
    users_file: Path,
    stack: contextlib.AsyncExitStack,
    *,
    msn_timeout: float = 60.0,
) -> Fakes:
    """Start the fake MSN server (seeded from ``users_file``) and the fake SMSC, both stopped
    by ``stack``, and write the gateway config for both networks with its database created."""
    server, server_ctl, ns_port, http_port = await start_msn_server(
        ctx, name, users_file, timeout=msn_timeout
    )
    stack.push_async_callback(server.stop)
    stack.push_async_callback(server_ctl.close)
    smsc, smsc_ctl, smpp_port, system_id, smpp_password = await start_smsc(ctx, name)
    stack.push_async_callback(smsc.stop)
    stack.push_async_callback(smsc_ctl.close)
    config = ctx.workdir / name / "passerelle.toml"
    both_networks_config(
        ctx,
        config,
        smsc_port=smpp_port,
        system_id=system_id,
        password=smpp_password,
        ns_port=ns_port,
        http_port=http_port,
    )
    await _cli(config, "db", "upgrade")
    return Fakes(server, server_ctl, ns_port, http_port, smsc, smsc_ctl, config)


async def wait_logged_in(server_ctl: Control, handles: list[str], since: int, timeout: float) -> float:
    """Wait until every handle's session set its status (CHG) at the MSN server; the time of the last."""
    last = 0.0
    for handle in handles:
        t, _ = await server_ctl.wait_event("P", handle, since, timeout)
        last = max(last, t)
    return last


async def start_convergence_world(
    ctx: BenchContext,
    name: str,
    *,
    away: int,
    online: int,
    peers: int = PEERS,
) -> ConvergenceWorld:
    """Start everything; returns once every session is logged in and the clients are online."""
    base = ctx.workdir / name
    base.mkdir(parents=True, exist_ok=True)
    away_users = [away_user(i) for i in range(away)]
    online_users_ = [online_user(i) for i in range(online)]
    passwords = {u: secrets.token_hex(6) for u in away_users + online_users_}
    peer_list = peers_spec(peers)
    users_file = base / "msn-users.json"
    users_file.write_text(
        json.dumps(users_json([(handle_of(u), passwords[u]) for u in away_users + online_users_], peer_list)),
        encoding="utf-8",
    )
    await asyncio.to_thread(write_prosody_accounts, ctx.prosody, away_users + online_users_, BENCH_PASSWORD)

    stack = contextlib.AsyncExitStack()
    try:
        fakes = await start_fakes(ctx, name, users_file, stack)
        server, server_ctl, smsc, smsc_ctl, config = (
            fakes.server, fakes.server_ctl, fakes.smsc, fakes.smsc_ctl, fakes.config
        )  # fmt: skip
        peers_proc, peers_ctl = await start_msn_peers(ctx, name, peer_list, fakes.ns_port, fakes.http_port)
        stack.push_async_callback(peers_proc.stop)
        stack.push_async_callback(peers_ctl.close)
        seeds = [
            Seed(f"{u}@{ctx.domain}", away_number(i), handle_of(u), passwords[u])
            for i, u in enumerate(away_users)
        ]
        seeds += [
            Seed(f"{u}@{ctx.domain}", online_number(i), handle_of(u), passwords[u])
            for i, u in enumerate(online_users_)
        ]
        await populate_gateway(base / "passerelle.db", base / "secret.key", seeds)
        mark = len(server_ctl.events)
        gateway = await start_gateway(ctx, name, config, smsc_ctl)
    except BaseException:
        await stack.aclose()
        raise
    stack.pop_all()
    world = ConvergenceWorld(
        name,
        gateway,
        smsc,
        smsc_ctl,
        server,
        server_ctl,
        peers_proc,
        peers_ctl,
        ctx.prosody.process.pid if ctx.prosody.process else None,
        [handle_of(u) for u in away_users],
        [away_number(i) for i in range(away)],
        online_users_,
        [handle_of(u) for u in online_users_],
        [online_number(i) for i in range(online)],
        ctx.component("sms").jid,
        ctx.component("msn").jid,
    )
    try:
        # every subscriber is away at the start: the gateway logs them all in (always connected)
        await wait_logged_in(server_ctl, world.away_handles + world.online_handles, mark, LOGIN_TIMEOUT_S)
        for user in online_users_:
            client = await _online(ctx, user, world.sms_jid, world.errors)
            world.clients.append(client)
            await _fetch_roster(client)
            _available(client, world.msn_jid)
        await asyncio.sleep(1.0)  # the first logins' roster syncs and the online clients settle
    except BaseException:
        await world.stop()
        raise
    return world


# --------------------------------------------------------------------------- runs


async def forward_run(world: ConvergenceWorld, n: int, *, rate: float, window: int, timeout: float) -> Run:
    """MSN → SMS: the peers send ``n`` messages to the away subscribers; done at the SMSC."""
    tag = secrets.token_hex(3) + "-"
    received_at: dict[str, float] = {}
    duplicates = 0
    done = asyncio.get_running_loop().create_future()

    def on_submit(t: float, text: str) -> None:
        nonlocal duplicates
        token = text.rsplit(" ", 1)[-1]
        if not token.startswith(tag):
            return
        if token in received_at:
            duplicates += 1
            return
        received_at[token] = t
        if len(received_at) >= n and not done.done():
            done.set_result(None)

    world.smsc_ctl.on_submit = on_submit
    try:
        result = await world.peers_ctl.request(
            "send",
            "SENT",
            timeout,
            n=n,
            rate=rate,
            window=window,
            tag=tag,
            targets=world.away_handles,
        )
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            timed_out = True
        await asyncio.sleep(SETTLE_S)
    finally:
        world.smsc_ctl.on_submit = None
    send_times: list[float] = result["send_times"]
    rtts = [received_at[f"{tag}{i}"] - t for i, t in enumerate(send_times) if f"{tag}{i}" in received_at]
    first = float(result["first_send"])
    last = max(received_at.values()) if received_at else time.perf_counter()
    extra = {
        "send_statuses": result["statuses"],
        "acked_throughput_per_s": round(n / max(result["last_ack"] - first, 1e-9), 1),
    }
    return Run(
        n,
        len(received_at),
        max(last - first, 1e-9),
        rtts,
        duplicates,
        timed_out,
        rate or None,
        float(result["send_lag_max_s"]),
        extra,
        tag,
    )


def _note(ctx: BenchContext) -> None:
    note = (
        "msn-sms: the gateway runs with both networks and [convergence] (always_connected, "
        f"max_forwards_per_minute {MAX_FORWARDS_PER_MINUTE}, the config's upper bound); the away "
        "subscribers have no XMPP resource online, so their MSN sessions forward by SMS."
    )
    if note not in ctx.notes:
        ctx.notes.append(note)


async def _measure(
    world: ConvergenceWorld, ctx: BenchContext, run: Callable[..., Awaitable[Run]]
) -> tuple[Run, Run, Run, dict[str, Any], dict[str, Any]]:
    sizes = ctx.sizes
    warm = await run(world, 200 if ctx.quick else 500, rate=0, window=PEER_WINDOW, timeout=sizes.timeout)
    if warm.received == 0:
        raise RuntimeError(f"nothing arrived: {warm.summary()}\n{world.gateway.log_tail()}")
    n = _size(warm.throughput, 3.0 if ctx.quick else 10.0, 500, sizes.ceiling_n // 4)
    meter = world.meter()
    meter.start()
    tp = await run(world, n, rate=0, window=PEER_WINDOW, timeout=sizes.timeout)
    cpu = _cpu_figures(meter.stop(), tp.received)
    if tp.timed_out:  # stalled: a latency run would only wait out its timeout as well
        raise RuntimeError(f"the throughput run stalled: {tp.summary()}\n{world.gateway.log_tail()}")
    rate = max(1.0, tp.throughput / 2.0)
    meter.start()
    lat = await run(
        world,
        max(100, int(rate * sizes.latency_seconds)),
        rate=rate,
        window=PEER_LATENCY_WINDOW,
        timeout=sizes.timeout,
    )
    lat_cpu = meter.stop()
    return warm, tp, lat, cpu, lat_cpu


async def scenario_msn_sms(ctx: BenchContext) -> list[Row]:
    """MSN → SMS: the peers process → switchboard → gateway (convergence) → submit_sm at the SMSC."""
    _note(ctx)
    world = await start_convergence_world(ctx, "msn-sms", away=AWAY, online=0)
    try:
        warm, tp, lat, cpu, lat_cpu = await _measure(world, ctx, forward_run)
        runs = (warm, tp, lat)
        lost = sum(r.sent - r.received for r in runs)
        dups = sum(r.duplicates for r in runs)
        smsc_stats = await world.smsc_ctl.stats()
        server_stats = await world.server_ctl.stats()
        rss = world.gateway.rss_kib()
    finally:
        await world.stop()
    ctx.details["msn-sms"] = {
        "throughput": tp.summary(),
        "latency": lat.summary(),
        "warm_up": warm.summary(),
        **cpu,
        "cpu_latency_run": lat_cpu,
        "gateway_rss_kib": rss,
        "smsc": smsc_stats,
        "msn_server": server_stats,
        "sent_total": sum(r.sent for r in runs),
        "lost": lost,
        "duplicated": dups,
        "away_subscribers": AWAY,
        "peers": PEERS,
        "peer_window": PEER_WINDOW,
        "max_forwards_per_minute": MAX_FORWARDS_PER_MINUTE,
    }
    s = lat.summary()
    rows = [
        Row(
            "msn-sms",
            "throughput (MSG → submit_sm)",
            tp.throughput,
            "msg/s",
            ceiling=ctx.ceiling_throughput,
            target=Target("ratio>=", RATIO_TARGET),
        ),
        Row(
            "msn-sms",
            f"latency p50 @ {lat.offered_rate or 0:,.0f}/s",
            s["p50_ms"],
            "ms",
            ceiling=ctx.ceiling_latency_ms("p50"),
        ),
        Row("msn-sms", "latency p99", s["p99_ms"], "ms", ceiling=ctx.ceiling_latency_ms("p99")),
        *added_latency_rows("msn-sms", s, ctx.ceiling_latency_ms("p50"), ctx.ceiling_latency_ms("p99")),
        Row("msn-sms", "lost", lost, "msg", target=Target("<=", 0)),
        Row("msn-sms", "duplicated", dups, "msg", target=Target("<=", 0)),
    ]
    us = cpu.get("gateway_cpu_us_per_msg")
    if us is not None:
        rows.append(
            Row(
                "msn-sms",
                "gateway CPU per message",
                us,
                "µs",
                ceiling=ctx.ceiling.get("component_cpu_us_per_msg"),
            )
        )
    pct = cpu.get("gateway_cpu_pct")
    if pct is not None:
        rows.append(Row("msn-sms", "gateway CPU (throughput run)", pct, "% core"))
    return rows


if __name__ == "__main__":
    sys.exit("run the benchmarks with python -m bench --only msn-sms")
