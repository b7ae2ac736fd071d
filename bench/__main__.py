"""``python -m bench [--quick] [--json out.json] [--only NAME]``: the benchmark suite.

Starts its own Prosody (generational GC) on free loopback ports in a temp dir, measures the echo
ceiling, runs the registered scenarios, prints the table and writes the JSON report. Everything it
starts is stopped at the end, on error and on Ctrl-C.

Adding a scenario: write ``async def my_scenario(ctx: BenchContext) -> list[Row]`` and add it to
``SCENARIOS``; components it needs go in ``COMPONENTS`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.devtools.prosody import ComponentSpec, Prosody

from .ceiling import (
    BENCH_PASSWORD,
    ManagedProcess,
    closed_loop,
    connect_clients,
    echo_component,
    measure_ceiling,
    open_loop,
    start_process,
)
from .rawclient import RawClient
from .scenarios_convergence import scenario_msn_sms
from .scenarios_msn import scenario_msn_login_sync, scenario_msn_xmpp, scenario_xmpp_msn
from .scenarios_scale import scenario_growth, scenario_memory, scenario_startup
from .scenarios_sms import scenario_sms_xmpp, scenario_xmpp_sms
from .stats import Row, environment, print_table, sanitize, write_json

DOMAIN = "example.test"
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"

LIMITS_NOTE = (
    "note: in the gateway scenarios the carrier submit rate and the per-user message limits are "
    "lifted, so the figures measure the gateway itself, not its throttles."
)


def components(domain: str) -> list[ComponentSpec]:
    """The components the bench Prosody is configured with (secrets are fresh every run).

    Gateway scenarios add theirs here, e.g. ``ComponentSpec(f"sms.{domain}", secrets.token_hex(16))``
    (privileged by default, for roster/message/presence via XEP-0356).
    """
    return [
        echo_component(domain),
        ComponentSpec(f"sms.{domain}", secrets.token_hex(16)),
        ComponentSpec(f"msn.{domain}", secrets.token_hex(16)),
    ]


@dataclass(frozen=True)
class Sizes:
    """Run sizes; ``--quick`` shrinks them."""

    ceiling_n: int
    window: int
    clients: int
    latency_seconds: float
    single_n: int
    timeout: float


FULL = Sizes(ceiling_n=20_000, window=200, clients=2, latency_seconds=5.0, single_n=1_000, timeout=120.0)
QUICK = Sizes(ceiling_n=5_000, window=200, clients=2, latency_seconds=1.5, single_n=200, timeout=60.0)


@dataclass
class BenchContext:
    """What a scenario gets: the Prosody, the ceiling, run sizes and factories for clients and processes.

    Everything created through the factories is closed/stopped when the suite ends.
    """

    prosody: Prosody
    workdir: Path
    quick: bool
    sizes: Sizes
    stack: contextlib.AsyncExitStack
    ceiling: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)  # state scenarios hand on (e.g. a running world)
    _users: int = 0

    @property
    def domain(self) -> str:
        return self.prosody.domain

    @property
    def ceiling_throughput(self) -> float:
        """Echo round trips/s measured in this run (the denominator of every throughput ratio)."""
        return float(self.ceiling["throughput_per_s"])

    def ceiling_latency_ms(self, pct: str = "p50") -> float:
        return float(self.ceiling["latency"][f"{pct}_ms"])

    def component(self, prefix: str) -> ComponentSpec:
        """The configured component whose JID starts with ``prefix.`` (e.g. ``"sms"``)."""
        for c in self.prosody.components:
            if c.jid.startswith(prefix + "."):
                return c
        raise KeyError(f"no component {prefix}.{self.domain} in the bench Prosody config")

    async def clients(
        self, count: int, *, prefix: str | None = None, presence: bool = False
    ) -> list[RawClient]:
        """Register ``count`` fresh users and log them in with raw clients (closed at the end)."""
        if prefix is None:
            prefix = f"u{self._users}x"
            self._users += 1
        conns = await connect_clients(self.prosody, prefix, count, presence=presence)
        for c in conns:
            self.stack.push_async_callback(c.close)
        return conns

    async def client(self, user: str, *, presence: bool = False, resource: str = "bench") -> RawClient:
        """Log in an already registered ``user`` (see :meth:`register`)."""
        conn = await RawClient.connect(
            self.prosody.c2s_port, f"{user}@{self.domain}/{resource}", BENCH_PASSWORD, presence=presence
        )
        self.stack.push_async_callback(conn.close)
        return conn

    async def register(self, user: str, password: str = BENCH_PASSWORD) -> None:
        await asyncio.to_thread(self.prosody.register, user, password)

    async def process(
        self,
        argv: Sequence[str],
        name: str,
        *,
        ready_marker: str | None = "READY",
        ready_check: Callable[[], Awaitable[bool]] | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> ManagedProcess:
        """Start a child (the gateway, a fake SMSC, ...) in its own process; stopped at the end.

        Its output goes to ``workdir/<name>.log``.
        """
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        proc = await start_process(
            argv,
            name=name,
            log_path=self.workdir / f"{safe}.log",
            ready_marker=ready_marker,
            ready_check=ready_check,
            timeout=timeout,
            env=env,
        )
        self.stack.push_async_callback(proc.stop)
        return proc

    # the drivers, re-exported for scenarios
    closed_loop = staticmethod(closed_loop)
    open_loop = staticmethod(open_loop)


Scenario = Callable[[BenchContext], Awaitable[list[Row]]]


# --------------------------------------------------------------------------- scenarios


async def scenario_ceiling(ctx: BenchContext) -> list[Row]:
    s = ctx.sizes
    result = await measure_ceiling(
        ctx.prosody,
        s.ceiling_n,
        s.window,
        clients=s.clients,
        latency_seconds=s.latency_seconds,
        single_n=s.single_n,
        workdir=ctx.workdir,
        timeout=s.timeout,
    )
    ctx.ceiling = result
    lat = result["latency"]
    tp = result["throughput_per_s"]
    rows = [
        Row("ceiling", "echo throughput", tp, "msg/s", ceiling=tp),
        Row(
            "ceiling",
            f"round trip p50 @ {lat['offered_rate_per_s']:,.0f}/s",
            lat["p50_ms"],
            "ms",
            ceiling=lat["p50_ms"],
        ),
        Row("ceiling", "round trip p90", lat["p90_ms"], "ms", ceiling=lat["p90_ms"]),
        Row("ceiling", "round trip p99", lat["p99_ms"], "ms", ceiling=lat["p99_ms"]),
        Row(
            "ceiling",
            "round trip p50, one at a time",
            result["single"]["p50_ms"],
            "ms",
            ceiling=result["single"]["p50_ms"],
        ),
        Row(
            "ceiling",
            "round trip p99, one at a time",
            result["single"]["p99_ms"],
            "ms",
            ceiling=result["single"]["p99_ms"],
        ),
    ]
    us = result.get("component_cpu_us_per_msg")
    if us is not None:
        rows.append(Row("ceiling", "component CPU per echo", us, "µs"))
    comp_pct = result["cpu_throughput_run"].get("component", {}).get("cpu_pct")
    if comp_pct is not None:
        rows.append(Row("ceiling", "component CPU (throughput run)", comp_pct, "% core"))
    pro_pct = result["cpu_throughput_run"].get("prosody", {}).get("cpu_pct")
    if pro_pct is not None:
        rows.append(Row("ceiling", "Prosody CPU (throughput run)", pro_pct, "% core"))
    for run in ("throughput", "latency"):
        others = result[f"cpu_{run}_run"].get("others", {}).get("cpu_pct")
        if others is not None:
            rows.append(Row("ceiling", f"other processes' CPU ({run} run)", others, "% core"))
            if others > 20.0:
                ctx.notes.append(
                    f"warning: other processes used {others:.0f} % of a core during the ceiling's {run} "
                    "run; its figures are probably low (compare ratios within one run)."
                )
    return rows


SCENARIOS: dict[str, Scenario] = {
    # the ceiling always runs first: every other ratio is relative to it
    "ceiling": scenario_ceiling,
    "xmpp-sms": scenario_xmpp_sms,
    "sms-xmpp": scenario_sms_xmpp,
    "msn-login-sync": scenario_msn_login_sync,
    "xmpp-msn": scenario_xmpp_msn,
    "msn-xmpp": scenario_msn_xmpp,
    "msn-sms": scenario_msn_sms,
    # the scale scenarios share their running world: startup leaves it up for growth (in this order)
    "startup": scenario_startup,
    "growth": scenario_growth,
    "memory": scenario_memory,
}


# --------------------------------------------------------------------------- runner


async def run(names: Sequence[str], quick: bool, json_path: Path, keep: bool) -> int:
    sizes = QUICK if quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="passerelle-bench-"))
    prosody = Prosody(workdir / "prosody", DOMAIN, components(DOMAIN), generational_gc=True)
    rows: list[Row] = []
    details: dict[str, Any] = {}
    failures: dict[str, str] = {}
    meta: dict[str, Any] = {
        "env": environment(),
        "quick": quick,
        "sizes": sizes.__dict__,
        "scenarios": list(names),
        "prosody_gc": "generational",
    }
    started = time.perf_counter()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await asyncio.to_thread(prosody.start)
            stack.callback(prosody.stop)
            ctx = BenchContext(prosody, workdir, quick, sizes, stack)
            print(
                f"bench: Prosody on 127.0.0.1:{prosody.c2s_port} (c2s) / {prosody.component_port} "
                f"(components), generational GC; workdir {workdir}",
                flush=True,
            )
            print(LIMITS_NOTE, flush=True)
            for name in names:
                t0 = time.perf_counter()
                print(f"bench: running {name} ...", flush=True)
                try:
                    got = await SCENARIOS[name](ctx)
                except Exception as exc:  # one scenario failing must not hide the others
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    print(f"bench: {name} FAILED: {failures[name]}", file=sys.stderr, flush=True)
                    if name == "ceiling":
                        break  # nothing else is meaningful without it
                    continue
                rows.extend(got)
                print(f"bench: {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
            details = {"ceiling": ctx.ceiling, **ctx.details}
            meta["notes"] = [LIMITS_NOTE, *ctx.notes]
    finally:
        meta["duration_s"] = round(time.perf_counter() - started, 2)
        meta["env_after"] = {"loadavg": environment().get("loadavg")}
        meta["failures"] = failures
        if rows:
            print()
            print_table(rows)
            print()
            for note in meta.get("notes", [LIMITS_NOTE]):
                print(note)
        if rows or failures:
            write_json(json_path, rows, sanitize(details), sanitize(meta))
            print(f"bench: results written to {json_path}", flush=True)
        if keep or failures:
            print(f"bench: logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Passerelle benchmarks (loopback only)."
    )
    parser.add_argument("--quick", action="store_true", help="small runs (about 10 s), for a smoke check")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"report path (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable); the ceiling always runs first",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir with the Prosody and process logs"
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="give up on the whole suite after this")
    args = parser.parse_args(argv)
    names = ["ceiling"] + [n for n in (args.only or list(SCENARIOS)) if n != "ceiling"]
    try:
        return asyncio.run(_guarded(run(names, args.quick, args.json, args.keep), args.timeout))
    except TimeoutError:
        print(f"bench: gave up after {args.timeout} s", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130


async def _guarded(coro: Coroutine[Any, Any, int], timeout: float) -> int:
    """Run ``coro`` with an overall time limit; SIGTERM/SIGHUP cancel it (so clean-up runs)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # started in the background by a shell
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    return await asyncio.wait_for(coro, timeout)


if __name__ == "__main__":
    sys.exit(main())
