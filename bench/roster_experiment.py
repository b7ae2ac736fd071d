"""``python -m bench.roster_experiment``: where the time of a big roster sync goes in Prosody.

The gateway pushes a subscriber's MSN list as XEP-0356 roster sets (``gateway/xmpp/component.py``,
``ROSTER_BATCH`` items per ``<iq type='set'/>``). This experiment does the same from a raw
component connection (no slixmpp, no gateway) to a Prosody of its own, and times every IQ: from
the write to the last ``result`` for its id (mod_privilege answers once per item, all with the
IQ's id), with a raw c2s client of the user online and interested in roster pushes, as in the
bench.

Each case pushes N items to a fresh user in batches of B, then pushes the same N items again
(the "update" pass: the roster is already full). Prosody configurations:

- ``stock``: Debian's Prosody 0.12 with Debian's ``mod_privilege`` and ``storage = "internal"``,
  what the bench and a default deployment run;
- ``memory-roster``: the same with the roster store in memory (``storage = { roster = "memory" }``),
  which takes serialising and writing the roster file out of every item;
- ``save-once``: a copy of ``mod_privilege`` changed to save the roster once per IQ (after its
  items) instead of once per item, and to answer the IQ once. It is written to the temp dir and
  loaded through ``plugin_paths``; the system module is not touched.

It prints one line per case and writes the raw figures to JSON (``--json``). It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.devtools.prosody import ComponentSpec, Prosody

from .ceiling import BENCH_PASSWORD
from .rawclient import STREAM_NS, RawClient, StanzaSplitter, XmppError, attributes, escape_attr
from .stats import cpu_seconds, percentile, rss_kib

DOMAIN = "example.test"
SYSTEM_MODULE = Path("/usr/lib/prosody/modules/mod_privilege/mod_privilege.lua")
_STREAM_HEADER = re.compile(rb"<stream:stream\b[^>]*>")
_HANDSHAKE = re.compile(rb"<handshake\s*/>|<handshake>\s*</handshake>")

# the per-item save and reply of the stock module, and the end of its item loop
_STOCK_SAVE = (
    "if roster_manager.save_roster(from_node, from_host, roster) then -- Ok, send success\n"
    "                                session.send(st.reply(stanza))"
)
_ONCE_SAVE = "if true then -- saved once, after the loop (bench.roster_experiment)"
_STOCK_LOOP_END = "        end -- for loop end\n"
_ONCE_LOOP_END = (
    "        end -- for loop end\n"
    "        if roster_manager.save_roster(from_node, from_host, roster) then\n"
    "            session.send(st.reply(stanza))\n"
    "        else\n"
    '            session.send(st.error_reply(stanza, "wait", "internal-server-error",\n'
    '                "Unable to save roster"))\n'
    "        end\n"
)


class RawComponent:
    """A XEP-0114 component connection that sends raw IQs and counts the answers per id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, jid: str) -> None:
        self.reader, self.writer, self.jid = reader, writer, jid
        self.answers: dict[str, list[tuple[float, bool]]] = {}  # id -> (time, is_error)
        self.privileged = asyncio.Event()
        self.changed = asyncio.Event()
        self._splitter = StanzaSplitter()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, jid: str, secret: str) -> RawComponent:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"<stream:stream xmlns='jabber:component:accept' xmlns:stream='{STREAM_NS}' "
            f"to='{escape_attr(jid)}'>".encode()
        )
        buf = b""
        while (header := _STREAM_HEADER.search(buf)) is None:
            buf += await asyncio.wait_for(reader.read(65536), 10.0)
        stream_id = attributes(header.group(0)).get("id", "")
        digest = hashlib.sha1((stream_id + secret).encode()).hexdigest()  # XEP-0114 says SHA-1
        writer.write(f"<handshake>{digest}</handshake>".encode())
        buf = buf[header.end() :]
        while (done := _HANDSHAKE.search(buf)) is None:
            data = await asyncio.wait_for(reader.read(65536), 10.0)
            if not data or b"stream:error" in buf + data:
                raise XmppError(f"component handshake refused: {(buf + data)[-300:]!r}")
            buf += data
        comp = cls(reader, writer, jid)
        comp._feed(buf[done.end() :])
        comp._task = asyncio.create_task(comp._read_loop())
        return comp

    def _feed(self, data: bytes) -> None:
        now = time.perf_counter()
        for name, attrs, raw in self._splitter.feed(data):
            a = attributes(attrs)
            if name == b"iq" and a.get("type") in ("result", "error"):
                self.answers.setdefault(a.get("id", ""), []).append((now, a.get("type") == "error"))
                self.changed.set()
            elif name == b"message" and b"urn:xmpp:privilege" in raw:
                self.privileged.set()

    async def _read_loop(self) -> None:
        while data := await self.reader.read(256 * 1024):
            self._feed(data)

    async def wait_answers(self, iq_id: str, count: int, timeout: float) -> list[tuple[float, bool]]:
        """The answers to ``iq_id`` once ``count`` of them (or an error) came."""
        async with asyncio.timeout(timeout):
            while len(got := self.answers.get(iq_id, [])) < count and not any(e for _, e in got):
                self.changed.clear()
                await self.changed.wait()
        return self.answers.pop(iq_id)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.writer.write(b"</stream:stream>")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task
        self.writer.close()


def _item(j: int, component: str) -> str:
    group = f"Group {j % 25:02d}"
    return (
        f"<item jid='c{j}\\40example.net@{component}' name='Contact {j} &#xC9;b&#xE8;ne' "
        f"subscription='both'><group>{group}</group></item>"
    )


@dataclass
class Case:
    variant: str
    contacts: int
    batch: int
    answers_per_iq: str = ""
    passes: dict[str, dict[str, Any]] = field(default_factory=dict)


async def _push(
    comp: RawComponent, user_jid: str, n: int, batch: int, prosody_pid: int, timeout: float,
    per_item_answers: bool,
) -> dict[str, Any]:  # fmt: skip
    """Push items 0..n-1 in batches; each IQ waits for all its answers before the next one."""
    perf = time.perf_counter
    iqs: list[dict[str, float]] = []
    answers = 0
    cpu0 = cpu_seconds(prosody_pid) or 0.0
    t0 = perf()
    for start in range(0, n, batch):
        items = "".join(_item(j, comp.jid) for j in range(start, min(n, start + batch)))
        iq_id = secrets.token_hex(4)
        sent = perf()
        comp.writer.write(
            f"<iq type='set' id='{iq_id}' from='{comp.jid}' to='{user_jid}'>"
            f"<query xmlns='jabber:iq:roster'>{items}</query></iq>".encode()
        )
        expected = min(n, start + batch) - start
        # stock mod_privilege answers once per item, all with the IQ's id; save-once answers once
        got = await comp.wait_answers(iq_id, expected if per_item_answers else 1, timeout)
        if any(err for _, err in got):
            raise XmppError(f"roster set refused for {user_jid}")
        answers += len(got)
        iqs.append({"roster_before": start, "items": expected, "first_ms": (got[0][0] - sent) * 1e3,
                    "last_ms": (max(t for t, _ in got) - sent) * 1e3})  # fmt: skip
    total = perf() - t0
    cpu = (cpu_seconds(prosody_pid) or 0.0) - cpu0
    per_item = [iq["first_ms"] / iq["items"] for iq in iqs]
    last = iqs[-1]
    return {
        "total_s": round(total, 4),
        "ms_per_item": round(total * 1e3 / n, 4),
        "prosody_cpu_s": round(cpu, 3),
        "iqs": len(iqs),
        "answers": answers,
        "iq_round_trip_p50_ms": round(percentile([iq["first_ms"] for iq in iqs], 50), 3),
        "iq_round_trip_max_ms": round(max(iq["first_ms"] for iq in iqs), 3),
        "first_iq_ms_per_item": round(per_item[0], 4),
        "last_iq_ms_per_item": round(per_item[-1], 4),
        "last_iq_roster_before": last["roster_before"],
        "per_iq": iqs if len(iqs) <= 50 else iqs[:: max(1, len(iqs) // 50)],
    }


def _patched_module(directory: Path) -> Path:
    text = SYSTEM_MODULE.read_text(encoding="utf-8")
    if text.count(_STOCK_SAVE) != 1 or text.count(_STOCK_LOOP_END) != 1:
        raise RuntimeError(f"{SYSTEM_MODULE} is not the version this experiment knows how to change")
    text = text.replace(_STOCK_SAVE, _ONCE_SAVE).replace(_STOCK_LOOP_END, _ONCE_LOOP_END)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mod_privilege.lua"
    path.write_text(text, encoding="utf-8")
    return path


def _start_prosody(workdir: Path, variant: str, component: ComponentSpec) -> Prosody:
    prosody = Prosody(workdir / variant, DOMAIN, [component], generational_gc=True)
    prosody.write_config()
    config = prosody.config_path.read_text(encoding="utf-8")
    if variant == "memory-roster":
        memory = 'storage = { roster = "memory" }\ndefault_storage = "internal"'
        config = config.replace('storage = "internal"', memory)
    elif variant == "save-once":
        plugins = workdir / variant / "plugins"
        _patched_module(plugins)
        config = f'plugin_paths = {{ "{plugins}" }}\n' + config
    prosody.config_path.write_text(config, encoding="utf-8")
    prosody.start()
    return prosody


async def run_variant(
    workdir: Path, variant: str, cases: Sequence[tuple[int, int]], timeout: float
) -> list[Case]:
    component = ComponentSpec(f"roster.{DOMAIN}", secrets.token_hex(16))
    prosody = await asyncio.to_thread(_start_prosody, workdir, variant, component)
    results: list[Case] = []
    try:
        assert prosody.process is not None
        pid = prosody.process.pid
        comp = await RawComponent.connect(prosody.component_port, component.jid, component.secret)
        try:
            await asyncio.wait_for(comp.privileged.wait(), 10.0)
            for idx, (n, batch) in enumerate(cases):
                user = f"owner{idx}"
                await asyncio.to_thread(prosody.register, user, BENCH_PASSWORD)
                client = await RawClient.connect(prosody.c2s_port, f"{user}@{DOMAIN}/watch", BENCH_PASSWORD)
                try:
                    await client.send_iq("<query xmlns='jabber:iq:roster'/>")  # interested: gets pushes
                    case = Case(variant, n, batch)
                    for pass_name in ("first", "update"):
                        case.passes[pass_name] = await _push(
                            comp, f"{user}@{DOMAIN}", n, batch, pid, timeout, variant != "save-once"
                        )
                    first = case.passes["first"]
                    case.answers_per_iq = f"{first['answers'] / first['iqs']:.0f}"
                    results.append(case)
                    u = case.passes["update"]
                    print(
                        f"{variant:13} N={n:5d} B={batch:5d}: first sync {first['total_s']:7.2f} s "
                        f"({first['ms_per_item']:.2f} ms/item; first IQ {first['first_iq_ms_per_item']:.2f}, "
                        f"last IQ {first['last_iq_ms_per_item']:.2f} ms/item), Prosody CPU "
                        f"{first['prosody_cpu_s']:.2f} s, {first['iqs']} IQs, "
                        f"{case.answers_per_iq} answers/IQ; update pass {u['total_s']:.2f} s "
                        f"({u['ms_per_item']:.2f} ms/item); "
                        f"Prosody RSS {rss_kib(pid)} KiB",
                        flush=True,
                    )
                finally:
                    await client.close()
        finally:
            await comp.close()
    finally:
        await asyncio.to_thread(prosody.stop)
    return results


def _fit(cases: list[Case]) -> dict[str, Any]:
    """Least squares of per-item time (ms) against the roster size before each IQ (stock, B small)."""
    xs: list[float] = []
    ys: list[float] = []
    for case in cases:
        for iq in case.passes["first"]["per_iq"]:
            xs.append(float(iq["roster_before"]) + iq["items"] / 2.0)
            ys.append(iq["first_ms"] / iq["items"])
    if len(xs) < 3:
        return {}
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return {
        "ms_per_item_at_empty": round(my - slope * mx, 4),
        "us_per_item_per_roster_item": round(slope * 1e3, 4),
    }


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="passerelle-roster-"))
    sizes = [int(s) for s in args.contacts.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    plan: dict[str, list[tuple[int, int]]] = {
        "stock": [(sizes[0], b) for b in batches] + [(n, 250) for n in sizes[1:]],
        "memory-roster": [(n, 250) for n in sizes],
        "save-once": [(n, b) for n in sizes for b in sorted({250, max(batches)})],
    }
    report: dict[str, Any] = {"contacts": sizes, "batches": batches, "cases": [], "fits": {}}
    try:
        for variant in args.variants.split(","):
            cases = await run_variant(workdir, variant, plan[variant], args.timeout)
            report["cases"] += [c.__dict__ for c in cases]
            report["fits"][variant] = _fit(cases)
            print(f"{variant}: per-item cost fit {report['fits'][variant]}", flush=True)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.roster_experiment", description="Roster sets through mod_privilege, timed."
    )
    parser.add_argument("--contacts", default="1000,2000", help="roster sizes, comma-separated")
    parser.add_argument("--batches", default="1,10,50,250,1000", help="batch sizes tried on the first size")
    parser.add_argument("--variants", default="stock,memory-roster,save-once")
    parser.add_argument("--timeout", type=float, default=300.0, help="per IQ")
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (Prosody logs)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
