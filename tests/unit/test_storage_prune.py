"""SMS housekeeping: per-message counts, parts whose receipt never came, MO sightings and
usage buckets are forgotten once they cannot matter, so these tables do not grow with every
SMS; what still matters stays (the current hour's and day's usage, recent counts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.addressing import BareJid
from gateway.config import parse
from gateway.storage import Store
from gateway.storage.sms import Counted, Quota, SentPart
from transports.sms.transport import PRUNE_EVERY_S, SmsTransport

DAY = 86400.0
NOW = 1_700_049_600.0  # an exact hour at midday (UTC): an hour ago is the same day
OPEN = Quota(100, 1000, 10000)


async def rows(store: Store, table: str) -> int:
    found = await store._r.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - a fixed name
    return int(found[0][0])


async def test_prune_forgets_only_what_is_older_than_asked(store: Store) -> None:
    sub = (await store.add_subscriber(BareJid.parse("alice@example.test"), NOW)).id
    old, recent = NOW - 3 * DAY, NOW - 60
    assert await store.sms.count_send("old", sub, 1, old, OPEN) is Counted.NOW
    assert await store.sms.count_send("recent", sub, 1, recent, OPEN) is Counted.NOW
    await store.sms.record_sent(SentPart("old", 1, "id-old", "sent", 1, sub, {}), old)
    await store.sms.record_sent(SentPart("recent", 1, "id-recent", "sent", 1, sub, {}), recent)
    assert await store.sms.first_time("mo-old", old, 300.0)
    assert await store.sms.first_time("mo-recent", recent, 300.0)
    await store.sms.count_send("hour-ago", sub, 1, NOW - 3600, OPEN)  # last hour, same day
    assert await store.sms.count_send("now", sub, 2, NOW, OPEN)

    sent, parts, usage, seen = await store.sms.prune(NOW - 2 * DAY, NOW)

    assert (sent, parts, seen) == (1, 1, 1)
    # usage: the hours of "old" and "hour-ago" and the day of "old" go; this hour and day stay
    assert usage == 4  # h(old), d(old) for the subscriber and the global d(old); h(hour ago)
    assert await store.sms.usage(sub, NOW) == (2, 4)  # this hour: "now" (2); today: + hour-ago, recent
    assert await store.sms.sent_seqs("old") == set()
    assert await store.sms.sent_seqs("recent") == {1}
    assert await store.sms.count_send("recent", sub, 1, NOW, OPEN) is Counted.BEFORE  # still known
    assert not await store.sms.first_time("mo-recent", NOW, 300.0)  # still a duplicate
    assert await rows(store, "seen") == 1 and await rows(store, "sms_sent") == 3


def transport(tmp_path: Path, store: Store, validity_s: int) -> SmsTransport:
    config = parse(
        {
            "xmpp": {"user_domains": ["example.test"]},
            "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
            "sms": {
                "jid": "sms.example.test", "secret": "s", "service_number": "2020", "validity_s": validity_s,
                "smsc": {"system_id": "gw", "password": "pw"},
            },
        },
        env={},
    ).sms  # fmt: skip
    assert config is not None
    return SmsTransport(config, store.sms)


async def test_the_transport_prunes_once_an_hour_keeping_twice_the_validity(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[float, float]] = []

    async def spy(before: float, now: float) -> tuple[int, ...]:
        calls.append((before, now))
        return (0, 0, 0, 0)

    monkeypatch.setattr(store.sms, "prune", spy)
    sms = transport(tmp_path, store, validity_s=3 * 86400)
    await sms._prune(NOW)
    await sms._prune(NOW + 60)  # within the hour: nothing
    await sms._prune(NOW + PRUNE_EVERY_S)
    assert calls == [(NOW - 6 * DAY, NOW), (NOW + PRUNE_EVERY_S - 6 * DAY, NOW + PRUNE_EVERY_S)]

    short = transport(tmp_path, store, validity_s=3600)  # a day at least
    calls.clear()
    await short._prune(NOW)
    assert calls == [(NOW - DAY, NOW)]
    await asyncio.sleep(0)
