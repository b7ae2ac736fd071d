"""The receipt cache in front of the durable sent-part table stays bounded without
forgetting the recent parts: past its size the oldest entry goes, not all of them (a
receipt for a part sent a moment ago must not cost a database read because the cache
happened to fill), and nothing it keeps per message outlives the message's entries."""

from __future__ import annotations

from gateway.storage.sent_cache import SentCache
from transports.sms.storage import SentPart


def _part(n: int) -> SentPart:
    return SentPart(f"m{n}", 1, f"id{n}", "sent", 1, 1, {})


def test_past_its_size_the_oldest_part_goes_and_the_recent_ones_stay() -> None:
    cache = SentCache(ttl=3600.0, size=3)
    for n in range(5):
        cache.put(_part(n))
    assert [cache.get(f"id{n}") for n in range(5)] == [None, None, _part(2), _part(3), _part(4)]


def test_a_part_put_again_counts_as_recent() -> None:
    cache = SentCache(ttl=3600.0, size=2)
    cache.put(_part(0))
    cache.put(_part(1))
    cache.put(_part(0))  # recorded again (a retry under the same id)
    cache.put(_part(2))
    assert (cache.get("id0"), cache.get("id1"), cache.get("id2")) == (_part(0), None, _part(2))


def test_evicted_and_dropped_messages_leave_nothing_behind() -> None:
    cache = SentCache(ttl=3600.0, size=2)
    for n in range(100):
        cache.put(_part(n))
    cache.drop("m99")
    assert len(cache._by_id) == 1 and set(cache._ids) == {"m98"}
