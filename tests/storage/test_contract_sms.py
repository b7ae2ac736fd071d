"""Storage contract: the SMS transport's interface (:class:`transports.sms.storage.SmsStore`),
reached only through it. Runs once per backend (``backend`` fixture, tests/storage/conftest.py)."""

from __future__ import annotations

from gateway.addressing import BareJid
from gateway.storage import Contact, Store
from tests.storage.conftest import Backend
from transports.sms.storage import Counted, PendingCode, Quota, SentPart, SmsStore, StoredPart

NOW = 1_700_000_000.0
JID, NUMBER = "alice@example.test", "+33611111111"


def sms(store: Store) -> SmsStore:
    """The SMS transport's view of the store (what ``build_sms`` is given)."""
    return store.sms


async def _alice(store: Store) -> int:
    return (await store.add_subscriber(BareJid.parse(JID), 1.0)).id


def _part(key: str, seq: int, smsc_id: str, sub: int, total: int = 2) -> SentPart:
    return SentPart(key, seq, smsc_id, "sent", total, sub, {"contact": "+33600000000", "id": "m1"})


async def test_a_code_is_checked_with_its_attempts_counted(store: Store) -> None:
    s = sms(store)
    await s.put_code(JID, NUMBER, "123456", NOW + 300)
    assert await s.pending_code(JID) == PendingCode(NUMBER, NOW + 300, 0)
    assert await s.check_code(JID, "+33699999999", "123456", NOW, 3) == "none"
    assert await s.check_code(JID, NUMBER, "000000", NOW, 3) == "wrong"
    pending = await s.pending_code(JID)
    assert pending is not None and pending.attempts == 2
    assert await s.check_code(JID, NUMBER, "123456", NOW + 301, 3) == "expired"
    assert await s.check_code(JID, NUMBER, " 123456 ", NOW, 4) == "ok"
    assert await s.pending_code(JID) is None  # used up
    assert await s.check_code(JID, NUMBER, "123456", NOW, 4) == "none"


async def test_too_many_attempts_exhaust_a_code_even_the_right_one(store: Store) -> None:
    s = sms(store)
    await s.put_code(JID, NUMBER, "123456", NOW + 300)
    for _ in range(2):
        assert await s.check_code(JID, NUMBER, "000000", NOW, 2) == "wrong"
    assert await s.check_code(JID, NUMBER, "123456", NOW, 2) == "exhausted"
    await s.put_code(JID, NUMBER, "654321", NOW + 300)  # a new code: attempts start again
    assert await s.check_code(JID, NUMBER, "654321", NOW, 2) == "ok"


async def test_quotas_count_once_per_message_and_refuse_past_a_limit(store: Store) -> None:
    s, sub = sms(store), await _alice(store)
    limits = Quota(per_hour=3, per_day=10, global_per_day=100)
    assert await s.count_send("a", sub, 2, NOW, limits) is Counted.NOW
    assert await s.count_send("a", sub, 2, NOW, limits) is Counted.BEFORE  # a retry
    assert await s.count_send("b", sub, 2, NOW, limits) is Counted.REFUSED
    assert await s.usage(sub, NOW) == (2, 2)
    assert await s.count_send("b", sub, 1, NOW, limits) is Counted.NOW
    assert await s.count_send("c", sub, 1, NOW + 3600, limits) is Counted.NOW  # the next hour
    assert await s.usage(sub, NOW + 3600) == (1, 4)  # the same UTC day
    # forgotten: the counts of "a" and "b", and the past hour's bucket
    assert await s.prune(NOW + 1, NOW + 3600) == (2, 0, 1, 0)


async def test_mo_parts_are_kept_once_oldest_first_until_dropped(store: Store) -> None:
    s = sms(store)
    late = StoredPart("33600000001", "33611111111", 7, 2, 2, 0, b"world", NOW + 1)
    early = StoredPart("33600000001", "33611111111", 7, 2, 1, 0, b"hello", NOW)
    other = StoredPart("33600000002", "33611111111", 9, 2, 1, 8, b"\x00h", NOW + 2)
    for part in (late, early, early, other):
        await s.add_mo_part(part)
    assert await s.mo_parts() == [early, late, other]
    await s.drop_mo_parts("33600000001", "33611111111", 7, 2)
    assert await s.mo_parts() == [other]


async def test_sent_parts_are_found_by_receipt_id_and_marked(store: Store) -> None:
    s, sub = sms(store), await _alice(store)
    await s.record_sent([_part("m", 1, "abc", sub), _part("m", 2, "abd", sub)], NOW)
    assert await s.sent_seqs("m") == {1, 2}
    assert await s.sent_part_by_id(("zzz", "abd", "abc")) == _part("m", 2, "abd", sub)
    assert await s.sent_part_by_id(("zzz",)) is None
    assert await s.mark_part("m", 1, "UNDELIV") == ["UNDELIV", "sent"]
    found = await s.sent_part_by_id(("abc",))
    assert found is not None and found.state == "UNDELIV"
    await s.forget_sent("m")
    assert await s.sent_seqs("m") == set() and await s.sent_part_by_id(("abc",)) is None


async def test_the_last_delivered_part_finishes_the_message(store: Store) -> None:
    s, sub = sms(store), await _alice(store)
    await s.record_sent([_part("m", 1, "p1", sub), _part("m", 2, "p2", sub)], NOW)
    assert await s.finish_part("m", 1, "ok", 2) == ["ok", "sent"]
    assert await s.sent_seqs("m") == {1, 2}  # not all delivered yet
    assert await s.finish_part("m", 2, "ok", 2) == ["ok", "ok"]
    assert await s.sent_seqs("m") == set()
    assert await s.sent_part_by_id(("p1",)) is None and await s.sent_part_by_id(("p2",)) is None


async def test_a_part_sent_again_replaces_its_record(store: Store) -> None:
    s, sub = sms(store), await _alice(store)
    await s.record_sent([_part("m", 1, "p1", sub, 1)], NOW)
    await s.record_sent([_part("m", 1, "p9", sub, 1)], NOW + 5)  # a retry under a new id
    assert await s.sent_part_by_id(("p1",)) is None
    assert await s.sent_part_by_id(("p9",)) == _part("m", 1, "p9", sub, 1)


async def test_receipts_find_their_parts_after_a_restart(backend: Backend) -> None:
    """The memory cache is cold after a restart: the durable record answers."""
    store = await backend.open()
    sub = await _alice(store)
    await sms(store).record_sent([_part("m", 1, "abc", sub), _part("m", 2, "abd", sub)], NOW)
    await sms(store).mark_part("m", 2, "UNDELIV")
    await store.close()
    store = await backend.open()
    try:
        s = sms(store)
        assert await s.sent_part_by_id(("abc",)) == _part("m", 1, "abc", sub)
        found = await s.sent_part_by_id(("abd",))
        assert found is not None and found.state == "UNDELIV" and found.meta == _part("m", 2, "x", sub).meta
        assert await s.finish_part("m", 1, "ok", 2) == ["ok", "UNDELIV"]
    finally:
        await store.close()


async def test_a_sighting_makes_a_redelivery_within_its_window(store: Store) -> None:
    s = sms(store)
    assert await s.first_time("k", NOW, 60.0)
    assert not await s.first_time("k", NOW + 30, 60.0)  # a redelivery
    assert await s.first_time("k", NOW + 100, 60.0)  # long after: a new message
    await s.mark_seen("j", NOW)
    assert not await s.first_time("j", NOW + 1, 60.0)


async def test_a_confirmed_sighting_is_forgotten_unless_seen_again(store: Store) -> None:
    s = sms(store)
    await s.mark_seen("k", NOW)
    await s.mark_seen("j", NOW)
    await s.mark_seen("j", NOW + 5)  # seen again since: this forget is late
    await s.forget_seen([("k", NOW), ("j", NOW)])
    assert await s.first_time("k", NOW + 10, 60.0)
    assert not await s.first_time("j", NOW + 10, 60.0)


async def test_the_directory_part_of_the_sms_interface(store: Store) -> None:
    s, sub = sms(store), await _alice(store)
    await store.set_account(sub, "sms", NUMBER, None, 1.0)
    owner = await s.subscriber_by_account("sms", NUMBER)
    assert owner is not None and owner.id == sub
    account = await s.account(sub, "sms")
    assert account is not None and account.legacy_id == NUMBER
    await s.upsert_contacts([Contact(sub, "sms", "+33600000001", "+33600000001", (), 1)])
    assert [c.legacy_id for c in await s.contacts(sub, "sms")] == ["+33600000001"]
    await s.remove_contacts(sub, "sms", ["+33600000001"])
    assert await s.contacts(sub, "sms") == []
