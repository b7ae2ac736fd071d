"""``python -m bench.soak [--minutes 10] [--rate 20]``: a long steady run, watching memory.

It starts the world of ``python -m bench`` (its own Prosody with generational GC, the fake SMSC,
the fake MSN server and the scripted MSN peers as processes, and ``passerelle run`` with both
networks and convergence; see :mod:`bench.scenarios_convergence`) with two online subscribers
(raw XMPP clients, MSN account and number) and two away ones (MSN account and number, no XMPP
resource), and keeps a fixed load in every direction at once for N minutes, each direction on its
own fixed schedule (open loop) at ``--rate`` messages/s:

- ``xmpp-sms``: online clients → ``+E164@sms.<domain>`` (200 numbers) → submit_sm at the SMSC;
- ``sms-xmpp``: deliver_sm from 1,000 numbers to the online subscribers' numbers → their clients;
- ``xmpp-msn``: online clients → the 50 peers → the peers' switchboards;
- ``msn-xmpp``: the peers → the online subscribers → their clients;
- ``msn-sms``: the peers → the away subscribers → forwarded by SMS (submit_sm at the SMSC).

Every message carries a unique token; at the end (after the load, up to ``--drain`` seconds for
late arrivals, then a few seconds more for duplicates) each direction reports sent, delivered,
lost, duplicated and arrivals at the wrong end (e.g. an MSN message for an online subscriber
forwarded by SMS). Every ``--sample`` seconds the gateway's and Prosody's RSS and CPU are read
from ``/proc``. The table shows memory over time; the verdict fits a line to the gateway's RSS over
the second half of the load (once warm): its slope in KiB/min and per message, and "flat" when the
fitted growth over that half is under 1 % of the RSS or 512 KiB, whichever is larger. The default
is 10 minutes because the gateway's RSS keeps rising for about 4 minutes at the default rate (by
some 2 MiB, about SQLite's default page cache) before it levels off: a 5-minute run puts part of
that warm-up into its second half.

Results go to ``--json`` (default ``bench/soak.json``). Exit status 0 when every message arrived
exactly once and memory stayed flat, 1 otherwise, 2 on an error, 130 when interrupted. Like the
bench, it measures and reports: nothing of it runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.devtools.prosody import Prosody

from .__main__ import DOMAIN, FULL, BenchContext, _guarded, components
from .scenarios_convergence import ConvergenceWorld, start_convergence_world
from .scenarios_msn import PEERS, contact_jid, peer_handle
from .scenarios_sms import MO_SOURCES, destination_number
from .stats import cpu_seconds, environment, latency_summary_ms, rss_kib, sanitize

DEFAULT_JSON = Path(__file__).resolve().parent / "soak.json"
ONLINE, AWAY = 2, 2
REMOTE_WINDOW = 1000  # a bound on deliver_sm / MSN sends outstanding; the rate decides
FLAT_SHARE, FLAT_MIN_KIB = 0.01, 512.0
SETTLE_S = 5.0
SINKS = {
    "xmpp-sms": "smsc",
    "sms-xmpp": "client",
    "xmpp-msn": "peers",
    "msn-xmpp": "client",
    "msn-sms": "smsc",
}


@dataclass
class Flow:
    """One direction: its tokens (``tag`` + index), when each left and where each arrived."""

    name: str
    tag: str
    sent: int = 0
    send_times: list[float] = field(default_factory=list)
    arrivals: Counter[str] = field(default_factory=Counter)
    first_arrival: dict[str, float] = field(default_factory=dict)
    wrong_sink: int = 0
    remote: dict[str, Any] = field(default_factory=dict)  # the SMSC's or the peers' report
    again: dict[str, list[float]] = field(default_factory=dict)  # token -> times of its later arrivals

    def arrived(self, sink: str, token: str, t: float) -> None:
        if sink != SINKS[self.name]:
            self.wrong_sink += 1
        self.arrivals[token] += 1
        if token in self.first_arrival:
            self.again.setdefault(token, []).append(t)
        else:
            self.first_arrival[token] = t

    @property
    def delivered(self) -> int:
        return len(self.first_arrival)

    def summary(self) -> dict[str, Any]:
        tokens = [f"{self.tag}{i}" for i in range(self.sent)]
        rtts = [
            self.first_arrival[tok] - sent
            for tok, sent in zip(tokens, self.send_times, strict=False)
            if tok in self.first_arrival and sent > 0
        ]
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "lost": sum(1 for tok in tokens if tok not in self.first_arrival),
            "duplicated": sum(self.arrivals[tok] - 1 for tok in tokens if self.arrivals[tok] > 1),
            "wrong_sink": self.wrong_sink,
            "latency": {k: round(v, 3) for k, v in latency_summary_ms(rtts).items()},
            "duplicates_seen": self._duplicates(),
        }

    def _duplicates(self, limit: int = 20) -> list[dict[str, Any]]:
        """For a diagnosis: tokens that arrived more than once, when each copy came after sending."""
        out: list[dict[str, Any]] = []
        for token, later in list(self.again.items())[:limit]:
            i = int(token[len(self.tag) :])
            sent = self.send_times[i] if i < len(self.send_times) else math.nan
            copies = [self.first_arrival[token], *later]
            out.append({"token": token, "copies_after_s": [round(t - sent, 3) for t in copies]})
        return out


class Soak:
    def __init__(self, world: ConvergenceWorld, rate: float, seconds: float) -> None:
        self.world, self.rate, self.seconds = world, rate, seconds
        self.flows = {name: Flow(name, f"{name.replace('-', '')}{secrets.token_hex(2)}-") for name in SINKS}
        self.by_tag = {f.tag: f for f in self.flows.values()}
        self.samples: list[dict[str, Any]] = []

    def _dispatch(self, sink: str) -> Callable[[str, float], None]:
        def on_token(token: str, t: float) -> None:
            tag, dash, _ = token.partition("-")
            flow = self.by_tag.get(tag + dash)
            if flow is not None:
                flow.arrived(sink, token, t)

        return on_token

    def install(self) -> None:
        w = self.world
        smsc, peers, client = self._dispatch("smsc"), self._dispatch("peers"), self._dispatch("client")
        w.smsc_ctl.on_submit = lambda t, text: smsc(text.rsplit(" ", 1)[-1], t)  # forwards: "Peer: <token>"

        def on_event(kind: str, t: float, words: list[str]) -> None:
            if kind == "R":
                peers(words[-1], t)

        w.peers_ctl.on_event = on_event
        for c in w.clients:
            c.on_message = lambda _frm, _id, body, t: client(body, t)

    async def _xmpp_side(self, t0: float) -> None:
        """xmpp-sms and xmpp-msn on one schedule each, from the online clients."""
        w, perf = self.world, time.perf_counter
        out_sms, out_msn = self.flows["xmpp-sms"], self.flows["xmpp-msn"]
        total = int(self.rate * self.seconds)
        k = len(w.clients)
        i = 0
        while i < total:
            due = t0 + i / self.rate
            now = perf()
            if due > now:
                await asyncio.sleep(due - now)
                continue
            client = w.clients[i % k]
            for flow, to in (
                (out_sms, f"{destination_number(i % 200)}@{w.sms_jid}"),
                (out_msn, contact_jid(peer_handle((i // k) % PEERS), w.msn_jid)),
            ):
                token = f"{flow.tag}{i}"
                flow.send_times.append(perf())
                flow.sent += 1
                client.send_message(to, token, token)
            i += 1
            if i % 64 == 0:
                await asyncio.sleep(0)

    async def _remote(self, name: str) -> None:
        """sms-xmpp (the SMSC injects), msn-xmpp and msn-sms (the peers send), on their own schedule."""
        w, flow = self.world, self.flows[name]
        n = int(self.rate * self.seconds)
        timeout = self.seconds + 120.0
        if name == "sms-xmpp":
            result = await w.smsc_ctl.inject(
                timeout,
                n=n,
                rate=self.rate,
                window=REMOTE_WINDOW,
                tag=flow.tag,
                destinations=w.online_numbers,
                sources=MO_SOURCES,
                deliver_timeout=60.0,
            )
        else:
            targets = w.online_handles if name == "msn-xmpp" else w.away_handles
            result = await w.peers_ctl.request(
                "send",
                "SENT",
                timeout,
                n=n,
                rate=self.rate,
                window=REMOTE_WINDOW,
                tag=flow.tag,
                targets=targets,
            )
            if result.get("tag") != flow.tag:  # two sends ran at once: the other answer came first
                other = self.by_tag[str(result["tag"])]
                other.send_times, other.sent = list(result["send_times"]), int(result["n"])
                other.remote = {k: v for k, v in result.items() if k != "send_times"}
                return
        if not flow.remote:
            flow.send_times, flow.sent = list(result["send_times"]), int(result["n"])
            flow.remote = {k: v for k, v in result.items() if k != "send_times"}

    async def _sampler(self, t0: float, every: float, stop: asyncio.Event) -> None:
        w = self.world
        pids = {"gateway": w.gateway.pid, "prosody": w.prosody_pid}
        last_cpu = {k: cpu_seconds(p) if p else None for k, p in pids.items()}
        last_t = time.perf_counter()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            now = time.perf_counter()
            sample: dict[str, Any] = {"t_s": round(now - t0, 1)}
            for name, pid in pids.items():
                if pid is None:
                    continue
                cpu = cpu_seconds(pid)
                prev = last_cpu[name]
                sample[f"{name}_rss_kib"] = rss_kib(pid)
                sample[f"{name}_cpu_pct"] = (
                    round(100.0 * (cpu - prev) / (now - last_t), 1)
                    if cpu is not None and prev is not None
                    else None
                )
                last_cpu[name] = cpu
            sample["delivered"] = sum(f.delivered for f in self.flows.values())
            self.samples.append(sample)
            last_t = now
            if stop.is_set():
                return

    async def run(self, sample_every: float, drain: float) -> dict[str, Any]:
        self.install()
        stop = asyncio.Event()
        t0 = time.perf_counter() + 0.05
        sampler = asyncio.create_task(self._sampler(t0, sample_every, stop))
        remote = [asyncio.create_task(self._remote(n)) for n in ("sms-xmpp", "msn-xmpp", "msn-sms")]
        try:
            await self._xmpp_side(t0)
            load_end = time.perf_counter()
            await asyncio.gather(*remote)
            deadline = time.perf_counter() + drain
            while time.perf_counter() < deadline and any(f.delivered < f.sent for f in self.flows.values()):
                await asyncio.sleep(0.5)
            await asyncio.sleep(SETTLE_S)
        finally:
            stop.set()
            await sampler
            for task in remote:
                task.cancel()
        return {"load_s": round(load_end - t0, 2), "flows": {n: f.summary() for n, f in self.flows.items()}}


def fit_slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (y per x unit); nan with fewer than 3 points."""
    if len(points) < 3:
        return math.nan
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else math.nan


def verdict(samples: list[dict[str, Any]], load_s: float, total_rate: float) -> dict[str, Any]:
    """Memory over the second half of the load: slope, growth, flat or not."""
    out: dict[str, Any] = {}
    for proc in ("gateway", "prosody"):
        key = f"{proc}_rss_kib"
        pts = [
            (s["t_s"] / 60.0, float(s[key]))
            for s in samples
            if load_s / 2 <= s["t_s"] <= load_s and s.get(key)
        ]
        slope = fit_slope(pts)  # KiB per minute
        mean = sum(y for _, y in pts) / len(pts) if pts else math.nan
        growth = slope * (load_s / 2 / 60.0)
        limit = max(FLAT_MIN_KIB, FLAT_SHARE * mean)
        out[proc] = {
            "samples_in_second_half": len(pts),
            "slope_kib_per_min": round(slope, 1),
            "bytes_per_message": round(slope * 1024 / (total_rate * 60.0), 2) if total_rate else None,
            "fitted_growth_second_half_kib": round(growth, 1),
            "flat_limit_kib": round(limit, 1),
            "flat": bool(abs(growth) <= limit) if not math.isnan(growth) else None,
            "rss_first_kib": samples[0].get(key) if samples else None,
            "rss_last_kib": samples[-1].get(key) if samples else None,
        }
    return out


def _ms(value: float | None) -> float:
    return math.nan if value is None else value


def print_report(result: dict[str, Any], samples: list[dict[str, Any]], mem: dict[str, Any]) -> None:
    step = max(1, len(samples) // 24)
    shown = samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else [])
    print(
        f"\n{'time':>7}  {'gateway RSS':>12}  {'gateway CPU':>11}  {'Prosody RSS':>12}  {'Prosody CPU':>11}  "
        f"{'delivered':>9}"
    )
    for s in shown:
        g, p = s.get("gateway_rss_kib"), s.get("prosody_rss_kib")
        print(
            f"{s['t_s']:>6.0f}s  {(g or 0) / 1024:>8.1f} MiB  {s.get('gateway_cpu_pct') or 0:>9.1f} %  "
            f"{(p or 0) / 1024:>8.1f} MiB  {s.get('prosody_cpu_pct') or 0:>9.1f} %  {s['delivered']:>9,}"
        )
    print(
        f"\n{'direction':10} {'sent':>7} {'delivered':>9} {'lost':>5} {'dup':>4} {'wrong end':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    for name, f in result["flows"].items():
        lat = f["latency"]
        print(
            f"{name:10} {f['sent']:>7,} {f['delivered']:>9,} {f['lost']:>5} {f['duplicated']:>4} "
            f"{f['wrong_sink']:>9} {_ms(lat.get('p50_ms')):>7.2f} {_ms(lat.get('p99_ms')):>7.2f}"
        )
    for name, f in result["flows"].items():
        for dup in f["duplicates_seen"]:
            print(
                f"  {name} duplicate {dup['token']}: copies arrived {dup['copies_after_s']} s after sending"
            )
    print()
    for proc, v in mem.items():
        state = {True: "FLAT", False: "GROWING", None: "unknown (too few samples)"}[v["flat"]]
        print(
            f"{proc} memory over the second half of the load: {v['slope_kib_per_min']:+.1f} KiB/min "
            f"({v['bytes_per_message']:+.2f} bytes per message), fitted growth "
            f"{v['fitted_growth_second_half_kib']:+.0f} KiB (flat below {v['flat_limit_kib']:.0f} KiB): "
            f"{state}"
        )


async def soak(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="passerelle-soak-"))
    prosody = Prosody(workdir / "prosody", DOMAIN, components(DOMAIN), generational_gc=True)
    seconds = args.minutes * 60.0
    ok = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            await asyncio.to_thread(prosody.start)
            stack.callback(prosody.stop)
            ctx = BenchContext(prosody, workdir, False, FULL, stack)
            print(
                f"soak: {args.minutes:g} min at {args.rate:g} msg/s in each of {len(SINKS)} directions; "
                f"workdir {workdir}",
                flush=True,
            )
            world = await start_convergence_world(ctx, "soak", away=AWAY, online=ONLINE)
            stack.push_async_callback(world.stop)
            print("soak: world up (gateway, SMSC, MSN server, peers, clients); load starts", flush=True)
            run = Soak(world, args.rate, seconds)
            result = await run.run(args.sample, args.drain)
            samples = run.samples
            mem = verdict(samples, result["load_s"], args.rate * len(SINKS))
            result.update(
                samples=samples,
                memory=mem,
                errors_at_clients=sum(world.errors.values()),
                remote={n: f.remote for n, f in run.flows.items() if f.remote},
            )
        flows = result["flows"].values()
        exactly_once = all(f["lost"] == 0 and f["duplicated"] == 0 and f["wrong_sink"] == 0 for f in flows)
        ok = exactly_once and all(v["flat"] for v in mem.values() if v["flat"] is not None)
        print_report(result, samples, mem)
        print(f"every message arrived exactly once, at the right end: {'yes' if exactly_once else 'NO'}")
        doc = {
            "meta": {
                "env": environment(),
                "minutes": args.minutes,
                "rate_per_direction": args.rate,
                "online_subscribers": ONLINE,
                "away_subscribers": AWAY,
                "peers": PEERS,
            },
            **result,
        }
        Path(args.json).write_text(json.dumps(sanitize(doc), indent=2) + "\n", encoding="utf-8")
        print(f"soak: results written to {args.json}", flush=True)
    finally:
        if args.keep or not ok:
            print(f"soak: logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description="A steady mixed load, memory watched."
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s in each direction (default 20)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for late arrivals")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help=f"report path (default {DEFAULT_JSON})")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_guarded(soak(args), args.minutes * 60.0 + 900.0))
    except TimeoutError:
        print("soak: gave up (overall time limit)", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("soak: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
