"""The operator's side of a running gateway: admin socket, metrics, ad-hoc commands,
message rates, and configuration reload. Owned by :class:`gateway.app.Gateway`.

The admin socket opens first (so a second gateway on the same configuration is refused
before it touches the database) and closes last (so "no gateway answers" means the
database is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import replace
from typing import Any, Protocol

from gateway import config as config_mod
from gateway.bridge import Bridge
from gateway.config import Config, ConfigError
from gateway.logs import set_level
from gateway.ops import adhoc, changes, reload, status
from gateway.ops.admin_socket import AdminServer
from gateway.ops.metrics import MetricsServer
from gateway.ops.rates import RateWindow
from gateway.transport import Transport

log = logging.getLogger(__name__)
SAMPLE_S = 5.0


class Running(Protocol):
    """The gateway as seen from here (``gateway.app.Gateway``)."""

    config: Config
    bridge: Bridge | None


class Operations:
    def __init__(self, gateway: Running, *, log_level_fixed: bool = False) -> None:
        """``log_level_fixed``: the command line set the level (``-v``), a reload keeps it."""
        self.gateway = gateway
        self.log_level_fixed = log_level_fixed
        self.started = time.time()
        self.rates = RateWindow(self.started)
        self.stopping = False
        self.admin = AdminServer(gateway.config.admin.socket, self.handle)
        self.metrics: MetricsServer | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> Config:
        return self.gateway.config

    @property
    def bridge(self) -> Bridge:
        if self.gateway.bridge is None:
            raise LookupError("the gateway is still starting")
        return self.gateway.bridge

    # -- lifecycle -----------------------------------------------------------------------

    async def open_socket(self) -> None:
        await self.admin.start()

    async def attach(self, bridge: Bridge) -> None:
        """The bridge and its components exist (not yet connected): offer everything else."""
        for component in bridge.components.values():
            adhoc.install(component, self)
        listen = self.config.metrics.listen
        if listen is not None:
            self.metrics = MetricsServer(listen, self.snapshot)
            await self.metrics.start()
        self._sampler = asyncio.ensure_future(self._sample_loop(bridge))

    async def begin_stop(self) -> None:
        self.stopping = True
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self.metrics is not None:
            await self.metrics.stop()

    async def close_socket(self) -> None:
        await self.admin.stop()

    async def _sample_loop(self, bridge: Bridge) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.rates.sample(time.time(), status.totals(bridge))

    # -- what the socket, the metrics and the admin commands ask -------------------------

    async def snapshot(self) -> dict[str, Any]:
        return await status.collect(self.bridge, self.config, self.rates, self.started)

    async def handle(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """An admin socket request. ``LookupError``: no such command (or not yet possible)."""
        match command:
            case "ping":
                return {"pid": os.getpid(), "stopping": self.stopping}
            case "status":
                if self.stopping:
                    raise LookupError("the gateway is stopping")
                return {"status": await self.snapshot()}
            case "reload":
                return {"summary": await self.reload()}
            case "subscriber-changed":
                return {"applied": await changes.subscriber_changed(self.bridge, args)}
        raise LookupError(f"unknown command {command!r}")

    # -- configuration reload (SIGHUP, the reload-config command) ------------------------

    def reload_in_background(self) -> None:
        """The SIGHUP handler: reload, and log the outcome (a bad file changes nothing)."""

        async def run() -> None:
            try:
                await self.reload()
            except ConfigError as exc:
                log.error("configuration not reloaded, the running configuration is kept: %s", exc)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> str:
        """Re-read the file and apply what can change without a restart; the summary
        (also logged) names what was applied and what needs a restart."""
        source = self.config.source
        if source is None:
            raise ConfigError("this gateway was not started from a file; nothing to reload")
        async with self._reloading:
            reread = await asyncio.to_thread(config_mod.load, source)
            plan = reload.plan(self.config, reread)
            self._apply(plan.config)
        summary = plan.summary()
        if plan.applied and self.log_level_fixed and any(a.startswith("logging.level") for a in plan.applied):
            summary += " (the log level stays as set by -v on the command line)"
        log.log(logging.WARNING if plan.needs_restart else logging.INFO, "%s", summary)
        return summary

    def _apply(self, config: Config) -> None:
        self.gateway.config = config
        bridge = self.gateway.bridge
        if bridge is not None:
            bridge.config = config
            _apply_sms_limits(bridge.transports.get("sms"), config)
        if not self.log_level_fixed:
            set_level(config.logging.level)


def _apply_sms_limits(transport: Transport | None, config: Config) -> None:
    """The SMS quota is built from ``sms.limits`` once; give the transport the new one."""
    if transport is None or config.sms is None:
        return
    try:
        from transports.sms.transport import SmsTransport  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    from gateway.storage.sms import Quota

    if isinstance(transport, SmsTransport):
        limits = config.sms.limits
        transport.quota = Quota(limits.per_user_per_hour, limits.per_user_per_day, limits.global_per_day)
        transport.cfg = replace(transport.cfg, limits=limits)
