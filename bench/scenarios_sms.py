"""The SMS scenarios: XMPP → SMS (``xmpp-sms``) and SMS → XMPP (``sms-xmpp``) through the gateway.

Everything runs as its own process, the way an operator runs it:

- the **gateway**: ``passerelle -c CONFIG -v run`` with a TOML config written here (its own
  SQLite database, ``synchronous = FULL``, the durable outbox), subscribers added beforehand with
  ``passerelle user add JID --msisdn +E164``; the carrier submit rate, the SMPP window and the
  per-user/global SMS limits are lifted so the figures measure the gateway, not its throttles;
- the **SMSC**: ``python -m bench.scenarios_sms --serve-smsc ...``, the project's
  :class:`~transports.sms.fake_smsc.FakeSmsc` (real SMPP 3.4 on loopback, delivery receipts for
  every submit_sm) plus a line-based control port: it streams ``S <time> <body>`` for every
  submit_sm it receives and, on ``inject {json}``, sends mobile-originated deliver_sm with unique
  bodies at a given rate and window, answering ``INJECTED {json}`` with the send times;
- the **users**: raw c2s clients (:mod:`bench.rawclient`), each a registered subscriber with a
  linked number, online, subscribed to the SMS component and with directed presence to it.

Times are ``time.perf_counter()`` in every process: on Linux that is ``CLOCK_MONOTONIC``, one
clock for the whole machine, so a time taken in the SMSC process and one taken in the bench
process can be subtracted.

- ``xmpp-sms``: clients send ``<message/>`` to ``+E164@sms.<domain>`` over 200 destination numbers
  (the gateway sends one message at a time per conversation, to keep order); a message is done
  when its unique body reaches the SMSC as a submit_sm. Throughput: closed loop, ``window`` in
  flight; latency: open loop at half that rate (send → submit_sm).
- ``sms-xmpp``: the SMSC process injects deliver_sm to the subscribers' numbers from 1,000
  numbers; a message is done when its body reaches a client. Throughput: ``window`` deliver_sm
  outstanding; latency: open loop at half that rate (deliver_sm written → message read).

Both check that every unique body arrived (lost) and count bodies that arrived twice (duplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.devtools.prosody import free_port
from transports.sms.encoding import decode_text
from transports.sms.fake_mo import mo_pdus
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.pdu import SubmitSm

from .ceiling import ManagedProcess
from .rawclient import RawClient
from .stats import CpuMeter, Row, Target, added_latency_rows, latency_summary_ms

if TYPE_CHECKING:
    from .__main__ import BenchContext

SUBSCRIBERS = 4  # at least; more when the run sizes ask for more clients
DESTINATIONS = 200  # XMPP → SMS: distinct phone numbers (conversations) the messages are spread over
MO_SOURCES = 1000  # SMS → XMPP: distinct phones sending
SMPP_WINDOW = 50  # the gateway's [sms.smsc] window
MO_WINDOW = 50  # deliver_sm outstanding at the SMSC during the SMS → XMPP throughput run
MO_LATENCY_WINDOW = 1000  # ... during the open-loop latency run (only a bound; the rate decides)
SETTLE_S = 1.0  # after a run: how long to keep counting late arrivals and duplicates
SUBSCRIBE = True  # subscribe the clients to the component and send it directed presence

_REPO_ROOT = Path(__file__).resolve().parent.parent


def subscriber_number(i: int) -> str:
    return f"+33699{i:06d}"


def destination_number(i: int) -> str:
    return f"+33612{i:06d}"


def mo_source_number(i: int) -> str:
    return f"+33613{i:06d}"


# =========================================================================== the SMSC process


class BenchSmsc(FakeSmsc):
    """The fake SMSC, reporting every submit_sm (time of arrival, PDU) to ``listener``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listener: Callable[[float, SubmitSm], None] | None = None

    def _on_submit(self, conn: Any, pdu: SubmitSm) -> None:
        if self.listener is not None:
            self.listener(time.perf_counter(), pdu)
        super()._on_submit(conn, pdu)


def _smsc_stats(smsc: BenchSmsc) -> dict[str, Any]:
    return {
        "binds_ok": sum(b.status == 0 for b in smsc.binds),
        "binds_refused": sum(b.status != 0 for b in smsc.binds),
        "bound": smsc.bound_count,
        "submits_seen": smsc.submits_seen,
        "submits_ok": sum(s.status == 0 for s in smsc.submits),
        # the fake SMSC waits 5 s for each receipt's deliver_sm_resp; only those answered in time count
        "receipts_answered_in_5s": len(smsc.receipt_statuses),
        "receipt_statuses": dict(Counter(str(s) for s in smsc.receipt_statuses)),
        "generic_nacks": len(smsc.generic_nacks),
    }


async def _inject(smsc: BenchSmsc, spec: dict[str, Any]) -> dict[str, Any]:
    """Send ``n`` MO deliver_sm with bodies ``tag0..``, at ``rate``/s (0: as fast as the window allows)."""
    n, rate, window, tag = int(spec["n"]), float(spec["rate"]), int(spec["window"]), str(spec["tag"])
    dests = [d.lstrip("+") for d in spec["destinations"]]
    sources = int(spec.get("sources", MO_SOURCES))
    timeout = float(spec.get("deliver_timeout", 60.0))
    perf = time.perf_counter
    window_sem = asyncio.Semaphore(window)
    send_times = [0.0] * n
    statuses: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    last_ack = 0.0
    lag = 0.0

    async def one(i: int) -> None:
        nonlocal last_ack
        (pdu,) = mo_pdus(
            mo_source_number(i % sources).lstrip("+"), dests[i % len(dests)], f"{tag}{i}",
            coding=0, split="udh", ref=i % 256,
        )  # fmt: skip
        try:
            send_times[i] = perf()  # deliver() writes the PDU before its first await
            status: int | str = await smsc.deliver(pdu, timeout)
        except (TimeoutError, RuntimeError, ConnectionError) as exc:
            status = f"error:{type(exc).__name__}"
        finally:
            window_sem.release()
        statuses[str(status)] += 1
        last_ack = perf()

    t0 = perf() + 0.001
    for i in range(n):
        if rate > 0:
            due = t0 + i / rate
            now = perf()
            if due > now:
                await asyncio.sleep(due - now)
            await window_sem.acquire()
            lag = max(lag, perf() - due)
        else:
            await window_sem.acquire()
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if rate <= 0 and i % 64 == 63:
            await asyncio.sleep(0)
    while tasks:
        await asyncio.wait(set(tasks))
    return {
        "n": n,
        "send_times": send_times,
        "statuses": dict(statuses),
        "first_send": min(send_times) if n else 0.0,
        "last_send": max(send_times) if n else 0.0,
        "last_ack": last_ack,
        "send_lag_max_s": lag,
    }


async def _serve_smsc(port: int, control_port: int, system_id: str, password: str, max_seconds: float) -> int:
    smsc = BenchSmsc(system_id=system_id, password=password, port=port)
    await smsc.start()
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()
    writers: set[asyncio.StreamWriter] = set()

    def finish(code: int) -> None:
        if not stop.done():
            stop.set_result(code)

    def on_submit(t: float, pdu: SubmitSm) -> None:
        text = decode_text(pdu.short_message, pdu.data_coding).text.replace("\n", " ")
        line = f"S {t!r} {text}\n".encode()
        for w in writers:
            w.write(line)

    smsc.listener = on_submit
    jobs: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)

        async def run_inject(spec: dict[str, Any]) -> None:
            result = await _inject(smsc, spec)
            writer.write(("INJECTED " + json.dumps(result) + "\n").encode())

        try:
            while line := await reader.readline():
                cmd, _, arg = line.decode().strip().partition(" ")
                if cmd == "stats":
                    writer.write(("STATS " + json.dumps(_smsc_stats(smsc)) + "\n").encode())
                elif cmd == "inject":
                    job = asyncio.create_task(run_inject(json.loads(arg)))
                    jobs.add(job)
                    job.add_done_callback(jobs.discard)
                else:
                    writer.write(f"ERROR unknown command {cmd!r}\n".encode())
        except (ConnectionError, OSError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    control = await asyncio.start_server(handle, "127.0.0.1", control_port)
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
    print(f"READY smpp 127.0.0.1:{smsc.port} control 127.0.0.1:{control_port}", flush=True)
    try:
        code = await asyncio.wait_for(stop, max_seconds)
    except TimeoutError:
        code = 0
    with contextlib.suppress(OSError, ValueError):
        loop.remove_reader(sys.stdin.fileno())
    control.close()
    for job in jobs:
        job.cancel()
    await smsc.stop()
    print(f"SMSC stopping: {json.dumps(_smsc_stats(smsc))}", flush=True)
    return code


# =========================================================================== the bench side


class SmscControl:
    """The bench's end of the SMSC process's control port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.on_submit: Callable[[float, str], None] | None = None
        self.bodies: Counter[str] = Counter()  # every submit_sm body seen, for loss and duplicates
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {
            "STATS": asyncio.Queue(), "INJECTED": asyncio.Queue(),
        }  # fmt: skip
        self._task = asyncio.create_task(self._read_loop(), name="smsc control")

    @classmethod
    async def connect(cls, port: int) -> SmscControl:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * 1024 * 1024)
        return cls(reader, writer)

    async def _read_loop(self) -> None:
        while line := await self.reader.readline():
            if line.startswith(b"S "):
                _, t, body = line.decode().rstrip("\n").split(" ", 2)
                self.bodies[body] += 1
                if self.on_submit is not None:
                    self.on_submit(float(t), body)
                continue
            kind, _, rest = line.decode().partition(" ")
            if kind in self._replies:
                self._replies[kind].put_nowait(json.loads(rest))

    async def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        self.writer.write(b"stats\n")
        return await asyncio.wait_for(self._replies["STATS"].get(), timeout)

    async def inject(self, timeout: float, **spec: Any) -> dict[str, Any]:
        self.writer.write(("inject " + json.dumps(spec) + "\n").encode())
        return await asyncio.wait_for(self._replies["INJECTED"].get(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._task
        self.writer.close()


def _passerelle() -> list[str]:
    script = Path(sys.executable).parent / "passerelle"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string for what we write


def write_gateway_config(
    path: Path, *, domain: str, component_port: int, sms_jid: str, secret: str, smsc_port: int,
    system_id: str, password: str, extra: str = "",
) -> None:  # fmt: skip
    """The gateway's config for the SMS scenarios; ``extra`` is appended (more TOML sections)."""
    from gateway.storage import create_key_file

    path.parent.mkdir(parents=True, exist_ok=True)
    create_key_file(path.parent / "secret.key")
    path.write_text(
        f"""# written by bench/scenarios_sms.py
[xmpp]
host = "127.0.0.1"
port = {component_port}
user_domains = [{_toml(domain)}]
registration = "closed"

[storage]
path = "passerelle.db"
key_file = "secret.key"

[logging]
level = "info"

[sms]
jid = {_toml(sms_jid)}
secret = {_toml(secret)}
default_region = "FR"
service_number = "2020"

[sms.smsc]
host = "127.0.0.1"
port = {smsc_port}
system_id = {_toml(system_id)}
password = {_toml(password)}
window = {SMPP_WINDOW}
max_rate = 100000
enquire_link_s = 30

[sms.limits]
per_user_per_hour = 10000000
per_user_per_day = 100000000
global_per_day = 1000000000
"""
        + extra
    )
    path.chmod(0o600)


async def _cli(config: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_passerelle(), "-c", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=str(_REPO_ROOT),
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        text = out.decode(errors="replace")
        raise RuntimeError(f"passerelle {' '.join(args)} failed ({proc.returncode}): {text}")


@dataclass
class SmsWorld:
    """One gateway, one SMSC and the subscribers' clients, for one scenario."""

    name: str
    sms_jid: str
    gateway: ManagedProcess
    smsc: ManagedProcess
    control: SmscControl
    clients: list[RawClient]
    numbers: list[str]
    prosody_pid: int | None
    errors: Counter[str] = field(default_factory=Counter)  # error messages the clients got, by id

    def meter(self) -> CpuMeter:
        return CpuMeter({
            "gateway": self.gateway.pid, "prosody": self.prosody_pid, "smsc": self.smsc.pid,
            "load_client": os.getpid(),
        })  # fmt: skip

    async def stop(self) -> None:
        if self.gateway.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.gateway.proc.send_signal(signal.SIGTERM)  # the gateway stops cleanly on SIGTERM
        await self.gateway.stop()
        await self.control.close()
        await self.smsc.stop()
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)


async def start_smsc(ctx: BenchContext, name: str) -> tuple[ManagedProcess, SmscControl, int, str, str]:
    """The SMSC process and its control connection: (process, control, SMPP port, system id, password)."""
    smpp_port, control_port = free_port(), free_port()
    system_id, password = "bench", secrets.token_hex(4)  # SMPP passwords: at most 8 characters
    smsc = await ctx.process(
        [sys.executable, "-m", "bench.scenarios_sms", "--serve-smsc", "--port", str(smpp_port),
         "--control-port", str(control_port), "--system-id", system_id, "--password", password],
        f"{name}-smsc", ready_marker="READY",
    )  # fmt: skip
    control = await SmscControl.connect(control_port)
    return smsc, control, smpp_port, system_id, password


async def start_world(ctx: BenchContext, name: str) -> SmsWorld:
    domain = ctx.domain
    spec = ctx.component("sms")
    base = ctx.workdir / name
    users = [f"{name.replace('-', '')}{i}" for i in range(max(SUBSCRIBERS, ctx.sizes.clients))]
    numbers = [subscriber_number(i + 1) for i in range(len(users))]
    for u in users:
        await ctx.register(u)

    smsc, control, smpp_port, system_id, password = await start_smsc(ctx, name)

    config = base / "passerelle.toml"
    write_gateway_config(
        config, domain=domain, component_port=ctx.prosody.component_port, sms_jid=spec.jid,
        secret=spec.secret, smsc_port=smpp_port, system_id=system_id, password=password,
    )  # fmt: skip
    await _cli(config, "db", "upgrade")
    await asyncio.gather(*(
        _cli(config, "user", "add", f"{u}@{domain}", "--msisdn", n)
        for u, n in zip(users, numbers, strict=True)
    ))  # fmt: skip

    log_name = f"{name}-gateway"
    log_path = ctx.workdir / f"{log_name}.log"
    connected = f"component {spec.jid} connected"

    async def ready() -> bool:
        try:
            text = log_path.read_text(errors="replace")
        except OSError:
            return False
        if "gateway running" not in text or connected not in text:
            return False
        return int((await control.stats())["bound"]) >= 1

    try:
        gateway = await ctx.process(
            [*_passerelle(), "-c", str(config), "-v", "run"], log_name, ready_marker=None, ready_check=ready,
        )  # fmt: skip
    except BaseException:
        await control.close()
        raise
    world = SmsWorld(name, spec.jid, gateway, smsc, control, [], numbers,
                     ctx.prosody.process.pid if ctx.prosody.process else None)  # fmt: skip
    try:
        world.clients = [await _online(ctx, u, spec.jid, world.errors) for u in users]
    except BaseException:
        await world.stop()
        raise
    return world


async def _online(ctx: BenchContext, user: str, sms_jid: str, errors: Counter[str]) -> RawClient:
    client = await ctx.client(user, presence=True)

    def on_error(_frm: str, msg_id: str, _text: str, _now: float) -> None:
        errors[msg_id] += 1

    client.on_error_message = on_error
    if SUBSCRIBE:
        # like a client: fetch the roster (so Prosody sends us roster pushes and subscription
        # answers), ask to see the component's presence, wait for its answer, then send it
        # directed presence so the gateway tracks this resource
        await client.send_iq("<query xmlns='jabber:iq:roster'/>")
        answered = asyncio.Event()

        def on_raw(name: str, raw: bytes, _now: float) -> None:
            if name == "presence" and sms_jid.encode() in raw:
                answered.set()

        client.on_raw = on_raw
        client.send_raw(f"<presence to='{sms_jid}' type='subscribe'/>")
        await asyncio.wait_for(answered.wait(), 10.0)
        client.on_raw = None
        client.send_raw(f"<presence to='{sms_jid}'/>")
    return client


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One run: messages sent, unique ones received, latencies, duplicates seen during the run."""

    sent: int
    received: int
    elapsed_s: float
    rtts_s: list[float] = field(repr=False)
    duplicates: int = 0
    timed_out: bool = False
    offered_rate: float | None = None
    send_lag_max_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    tag: str = ""

    @property
    def throughput(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sent": self.sent, "received": self.received, "lost_at_end_of_run": self.sent - self.received,
            "duplicates": self.duplicates, "elapsed_s": round(self.elapsed_s, 4),
            "throughput_per_s": round(self.throughput, 1), "timed_out": self.timed_out,
        }  # fmt: skip
        if self.offered_rate is not None:
            out["offered_rate_per_s"] = round(self.offered_rate, 1)
            out["send_lag_max_ms"] = round(self.send_lag_max_s * 1000.0, 3)
        out.update({k: round(v, 4) for k, v in latency_summary_ms(self.rtts_s).items()})
        out.update(self.extra)
        return out


class _Pending:
    """Tokens in flight for one run; completed by an arrival (submit_sm, or a client's message)."""

    def __init__(self, expected: int) -> None:
        self.sent_at: dict[str, float] = {}
        self.done_tokens: set[str] = set()
        self.rtts: list[float] = []
        self.duplicates = 0
        self.first = 0.0
        self.last = 0.0
        self.expected = expected
        self.done = asyncio.get_running_loop().create_future()
        self.tag = secrets.token_hex(3) + "-"

    def arrived(self, body: str, t: float) -> bool:
        sent = self.sent_at.pop(body, None)
        if sent is None:
            if body in self.done_tokens:
                self.duplicates += 1
            return False
        self.done_tokens.add(body)
        self.rtts.append(t - sent)
        self.last = max(self.last, t)
        if len(self.rtts) >= self.expected and not self.done.done():
            self.done.set_result(None)
        return True

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            return True
        return False


async def mt_closed_loop(world: SmsWorld, n: int, window: int, timeout: float) -> Run:
    """XMPP → SMS: ``n`` messages, ``window`` in flight; done when the submit_sm reaches the SMSC."""
    clients, jid = world.clients, world.sms_jid
    p = _Pending(n)
    perf = time.perf_counter
    sent = 0

    def send_one() -> None:
        nonlocal sent
        i = sent
        sent += 1
        token = f"{p.tag}{i}"
        p.sent_at[token] = perf()
        clients[i % len(clients)].send_message(f"{destination_number(i % DESTINATIONS)}@{jid}", token, token)

    def on_submit(t: float, body: str) -> None:
        if p.arrived(body, t) and sent < n:
            send_one()

    world.control.on_submit = on_submit
    try:
        t0 = perf()
        for _ in range(min(window, n)):
            send_one()
        timed_out = await p.wait(timeout)
        end = p.last if not timed_out else perf()
        await asyncio.sleep(SETTLE_S if not timed_out else 0)
    finally:
        world.control.on_submit = None
    return Run(sent, len(p.rtts), max(end - t0, 1e-9), p.rtts, p.duplicates, timed_out, tag=p.tag)


async def mt_open_loop(world: SmsWorld, rate: float, count: int, timeout: float, grace: float = 10.0) -> Run:
    """XMPP → SMS at ``rate``/s on a fixed schedule; send → submit_sm at the SMSC."""
    clients, jid = world.clients, world.sms_jid
    p = _Pending(count)
    perf = time.perf_counter

    def on_submit(t: float, body: str) -> None:
        p.arrived(body, t)

    world.control.on_submit = on_submit
    lag = 0.0
    try:
        t0 = perf() + 0.001
        deadline = t0 + timeout
        i = burst = 0
        while i < count and perf() < deadline:
            now = perf()
            due = t0 + i / rate
            if due > now:
                burst = 0
                await asyncio.sleep(due - now)
                continue
            lag = max(lag, now - due)
            token = f"{p.tag}{i}"
            p.sent_at[token] = now
            to = f"{destination_number(i % DESTINATIONS)}@{jid}"
            clients[i % len(clients)].send_message(to, token, token)
            i += 1
            burst += 1
            if burst >= 64:
                burst = 0
                await asyncio.sleep(0)
        p.expected = i
        if len(p.rtts) >= i and not p.done.done():
            p.done.set_result(None)
        timed_out = await p.wait(grace + max(0.0, deadline - perf()))
        await asyncio.sleep(SETTLE_S)
    finally:
        world.control.on_submit = None
    end = p.last if p.rtts else perf()
    return Run(i, len(p.rtts), max(end - t0, 1e-9), p.rtts, p.duplicates, timed_out, rate, lag, tag=p.tag)


async def mo_run(world: SmsWorld, n: int, *, rate: float, window: int, timeout: float) -> Run:
    """SMS → XMPP: the SMSC injects ``n`` deliver_sm; done when a client reads the body."""
    p = _Pending(n)
    received_at: dict[str, float] = {}

    def on_message(_frm: str, _id: str, body: str, now: float) -> None:
        if body.startswith(p.tag):
            if body in received_at:
                p.duplicates += 1
            else:
                received_at[body] = now
            if len(received_at) >= n and not p.done.done():
                p.done.set_result(None)

    saved = [c.on_message for c in world.clients]
    for c in world.clients:
        c.on_message = on_message
    try:
        result = await world.control.inject(
            timeout, n=n, rate=rate, window=window, tag=p.tag, destinations=world.numbers,
            sources=MO_SOURCES, deliver_timeout=min(60.0, timeout),
        )  # fmt: skip
        timed_out = await p.wait(timeout)
        await asyncio.sleep(SETTLE_S)
    finally:
        for c, h in zip(world.clients, saved, strict=True):
            c.on_message = h
    send_times: list[float] = result["send_times"]
    rtts = [received_at[f"{p.tag}{i}"] - t for i, t in enumerate(send_times) if f"{p.tag}{i}" in received_at]
    first = float(result["first_send"])
    last = max(received_at.values()) if received_at else time.perf_counter()
    extra = {
        "deliver_sm_statuses": result["statuses"],
        "acked_throughput_per_s": round(n / max(result["last_ack"] - first, 1e-9), 1),
    }
    return Run(n, len(received_at), max(last - first, 1e-9), rtts, p.duplicates, timed_out,
               rate or None, float(result["send_lag_max_s"]), extra, p.tag)  # fmt: skip


def _size(rate: float, seconds: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, rate * seconds)))


def _cpu_figures(cpu: dict[str, dict[str, float]], received: int) -> dict[str, Any]:
    gw = cpu.get("gateway", {})
    return {
        "cpu": cpu,
        "gateway_cpu_pct": gw.get("cpu_pct"),
        "gateway_cpu_us_per_msg": (gw["cpu_s"] / received * 1e6) if gw and received else None,
    }


def _rows(
    ctx: BenchContext, scenario: str, what: str, tp: Run, lat: Run, lost: int, dups: int, cpu: dict[str, Any],
    dup_target: Target | None,
) -> list[Row]:  # fmt: skip
    s = lat.summary()
    rows = [
        Row(scenario, f"throughput ({what})", tp.throughput, "msg/s", ceiling=ctx.ceiling_throughput,
            target=Target("ratio>=", 0.5)),
        Row(scenario, f"latency p50 @ {lat.offered_rate or 0:,.0f}/s", s["p50_ms"], "ms",
            ceiling=ctx.ceiling_latency_ms("p50")),
        Row(scenario, "latency p99", s["p99_ms"], "ms", ceiling=ctx.ceiling_latency_ms("p99")),
        *added_latency_rows(scenario, s, ctx.ceiling_latency_ms("p50"), ctx.ceiling_latency_ms("p99")),
        Row(scenario, "lost", lost, "msg", target=Target("<=", 0)),
        Row(scenario, "duplicated", dups, "msg", target=dup_target),
    ]  # fmt: skip
    us = cpu.get("gateway_cpu_us_per_msg")
    if us is not None:
        rows.append(Row(scenario, "gateway CPU per message", us, "µs",
                        ceiling=ctx.ceiling.get("component_cpu_us_per_msg")))  # fmt: skip
    pct = cpu.get("gateway_cpu_pct")
    if pct is not None:
        rows.append(Row(scenario, "gateway CPU (throughput run)", pct, "% core"))
    return rows


def _note(ctx: BenchContext) -> None:
    note = (
        "SMS scenarios: the gateway runs as its own process (`passerelle run`) with durability on "
        "(SQLite WAL, synchronous=FULL, durable outbox); [sms.smsc] max_rate 100000, window "
        f"{SMPP_WINDOW}, per-user and global SMS limits lifted. The fake SMSC is its own process and "
        "sends a delivery receipt for every submit_sm."
    )
    if note not in ctx.notes:
        ctx.notes.append(note)


async def scenario_xmpp_sms(ctx: BenchContext) -> list[Row]:
    """XMPP → SMS: raw clients → Prosody → gateway → submit_sm at the SMSC process."""
    _note(ctx)
    world = await start_world(ctx, "xmpp-sms")
    sizes = ctx.sizes
    try:
        warm = await mt_closed_loop(world, 200 if ctx.quick else 500, sizes.window, sizes.timeout)
        if warm.received == 0:
            raise RuntimeError(f"no message reached the SMSC: {warm.summary()}\n{world.gateway.log_tail()}")
        n = _size(warm.throughput, 3.0 if ctx.quick else 10.0, 500, sizes.ceiling_n // 4)
        meter = world.meter()
        meter.start()
        tp = await mt_closed_loop(world, n, sizes.window, sizes.timeout)
        cpu = _cpu_figures(meter.stop(), tp.received)
        rate = max(1.0, tp.throughput / 2.0)
        meter.start()
        lat = await mt_open_loop(world, rate, max(100, int(rate * sizes.latency_seconds)), sizes.timeout)
        lat_cpu = meter.stop()
        await asyncio.sleep(SETTLE_S)
        runs = (warm, tp, lat)
        sent_total = sum(r.sent for r in runs)
        bodies = world.control.bodies
        ours = [bodies.get(f"{r.tag}{i}", 0) for r in runs for i in range(r.sent)]
        unique = sum(1 for c in ours if c)
        lost = len(ours) - unique
        dups = sum(c - 1 for c in ours if c > 1)
        stats = await world.control.stats()
        rss = world.gateway.rss_kib()
    finally:
        await world.stop()
    ctx.details["xmpp-sms"] = {
        "throughput": tp.summary(), "latency": lat.summary(), "warm_up": warm.summary(),
        **cpu, "cpu_latency_run": lat_cpu, "gateway_rss_kib": rss, "smsc": stats,
        "sent_total": sent_total, "unique_submits": unique, "lost": lost, "duplicated": dups,
        "error_messages_at_clients": sum(world.errors.values()),
        "destinations": DESTINATIONS, "subscribers": len(world.clients), "window": sizes.window,
        "smpp_window": SMPP_WINDOW, "subscribed_to_component": SUBSCRIBE,
    }  # fmt: skip
    return _rows(ctx, "xmpp-sms", "send → submit_sm", tp, lat, lost, dups, cpu, None)


async def scenario_sms_xmpp(ctx: BenchContext) -> list[Row]:
    """SMS → XMPP: deliver_sm from the SMSC process → gateway → Prosody → raw clients."""
    _note(ctx)
    world = await start_world(ctx, "sms-xmpp")
    sizes = ctx.sizes
    try:
        warm = await mo_run(world, 200 if ctx.quick else 500, rate=0, window=MO_WINDOW, timeout=sizes.timeout)
        if warm.received == 0:
            raise RuntimeError(f"no MO reached a client: {warm.summary()}\n{world.gateway.log_tail()}")
        n = _size(warm.throughput, 3.0 if ctx.quick else 10.0, 500, sizes.ceiling_n // 4)
        meter = world.meter()
        meter.start()
        tp = await mo_run(world, n, rate=0, window=MO_WINDOW, timeout=sizes.timeout)
        cpu = _cpu_figures(meter.stop(), tp.received)
        rate = max(1.0, tp.throughput / 2.0)
        meter.start()
        lat = await mo_run(world, max(100, int(rate * sizes.latency_seconds)), rate=rate,
                           window=MO_LATENCY_WINDOW, timeout=sizes.timeout)  # fmt: skip
        lat_cpu = meter.stop()
        runs = (warm, tp, lat)
        sent_total = sum(r.sent for r in runs)
        lost = sum(r.sent - r.received for r in runs)
        dups = sum(r.duplicates for r in runs)
        stats = await world.control.stats()
        rss = world.gateway.rss_kib()
    finally:
        await world.stop()
    ctx.details["sms-xmpp"] = {
        "throughput": tp.summary(), "latency": lat.summary(), "warm_up": warm.summary(),
        **cpu, "cpu_latency_run": lat_cpu, "gateway_rss_kib": rss, "smsc": stats,
        "sent_total": sent_total, "lost": lost, "duplicated": dups,
        "subscribers": len(world.clients), "mo_sources": MO_SOURCES, "mo_window": MO_WINDOW,
        "smpp_window": SMPP_WINDOW, "subscribed_to_component": SUBSCRIBE,
    }  # fmt: skip
    return _rows(ctx, "sms-xmpp", "deliver_sm → client", tp, lat, lost, dups, cpu, Target("<=", 0))


# =========================================================================== entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scenarios_sms", description="The SMSC process of the SMS benchmarks."
    )
    parser.add_argument("--serve-smsc", action="store_true", help="run the fake SMSC with a control port")
    parser.add_argument("--port", type=int, required=True, help="SMPP port")
    parser.add_argument("--control-port", type=int, required=True, help="control port (line protocol)")
    parser.add_argument("--system-id", default="bench")
    parser.add_argument("--password", required=True, help="SMPP password (at most 8 characters)")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="safety limit on the lifetime")
    args = parser.parse_args(argv)
    if not args.serve_smsc:
        parser.error("only --serve-smsc is available here; run the benchmark with python -m bench")
    serve = _serve_smsc(args.port, args.control_port, args.system_id, args.password, args.max_seconds)
    return asyncio.run(serve)


if __name__ == "__main__":
    sys.exit(main())
