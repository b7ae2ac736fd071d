"""The SMS transport over a real ESME and the fake SMSC: the same text sent twice is two
messages (it used to be one: every copy within 5 minutes was dropped as a redelivery);
the SMSC sending a PDU again, after a withheld answer or after a rebind, is one. A sighting
whose answer the SMSC confirmed is forgotten from the database, so a restarted gateway takes
the same text as new; one whose answer was lost with the bind still catches the redelivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.addressing import BareJid
from gateway.config import parse
from gateway.core.events import LegacyMessageReceived, NetworkEvent, ServiceSmsReceived
from gateway.storage import Cipher, Store, create_key_file
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.redelivery import RESEND_FLOOR_S
from transports.sms.status import Status
from transports.sms.transport import SmsTransport

SAM, ALICE = "33611111111", "33612345678"


class Sink:
    def __init__(self) -> None:
        self.taken: list[NetworkEvent] = []

    async def __call__(self, event: NetworkEvent) -> None:
        self.taken.append(event)

    def texts(self) -> list[str]:
        return [
            e.body if isinstance(e, LegacyMessageReceived) else e.text
            for e in self.taken
            if isinstance(e, LegacyMessageReceived | ServiceSmsReceived)
        ]


class Gateway:
    def __init__(self, tmp_path: Path, smsc: FakeSmsc) -> None:
        self.tmp_path, self.smsc = tmp_path, smsc
        self.store: Store | None = None
        self.transport: SmsTransport | None = None
        self.sink = Sink()

    async def start(self) -> SmsTransport:
        """Open the store and start the transport (a new process: a new sink)."""
        self.sink = Sink()
        key = self.tmp_path / "secret.key"
        if not key.exists():
            create_key_file(key)
        self.store = await Store.open(self.tmp_path / "gw.db", Cipher.from_file(key))
        if await self.store.subscriber_by_account("sms", "+" + ALICE) is None:
            sam = await self.store.add_subscriber(None, 1.0)
            await self.store.set_account(sam.id, "sms", "+" + SAM, None, 1.0)
            alice = await self.store.add_subscriber(BareJid.parse("alice@example.test"), 1.0)
            await self.store.set_account(alice.id, "sms", "+" + ALICE, None, 1.0)
        config = parse(
            {
                "xmpp": {"user_domains": ["example.test"]},
                "storage": {"path": str(self.tmp_path / "gw.db"), "key_file": str(key)},
                "sms": {
                    "jid": "sms.example.test", "secret": "s", "service_number": "2020",
                    "smsc": {"host": "127.0.0.1", "port": self.smsc.port,
                             "system_id": "gw", "password": "pw"},
                },
            },
            env={},
        ).sms  # fmt: skip
        assert config is not None
        self.transport = SmsTransport(config, self.store.sms)
        await self.transport.start(self.sink)
        assert await self.transport.esme.wait_bound(5)
        return self.transport

    async def stop(self) -> None:
        if self.transport is not None:
            await self.transport.stop()
        if self.store is not None:
            await self.store.close()
        self.transport = self.store = None

    async def seen_rows(self) -> int:
        assert self.store is not None
        rows = await self.store._r.execute("SELECT count(*) FROM seen WHERE at > 0")
        return int(rows[0][0])


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with FakeSmsc(system_id="gw", password="pw") as smsc:
        gateway = Gateway(tmp_path, smsc)
        await gateway.start()
        try:
            yield gateway
        finally:
            await gateway.stop()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_the_same_text_twice_at_once_is_two_messages(gw: Gateway) -> None:
    for _ in range(2):
        assert await gw.smsc.inject_mo(SAM, ALICE, "ok", redeliver=True) == [Status.ESME_ROK]
        assert await gw.smsc.inject_mo(SAM, "2020", "/who", redeliver=True) == [Status.ESME_ROK]
    assert gw.sink.texts() == ["ok", "/who", "ok", "/who"]
    keys = {getattr(e, "dedup_key", "") for e in gw.sink.taken}
    assert len(keys) == 4, "the bridge keeps one message per key: each needs its own"
    assert gw.smsc.redeliveries == []
    assert gw.transport is not None and gw.transport.counters["mo_duplicates"] == 0


async def test_the_same_text_again_after_the_resend_floor_is_a_new_message(gw: Gateway) -> None:
    """Past the floor, only the SMSC's confirmation of the first answer tells it apart from
    the SMSC sending it again: the ESME's enquire_link right after the answer gives it."""
    assert await gw.smsc.inject_mo(SAM, ALICE, "ok") == [Status.ESME_ROK]
    await asyncio.sleep(RESEND_FLOOR_S + 0.3)  # the scenario: a person typing it again later
    assert await gw.smsc.inject_mo(SAM, ALICE, "ok") == [Status.ESME_ROK]
    assert gw.sink.texts() == ["ok", "ok"]


async def test_a_pdu_sent_again_after_a_withheld_answer_is_taken_once(gw: Gateway) -> None:
    gw.smsc.withhold_responses(1)
    assert await gw.smsc.inject_mo(SAM, ALICE, "only once", redeliver=True) == [Status.ESME_ROK]
    gw.smsc.withhold_responses(1)
    assert await gw.smsc.inject_mo(SAM, "2020", "/who", redeliver=True) == [Status.ESME_ROK]
    assert len(gw.smsc.redeliveries) == 2
    assert gw.sink.texts() == ["only once", "/who"]
    assert gw.transport is not None and gw.transport.counters["mo_duplicates"] == 1


async def test_a_pdu_sent_again_after_a_rebind_is_taken_once_also_after_a_restart(gw: Gateway) -> None:
    gw.smsc.lose_bind_on_responses(1)
    assert await gw.smsc.inject_mo(SAM, ALICE, "only once", redeliver=True) == [Status.ESME_ROK]
    assert len(gw.smsc.redeliveries) == 1 and gw.smsc.bound_count == 1
    assert gw.sink.texts() == ["only once"]
    # the gateway stops while the answer to the next one is lost with the bind
    gw.smsc.lose_bind_on_responses(1)
    mo = asyncio.ensure_future(gw.smsc.inject_mo(SAM, ALICE, "lost", redeliver=True, timeout=20.0))
    await until(lambda: gw.sink.texts()[-1:] == ["lost"] and gw.smsc.bound_count == 0)
    await gw.smsc.stop()  # no rebind before the restart
    await gw.stop()
    await gw.smsc.start()
    await gw.start()  # the SMSC sends it again: its sighting survived the restart
    assert await mo == [Status.ESME_ROK]
    assert len(gw.smsc.redeliveries) == 2
    assert gw.sink.texts() == []  # the new process: not taken again
    assert gw.transport is not None and gw.transport.counters["mo_duplicates"] == 1


async def test_a_confirmed_sighting_is_forgotten_so_a_restart_takes_a_repeat(gw: Gateway) -> None:
    assert await gw.smsc.inject_mo(SAM, ALICE, "ok") == [Status.ESME_ROK]
    assert gw.sink.texts() == ["ok"]
    await wait_rows(gw, 0)  # the answer was confirmed: nothing will send it again
    await gw.stop()
    await gw.start()
    assert await gw.smsc.inject_mo(SAM, ALICE, "ok") == [Status.ESME_ROK]
    assert gw.sink.texts() == ["ok"]  # the new process's sink: taken again


async def wait_rows(gw: Gateway, count: int, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await gw.seen_rows() != count:
            await asyncio.sleep(0.05)
