"""The optional Prometheus endpoint (``[metrics] listen``): the ``status`` snapshot as
counters and gauges named ``passerelle_*``.

Served from the gateway's own event loop (aiohttp), so a scrape reads the live state
directly; each scrape takes a fresh snapshot through the same code as ``status``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.config import ConfigError

log = logging.getLogger(__name__)
Snapshot = Callable[[], Awaitable[dict[str, Any]]]
NETWORK_GAUGES = frozenset({"in_flight", "window", "sessions", "logged_in", "connecting", "failing"})
"""Transport status keys that go up and down; every other number a transport reports is
a running total, exported as a counter."""


def _name(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key).lower()


def families(snap: dict[str, Any]) -> Iterator[Metric]:
    """The metric families for one ``status`` snapshot. Pure."""
    up = GaugeMetricFamily("passerelle_start_time_seconds", "When the gateway started (Unix time).")
    up.add_metric([], snap["started"])
    yield up
    connected = GaugeMetricFamily(
        "passerelle_component_connected",
        "1 when the component is connected to the XMPP server.",
        labels=["network"],
    )
    for network, comp in snap["components"].items():
        connected.add_metric([network], 1.0 if comp["connected"] else 0.0)
    yield connected

    totals = snap["totals"]
    messages = CounterMetricFamily(
        "passerelle_messages",
        "Messages delivered since start, by network and direction (to_network, to_xmpp).",
        labels=["network", "direction"],
    )
    for direction in ("to_network", "to_xmpp"):
        for network, count in totals.get(direction, {}).items():
            messages.add_metric([network, direction], count)
    yield messages
    failures = CounterMetricFamily(
        "passerelle_message_failures", "Messages that could not be delivered, by network.", labels=["network"]
    )
    for network, count in totals.get("failed", {}).items():
        failures.add_metric([network], count)
    yield failures
    replayed = GaugeMetricFamily(
        "passerelle_replayed_after_restart", "Messages found mid-send at start and sent again."
    )
    replayed.add_metric([], totals.get("replayed_after_restart", 0))
    yield replayed
    rate = GaugeMetricFamily(
        "passerelle_messages_per_minute",
        "Messages over the last minute, by network and direction.",
        labels=["network", "direction"],
    )
    for network, by_direction in snap["messages_per_minute"].items():
        for direction, value in by_direction.items():
            rate.add_metric([network, direction], value)
    yield rate

    outbox = snap["outbox"]
    depth = GaugeMetricFamily("passerelle_outbox_depth", "Messages waiting in the durable outbox.")
    depth.add_metric([], outbox["depth"])
    yield depth
    queues = GaugeMetricFamily("passerelle_outbox_queue_depth", "Outbox messages by queue.", labels=["queue"])
    for queue, count in outbox["queues"].items():
        queues.add_metric([queue], count)
    yield queues
    oldest = GaugeMetricFamily(
        "passerelle_outbox_oldest_age_seconds", "Age of the oldest outbox message (0 when empty)."
    )
    oldest.add_metric([], outbox["oldest_age_s"] or 0.0)
    yield oldest

    subscribers = GaugeMetricFamily("passerelle_subscribers", "Subscribers stored.")
    subscribers.add_metric([], snap["subscribers"])
    yield subscribers
    over = GaugeMetricFamily(
        "passerelle_subscribers_over_sms_limit", "Subscribers at their hourly or daily SMS limit."
    )
    over.add_metric([], len(snap["over_sms_limit"]))
    yield over
    yield from _network_families(snap["networks"])


def _network_families(networks: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    bound = GaugeMetricFamily("passerelle_smsc_bound", "1 when bound to the SMSC.", labels=["network"])
    gauges: dict[str, GaugeMetricFamily] = {}
    counters: dict[str, CounterMetricFamily] = {}
    for network, st in networks.items():
        if "smsc" in st:
            bound.add_metric([network], 1.0 if st["smsc"] == "bound" else 0.0)
        for key, value in st.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            name = f"passerelle_network_{_name(key)}"
            if key in NETWORK_GAUGES:
                family = gauges.setdefault(
                    name, GaugeMetricFamily(name, f"Network status '{key}'.", labels=["network"])
                )
                family.add_metric([network], value)
            else:
                counter = counters.setdefault(
                    name, CounterMetricFamily(name, f"Network total '{key}'.", labels=["network"])
                )
                counter.add_metric([network], value)
    yield bound
    yield from gauges.values()
    yield from counters.values()


class _Latest(Collector):
    def __init__(self) -> None:
        self.snap: dict[str, Any] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.snap is not None:
            yield from families(self.snap)


class MetricsServer:
    """``GET /metrics`` on ``listen``, answered from a fresh snapshot."""

    def __init__(self, listen: tuple[str, int], snapshot: Snapshot) -> None:
        self.listen = listen
        self.snapshot = snapshot
        self.registry = CollectorRegistry(auto_describe=False)
        self._latest = _Latest()
        self.registry.register(self._latest)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = self.listen
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"metrics.listen: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from None
        self._runner = runner
        log.info("metrics on http://%s:%d/metrics", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def render(self) -> bytes:
        self._latest.snap = await self.snapshot()
        return bytes(generate_latest(self.registry))

    async def _metrics(self, _request: web.Request) -> web.Response:
        try:
            body = await self.render()
        except LookupError as exc:  # starting or stopping
            return web.Response(status=503, text=f"{exc.args[0] if exc.args else exc}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(text="Passerelle metrics: /metrics\n")
