"""Percentiles, the result table, the JSON report, and process CPU readings."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

TargetKind = Literal["ratio>=", "ratio<=", ">=", "<="]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation; ``nan`` for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * min(max(p, 0.0), 100.0) / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of round trips given in seconds, reported in milliseconds."""
    if not seconds:
        return {
            "count": 0,
            "p50_ms": math.nan,
            "p90_ms": math.nan,
            "p99_ms": math.nan,
            "max_ms": math.nan,
            "mean_ms": math.nan,
        }
    data = sorted(seconds)
    return {
        "count": len(data),
        "p50_ms": percentile(data, 50) * 1000.0,
        "p90_ms": percentile(data, 90) * 1000.0,
        "p99_ms": percentile(data, 99) * 1000.0,
        "max_ms": data[-1] * 1000.0,
        "mean_ms": sum(data) / len(data) * 1000.0,
    }


@dataclass(frozen=True)
class Target:
    """A goal for one figure: ``ratio>=`` / ``ratio<=`` compare value/ceiling, ``>=`` / ``<=`` the value."""

    kind: TargetKind
    bound: float

    def met(self, value: float, ceiling: float | None) -> bool | None:
        if math.isnan(value):
            return False
        if self.kind.startswith("ratio"):
            if ceiling is None or ceiling == 0 or math.isnan(ceiling):
                return None
            value = value / ceiling
        return value >= self.bound if self.kind.endswith(">=") else value <= self.bound

    def __str__(self) -> str:
        if self.kind.startswith("ratio"):
            return f"{self.kind[5:]} {self.bound:g}x"
        return f"{self.kind} {_fmt(self.bound)}"


@dataclass(frozen=True)
class Row:
    """One line of the report: a figure of a scenario, optionally against the ceiling and a target."""

    scenario: str
    figure: str
    value: float
    unit: str
    ceiling: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ceiling is None or self.ceiling == 0 or math.isnan(self.ceiling):
            return None
        return self.value / self.ceiling

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value, self.ceiling)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        t = self.target
        out["target"] = None if t is None else {"kind": t.kind, "bound": t.bound, "text": str(t)}
        out["ratio"] = self.ratio
        out["met"] = self.met
        return {k: _json_number(v) for k, v in out.items()}


def _json_number(v: Any) -> Any:
    return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isnan(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


HEADERS = ("scenario", "figure", "value", "unit", "ceiling", "ratio", "target", "met?")


def format_table(rows: Iterable[Row]) -> str:
    cells = [HEADERS]
    for r in rows:
        ratio = r.ratio
        met = r.met
        cells.append(
            (
                r.scenario,
                r.figure,
                _fmt(r.value),
                r.unit,
                _fmt(r.ceiling),
                "-" if ratio is None else f"{ratio:.3f}",
                "-" if r.target is None else str(r.target),
                "-" if met is None else ("yes" if met else "NO"),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    numeric = {2, 4, 5}
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(widths[i]) if i in numeric and n else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(rows: Iterable[Row], file: TextIO | None = None) -> None:
    print(format_table(rows), file=file, flush=True)


def environment() -> dict[str, Any]:
    """What the numbers depend on: machine, load, versions."""
    env: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        env["loadavg"] = list(os.getloadavg())
    try:
        import slixmpp

        env["slixmpp"] = str(slixmpp.__version__)
    except ImportError:
        pass
    return env


def write_json(path: Path, rows: Sequence[Row], details: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write the report: ``meta`` (environment, options), ``rows`` (the table), ``details`` (raw results)."""
    doc = {"meta": meta, "rows": [r.to_json() for r in rows], "details": details}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")
    tmp.replace(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sanitize(obj: Any) -> Any:
    """Replace NaN/inf floats with ``None`` recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return _json_number(obj)
    if isinstance(obj, dict):
        return {k: sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize(v) for v in obj]
    return obj


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds used so far by process ``pid`` (Linux ``/proc``), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB (Linux ``/proc``), or ``None``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine, all cores (Linux ``/proc/stat``), or ``None``."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    values = [int(v) for v in fields[1:9]]
    return (sum(values) - values[3] - values[4]) / _CLK_TCK


class CpuMeter:
    """CPU used by a set of processes between ``start()`` and ``stop()``, as % of one core.

    ``stop()`` also reports ``machine`` (every process, all cores) and ``others`` (the machine
    minus the measured processes): a large ``others`` means the run shared the cores with
    unrelated work and its figures are low.
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {k: v for k, v in pids.items() if v is not None}
        self._t0 = 0.0
        self._c0: dict[str, float | None] = {}
        self._m0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._c0 = {
            k: (time.process_time() if pid == os.getpid() else cpu_seconds(pid))
            for k, pid in self.pids.items()
        }
        self._m0 = machine_cpu_seconds()

    def stop(self) -> dict[str, dict[str, float]]:
        wall = time.perf_counter() - self._t0
        out: dict[str, dict[str, float]] = {}
        for k, pid in self.pids.items():
            c1 = time.process_time() if pid == os.getpid() else cpu_seconds(pid)
            c0 = self._c0.get(k)
            if c0 is None or c1 is None or wall <= 0:
                continue
            out[k] = {"cpu_s": c1 - c0, "cpu_pct": 100.0 * (c1 - c0) / wall}
        m1 = machine_cpu_seconds()
        if self._m0 is not None and m1 is not None and wall > 0:
            ours = sum(v["cpu_s"] for v in out.values())
            out["machine"] = {"cpu_s": m1 - self._m0, "cpu_pct": 100.0 * (m1 - self._m0) / wall}
            others = max(0.0, m1 - self._m0 - ours)
            out["others"] = {"cpu_s": others, "cpu_pct": 100.0 * others / wall}
        return out


ADDED_P50_MS = 2.0  # the bound on the latency a relay adds over the echo path, p50
ADDED_P99_MS = 20.0  # ... and p99


def added_latency_rows(
    scenario: str, summary: dict[str, Any], ceiling_p50_ms: float, ceiling_p99_ms: float
) -> list[Row]:
    """The latency a relay adds over the echo path: its p50/p99 at half its sustainable rate minus
    the echo round trip's p50/p99 (at half the echo rate) from the same run."""
    return [
        Row(scenario, "added latency p50 (over echo)", float(summary["p50_ms"]) - ceiling_p50_ms, "ms",
            target=Target("<=", ADDED_P50_MS)),
        Row(scenario, "added latency p99 (over echo)", float(summary["p99_ms"]) - ceiling_p99_ms, "ms",
            target=Target("<=", ADDED_P99_MS)),
    ]  # fmt: skip
