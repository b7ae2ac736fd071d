"""Wiring: config → store → transports → bridge → components; run until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

from gateway.bridge import Bridge
from gateway.config import Config, ConfigError
from gateway.gc_policy import GcPolicy
from gateway.ops.runtime import Operations
from gateway.storage import Cipher, Store
from gateway.transport import Transport
from gateway.xmpp.component import GatewayComponent

log = logging.getLogger(__name__)
SHUTDOWN_S = 10.0


def network_transports(config: Config, store: Store) -> dict[str, Transport]:
    """The explicit map from configured network sections to their transports."""
    transports: dict[str, Transport] = {}
    if config.sms is not None:
        try:
            from transports.sms.transport import build_sms  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError("sms: the SMS transport is not available in this build") from None
        transports["sms"] = build_sms(config, store.sms)
    if config.msn is not None:
        try:
            from transports.msn.transport import build_msn  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError("msn: the MSN transport is not available in this build") from None
        transports["msn"] = build_msn(config, store)
    return transports


def component_settings(config: Config, network: str) -> tuple[str, str]:
    section = config.sms if network == "sms" else config.msn if network == "msn" else None
    if section is None:
        raise ConfigError(f"{network}: no such network section")
    return section.jid, section.secret.value


class Gateway:
    """A running gateway: one bridge, one component per network."""

    def __init__(
        self,
        config: Config,
        transports: Mapping[str, Transport] | None = None,
        settings: Mapping[str, tuple[str, str]] | None = None,
        *,
        log_level_fixed: bool = False,
    ) -> None:
        """``transports`` defaults to the networks configured (built once the store is open).
        ``log_level_fixed``: ``-v`` set the log level, so a reload does not change it."""
        self.config = config
        self.transports = dict(transports or {})
        self._given = transports is not None
        self.settings = dict(settings or {})
        self.bridge: Bridge | None = None
        self.store: Store | None = None
        self.ops = Operations(self, log_level_fixed=log_level_fixed)

    async def start(self) -> Bridge:
        await self.ops.open_socket()  # first: refuses to start beside a running gateway
        cipher = Cipher.from_file(self.config.storage.key_file)
        self.store = await Store.open(self.config.storage.path, cipher)
        if not self._given:
            self.transports = network_transports(self.config, self.store)
        for network in self.transports:
            if network not in self.settings:
                self.settings[network] = component_settings(self.config, network)
        bridge = Bridge(self.config, self.store, self.transports)
        for network, transport in self.transports.items():
            jid, secret = self.settings[network]
            component = GatewayComponent(
                network=network,
                jid=jid,
                secret=secret,
                host=self.config.xmpp.host,
                port=self.config.xmpp.port,
                handler=bridge,
                name=f"Passerelle {network.upper()} gateway",
                features=transport.features,
                fields=transport.registration_fields,
                instructions=transport.registration_instructions,
                prompt=transport.gateway_prompt,
            )
            bridge.components[network] = component
        await self.ops.attach(bridge)
        await bridge.start()
        for component in bridge.components.values():
            component.connect()
        self.bridge = bridge
        return bridge

    async def stop(self) -> None:
        """Unavailable to users, flush, close connections; bounded in time."""
        await self.ops.begin_stop()
        if self.bridge is not None:
            for component in self.bridge.components.values():
                component.closing = True
            try:
                await asyncio.wait_for(self.bridge.stop(), SHUTDOWN_S)
            except TimeoutError:
                log.warning("shutdown took longer than %.0f s; closing anyway", SHUTDOWN_S)
            for component in self.bridge.components.values():
                await component.close()
        if self.store is not None:
            await self.store.close()
        await self.ops.close_socket()  # last: "nothing answers" means the database is closed
        log.info("gateway stopped")

    async def run_until_signal(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.ops.reload_in_background)
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        log.info("gateway running: %s", ", ".join(self.settings[n][0] for n in self.transports))
        collector = asyncio.ensure_future(GcPolicy().run())  # long-lived sessions out of full GCs
        await stop.wait()
        log.info("stopping")
        collector.cancel()
        await self.stop()
