"""Smoke tests of the benchmark plumbing (no Prosody, no timings): the bulk set-up writes what
the gateway's storage API reads back, the fake MSN server's bulk directory load equals the
ordinary one, and the soak verdict and the added-latency rows compute what they say."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.populate import (
    Seed,
    SeedContact,
    _encode,
    populate_gateway,
    prosody_roster_files,
    write_prosody_accounts,
)
from bench.scenarios_msn import _load_directory
from bench.soak import fit_slope, verdict
from bench.stats import added_latency_rows
from gateway.devtools.prosody import Prosody
from gateway.storage import Cipher, Store, create_key_file
from transports.msn.fake_directory import Directory


async def test_populate_writes_through_the_storage_api(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    create_key_file(key)
    contacts = (SeedContact("bob@example.net", "Bob", ("Friends",), 11),)
    seeds = [
        Seed(f"u{i}@example.test", f"+3369900000{i}", f"u{i}@example.net", f"pw{i}", contacts)
        for i in range(3)
    ] + [Seed(None, "+33699000009")]
    got = await populate_gateway(tmp_path / "gw.db", key, seeds)
    assert got["subscribers"] == 4 and got["contacts"] == 3
    store = await Store.open(tmp_path / "gw.db", Cipher.from_file(key), upgrade=False)
    try:
        assert len(await store.subscribers()) == 4
        assert len(await store.accounts("msn")) == 3 and len(await store.accounts("sms")) == 4
        owner = await store.subscriber_by_account("msn", "u1@example.net")
        assert owner is not None
        assert await store.account_secret(owner.id, "msn") == "pw1"  # encrypted with the key file
        (contact,) = await store.contacts(owner.id, "msn")
        assert (contact.legacy_id, contact.name, contact.groups, contact.list_bits) == (
            "bob@example.net",
            "Bob",
            ("Friends",),
            11,
        )
    finally:
        await store.close()


def test_prosody_account_files(tmp_path: Path) -> None:
    prosody = Prosody(tmp_path, "example.test")
    assert write_prosody_accounts(prosody, ["alice", "bob"], 'p"w') == 2
    account = tmp_path / "data" / "example%2etest" / "accounts" / "alice.dat"
    assert account.read_text() == 'return {\n\t["password"] = "p\\"w";\n};\n'
    assert _encode("a_b.c") == "a%5fb%2ec"
    assert prosody_roster_files(prosody, ["alice"]) == 0


def test_bulk_directory_equals_the_ordinary_load(tmp_path: Path) -> None:
    users = [
        {
            "handle": f"s{i}@example.net",
            "password": "pw",
            "contacts": [
                {"handle": f"s{(i + 1) % 5}@example.net", "lists": ["FL", "AL"], "groups": ["G"]},
                {"handle": "stranger@example.net", "lists": ["FL"]},
            ],
        }
        for i in range(5)
    ]
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": users}))
    bulk, plain = _load_directory(path), Directory.from_file(path)
    assert bulk.users.keys() == plain.users.keys()
    for key, user in plain.users.items():
        other = bulk.users[key]
        assert {h: (e.mask, e.groups) for h, e in user.lists.items()} == {
            h: (e.mask, e.groups) for h, e in other.lists.items()
        }


def test_soak_verdict() -> None:
    assert math.isclose(fit_slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0)
    flat = [{"t_s": float(t), "gateway_rss_kib": 50_000, "prosody_rss_kib": 20_000} for t in range(0, 61, 5)]
    mem = verdict(flat, 60.0, 100.0)
    assert mem["gateway"]["flat"] is True and mem["gateway"]["slope_kib_per_min"] == 0.0
    growing = [{**s, "gateway_rss_kib": 50_000 + 100 * s["t_s"]} for s in flat]  # 6,000 KiB/min
    assert verdict(growing, 60.0, 100.0)["gateway"]["flat"] is False


def test_added_latency_rows() -> None:
    p50, p99 = added_latency_rows("x", {"p50_ms": 3.5, "p99_ms": 30.0}, 1.0, 5.0)
    assert (p50.value, p99.value) == (2.5, 25.0)
    assert p50.met is False and p99.met is False
