"""Subscribers are kept apart: one cannot send from another's number, receive another's SMS,
log in to another's MSN account or see another's registration; ``user remove`` leaves
nothing of the subscriber behind; stored passwords need the key file."""

from __future__ import annotations

import asyncio
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.addressing import BareJid
from gateway.cli import main
from gateway.config import parse
from gateway.core.events import LegacyMessageReceived, NetworkEvent
from gateway.errors import UserError
from gateway.storage import Cipher, Contact, OutboxItem, Store, create_key_file
from gateway.storage.sms import Quota, SentPart, StoredPart
from tests.security.test_quota_concurrency import _AcceptingEsme
from transports.msn.fake_server import FakeMsnServer
from transports.msn.transport import MsnTransport
from transports.sms.pdu import DeliverSm, SubmitSm
from transports.sms.status import Status
from transports.sms.transport import SmsTransport

ALICE, BOB = "alice@example.org", "bob@example.org"
ALICE_NUMBER, BOB_NUMBER = "+33612345678", "+33698765432"
NOW = 1_700_000_000.0

CONFIG = """\
[xmpp]
user_domains = ["example.org"]
[storage]
path = "gw.db"
key_file = "secret.key"
[sms]
jid = "sms.example.org"
secret = "isolation-secret"
service_number = "2020"
[sms.smsc]
system_id = "gw"
password = "pw"
[msn]
jid = "msn.example.org"
secret = "isolation-msn-secret"
[msn.server]
nexus_url = "http://127.0.0.1:1/nexus"
"""


def _config(tmp: Path) -> Any:
    path = tmp / "p.toml"
    path.write_text(CONFIG)
    return parse(tomllib.loads(CONFIG), env={}, source=path)


async def _store(tmp: Path) -> Store:
    if not (tmp / "secret.key").exists():
        create_key_file(tmp / "secret.key")
    return await Store.open(tmp / "gw.db", Cipher.from_file(tmp / "secret.key"))


async def _everything_about(store: Store, jid: str, number: str, msn: str, peer: str) -> int:
    """Give ``jid`` a row in every table the gateway writes; return the subscriber id."""
    sub = await store.add_subscriber(BareJid.parse(jid), NOW)
    await store.set_account(sub.id, "sms", number, None, NOW)
    await store.set_account(sub.id, "msn", msn, f"{jid}-msn-password", NOW)
    await store.upsert_contacts([Contact(sub.id, "sms", peer, "Peer", ("G",), 1)])
    await store.enqueue(
        network="sms", subscriber_id=sub.id, dedup_key=f"sms:{jid}:1", destination=peer,
        payload={"body": "hello", "from": f"{jid}/x"}, now=NOW, expires=NOW + 60,
    )  # fmt: skip
    await store.sms.count_send(f"sms:{jid}:0", sub.id, 1, NOW, Quota(60, 300, 1000))
    await store.sms.record_sent(
        SentPart(f"sms:{jid}:0", 1, f"id-{sub.id}", "sent", 1, sub.id, {"from": jid}), NOW
    )
    await store.sms.put_code(jid, "+33611111111", "123456", NOW + 300)  # linking another number
    await store.sms.add_mo_part(StoredPart(peer.lstrip("+"), number.lstrip("+"), 7, 2, 1, 0, b"part", NOW))
    return sub.id


def _rows_mentioning(db: Path, sub_id: int, needles: list[str]) -> list[str]:
    found = []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 (test)
                for column, value in zip(columns, row, strict=True):
                    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    if (column in ("subscriber_id", "id") and table != "outbox" and value == sub_id) or any(
                        n in text for n in needles
                    ):
                        found.append(f"{table}.{column}={text[:40]}")
    return found


def test_user_remove_leaves_nothing_of_the_subscriber(tmp_path: Path) -> None:
    async def seed() -> int:
        store = await _store(tmp_path)
        try:
            alice = await _everything_about(store, ALICE, ALICE_NUMBER, "alice@msn.test", BOB_NUMBER)
            await _everything_about(store, BOB, BOB_NUMBER, "bob@msn.test", ALICE_NUMBER)
            return alice
        finally:
            await store.close()

    alice_id = asyncio.run(seed())
    (tmp_path / "p.toml").write_text(CONFIG)
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "p.toml"), "user", "remove", ALICE, "--yes"])
    assert result.exit_code == 0, result.output
    # bob's own rows stay; bob's mentions of alice's number as *his* contact are his data
    with sqlite3.connect(tmp_path / "gw.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM subscribers WHERE jid = ?", (BOB,)).fetchone() == (1,)
        conn.execute("DELETE FROM contacts WHERE legacy_id = ?", (ALICE_NUMBER,))  # bob's contact entry
        conn.execute("DELETE FROM outbox WHERE destination = ?", (ALICE_NUMBER,))  # bob's message to alice
        conn.execute(
            "DELETE FROM sms_mo_parts WHERE source = ?", (ALICE_NUMBER.lstrip("+"),)
        )  # alice texting bob
    leftovers = _rows_mentioning(
        tmp_path / "gw.db", alice_id, [ALICE, ALICE_NUMBER.lstrip("+"), "alice@msn.test"]
    )
    assert leftovers == []


def test_a_subscriber_cannot_send_from_anothers_number(tmp_path: Path) -> None:
    async def run() -> list[str]:
        store = await _store(tmp_path)
        try:
            alice = await store.add_subscriber(BareJid.parse(ALICE), NOW)
            bob = await store.add_subscriber(BareJid.parse(BOB), NOW)
            await store.set_account(alice.id, "sms", ALICE_NUMBER, None, NOW)
            await store.set_account(bob.id, "sms", BOB_NUMBER, None, NOW)
            cfg = _config(tmp_path)
            transport = SmsTransport(cfg.sms, store.sms, clock=lambda: NOW)
            sources: list[str] = []

            class Recording(_AcceptingEsme):
                async def submit(self, pdu: SubmitSm) -> Any:
                    sources.append(pdu.source_addr)
                    return await super().submit(pdu)

            transport.esme = Recording()  # type: ignore[assignment]
            # bob's message, whatever its payload claims, leaves from bob's number
            forged = {"body": "hi", "from": f"{ALICE}/x", "source": ALICE_NUMBER, "msisdn": ALICE_NUMBER}
            item = OutboxItem(1, "sms", bob.id, "k1", "+33611111111", forged, "sending", 1, 0, NOW, NOW + 60)
            await transport.deliver(item)
            return sources
        finally:
            await store.close()

    assert asyncio.run(run()) == [BOB_NUMBER.lstrip("+")]


def test_sms_to_a_number_reaches_only_its_owner_and_registration_shows_only_ones_own(tmp_path: Path) -> None:
    async def run() -> None:
        store = await _store(tmp_path)
        try:
            alice = await store.add_subscriber(BareJid.parse(ALICE), NOW)
            bob = await store.add_subscriber(BareJid.parse(BOB), NOW)
            await store.set_account(alice.id, "sms", ALICE_NUMBER, None, NOW)
            await store.upsert_contacts([Contact(alice.id, "sms", "+33600000001", "Secret friend", (), 1)])
            transport = SmsTransport(_config(tmp_path).sms, store.sms, clock=lambda: NOW)
            events: list[NetworkEvent] = []

            async def sink(event: NetworkEvent) -> None:
                events.append(event)

            transport.sink = sink
            mo = DeliverSm(
                source_addr="33600000001", destination_addr=ALICE_NUMBER.lstrip("+"), short_message=b"hi"
            )
            assert await transport._on_deliver(mo) == Status.ESME_ROK
            assert [e.subscriber_id for e in events if isinstance(e, LegacyMessageReceived)] == [alice.id]
            assert await store.contacts(bob.id, "sms") == []
            # bob cannot claim alice's number, even when asking for a code
            with pytest.raises(UserError) as info:
                await transport.register(BareJid.parse(BOB), None, {"phone": ALICE_NUMBER})
            assert info.value.condition == "conflict"
        finally:
            await store.close()

    asyncio.run(run())


def test_a_subscriber_cannot_log_in_to_anothers_msn_account(tmp_path: Path) -> None:
    async def run() -> None:
        server = await FakeMsnServer.start(
            users=[{"handle": "alice@msn.test", "password": "alice-pw", "friendly_name": "Alice"}]
        )
        store = await _store(tmp_path)
        try:
            cfg = parse(
                {
                    "xmpp": {"user_domains": ["example.org"]},
                    "storage": {"path": "gw.db", "key_file": "secret.key"},
                    "msn": {
                        "jid": "msn.example.org",
                        "secret": "x-secret",
                        "server": {
                            "host": "127.0.0.1",
                            "port": server.ns_port,
                            "nexus_url": server.nexus_url,
                        },
                    },
                },
                env={},
            )
            transport = MsnTransport(cfg.msn, store, session_options={"timeout": 3.0, "login_timeout": 5.0})
            await transport.start(_ignore)
            # a wrong password is refused by the network
            with pytest.raises(UserError) as info:
                await transport.register(
                    BareJid.parse(BOB), None, {"handle": "alice@msn.test", "password": "guess"}
                )
            assert info.value.condition == "not-authorized"
            # once alice registered it, nobody else can, even with the right password
            alice = await store.add_subscriber(BareJid.parse(ALICE), NOW)
            await store.set_account(alice.id, "msn", "alice@msn.test", "alice-pw", NOW)
            logins_before = len(server._tickets)
            with pytest.raises(UserError) as info:
                await transport.register(
                    BareJid.parse(BOB), None, {"handle": "alice@msn.test", "password": "alice-pw"}
                )
            assert info.value.condition == "conflict"
            assert len(server._tickets) == logins_before  # no sign-in was even attempted
        finally:
            await store.close()
            await server.stop()

    asyncio.run(run())


async def _ignore(_event: NetworkEvent) -> None:
    return None


def test_stored_passwords_need_the_key_file_and_a_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    async def seed() -> None:
        store = await _store(tmp_path)
        sub = await store.add_subscriber(BareJid.parse(ALICE), NOW)
        await store.set_account(sub.id, "msn", "alice@msn.test", "correct-horse", NOW)
        await store.close()

    asyncio.run(seed())
    (tmp_path / "secret.key").rename(tmp_path / "right.key")
    create_key_file(tmp_path / "secret.key")  # a different key
    (tmp_path / "p.toml").write_text(CONFIG)
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "p.toml"), "user", "list"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("passerelle: stored secrets cannot be decrypted")
    (tmp_path / "secret.key").unlink()
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "p.toml"), "user", "list"])
    assert result.exit_code == 1 and "key file not found" in result.stderr
    assert b"correct-horse" not in b"".join(p.read_bytes() for p in tmp_path.glob("gw.db*"))
