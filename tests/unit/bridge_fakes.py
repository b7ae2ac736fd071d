"""Fakes for the bridge tests: a store whose outbox writes fail like a full disk, a
scripted transport, an online XMPP component."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.addressing import FullJid
from gateway.bridge import Bridge
from gateway.storage import Account, Cipher, OutboxItem, StorageError, Store, Subscriber, create_key_file
from gateway.storage.writer import WriteResult
from gateway.transport import DeliveryOutcome
from tests.conftest import base_config
from tests.echo_transport import EchoTransport

ALICE = FullJid.parse("alice@example.test/laptop")
FULL = "database or disk is full"


class FullableStore(Store):
    """The real store, whose outbox writes fail like a full disk while ``full`` is set."""

    full = False
    writes: list[str]

    def _write(self, what: str) -> None:
        self.writes.append(what)
        if self.full:
            raise StorageError(FULL)

    async def enqueue(self, **kwargs: Any) -> int | None:
        self._write("enqueue")
        return await super().enqueue(**kwargs)

    def start_mark_sending(self, item_id: int) -> asyncio.Future[WriteResult]:
        try:
            self._write("mark_sending")
        except StorageError as exc:  # as the writer would settle it
            refused: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
            refused.set_exception(exc)
            return refused
        return super().start_mark_sending(item_id)

    async def reschedule(self, item_id: int, next_attempt: float) -> None:
        self._write("reschedule")
        await super().reschedule(item_id, next_attempt)

    async def complete(self, item_id: int, *, delivered: bool = True) -> None:
        self._write("complete")
        await super().complete(item_id, delivered=delivered)

    async def complete_many(self, item_ids: Any) -> None:
        self._write("complete_many")
        await super().complete_many(item_ids)


class ScriptedTransport(EchoTransport):
    """An echo network whose ``deliver`` is the test's ``script`` (counted)."""

    def __init__(self, network: str, script: Callable[[OutboxItem], DeliveryOutcome]) -> None:
        super().__init__()
        self.network = network
        self.script = script
        self.calls: list[OutboxItem] = []

    async def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        self.calls.append(item)
        return self.script(item)

    async def start_session(self, subscriber: Subscriber, account: Account, secret: str | None) -> None:
        return None  # no contact list to push


class FakeComponent:
    """What the bridge needs of an online XMPP component."""

    def __init__(self) -> None:
        self.online = asyncio.Event()
        self.online.set()
        self.confirms = True  # whether the server answers the ping after the stanzas
        self.handed: list[Any] = []
        self.handovers = 0
        self.receipts: list[tuple[Any, str, str]] = []
        self.errors: list[tuple[Any, ...]] = []
        self.presences: list[Any] = []

    def build_message(self, action: Any) -> Any:
        return action

    async def handover(self, stanzas: list[Any]) -> bool:
        self.handovers += 1
        self.handed += stanzas
        return self.confirms

    def send_receipt(self, to: Any, contact: str, msg_id: str) -> None:
        self.receipts.append((to, contact, msg_id))

    def send_xmpp_presence(self, action: Any) -> None:
        self.presences.append(action)

    def send_error_message(self, *args: Any) -> None:
        self.errors.append(args)


async def open_store(tmp_path: Path) -> FullableStore:
    create_key_file(tmp_path / "secret.key")
    opened = await FullableStore.open(tmp_path / "gw.db", Cipher.from_file(tmp_path / "secret.key"))
    assert isinstance(opened, FullableStore)
    opened.writes = []
    return opened


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def running(
    tmp_path: Path, store: Store, *transports: ScriptedTransport, component: FakeComponent | None = None
) -> Bridge:
    """A started bridge over ``transports``, each with ``component`` as its XMPP side when given."""
    bridge = Bridge(base_config(tmp_path), store, {t.network: t for t in transports})
    if component is not None:
        bridge.components = {t.network: component for t in transports}  # type: ignore[misc]
    await bridge.start()
    return bridge


async def until_empty(store: Store, timeout: float = 6.0) -> None:
    """Until the outbox holds nothing (the bridge removed what it delivered)."""
    async with asyncio.timeout(timeout):
        while await store.outbox_items():
            await asyncio.sleep(0.05)
