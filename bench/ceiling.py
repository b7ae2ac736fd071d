"""The echo ceiling: what Prosody plus a slixmpp component can do on this machine, in this run.

A slixmpp ``ComponentXMPP`` that answers every message with the same body and id (from and to
swapped) runs in its own process (``python -m bench.ceiling --serve-component ...``), the way the
gateway runs as its own process. Raw clients (:mod:`bench.rawclient`) drive it through a Prosody
started with ``gc = { mode = "generational" }``:

- throughput: ``n`` messages pipelined with ``window`` in flight (closed loop: each reply lets the
  same client send the next message), round trips counted at the client, in messages/s;
- latency: round-trip p50/p90/p99 at a fixed offered rate of half that throughput (open loop:
  messages go out on a schedule, whether or not earlier replies came back).

The drivers (:func:`closed_loop`, :func:`open_loop`) and the process helper
(:func:`start_process`) are reused by the gateway scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from gateway.devtools.prosody import ComponentSpec, Prosody

from .rawclient import MessageHandler, RawClient
from .stats import CpuMeter, latency_summary_ms, rss_kib

Destination = str | Callable[[int], str]
"""Where message ``i`` goes: one JID for all, or a function of the message index."""

Match = Literal["body", "id"]

BENCH_PASSWORD = "bench-pw"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def echo_component(domain: str, secret: str | None = None) -> ComponentSpec:
    """The ComponentSpec to put in the Prosody config for the echo ceiling (not privileged)."""
    return ComponentSpec(f"echo.{domain}", secret or secrets.token_hex(16), privileged=False)


# --------------------------------------------------------------------------- drivers


@dataclass
class RunResult:
    """One closed- or open-loop run, as seen by the load clients."""

    sent: int
    received: int
    elapsed_s: float
    rtts_s: list[float] = field(repr=False)
    timed_out: bool = False
    offered_rate: float | None = None
    send_lag_max_s: float = 0.0

    @property
    def throughput(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sent": self.sent,
            "received": self.received,
            "lost": self.sent - self.received,
            "elapsed_s": round(self.elapsed_s, 4),
            "throughput_per_s": round(self.throughput, 1),
            "timed_out": self.timed_out,
        }
        if self.offered_rate is not None:
            out["offered_rate_per_s"] = round(self.offered_rate, 1)
            out["send_lag_max_ms"] = round(self.send_lag_max_s * 1000.0, 3)
        out.update({k: round(v, 4) for k, v in latency_summary_ms(self.rtts_s).items()})
        return out


def _destination(to: Destination) -> Callable[[int], str]:
    if isinstance(to, str):
        return lambda _i: to
    return to


class _Tracker:
    """Pending tokens and round trips shared by the clients of one run."""

    def __init__(self, expected: int, match: Match) -> None:
        self.pending: dict[str, float] = {}
        self.rtts: list[float] = []
        self.last_recv = 0.0
        self.expected = expected
        self.by_body = match == "body"
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tag = secrets.token_hex(3) + "-"

    def received(self, msg_id: str, body: str, now: float) -> bool:
        sent_at = self.pending.pop(body if self.by_body else msg_id, None)
        if sent_at is None:
            return False  # not ours (a late reply of an earlier run, a notice, ...)
        self.rtts.append(now - sent_at)
        self.last_recv = now
        if len(self.rtts) >= self.expected and not self.done.done():
            self.done.set_result(None)
        return True


@contextlib.contextmanager
def _handlers(clients: Sequence[RawClient], make: Callable[[RawClient], MessageHandler]) -> Any:
    saved = [c.on_message for c in clients]
    for c in clients:
        c.on_message = make(c)
    try:
        yield
    finally:
        for c, h in zip(clients, saved, strict=True):
            c.on_message = h


async def closed_loop(
    clients: Sequence[RawClient],
    to: Destination,
    n: int,
    window: int,
    *,
    timeout: float = 120.0,
    match: Match = "body",
) -> RunResult:
    """Send ``n`` messages with at most ``window`` in flight, spread over ``clients``.

    Every message carries a unique token as both body and id; a reply carrying the same token
    (in the body, or the id with ``match="id"``) completes it and lets the same client send the
    next one. Elapsed time runs from the first send to the last reply.
    """
    if not clients or n <= 0 or window <= 0:
        raise ValueError("need clients, n > 0 and window > 0")
    dest = _destination(to)
    tr = _Tracker(n, match)
    tag = tr.tag
    pending = tr.pending
    perf = time.perf_counter
    sent = 0

    def send_one(client: RawClient) -> None:
        nonlocal sent
        i = sent
        sent += 1
        token = f"{tag}{i}"
        pending[token] = perf()
        client.send_message(dest(i), token, token)

    def make(client: RawClient) -> MessageHandler:
        def on_message(_frm: str, msg_id: str, body: str, now: float) -> None:
            if tr.received(msg_id, body, now) and sent < n:
                send_one(client)

        return on_message

    with _handlers(clients, make):
        t0 = perf()
        for j in range(min(window, n)):
            send_one(clients[j % len(clients)])
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(tr.done), timeout)
        except TimeoutError:
            timed_out = True
        end = tr.last_recv if not timed_out else perf()
    return RunResult(sent, len(tr.rtts), max(end - t0, 1e-9), tr.rtts, timed_out)


async def open_loop(
    clients: Sequence[RawClient],
    to: Destination,
    rate: float,
    count: int,
    *,
    timeout: float = 120.0,
    grace: float = 5.0,
    match: Match = "body",
) -> RunResult:
    """Offer ``count`` messages at ``rate``/s on a fixed schedule (round-robin over ``clients``).

    Round trips are timed from the moment each message is handed to the socket. The asyncio
    timer resolution is about 1 ms, so messages due in the same millisecond leave together;
    ``send_lag_max_s`` says how far behind the schedule the sender ever fell.
    """
    if not clients or rate <= 0 or count <= 0:
        raise ValueError("need clients, rate > 0 and count > 0")
    dest = _destination(to)
    tr = _Tracker(count, match)
    tag = tr.tag
    pending = tr.pending
    perf = time.perf_counter
    interval = 1.0 / rate
    lag = 0.0

    def make(_client: RawClient) -> MessageHandler:
        def on_message(_frm: str, msg_id: str, body: str, now: float) -> None:
            tr.received(msg_id, body, now)

        return on_message

    with _handlers(clients, make):
        t0 = perf() + 0.001
        deadline = t0 + timeout
        i = 0
        burst = 0
        nclients = len(clients)
        while i < count:
            now = perf()
            if now > deadline:
                break
            due = t0 + i * interval
            if due > now:
                burst = 0
                await asyncio.sleep(due - now)
                continue
            lag = max(lag, now - due)
            token = f"{tag}{i}"
            pending[token] = now
            clients[i % nclients].send_message(dest(i), token, token)
            i += 1
            burst += 1
            if burst >= 64:  # far behind schedule: still let replies in
                burst = 0
                await asyncio.sleep(0)
        sent = i
        tr.expected = sent
        if len(tr.rtts) >= sent and not tr.done.done():
            tr.done.set_result(None)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(tr.done), max(0.1, min(grace, deadline + grace - perf())))
        except TimeoutError:
            timed_out = True
        end = tr.last_recv if tr.rtts else perf()
    return RunResult(sent, len(tr.rtts), max(end - t0, 1e-9), tr.rtts, timed_out, rate, lag)


# --------------------------------------------------------------------------- processes


@dataclass
class ManagedProcess:
    """A child process started by the benchmark; stdout and stderr go to ``log_path``."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int | None:
        return rss_kib(self.proc.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def stop(self, timeout: float = 5.0) -> int | None:
        """Close its stdin (our children exit on EOF), then SIGTERM, then SIGKILL."""
        proc = self.proc
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    proc.stdin.close()
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
                try:
                    await asyncio.wait_for(proc.wait(), timeout if sig != signal.SIGKILL else 5.0)
                    break
                except TimeoutError:
                    continue
        if self._drain is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 1.0)
        self._log.close()
        return proc.returncode


async def start_process(
    argv: Sequence[str],
    *,
    name: str,
    log_path: Path,
    ready_marker: str | None = "READY",
    ready_check: Callable[[], Awaitable[bool]] | None = None,
    timeout: float = 20.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` in its own session and wait until it is ready.

    Ready means: a line containing ``ready_marker`` appeared on its stdout or stderr (merged), or
    ``ready_check()`` returned true (polled every 50 ms), whichever is configured. The child's
    ``PYTHONPATH`` gets the repository root so ``python -m bench...`` works from anywhere.
    """
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), full_env.get("PYTHONPATH")) if p)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=full_env,
        cwd=str(cwd or _REPO_ROOT),
        start_new_session=True,
    )
    mp = ManagedProcess(name, proc, log_path, log)
    ready = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            log.write(line)
            log.flush()
            if ready_marker is not None and not ready.done() and ready_marker.encode() in line:
                ready.set_result(True)
        if not ready.done():
            ready.set_result(False)

    mp._drain = asyncio.create_task(drain(), name=f"drain {name}")
    try:
        async with asyncio.timeout(timeout):
            if ready_marker is not None:
                ok = await asyncio.shield(ready)
            else:
                ok = False
                while proc.returncode is None:
                    if ready_check is not None and await ready_check():
                        ok = True
                        break
                    await asyncio.sleep(0.05)
        if not ok:
            raise RuntimeError(f"{name} exited before it was ready:\n{mp.log_tail()}")
    except BaseException as exc:
        await mp.stop(1.0)
        if isinstance(exc, TimeoutError):
            raise RuntimeError(f"{name} not ready within {timeout} s:\n{mp.log_tail()}") from exc
        raise
    return mp


async def start_echo_component(prosody: Prosody, spec: ComponentSpec, log_path: Path) -> ManagedProcess:
    argv = [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--serve-component",
        "--port",
        str(prosody.component_port),
        "--jid",
        spec.jid,
        "--secret",
        spec.secret,
    ]
    return await start_process(argv, name=f"echo component {spec.jid}", log_path=log_path)


async def connect_clients(
    prosody: Prosody, prefix: str, count: int, *, presence: bool = False
) -> list[RawClient]:
    """Register ``prefix0..`` on ``prosody`` and log each in with a raw client."""
    users = [f"{prefix}{i}" for i in range(count)]
    for u in users:
        await asyncio.to_thread(prosody.register, u, BENCH_PASSWORD)
    return list(
        await asyncio.gather(
            *(
                RawClient.connect(
                    prosody.c2s_port, f"{u}@{prosody.domain}/bench", BENCH_PASSWORD, presence=presence
                )
                for u in users
            )
        )
    )


# --------------------------------------------------------------------------- the ceiling


async def measure_ceiling(
    prosody: Prosody,
    n: int = 20_000,
    window: int = 200,
    *,
    clients: int = 2,
    latency_seconds: float = 5.0,
    component: ComponentSpec | None = None,
    workdir: Path | None = None,
    single_n: int = 1_000,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Measure the echo ceiling on a running ``prosody`` (which must list the echo component).

    Returns ``throughput_per_s``, ``latency`` (p50/p90/p99 in ms at half that rate),
    ``single`` (round trips one message at a time), CPU figures of Prosody, the component and
    the load client, and the raw run summaries.
    """
    spec = component or next((c for c in prosody.components if c.jid.startswith("echo.")), None)
    if spec is None:
        raise ValueError("the Prosody config has no echo.<domain> component; add echo_component(domain)")
    workdir = workdir or prosody.directory
    comp = await start_echo_component(prosody, spec, workdir / "echo-component.log")
    conns: list[RawClient] = []
    try:
        conns = await connect_clients(prosody, "ceil", clients)
        # warm-up: connections, Prosody's and slixmpp's caches, the allocator
        await closed_loop(conns, spec.jid, min(3_000, max(1_000, n // 10)), window, timeout=timeout)

        # one message at a time from one client: the bare round trip, no queueing
        single = await closed_loop(conns[:1], spec.jid, single_n, 1, timeout=timeout)

        pids: dict[str, int | None] = {
            "prosody": prosody.process.pid if prosody.process else None,
            "component": comp.pid,
            "load_client": os.getpid(),
        }
        meter = CpuMeter(pids)
        meter.start()
        tp = await closed_loop(conns, spec.jid, n, window, timeout=timeout)
        tp_cpu = meter.stop()
        if tp.timed_out or tp.received == 0:
            raise RuntimeError(f"ceiling throughput run incomplete: {tp.summary()}\n{comp.log_tail()}")

        rate = tp.throughput / 2.0
        count = max(100, int(rate * latency_seconds))
        meter.start()
        lat = await open_loop(conns, spec.jid, rate, count, timeout=timeout)
        lat_cpu = meter.stop()
        comp_rss = comp.rss_kib()
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        await comp.stop()

    comp_cpu = tp_cpu.get("component", {}).get("cpu_s")
    return {
        "throughput_per_s": tp.throughput,
        "latency": {
            "offered_rate_per_s": rate,
            **latency_summary_ms(lat.rtts_s),
            "lost": lat.sent - lat.received,
            "send_lag_max_ms": lat.send_lag_max_s * 1000.0,
        },
        "single": latency_summary_ms(single.rtts_s),
        "component_cpu_us_per_msg": (comp_cpu / tp.received * 1e6) if comp_cpu is not None else None,
        "cpu_throughput_run": tp_cpu,
        "cpu_latency_run": lat_cpu,
        "component_rss_kib": comp_rss,
        "params": {
            "n": n,
            "window": window,
            "clients": clients,
            "latency_seconds": latency_seconds,
            "single_n": single_n,
        },
        "throughput_run": tp.summary(),
        "latency_run": lat.summary(),
    }


# --------------------------------------------------------------------------- the echo component


def serve_component(port: int, jid: str, secret: str, max_seconds: float) -> int:
    """Run the echo component until stdin closes, SIGTERM/SIGINT, or ``max_seconds``."""
    return asyncio.run(_serve_component(port, jid, secret, max_seconds))


async def _serve_component(port: int, jid: str, secret: str, max_seconds: float) -> int:
    from slixmpp import ComponentXMPP  # imported here: the load side never pays for it

    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def finish(code: int) -> None:
        if not stop.done():
            stop.set_result(code)

    comp = ComponentXMPP(jid, secret)  # type: ignore[no-untyped-call]
    make_message = comp.make_message

    def echo(msg: Any) -> None:
        reply = make_message(mto=msg["from"], mfrom=msg["to"], mbody=msg["body"], mtype=msg["type"])
        reply["id"] = msg["id"]
        reply.send()

    def ready(_event: Any) -> None:
        print("READY", flush=True)

    comp.add_event_handler("message", echo)
    comp.add_event_handler("session_start", ready)
    comp.add_event_handler("connection_failed", lambda _e: finish(2))
    comp.add_event_handler("disconnected", lambda _e: finish(3))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish, 0)

    def on_stdin() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:
            finish(0)

    with contextlib.suppress(OSError, ValueError):
        loop.add_reader(sys.stdin.fileno(), on_stdin)
    comp.connect("127.0.0.1", port)
    try:
        code = await asyncio.wait_for(stop, max_seconds)
    except TimeoutError:
        print(f"echo component: stopping after {max_seconds} s", file=sys.stderr, flush=True)
        code = 0
    with contextlib.suppress(OSError, ValueError):
        loop.remove_reader(sys.stdin.fileno())
    comp.abort()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.split("\n")[0])
    parser.add_argument("--serve-component", action="store_true", help="run the slixmpp echo component")
    parser.add_argument("--port", type=int, required=True, help="Prosody component port")
    parser.add_argument("--jid", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="safety limit on the lifetime")
    args = parser.parse_args(argv)
    if not args.serve_component:
        parser.error("only --serve-component is available here; run the benchmark with python -m bench")
    return serve_component(args.port, args.jid, args.secret, args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())
