"""The store's message path: what each call costs in hops to the database thread, and that
the shortcuts (one-hop reads, work run inside the writer's batch, the sent-part cache, the
decoded-payload memo) keep the methods' meaning, across restarts too."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.addressing import BareJid
from gateway.storage import Contact, Store
from gateway.storage.sms import Counted, Quota, SentPart

NOW = 1_700_000_000.0
OPEN = Quota(100, 1000, 10000)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "gw.db", None)
    try:
        yield s
    finally:
        await s.close()


async def _subscriber(store: Store, name: str = "alice") -> int:
    return (await store.add_subscriber(BareJid.parse(f"{name}@example.test"), NOW)).id


def _part(key: str, seq: int, smsc_id: str, sub: int, total: int = 2) -> SentPart:
    return SentPart(key, seq, smsc_id, "sent", total, sub, {"contact": "+33600000000"})


async def _enqueue(store: Store, sub: int, key: str, body: str = "hi") -> int:
    item = await store.enqueue(
        network="sms", subscriber_id=sub, dedup_key=key, destination="+33600000000",
        payload={"body": body, "from": "alice@example.test/r"}, now=NOW, expires=NOW + 60,
    )  # fmt: skip
    assert item is not None
    return item


# -- hops ---------------------------------------------------------------------------------


async def test_a_read_is_one_hop(store: Store) -> None:
    sub = await _subscriber(store)
    await _enqueue(store, sub, "k1")
    before = store.db_hops
    assert len(await store.due("sms", NOW)) == 1
    assert len(await store.conversation_heads("sms", 10)) == 1
    assert await store.outbox_stats() == (1, NOW)
    assert store.db_hops - before == 3


async def test_count_send_is_one_write_and_no_read(store: Store) -> None:
    sub = await _subscriber(store)
    before = store.db_hops
    assert await store.sms.count_send("item-1", sub, 2, NOW, OPEN)
    assert store.db_hops - before == 1


async def test_concurrent_writes_share_a_hop(store: Store) -> None:
    sub = await _subscriber(store)
    before = store.db_hops
    await asyncio.gather(
        *(store.sms.count_send(f"item-{i}", sub, 1, NOW, OPEN) for i in range(10)),
        *(store.sms.first_time(f"mo-{i}", NOW, 60.0) for i in range(10)),
    )
    assert store.db_hops - before == 1


# -- quotas and de-duplication: same meaning as before ------------------------------------


async def test_count_send_counts_once_and_refuses_over_quota(store: Store) -> None:
    sub = await _subscriber(store)
    limits = Quota(3, 10, 100)
    assert await store.sms.count_send("a", sub, 2, NOW, limits) is Counted.NOW
    # a retry: free, even at the same time, and known as one (earlier parts may be sent)
    assert await store.sms.count_send("a", sub, 2, NOW, limits) is Counted.BEFORE
    assert await store.sms.usage(sub, NOW) == (2, 2)
    assert await store.sms.count_send("b", sub, 2, NOW, limits) is Counted.REFUSED  # 4 > 3 per hour
    assert await store.sms.usage(sub, NOW) == (2, 2)
    assert await store.sms.count_send("c", sub, 1, NOW, limits)
    assert await store.sms.usage(sub, NOW) == (3, 3)
    assert not await store.sms.count_send("b", sub, 2, NOW, limits)  # still refused
    assert await store.sms.count_send("b", sub, 1, NOW, limits) is Counted.REFUSED  # not a retry


async def test_first_time(store: Store) -> None:
    assert await store.sms.first_time("k", NOW, 60.0)
    assert not await store.sms.first_time("k", NOW + 30, 60.0)  # a redelivery
    assert await store.sms.first_time("k", NOW + 100, 60.0)  # long after: a new message
    assert not await store.sms.first_time("k", NOW + 101, 60.0)


# -- sent parts and receipts --------------------------------------------------------------------


async def test_a_fresh_part_is_found_without_a_hop(store: Store) -> None:
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "abc", sub), NOW)
    before = store.db_hops
    assert await store.sms.sent_part_by_id(("abc",)) == _part("m", 1, "abc", sub)
    assert store.db_hops == before


async def test_receipts_survive_a_restart(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "gw.db", None)
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "abc", sub), NOW)
    await store.sms.record_sent(_part("m", 2, "abd", sub), NOW)
    await store.close()
    store = await Store.open(tmp_path / "gw.db", None)
    try:
        before = store.db_hops
        assert await store.sms.sent_part_by_id(("zzz", "abd")) == _part("m", 2, "abd", sub)
        assert store.db_hops - before == 1  # every candidate in one query
        assert await store.sms.mark_part("m", 2, "ok") == ["sent", "ok"]
        assert await store.sms.mark_part("m", 1, "ok") == ["ok", "ok"]
        await store.sms.forget_sent("m")
        assert await store.sms.sent_part_by_id(("abc",)) is None
    finally:
        await store.close()


async def test_the_exact_form_wins_over_a_cached_alternative(store: Store, tmp_path: Path) -> None:
    """Candidates are looked up in order: a part stored under the first one (here by another
    connection, as after a restart) wins over one this process has in memory under the second."""
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("cached", 1, "10", sub, 1), NOW)
    with sqlite3.connect(tmp_path / "gw.db") as other:
        other.execute(
            "INSERT INTO sms_parts_sent VALUES ('exact', 1, '16', 'sent', 1, ?, '{}', ?)", (sub, NOW)
        )
    found = await store.sms.sent_part_by_id(("16", "10"))
    assert found is not None and found.item_key == "exact"
    found = await store.sms.sent_part_by_id(("10", "16"))
    assert found is not None and found.item_key == "cached"


async def test_marks_and_forgets_are_seen_in_memory_too(store: Store) -> None:
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "p1", sub), NOW)
    await store.sms.record_sent(_part("m", 2, "p2", sub), NOW)
    assert await store.sms.mark_part("m", 1, "ok") == ["ok", "sent"]
    found = await store.sms.sent_part_by_id(("p1",))
    assert found is not None and found.state == "ok"
    assert await store.sms.mark_part("m", 2, "UNDELIV") == ["ok", "UNDELIV"]
    await store.sms.forget_sent("m")
    assert await store.sms.sent_part_by_id(("p1",)) is None
    assert await store.sms.sent_part_by_id(("p2",)) is None
    assert await store.sms.sent_seqs("m") == set()


async def test_removing_a_subscriber_forgets_their_parts(store: Store) -> None:
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "p1", sub), NOW)
    await store.remove_subscriber(sub)
    assert await store.sms.sent_part_by_id(("p1",)) is None


async def test_a_part_recorded_again_replaces_the_cached_one(store: Store) -> None:
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "p1", sub), NOW)
    await store.sms.mark_part("m", 1, "UNDELIV")
    await store.sms.record_sent(_part("m", 1, "p9", sub), NOW)  # a retry of the part
    found = await store.sms.sent_part_by_id(("p9",))
    assert found is not None and found.state == "sent"
    assert await store.sms.sent_seqs("m") == {1}
    assert await store.sms.sent_part_by_id(("p1",)) is None  # the first try's id is gone, as in the table


async def test_an_smsc_id_given_out_again(store: Store) -> None:
    """Another message's part under the same SMSC id replaces the first in memory, as the
    first one found by id in the table could be either; forgetting the first message then
    leaves the second alone."""
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("a", 1, "same", sub, 1), NOW)
    await store.sms.record_sent(_part("b", 1, "same", sub, 1), NOW)
    found = await store.sms.sent_part_by_id(("same",))
    assert found is not None and found.item_key == "b"
    await store.sms.mark_part("a", 1, "UNDELIV")
    await store.sms.forget_sent("a")
    found = await store.sms.sent_part_by_id(("same",))
    assert found is not None and (found.item_key, found.state) == ("b", "sent")


async def test_a_receipt_during_the_record_waits_for_its_commit(store: Store) -> None:
    """A fast SMSC can send the receipt while the part's record is being committed: the
    look-up waits for that commit instead of missing the part."""
    sub = await _subscriber(store)
    before = store.db_hops
    recording = asyncio.ensure_future(store.sms.record_sent(_part("m", 1, "fast", sub, 1), NOW))
    await asyncio.sleep(0)  # the record is submitted, not committed
    assert not recording.done()
    found = await store.sms.sent_part_by_id(("fast",))
    assert recording.done() and found == _part("m", 1, "fast", sub, 1)
    assert store.db_hops - before == 1  # the record's batch; no read


# -- the outbox ---------------------------------------------------------------------------------


async def test_mark_sending_many_and_complete_many(store: Store) -> None:
    sub = await _subscriber(store)
    ids = [await _enqueue(store, sub, f"k{i}") for i in range(4)]
    before = store.db_hops
    await store.mark_sending_many(ids[:3])
    await store.complete_many(ids[:2])
    assert store.db_hops - before == 2
    items = {i.id: i for i in await store.outbox_items()}
    assert set(items) == set(ids[2:])
    assert (items[ids[2]].state, items[ids[2]].attempts) == ("sending", 1)
    assert (items[ids[3]].state, items[ids[3]].attempts) == ("queued", 0)
    assert await store.requeue_interrupted() == 1


async def test_outbox_items_follow_their_rows(store: Store) -> None:
    sub = await _subscriber(store)
    item_id = await _enqueue(store, sub, "k1", "first")
    (item,) = await store.conversation_heads("sms", 10)
    item.payload["body"] = "changed by a caller"
    (again,) = await store.due("sms", NOW)
    assert again.payload == {"body": "first", "from": "alice@example.test/r"}
    assert (again.id, again.network, again.subscriber_id, again.dedup_key) == (item_id, "sms", sub, "k1")
    assert (again.destination, again.state, again.attempts) == ("+33600000000", "queued", 0)
    assert (again.next_attempt, again.created, again.expires) == (NOW, NOW, NOW + 60)
    assert (await store.due("sms", NOW))[0] is again  # an unchanged row: the same (frozen) item
    await store.mark_sending(item_id)
    (sending,) = await store.outbox_items()
    assert (sending.state, sending.attempts, sending.payload) == ("sending", 1, again.payload)
    await store.complete(item_id)
    reused = await _enqueue(store, sub, "k2", "second")  # SQLite may give the id out again
    (item,) = await store.outbox_items()
    assert item.id == reused and item.payload["body"] == "second"


async def test_finish_part_forgets_a_delivered_message_in_the_same_write(store: Store) -> None:
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "p1", sub), NOW)
    await store.sms.record_sent(_part("m", 2, "p2", sub), NOW)
    commits = store.commit_stats[0]
    assert await store.sms.finish_part("m", 1, "ok", 2) == ["ok", "sent"]
    assert await store.sms.sent_seqs("m") == {1, 2}  # not all delivered yet: kept
    found = await store.sms.sent_part_by_id(("p1",))
    assert found is not None and found.state == "ok"
    assert await store.sms.finish_part("m", 2, "ok", 2) == ["ok", "ok"]
    assert store.commit_stats[0] - commits == 2
    assert await store.sms.sent_seqs("m") == set()
    assert await store.sms.sent_part_by_id(("p2",)) is None


async def test_finish_part_keeps_a_failed_message(store: Store) -> None:
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "p1", sub, 1), NOW)
    assert await store.sms.finish_part("m", 1, "UNDELIV", 1) == ["UNDELIV"]
    assert await store.sms.sent_seqs("m") == {1}


async def test_finish_part_keeps_a_message_whose_other_parts_are_not_recorded_yet(store: Store) -> None:
    """A fast SMSC can send the first part's receipt before the second part is recorded:
    the first part stays until the second one's receipt finds it."""
    sub = await _subscriber(store)
    await store.sms.record_sent(_part("m", 1, "p1", sub), NOW)
    assert await store.sms.finish_part("m", 1, "ok", 2) == ["ok"]
    assert await store.sms.sent_seqs("m") == {1}
    await store.sms.record_sent(_part("m", 2, "p2", sub), NOW)
    assert await store.sms.finish_part("m", 2, "ok", 2) == ["ok", "ok"]
    assert await store.sms.sent_seqs("m") == set()


async def test_seen_since_reads_without_writing(store: Store) -> None:
    assert await store.sms.first_time("k", NOW, 60.0)
    commits, hops = store.commit_stats[0], store.db_hops
    assert await store.sms.seen_since("k", NOW - 60)
    assert await store.sms.seen_since("k", NOW)
    assert not await store.sms.seen_since("k", NOW + 1)
    assert not await store.sms.seen_since("other", 0.0)
    assert store.commit_stats[0] == commits and store.db_hops - hops == 4


# -- contacts and the last correspondent: cached, and every change seen at once ------------------


def _contact(sub: int, handle: str, name: str = "Bob", bits: int = 3, phone: str = "") -> Contact:
    return Contact(sub, "msn", handle, name, ("Friends",), bits, phone)


async def test_one_contact_is_read_once_then_from_memory(store: Store) -> None:
    sub = await _subscriber(store)
    await store.upsert_contacts([_contact(sub, "bob@msn.test"), _contact(sub, "carol@msn.test", "Carol")])
    before = store.db_hops
    assert await store.contact(sub, "msn", "bob@msn.test") == _contact(sub, "bob@msn.test")
    assert await store.contact(sub, "msn", "bob@msn.test") == _contact(sub, "bob@msn.test")
    assert await store.contact(sub, "msn", "nobody@msn.test") is None
    assert await store.contact(sub, "msn", "nobody@msn.test") is None
    assert store.db_hops - before == 2


async def test_a_changed_contact_is_seen_at_once(store: Store) -> None:
    sub = await _subscriber(store)
    await store.upsert_contacts([_contact(sub, "bob@msn.test")])
    assert await store.contact(sub, "msn", "nobody@msn.test") is None
    assert await store.contact(sub, "msn", "bob@msn.test") == _contact(sub, "bob@msn.test")
    await store.upsert_contacts([_contact(sub, "bob@msn.test", "Robert", bits=1)])
    assert await store.contact(sub, "msn", "bob@msn.test") == _contact(sub, "bob@msn.test", "Robert", 1)
    await store.link_phone(sub, "msn", "bob@msn.test", "+33611111111")
    linked = await store.contact(sub, "msn", "bob@msn.test")
    assert linked is not None and (linked.phone, linked.phone_manual) == ("+33611111111", True)
    await store.link_phone(sub, "msn", "nobody@msn.test", "+33622222222")  # a contact added by a link
    added = await store.contact(sub, "msn", "nobody@msn.test")
    assert added is not None and added.phone == "+33622222222"
    await store.remove_contacts(sub, "msn", ["bob@msn.test"])
    assert await store.contact(sub, "msn", "bob@msn.test") is None
    await store.remove_account(sub, "msn")  # takes the contacts with it
    assert await store.contact(sub, "msn", "nobody@msn.test") is None


async def test_a_removed_subscriber_s_contacts_and_correspondent_are_gone(store: Store) -> None:
    sub = await _subscriber(store)
    await store.upsert_contacts([_contact(sub, "bob@msn.test")])
    await store.set_last_correspondent(sub, "bob@msn.test", NOW)
    assert await store.contact(sub, "msn", "bob@msn.test") is not None
    assert await store.last_correspondent(sub) == ("bob@msn.test", NOW)
    await store.remove_subscriber(sub)
    assert await store.contact(sub, "msn", "bob@msn.test") is None
    assert await store.last_correspondent(sub) is None


async def test_the_last_correspondent_is_kept_in_memory_and_survives_a_restart(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "gw.db", None)
    sub = await _subscriber(store)
    assert await store.last_correspondent(sub) is None
    await store.set_last_correspondent(sub, "bob@msn.test", NOW)
    before = store.db_hops
    assert await store.last_correspondent(sub) == ("bob@msn.test", NOW)
    await store.set_last_correspondent(sub, "carol@msn.test", NOW + 1)
    assert await store.last_correspondent(sub) == ("carol@msn.test", NOW + 1)
    assert store.db_hops - before == 1  # the second set's commit; no read
    await store.close()
    store = await Store.open(tmp_path / "gw.db", None)
    try:
        assert await store.last_correspondent(sub) == ("carol@msn.test", NOW + 1)
    finally:
        await store.close()


async def test_a_sighting_is_forgotten_only_as_recorded(store: Store) -> None:
    """A confirmed sighting is forgotten; one recorded again since (a later copy, whose
    answer is not confirmed yet) stays."""
    await store.sms.mark_seen("k", NOW)
    await store.sms.mark_seen("k", NOW + 5)  # recorded again: replaces the first
    assert not await store.sms.seen_since("k", NOW + 6) and await store.sms.seen_since("k", NOW + 5)
    await store.sms.forget_seen([("k", NOW)])  # the first one's confirmation, late
    assert await store.sms.seen_since("k", NOW)
    await store.sms.forget_seen([("k", NOW + 5)])
    assert not await store.sms.seen_since("k", 0.0)
