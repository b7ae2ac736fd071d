"""The MSN scenarios: first login and roster sync (``msn-login-sync``), XMPP → MSN (``xmpp-msn``)
and MSN → XMPP (``msn-xmpp``) through the gateway.

Everything runs as its own process, the way an operator runs it:

- the **gateway**: ``passerelle -c CONFIG -v run`` with a TOML config written here (its own SQLite
  database, durability on: WAL, ``synchronous = FULL``, the durable outbox), subscribers added
  beforehand with ``passerelle user add JID --msn HANDLE --msn-password-file FILE``. MSN has no
  carrier rate or per-user message limit to lift: nothing is throttled;
- the **MSN server**: ``python -m bench.scenarios_msn --serve-server ...``, the project's
  :class:`~transports.msn.fake_server.FakeMsnServer` (MSNP12 NS, switchboards and Passport over
  HTTP on loopback) seeded from a users JSON file, plus a line-based control port on which it
  streams ``L <time> <handle>`` when an account authenticates, ``P <time> <handle> <status>``
  when it sets a status (CHG, the last step of a login) and ``D <time> <handle>`` when it leaves;
- the **MSN peers**: ``python -m bench.scenarios_msn --serve-peers ...``, scripted MSN users
  (:class:`~transports.msn.client.MsnSession`, one per peer) with a control port: it streams
  ``R <time> <peer> <sender> <body>`` for every message a peer receives and, on ``send {json}``,
  has the peers send messages with unique bodies to the subscribers at a given rate and window,
  answering ``SENT {json}`` with the send times;
- the **users**: raw c2s clients (:mod:`bench.rawclient`), each a registered subscriber with a
  linked MSN account, who fetch their roster (so Prosody pushes roster changes to them), subscribe
  to the MSN component and send it directed presence, which starts the MSN login.

Times are ``time.perf_counter()`` in every process (``CLOCK_MONOTONIC``: one clock for the machine).

- ``msn-login-sync``: one subscriber whose MSN list holds N contacts (FL|AL|RL, friendly names,
  groups; N = 1,000 and 5,000). From the directed available presence until the client has received
  roster pushes (XEP-0356 via Prosody) for all N contacts. Then "re-login with no change":
  unavailable, then available again: the roster pushes counted (the gateway diffs against its
  database, so the target is 0) and the time until the session is back (the server sees the CHG;
  the client gets the presence of the one contact that is online).
- ``xmpp-msn``: K subscribers' clients send to ``peer\\40example.net@msn.<domain>`` (K × P
  conversations); a message is done when its body reaches the peer. Throughput: closed loop,
  ``window`` in flight; latency: open loop at half that rate.
- ``msn-xmpp``: the peers send to the subscribers over switchboards (``window`` sends awaiting
  their ACK); a message is done when its body reaches the client.

Both relay scenarios check that every unique body arrived (lost) and count bodies that arrived
twice (duplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.devtools.prosody import free_port

from .ceiling import ManagedProcess
from .rawclient import RawClient
from .scenarios_sms import Run, _cli, _cpu_figures, _passerelle, _Pending, _size, _toml
from .stats import CpuMeter, Row, Target, added_latency_rows

if TYPE_CHECKING:
    from transports.msn.client import MsnSession, SessionEvent
    from transports.msn.fake_directory import Directory

    from .__main__ import BenchContext

MSN_DOMAIN = "example.net"  # the MSN handles' domain
SUBSCRIBERS = 4  # at least; more when the run sizes ask for more clients
PEERS = 50  # scripted MSN users; every subscriber has every peer on its list (K × P conversations)
PEER_WINDOW = 200  # MSN → XMPP: sends awaiting their switchboard ACK, across the peers (as the XMPP window)
PEER_LATENCY_WINDOW = 1000  # ... during the open-loop latency run (only a bound; the rate decides)
SYNC_SIZES_FULL = (1000, 5000)
SYNC_SIZES_QUICK = (1000,)
SETTLE_S = 1.0  # after a run: how long to keep counting late arrivals and duplicates
RELOGIN_SETTLE_S = 3.0  # after a re-login: how long to keep counting roster pushes
RELOGINS = 3  # re-logins with no change per size: the median is reported
SYNC_BUDGET_S = 60.0  # a larger sync is skipped when the smaller one's time says it would take longer
RATIO_TARGET = 0.4

_LINE_EVENTS = ("L ", "P ", "D ", "R ")


def sub_handle(name: str) -> str:
    return f"{name}@{MSN_DOMAIN}"


def peer_handle(j: int) -> str:
    return f"peer{j}@{MSN_DOMAIN}"


def contact_handle(j: int) -> str:
    return f"c{j}@{MSN_DOMAIN}"


def contact_jid(handle: str, msn_jid: str) -> str:
    return f"{handle.lower().replace('@', chr(92) + '40')}@{msn_jid}"


# =========================================================================== child processes


def _stdin_closes(finish: Callable[[int], None]) -> None:
    """Finish when stdin closes (the bench died or is stopping us)."""
    loop = asyncio.get_running_loop()

    def on_stdin() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:
            finish(0)

    with contextlib.suppress(OSError, ValueError):
        loop.add_reader(sys.stdin.fileno(), on_stdin)


class _ControlServer:
    """A line-based control port: broadcasts event lines, dispatches ``cmd {json}`` lines."""

    def __init__(self, commands: dict[str, Callable[[dict[str, Any]], Awaitable[tuple[str, Any]]]]) -> None:
        self.commands = commands
        self.writers: set[asyncio.StreamWriter] = set()
        self.jobs: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    def broadcast(self, line: str) -> None:
        data = line.encode()
        for w in self.writers:
            w.write(data)

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)

        async def run(cmd: str, arg: dict[str, Any]) -> None:
            try:
                kind, result = await self.commands[cmd](arg)
            except Exception as exc:  # reported, not fatal: the bench decides
                kind, result = "ERROR", {"error": f"{type(exc).__name__}: {exc}"}
            writer.write((f"{kind} " + json.dumps(result) + "\n").encode())

        try:
            while line := await reader.readline():
                cmd, _, arg = line.decode().strip().partition(" ")
                if cmd in self.commands:
                    job = asyncio.create_task(run(cmd, json.loads(arg) if arg else {}))
                    self.jobs.add(job)
                    job.add_done_callback(self.jobs.discard)
                else:
                    writer.write(
                        ("ERROR " + json.dumps({"error": f"unknown command {cmd!r}"}) + "\n").encode()
                    )
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for job in self.jobs:
            job.cancel()


async def _run_until_stopped(ready_line: str, max_seconds: float) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def finish(code: int) -> None:
        if not stop.done():
            stop.set_result(code)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish, 0)
    _stdin_closes(finish)
    print(ready_line, flush=True)
    try:
        return await asyncio.wait_for(stop, max_seconds)
    except TimeoutError:
        return 0
    finally:
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(sys.stdin.fileno())


async def _serve_server(args: argparse.Namespace) -> int:
    """The fake MSN server, reporting logins, status changes and departures on the control port."""
    from transports.msn.fake_directory import FakeUser, guid_for
    from transports.msn.fake_ns import NsConnection
    from transports.msn.fake_server import FakeMsnServer
    from transports.msn.status import ListBit

    control = _ControlServer({})
    perf = time.perf_counter
    counts: Counter[str] = Counter()

    class BenchMsnServer(FakeMsnServer):
        def ns_authenticated(self, conn: NsConnection) -> None:
            super().ns_authenticated(conn)
            counts["logins"] += 1
            if conn.user is not None:
                control.broadcast(f"L {perf()!r} {conn.user.handle}\n")

        def ns_disconnected(self, conn: NsConnection) -> None:
            user = conn.user
            current = user is not None and self._ns.get(user.key) is conn
            super().ns_disconnected(conn)
            if current and user is not None:
                control.broadcast(f"D {perf()!r} {user.handle}\n")

        def broadcast_presence(self, user: FakeUser) -> None:
            control.broadcast(f"P {perf()!r} {user.handle} {user.status.value}\n")
            super().broadcast_presence(user)

        def record_message(self, sender: str, recipients: list[str], payload: bytes) -> None:
            counts["messages"] += 1  # not kept: a long run would hold every payload

    async def stats(_arg: dict[str, Any]) -> tuple[str, Any]:
        return "STATS", {
            **counts, "ns_online": len(server._ns), "sb_connections": len(server._all_sb),
            "sb_sessions": len(server.sb_sessions),
        }  # fmt: skip

    async def change(arg: dict[str, Any]) -> tuple[str, Any]:
        """``change {"handle", "count", "group"}``: move ``count`` of the account's contacts to a
        new group, as if the subscriber did it elsewhere (the gateway finds it at the next login)."""
        user = directory.get(str(arg["handle"]))
        if user is None:
            raise ValueError(f"no account {arg['handle']}")
        name = str(arg["group"])
        gid = guid_for(f"{user.handle}/{name}")
        user.groups[gid] = name
        moved = 0
        for entry in user.lists.values():
            if moved >= int(arg["count"]):
                break
            if entry.mask & ListBit.FL:
                entry.groups = [gid]
                moved += 1
        return "CHANGED", {"changed": moved}

    control.commands.update(stats=stats, change=change)
    t0 = perf()
    directory = _load_directory(Path(args.users))
    load_s = perf() - t0
    server = await BenchMsnServer.start(directory=directory, ns_port=args.ns_port, http_port=args.http_port)
    await control.start(args.control_port)
    try:
        return await _run_until_stopped(
            f"READY ns 127.0.0.1:{server.ns_port} nexus {server.nexus_url} control {args.control_port} "
            f"users {len(directory.users)} loaded in {load_s:.2f} s", args.max_seconds,
        )  # fmt: skip
    finally:
        control.close()
        await server.stop()
        print(f"MSN server stopping: {json.dumps(dict(counts))}", flush=True)


def _load_directory(path: Path) -> Directory:
    """The fake server's accounts from a users JSON file.

    ``Directory.load_json`` links the reverse lists again after every account it adds, which is
    quadratic in the number of accounts (minutes for the 2,000 subscribers of the scale scenarios);
    this links them once, after the last one. The result is the same.
    """
    from transports.msn.fake_directory import Directory

    class BulkDirectory(Directory):
        deferred = False

        def _link_reverse_lists(self) -> None:
            if not self.deferred:
                super()._link_reverse_lists()

    directory = BulkDirectory()
    directory.deferred = True
    directory.load_json(json.loads(path.read_text(encoding="utf-8")))
    directory.deferred = False
    directory._link_reverse_lists()
    return directory


async def _serve_peers(args: argparse.Namespace) -> int:
    """Scripted MSN peers: report what they receive, send on command."""
    import aiohttp

    from transports.msn.client import MsnSession, SessionConfig
    from transports.msn.sb import MessageReceived

    control = _ControlServer({})
    perf = time.perf_counter
    peers_spec: list[dict[str, str]] = json.loads(Path(args.peers).read_text(encoding="utf-8"))
    sessions: list[MsnSession] = []
    received = 0
    http = aiohttp.ClientSession()

    def on_event_for(handle: str) -> Callable[[SessionEvent], None]:
        def on_event(event: SessionEvent) -> None:
            nonlocal received
            if isinstance(event, MessageReceived):
                received += 1
                text = event.text.replace("\n", " ")
                control.broadcast(f"R {perf()!r} {handle} {event.sender.lower()} {text}\n")

        return on_event

    for spec in peers_spec:
        config = SessionConfig(
            spec["handle"], spec["password"], ns_host="127.0.0.1", ns_port=args.ns_port,
            nexus_url=args.nexus_url, timeout=20.0, login_timeout=30.0, chat_idle_timeout=3600.0,
        )  # fmt: skip
        sessions.append(MsnSession(config, on_event_for(spec["handle"].lower()), http=http))
    bound = asyncio.Semaphore(8)

    async def log_in(s: MsnSession) -> None:
        async with bound:
            await s.login()

    await asyncio.gather(*(log_in(s) for s in sessions))

    async def send(spec: dict[str, Any]) -> tuple[str, Any]:
        n, rate, window, tag = int(spec["n"]), float(spec["rate"]), int(spec["window"]), str(spec["tag"])
        targets: list[str] = list(spec["targets"])
        window_sem = asyncio.Semaphore(window)
        send_times = [0.0] * n
        statuses: Counter[str] = Counter()
        tasks: set[asyncio.Task[None]] = set()
        last_ack = 0.0
        lag = 0.0
        count = len(sessions)

        async def one(i: int) -> None:
            nonlocal last_ack
            session = sessions[i % count]
            target = targets[(i // count) % len(targets)]
            try:
                send_times[i] = perf()
                result = await session.send_message(target, f"{tag}{i}")
                status = result.status.value
            except Exception as exc:
                status = f"error:{type(exc).__name__}"
            finally:
                window_sem.release()
            statuses[status] += 1
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
        return "SENT", {
            "tag": tag, "n": n, "send_times": send_times, "statuses": dict(statuses),
            "first_send": min(send_times) if n else 0.0, "last_send": max(send_times) if n else 0.0,
            "last_ack": last_ack, "send_lag_max_s": lag,
        }  # fmt: skip

    async def stats(_arg: dict[str, Any]) -> tuple[str, Any]:
        return "STATS", {"peers": len(sessions), "received": received}

    control.commands.update(send=send, stats=stats)
    await control.start(args.control_port)
    try:
        return await _run_until_stopped(
            f"READY {len(sessions)} peers logged in, control {args.control_port}", args.max_seconds
        )
    finally:
        control.close()
        for s in sessions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.close(), 2.0)
        await http.close()
        print(f"MSN peers stopping: received {received}", flush=True)


# =========================================================================== the bench side


class Control:
    """The bench's end of a child's control port (the server's or the peers')."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.on_event: Callable[[str, float, list[str]], None] | None = None
        self.events: list[tuple[str, float, list[str]]] = []  # L/P/D lines, for waits
        self.bodies: Counter[str] = Counter()  # every body a peer received (R lines)
        self.changed = asyncio.Event()
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {
            k: asyncio.Queue() for k in ("STATS", "SENT", "CHANGED", "ERROR")
        }
        self._task = asyncio.create_task(self._read_loop(), name="msn control")

    @classmethod
    async def connect(cls, port: int) -> Control:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * 1024 * 1024)
        return cls(reader, writer)

    async def _read_loop(self) -> None:
        while line := await self.reader.readline():
            text = line.decode().rstrip("\n")
            if text[:2] in _LINE_EVENTS:
                kind, t, rest = text.split(" ", 2)
                words = rest.split(" ", 2) if kind == "R" else rest.split(" ")
                if kind == "R":
                    self.bodies[words[-1]] += 1
                else:
                    self.events.append((kind, float(t), words))
                    self.changed.set()
                if self.on_event is not None:
                    self.on_event(kind, float(t), words)
                continue
            kind, _, rest = text.partition(" ")
            if kind in self._replies:
                self._replies[kind].put_nowait(json.loads(rest))

    async def wait_event(self, kind: str, handle: str, since: int, timeout: float, status: str | None = None
                         ) -> tuple[float, int]:  # fmt: skip
        """The time of the first ``kind`` event for ``handle`` at index ≥ ``since`` (and its index)."""
        handle = handle.lower()
        async with asyncio.timeout(timeout):
            seen = since
            while True:
                for idx in range(seen, len(self.events)):
                    k, t, words = self.events[idx]
                    if k == kind and words[0].lower() == handle and (status is None or words[1] == status):
                        return t, idx
                seen = len(self.events)
                self.changed.clear()
                await self.changed.wait()

    async def request(self, cmd: str, reply: str, timeout: float, **spec: Any) -> dict[str, Any]:
        self.writer.write((f"{cmd} " + json.dumps(spec) + "\n").encode())
        waits = {
            asyncio.ensure_future(self._replies[reply].get()),
            asyncio.ensure_future(self._replies["ERROR"].get()),
        }
        done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        if not done:
            raise TimeoutError(f"no {reply} from the control port in {timeout:g} s")
        result: dict[str, Any] = done.pop().result()
        if "error" in result and reply != "ERROR":
            raise RuntimeError(f"{cmd}: {result['error']}")
        return result

    async def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self.request("stats", "STATS", timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._task
        self.writer.close()


def write_gateway_config(
    path: Path, *, domain: str, component_port: int, msn_jid: str, secret: str, ns_port: int, http_port: int,
) -> None:  # fmt: skip
    from gateway.storage import create_key_file

    path.parent.mkdir(parents=True, exist_ok=True)
    create_key_file(path.parent / "secret.key")
    path.write_text(
        f"""# written by bench/scenarios_msn.py
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
"""
        + msn_sections(msn_jid=msn_jid, secret=secret, ns_port=ns_port, http_port=http_port)
    )
    path.chmod(0o600)


def msn_sections(*, msn_jid: str, secret: str, ns_port: int, http_port: int) -> str:
    """The ``[msn]`` sections of the gateway's config (also appended to the SMS config by the
    convergence scenarios)."""
    return f"""
[msn]
jid = {_toml(msn_jid)}
secret = {_toml(secret)}

[msn.server]
host = "127.0.0.1"
port = {ns_port}
nexus_url = {_toml(f"http://127.0.0.1:{http_port}/rdr/pprdr.asp")}
"""


@dataclass
class MsnWorld:
    """One gateway, one MSN server, optionally the peers, and the subscribers' clients."""

    name: str
    msn_jid: str
    config: Path
    gateway: ManagedProcess
    server: ManagedProcess
    server_ctl: Control
    peers: ManagedProcess | None
    peers_ctl: Control | None
    prosody_pid: int | None
    clients: list[RawClient] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)  # the subscribers' MSN handles, like clients
    errors: Counter[str] = field(default_factory=Counter)  # error messages the clients got, by id

    def meter(self) -> CpuMeter:
        return CpuMeter({
            "gateway": self.gateway.pid, "prosody": self.prosody_pid, "msn_server": self.server.pid,
            "msn_peers": self.peers.pid if self.peers else None, "load_client": os.getpid(),
        })  # fmt: skip

    async def stop(self) -> None:
        if self.gateway.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.gateway.proc.send_signal(signal.SIGTERM)  # the gateway stops cleanly on SIGTERM
        await self.gateway.stop()
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        for ctl in (self.peers_ctl, self.server_ctl):
            if ctl is not None:
                await ctl.close()
        if self.peers is not None:
            await self.peers.stop()
        await self.server.stop()


async def start_msn_server(
    ctx: BenchContext, name: str, users_file: Path, timeout: float = 60.0
) -> tuple[ManagedProcess, Control, int, int]:
    """The fake MSN server process seeded from ``users_file``: (process, control, NS port, HTTP port)."""
    ns_port, http_port, ctl_port = free_port(), free_port(), free_port()
    server = await ctx.process(
        [sys.executable, "-m", "bench.scenarios_msn", "--serve-server", "--users", str(users_file),
         "--ns-port", str(ns_port), "--http-port", str(http_port), "--control-port", str(ctl_port)],
        f"{name}-msn-server", ready_marker="READY", timeout=timeout,
    )  # fmt: skip
    return server, await Control.connect(ctl_port), ns_port, http_port


async def start_msn_peers(
    ctx: BenchContext, name: str, peers: list[dict[str, str]], ns_port: int, http_port: int
) -> tuple[ManagedProcess, Control]:
    """The scripted MSN peers (``{"handle", "password"}`` each), logged in: (process, control)."""
    peers_file = ctx.workdir / name / "msn-peers.json"
    peers_file.parent.mkdir(parents=True, exist_ok=True)
    peers_file.write_text(json.dumps(peers), encoding="utf-8")
    peers_port = free_port()
    proc = await ctx.process(
        [sys.executable, "-m", "bench.scenarios_msn", "--serve-peers", "--peers", str(peers_file),
         "--ns-port", str(ns_port), "--nexus-url", f"http://127.0.0.1:{http_port}/rdr/pprdr.asp",
         "--control-port", str(peers_port)],
        f"{name}-msn-peers", ready_marker="READY", timeout=60.0,
    )  # fmt: skip
    return proc, await Control.connect(peers_port)


async def start_world(
    ctx: BenchContext, name: str, users_json: dict[str, Any], subscribers: list[tuple[str, str, str]],
    peers: list[dict[str, str]],
) -> MsnWorld:  # fmt: skip
    """Start the MSN server, the peers (if any), add ``subscribers`` (xmpp user, handle, password)
    with the CLI and start the gateway. The clients are not logged in yet."""
    domain = ctx.domain
    spec = ctx.component("msn")
    base = ctx.workdir / name
    base.mkdir(parents=True, exist_ok=True)
    users_file = base / "msn-users.json"
    users_file.write_text(json.dumps(users_json), encoding="utf-8")
    for user, _handle, _pw in subscribers:
        await ctx.register(user)

    server, server_ctl, ns_port, http_port = await start_msn_server(ctx, name, users_file)
    peers_proc = peers_ctl = None
    try:
        if peers:
            peers_proc, peers_ctl = await start_msn_peers(ctx, name, peers, ns_port, http_port)

        config = base / "passerelle.toml"
        write_gateway_config(
            config, domain=domain, component_port=ctx.prosody.component_port, msn_jid=spec.jid,
            secret=spec.secret, ns_port=ns_port, http_port=http_port,
        )  # fmt: skip
        await _cli(config, "db", "upgrade")
        for user, handle, password in subscribers:  # one at a time: each CLI run opens the database
            pw_file = base / f"{user}.msn-password"
            pw_file.write_text(password, encoding="utf-8")
            pw_file.chmod(0o600)
            await _cli(
                config,
                "user",
                "add",
                f"{user}@{domain}",
                "--msn",
                handle,
                "--msn-password-file",
                str(pw_file),
            )

        log_name = f"{name}-gateway"
        log_path = ctx.workdir / f"{log_name}.log"
        connected = f"component {spec.jid} connected"

        async def ready() -> bool:
            try:
                text = log_path.read_text(errors="replace")
            except OSError:
                return False
            return "gateway running" in text and connected in text

        gateway = await ctx.process(
            [*_passerelle(), "-c", str(config), "-v", "run"], log_name, ready_marker=None, ready_check=ready,
        )  # fmt: skip
    except BaseException:
        for ctl in (peers_ctl, server_ctl):
            if ctl is not None:
                await ctl.close()
        raise
    return MsnWorld(name, spec.jid, config, gateway, server, server_ctl, peers_proc, peers_ctl,
                    ctx.prosody.process.pid if ctx.prosody.process else None)  # fmt: skip


_ITEM_JID = re.compile(rb"<item\b[^>]*?\bjid=['\"]([^'\"]+)['\"]")


class RosterWatch:
    """Counts roster pushes (``iq set jabber:iq:roster`` items) for contacts of the component."""

    def __init__(self, client: RawClient, msn_jid: str, contact: str | None = None) -> None:
        self.suffix = ("@" + msn_jid).encode()
        self.items = 0
        self.jids: set[bytes] = set()
        self.last = 0.0
        self.target = 0
        self.reached = asyncio.Event()
        self.contact = contact.encode() if contact else None  # whose presence we wait for
        self.presences: list[float] = []
        self.presence_seen = asyncio.Event()
        client.on_raw = self.on_raw

    def reset(self, target: int) -> None:
        self.items, self.jids, self.last, self.target = 0, set(), 0.0, target
        self.reached.clear()
        self.presences.clear()
        self.presence_seen.clear()

    def on_raw(self, name: str, raw: bytes, now: float) -> None:
        if name == "iq":
            if b"jabber:iq:roster" not in raw or (
                b"type='set'" not in raw[:200] and b'type="set"' not in raw[:200]
            ):
                return
            for m in _ITEM_JID.finditer(raw):
                if m.group(1).endswith(self.suffix):
                    self.items += 1
                    self.jids.add(m.group(1))
                    self.last = now
            if self.target and len(self.jids) >= self.target:
                self.reached.set()
        elif name == "presence" and self.contact is not None:
            head = raw[:300]
            if self.contact in head and b"type=" not in head.split(b">", 1)[0]:
                self.presences.append(now)
                self.presence_seen.set()


async def _fetch_roster(client: RawClient) -> None:
    """Like a client: fetch the roster, so Prosody sends this resource the roster pushes."""
    await client.send_iq("<query xmlns='jabber:iq:roster'/>", timeout=60.0)


def _available(client: RawClient, msn_jid: str) -> None:
    """Initial presence (mod_privilege passes it to the component) plus directed presence to it."""
    client.send_raw(f"<presence/><presence to='{msn_jid}'/>")


def _unavailable(client: RawClient, msn_jid: str) -> None:
    client.send_raw(f"<presence to='{msn_jid}' type='unavailable'/><presence type='unavailable'/>")


def _note(ctx: BenchContext) -> None:
    note = (
        "MSN scenarios: the gateway runs as its own process (`passerelle run`) with durability on "
        "(SQLite WAL, synchronous=FULL, durable outbox); MSN has no carrier rate or per-user limit "
        "to lift. The fake MSN server (NS, switchboards, Passport) and the scripted MSN peers are "
        "separate processes; roster pushes go through Prosody's mod_privilege (XEP-0356)."
    )
    if note not in ctx.notes:
        ctx.notes.append(note)


# --------------------------------------------------------------------------- login and roster sync


def _sync_users(
    sizes: Sequence[int], prefix: str = "sync"
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    n_max = max(sizes)
    users: list[dict[str, Any]] = [
        {"handle": contact_handle(j), "password": f"pw{j}", "friendly_name": f"Contact {j} Ébène"}
        for j in range(n_max)
    ]
    subscribers = []
    for n in sizes:
        name = f"{prefix}{n}"
        handle, password = sub_handle(name), secrets.token_hex(6)
        contacts = [
            {"handle": contact_handle(j), "lists": ["FL", "AL", "RL"],
             "groups": [f"Group {j % 25:02d}"] + (["Favourites"] if j % 10 == 0 else [])}
            for j in range(n)
        ]  # fmt: skip
        # the subscribers last: the fake directory links reverse lists on every add
        users.append({"handle": handle, "password": password, "friendly_name": name, "contacts": contacts})
        subscribers.append((name, handle, password))
    return {"users": users}, subscribers


async def scenario_msn_login_sync(ctx: BenchContext) -> list[Row]:
    """First login + roster sync of N contacts, then a re-login with nothing changed."""
    _note(ctx)
    sizes = SYNC_SIZES_QUICK if ctx.quick else SYNC_SIZES_FULL
    users_json, subscribers = _sync_users(sizes)
    online = contact_handle(0)  # logged in by the peers process: its presence marks "session back"
    world = await start_world(ctx, "msn-login-sync", users_json, subscribers,
                              [{"handle": online, "password": "pw0"}])  # fmt: skip
    rows: list[Row] = []
    details: dict[str, Any] = {}
    previous: tuple[int, float] | None = None  # (contacts, sync seconds) of the last size measured
    try:
        for n, (user, handle, _pw) in zip(sizes, subscribers, strict=True):
            if previous is not None and previous[1] * (n / previous[0]) ** 2 > SYNC_BUDGET_S:
                estimate = previous[1] * (n / previous[0]) ** 2
                details[str(n)] = {"skipped": True, "estimated_sync_s": round(estimate, 1)}
                rows.append(Row("msn-login-sync", f"first login + roster sync, {n:,} contacts", math.nan, "s",
                                note=f"skipped: ~{estimate:,.0f} s expected"))  # fmt: skip
                ctx.notes.append(
                    f"msn-login-sync: {n:,} contacts skipped: {previous[0]:,} took {previous[1]:.1f} s and "
                    "the sync time grows with the square of the list (mod_privilege saves the whole roster "
                    f"for every item), so it would take about {estimate:,.0f} s, over the "
                    f"{SYNC_BUDGET_S:.0f} s budget that keeps `make bench` within 10 minutes."
                )
                continue
            client = await ctx.client(user, presence=False)  # MSN logs in on the first presence
            world.clients.append(client)
            watch = RosterWatch(client, world.msn_jid, contact_jid(online, world.msn_jid))
            await _fetch_roster(client)
            await asyncio.sleep(0.2)
            mark = len(world.server_ctl.events)
            meter = world.meter()
            watch.reset(n)
            timeout = max(60.0, n * 0.1)
            meter.start()
            t0 = time.perf_counter()
            _available(client, world.msn_jid)
            t_login, _ = await world.server_ctl.wait_event("P", handle, mark, 30.0, status="NLN")
            timed_out = False
            try:
                await asyncio.wait_for(watch.reached.wait(), timeout)
            except TimeoutError:
                timed_out = True
            cpu = meter.stop()
            t_sync = (watch.last if watch.reached.is_set() else time.perf_counter()) - t0
            previous = (n, t_sync)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.presence_seen.wait(), 10.0)
            t_presence = (watch.presences[0] - t0) if watch.presences else None
            login_ms = (t_login - t0) * 1000.0
            first = {
                "contacts": n, "roster_items_pushed": watch.items, "unique_items": len(watch.jids),
                "timed_out": timed_out, "sync_s": round(t_sync, 4),
                "ms_per_contact": round(t_sync * 1000.0 / n, 4),
                "msn_login_s": round(t_login - t0, 4),
                "online_contact_presence_s": round(t_presence, 4) if t_presence is not None else None,
                "cpu": cpu,
            }  # fmt: skip

            # re-login with no change, a few times (one varies by ±30 % on a shared machine)
            relogins: list[dict[str, Any]] = []
            for _ in range(RELOGINS):
                await asyncio.sleep(1.0)
                mark = len(world.server_ctl.events)
                _unavailable(client, world.msn_jid)
                await world.server_ctl.wait_event("D", handle, mark, 15.0)
                await asyncio.sleep(0.5)
                watch.reset(0)
                mark = len(world.server_ctl.events)
                meter.start()
                t0 = time.perf_counter()
                _available(client, world.msn_jid)
                t_auth, _ = await world.server_ctl.wait_event("L", handle, mark, 30.0)
                t_login, _ = await world.server_ctl.wait_event("P", handle, mark, 30.0, status="NLN")
                back_timed_out = False
                try:
                    await asyncio.wait_for(watch.presence_seen.wait(), 30.0)
                except TimeoutError:
                    back_timed_out = True
                t_back = (watch.presences[0] - t0) if watch.presences else float("nan")
                await asyncio.sleep(RELOGIN_SETTLE_S)
                relogins.append({
                    "roster_items_pushed": watch.items, "msn_authenticated_s": round(t_auth - t0, 4),
                    "msn_login_s": round(t_login - t0, 4), "back_s": round(t_back, 4),
                    "timed_out": back_timed_out, "counted_for_s": round(time.perf_counter() - t0, 2),
                    "cpu": meter.stop(),
                })  # fmt: skip
            t_back = statistics.median(r["back_s"] for r in relogins)
            again = {
                "roster_items_pushed": sum(r["roster_items_pushed"] for r in relogins),
                "back_s_median": t_back,
                "msn_authenticated_s_median": statistics.median(r["msn_authenticated_s"] for r in relogins),
                "msn_login_s_median": statistics.median(r["msn_login_s"] for r in relogins),
                "runs": relogins,
            }
            details[str(n)] = {"first_login": first, "relogin": again}
            gw_cpu = cpu.get("gateway", {}).get("cpu_s")
            pro_cpu = cpu.get("prosody", {}).get("cpu_s")
            label = f"{n:,} contacts"
            rows += [
                Row("msn-login-sync", f"first login + roster sync, {label}", t_sync, "s",
                    note="timed out" if timed_out else ""),
                Row("msn-login-sync", f"  per contact ({label})", t_sync * 1000.0 / n, "ms",
                    target=Target("<=", 0.5)),
                Row("msn-login-sync", f"  MSN login (presence → CHG), {label}",
                    login_ms, "ms"),
            ]  # fmt: skip
            if gw_cpu is not None:
                rows.append(
                    Row("msn-login-sync", f"  gateway CPU per contact ({label})", gw_cpu * 1000.0 / n, "ms")
                )
            if pro_cpu is not None:
                rows.append(
                    Row("msn-login-sync", f"  Prosody CPU per contact ({label})", pro_cpu * 1000.0 / n, "ms")
                )
            rows += [
                Row("msn-login-sync", f"re-login, no change: roster pushes ({label})",
                    again["roster_items_pushed"], "items", target=Target("<=", 0),
                    note=f"over {RELOGINS} re-logins"),
                Row("msn-login-sync", f"re-login, no change: back ({label})", t_back * 1000.0, "ms",
                    target=Target("<=", 100.0),
                    note=f"median of {RELOGINS}: presence → online contact's presence at the client"),
                Row("msn-login-sync", f"  re-login: presence → MSN CHG ({label})",
                    again["msn_login_s_median"] * 1000.0, "ms", note=f"median of {RELOGINS}"),
            ]  # fmt: skip
        details["server"] = await world.server_ctl.stats()
        details["gateway_rss_kib"] = world.gateway.rss_kib()
    finally:
        await world.stop()
    ctx.details["msn-login-sync"] = details
    return rows


# --------------------------------------------------------------------------- relay


async def start_relay_world(ctx: BenchContext, name: str) -> MsnWorld:
    k = max(SUBSCRIBERS, ctx.sizes.clients)
    prefix = name.replace("-", "")
    peers = [
        {"handle": peer_handle(j), "password": f"peer pw {j}", "friendly_name": f"Peer {j}"}
        for j in range(PEERS)
    ]
    subscribers = [(f"{prefix}{i}", sub_handle(f"{prefix}{i}"), secrets.token_hex(6)) for i in range(k)]
    users: list[dict[str, Any]] = [
        {**p, "contacts": [{"handle": h, "lists": ["FL", "AL", "RL"]} for _u, h, _pw in subscribers]}
        for p in peers
    ]
    for _u, h, pw in subscribers:
        users.append({"handle": h, "password": pw, "friendly_name": h.split("@")[0],
                      "contacts": [{"handle": p["handle"], "lists": ["FL", "AL", "RL"], "groups": ["Peers"]}
                                   for p in peers]})  # fmt: skip
    logins = [{"handle": p["handle"], "password": p["password"]} for p in peers]
    world = await start_world(ctx, name, {"users": users}, subscribers, logins)
    try:
        for user, handle, _pw in subscribers:
            client = await ctx.client(user, presence=False)
            world.clients.append(client)
            world.handles.append(handle)

            def on_error(_frm: str, msg_id: str, _text: str, _now: float) -> None:
                world.errors[msg_id] += 1

            client.on_error_message = on_error
            watch = RosterWatch(client, world.msn_jid)
            watch.reset(PEERS)
            await _fetch_roster(client)
            mark = len(world.server_ctl.events)
            _available(client, world.msn_jid)
            await world.server_ctl.wait_event("P", handle, mark, 30.0, status="NLN")
            with contextlib.suppress(TimeoutError):  # the roster is not needed to relay; wait a little
                await asyncio.wait_for(watch.reached.wait(), 10.0)
            client.on_raw = None
    except BaseException:
        await world.stop()
        raise
    return world


def _to_peer(world: MsnWorld, i: int) -> tuple[RawClient, str]:
    """Message ``i`` of an XMPP → MSN run: which client sends it, to which peer JID."""
    k = len(world.clients)
    return world.clients[i % k], contact_jid(peer_handle((i // k) % PEERS), world.msn_jid)


async def out_closed_loop(world: MsnWorld, n: int, window: int, timeout: float) -> Run:
    """XMPP → MSN: ``n`` messages, ``window`` in flight; done when a peer receives the body."""
    assert world.peers_ctl is not None
    ctl = world.peers_ctl
    p = _Pending(n)
    perf = time.perf_counter
    sent = 0

    def send_one() -> None:
        nonlocal sent
        i = sent
        sent += 1
        token = f"{p.tag}{i}"
        p.sent_at[token] = perf()
        client, to = _to_peer(world, i)
        client.send_message(to, token, token)

    def on_event(kind: str, t: float, words: list[str]) -> None:
        if kind == "R" and p.arrived(words[-1], t) and sent < n:
            send_one()

    ctl.on_event = on_event
    try:
        t0 = perf()
        for _ in range(min(window, n)):
            send_one()
        timed_out = await p.wait(timeout)
        end = p.last if not timed_out else perf()
        await asyncio.sleep(SETTLE_S if not timed_out else 0)
    finally:
        ctl.on_event = None
    return Run(sent, len(p.rtts), max(end - t0, 1e-9), p.rtts, p.duplicates, timed_out, tag=p.tag)


async def out_open_loop(world: MsnWorld, rate: float, count: int, timeout: float, grace: float = 10.0) -> Run:
    """XMPP → MSN at ``rate``/s on a fixed schedule; send → body at the peer."""
    assert world.peers_ctl is not None
    ctl = world.peers_ctl
    p = _Pending(count)
    perf = time.perf_counter

    def on_event(kind: str, t: float, words: list[str]) -> None:
        if kind == "R":
            p.arrived(words[-1], t)

    ctl.on_event = on_event
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
            client, to = _to_peer(world, i)
            client.send_message(to, token, token)
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
        ctl.on_event = None
    end = p.last if p.rtts else perf()
    return Run(i, len(p.rtts), max(end - t0, 1e-9), p.rtts, p.duplicates, timed_out, rate, lag, tag=p.tag)


async def in_run(world: MsnWorld, n: int, *, rate: float, window: int, timeout: float) -> Run:
    """MSN → XMPP: the peers send ``n`` messages; done when a client reads the body."""
    assert world.peers_ctl is not None
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
        result = await world.peers_ctl.request(
            "send", "SENT", timeout, n=n, rate=rate, window=window, tag=p.tag, targets=world.handles,
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
        "send_statuses": result["statuses"],
        "acked_throughput_per_s": round(n / max(result["last_ack"] - first, 1e-9), 1),
    }
    return Run(n, len(received_at), max(last - first, 1e-9), rtts, p.duplicates, timed_out,
               rate or None, float(result["send_lag_max_s"]), extra, p.tag)  # fmt: skip


def _rows(
    ctx: BenchContext, scenario: str, what: str, tp: Run, lat: Run, lost: int, dups: int, cpu: dict[str, Any],
) -> list[Row]:  # fmt: skip
    s = lat.summary()
    rows = [
        Row(scenario, f"throughput ({what})", tp.throughput, "msg/s", ceiling=ctx.ceiling_throughput,
            target=Target("ratio>=", RATIO_TARGET)),
        Row(scenario, f"latency p50 @ {lat.offered_rate or 0:,.0f}/s", s["p50_ms"], "ms",
            ceiling=ctx.ceiling_latency_ms("p50")),
        Row(scenario, "latency p99", s["p99_ms"], "ms", ceiling=ctx.ceiling_latency_ms("p99")),
        *added_latency_rows(scenario, s, ctx.ceiling_latency_ms("p50"), ctx.ceiling_latency_ms("p99")),
        Row(scenario, "lost", lost, "msg", target=Target("<=", 0)),
        Row(scenario, "duplicated", dups, "msg", target=Target("<=", 0)),
    ]  # fmt: skip
    us = cpu.get("gateway_cpu_us_per_msg")
    if us is not None:
        rows.append(Row(scenario, "gateway CPU per message", us, "µs",
                        ceiling=ctx.ceiling.get("component_cpu_us_per_msg")))  # fmt: skip
    pct = cpu.get("gateway_cpu_pct")
    if pct is not None:
        rows.append(Row(scenario, "gateway CPU (throughput run)", pct, "% core"))
    return rows


async def scenario_xmpp_msn(ctx: BenchContext) -> list[Row]:
    """XMPP → MSN: raw clients → Prosody → gateway → switchboard → the peers process."""
    _note(ctx)
    world = await start_relay_world(ctx, "xmpp-msn")
    assert world.peers_ctl is not None
    sizes = ctx.sizes
    try:
        warm = await out_closed_loop(world, 200 if ctx.quick else 500, sizes.window, sizes.timeout)
        if warm.received == 0:
            raise RuntimeError(f"no message reached a peer: {warm.summary()}\n{world.gateway.log_tail()}")
        n = _size(warm.throughput, 3.0 if ctx.quick else 10.0, 500, sizes.ceiling_n // 4)
        meter = world.meter()
        meter.start()
        tp = await out_closed_loop(world, n, sizes.window, sizes.timeout)
        cpu = _cpu_figures(meter.stop(), tp.received)
        rate = max(1.0, tp.throughput / 2.0)
        meter.start()
        lat = await out_open_loop(world, rate, max(100, int(rate * sizes.latency_seconds)), sizes.timeout)
        lat_cpu = meter.stop()
        await asyncio.sleep(SETTLE_S)
        runs = (warm, tp, lat)
        sent_total = sum(r.sent for r in runs)
        bodies = world.peers_ctl.bodies
        ours = [bodies.get(f"{r.tag}{i}", 0) for r in runs for i in range(r.sent)]
        unique = sum(1 for c in ours if c)
        lost = len(ours) - unique
        dups = sum(c - 1 for c in ours if c > 1)
        server_stats = await world.server_ctl.stats()
        peer_stats = await world.peers_ctl.stats()
        rss = world.gateway.rss_kib()
    finally:
        await world.stop()
    ctx.details["xmpp-msn"] = {
        "throughput": tp.summary(), "latency": lat.summary(), "warm_up": warm.summary(),
        **cpu, "cpu_latency_run": lat_cpu, "gateway_rss_kib": rss, "msn_server": server_stats,
        "msn_peers": peer_stats, "sent_total": sent_total, "unique_received": unique, "lost": lost,
        "duplicated": dups, "error_messages_at_clients": sum(world.errors.values()),
        "subscribers": len(world.clients), "peers": PEERS, "conversations": len(world.clients) * PEERS,
        "window": sizes.window,
    }  # fmt: skip
    return _rows(ctx, "xmpp-msn", "send → MSG at the peer", tp, lat, lost, dups, cpu)


async def scenario_msn_xmpp(ctx: BenchContext) -> list[Row]:
    """MSN → XMPP: the peers process → switchboard → gateway → Prosody → raw clients."""
    _note(ctx)
    world = await start_relay_world(ctx, "msn-xmpp")
    assert world.peers_ctl is not None
    sizes = ctx.sizes
    try:
        warm = await in_run(
            world, 200 if ctx.quick else 500, rate=0, window=PEER_WINDOW, timeout=sizes.timeout
        )
        if warm.received == 0:
            raise RuntimeError(
                f"no MSN message reached a client: {warm.summary()}\n{world.gateway.log_tail()}"
            )
        n = _size(warm.throughput, 3.0 if ctx.quick else 10.0, 500, sizes.ceiling_n // 4)
        meter = world.meter()
        meter.start()
        tp = await in_run(world, n, rate=0, window=PEER_WINDOW, timeout=sizes.timeout)
        cpu = _cpu_figures(meter.stop(), tp.received)
        rate = max(1.0, tp.throughput / 2.0)
        meter.start()
        lat = await in_run(world, max(100, int(rate * sizes.latency_seconds)), rate=rate,
                           window=PEER_LATENCY_WINDOW, timeout=sizes.timeout)  # fmt: skip
        lat_cpu = meter.stop()
        runs = (warm, tp, lat)
        sent_total = sum(r.sent for r in runs)
        lost = sum(r.sent - r.received for r in runs)
        dups = sum(r.duplicates for r in runs)
        server_stats = await world.server_ctl.stats()
        peer_stats = await world.peers_ctl.stats()
        rss = world.gateway.rss_kib()
    finally:
        await world.stop()
    ctx.details["msn-xmpp"] = {
        "throughput": tp.summary(), "latency": lat.summary(), "warm_up": warm.summary(),
        **cpu, "cpu_latency_run": lat_cpu, "gateway_rss_kib": rss, "msn_server": server_stats,
        "msn_peers": peer_stats, "sent_total": sent_total, "lost": lost, "duplicated": dups,
        "subscribers": len(world.clients), "peers": PEERS, "peer_window": PEER_WINDOW,
    }  # fmt: skip
    return _rows(ctx, "msn-xmpp", "MSG → client", tp, lat, lost, dups, cpu)


# =========================================================================== entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scenarios_msn",
        description="The MSN server and peer processes of the MSN benchmarks.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve-server", action="store_true", help="the fake MSN server with a control port")
    mode.add_argument("--serve-peers", action="store_true", help="scripted MSN peers with a control port")
    parser.add_argument("--control-port", type=int, required=True, help="control port (line protocol)")
    parser.add_argument("--ns-port", type=int, required=True, help="the MSN server's NS port")
    parser.add_argument("--http-port", type=int, default=0, help="server: the Passport (HTTP) port")
    parser.add_argument("--users", help="server: users JSON (see transports/msn/fake_directory.py)")
    parser.add_argument("--peers", help='peers: JSON list of {"handle", "password"}')
    parser.add_argument("--nexus-url", help="peers: the server's nexus URL")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="safety limit on the lifetime")
    args = parser.parse_args(argv)
    if args.serve_server:
        if not args.users:
            parser.error("--serve-server needs --users")
        return asyncio.run(_serve_server(args))
    if not args.peers or not args.nexus_url:
        parser.error("--serve-peers needs --peers and --nexus-url")
    return asyncio.run(_serve_peers(args))


if __name__ == "__main__":
    sys.exit(main())
