"""Limits that hold under concurrency: SMS quotas cannot be exceeded by sending in parallel
(one connection or two), and verification codes resist guessing (attempt limit, expiry),
also when the guesses arrive all at once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.addressing import BareJid
from gateway.config import parse
from gateway.storage import Cipher, OutboxItem, Store, create_key_file
from gateway.storage.sms import Counted, Quota
from gateway.transport import Delivered, Failed
from tests.fuzz import fuzz
from transports.sms.esme_types import SubmitOutcome
from transports.sms.transport import CODE_ATTEMPTS, SmsTransport

NOW = 1_700_000_000.0


async def _stores(tmp: str, count: int = 1) -> list[Store]:
    key = Path(tmp) / "k"
    if not key.exists():
        create_key_file(key)
    return [await Store.open(Path(tmp) / "gw.db", Cipher.from_file(key)) for _ in range(count)]


@fuzz(20, cost=20)
@given(
    per_hour=st.integers(0, 12),
    per_day=st.integers(0, 20),
    global_day=st.integers(0, 30),
    parts=st.lists(st.integers(1, 4), min_size=1, max_size=40),
    connections=st.integers(1, 2),
)
def test_parallel_sends_never_exceed_a_quota(
    per_hour: int, per_day: int, global_day: int, parts: list[int], connections: int
) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            stores = await _stores(tmp, connections)
            try:
                limits = Quota(per_hour, per_day, global_day)
                subscribers = [1, 2]
                results = await asyncio.gather(
                    *(
                        stores[i % connections].sms.count_send(
                            f"item-{i}", subscribers[i % 2], n, NOW + i * 0.001, limits
                        )
                        for i, n in enumerate(parts)
                    )
                )
                by_sub = {s: 0 for s in subscribers}
                for i, (ok, n) in enumerate(zip(results, parts, strict=True)):
                    if ok:
                        by_sub[subscribers[i % 2]] += n
                assert all(total <= min(per_hour, per_day) for total in by_sub.values())
                assert sum(by_sub.values()) <= global_day
                for sub in subscribers:  # the counters agree with what was allowed
                    assert await stores[0].sms.usage(sub, NOW) == (by_sub[sub], by_sub[sub])
                # a retry of an allowed item is free; of a refused one, still refused
                for i, (ok, n) in enumerate(zip(results, parts, strict=True)):
                    again = await stores[0].sms.count_send(f"item-{i}", subscribers[i % 2], n, NOW, limits)
                    assert again is (Counted.BEFORE if ok else Counted.REFUSED)
            finally:
                for store in stores:
                    await store.close()

    asyncio.run(run())


class _AcceptingEsme:
    """Stands in for the ESME: every submit accepted at once."""

    def __init__(self) -> None:
        self.submitted = 0

    async def submit(self, pdu: Any) -> SubmitOutcome:
        self.submitted += 1
        await asyncio.sleep(0)
        return SubmitOutcome(0, f"id{self.submitted}", False, "accepted")


def _sms_config(tmp: str, **limits: int) -> Any:
    config = parse(
        {
            "xmpp": {"user_domains": ["example.test"]},
            "storage": {"path": f"{tmp}/gw.db", "key_file": f"{tmp}/k"},
            "sms": {
                "jid": "sms.example.test",
                "secret": "quota-secret",
                "service_number": "2020",
                "smsc": {"system_id": "gw", "password": "pw"},
                "limits": limits,
            },
        },
        env={},
    )
    assert config.sms is not None
    return config.sms


def test_parallel_deliveries_through_the_transport_stop_at_the_hourly_limit() -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            (store,) = await _stores(tmp)
            try:
                sub = await store.add_subscriber(BareJid.parse("alice@example.test"), NOW)
                await store.set_account(sub.id, "sms", "+33612345678", None, NOW)
                transport = SmsTransport(_sms_config(tmp, per_user_per_hour=7), store.sms, clock=lambda: NOW)
                esme = _AcceptingEsme()
                transport.esme = esme  # type: ignore[assignment]
                items = [
                    OutboxItem(
                        i,
                        "sms",
                        sub.id,
                        f"k{i}",
                        "+33698765432",
                        {"body": f"m{i}"},
                        "sending",
                        1,
                        0,
                        NOW,
                        NOW + 60,
                    )
                    for i in range(1, 41)
                ]
                outcomes = await asyncio.gather(*(transport.deliver(item) for item in items))
                assert sum(isinstance(o, Delivered) for o in outcomes) == 7 == esme.submitted
                refused = [o for o in outcomes if isinstance(o, Failed)]
                assert len(refused) == 33 and all(o.error_key == "quota" for o in refused)
            finally:
                await store.close()

    asyncio.run(run())


def test_verification_codes_resist_guessing_even_in_parallel() -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            (store,) = await _stores(tmp)
            try:
                codes = store.sms
                await codes.put_code("alice@example.test", "+33612345678", "424242", NOW + 300)
                # 100 guesses at once, the right one among them: at most CODE_ATTEMPTS are judged
                guesses = [f"{n:06d}" for n in range(424200, 424300)]
                results = await asyncio.gather(
                    *(
                        codes.check_code("alice@example.test", "+33612345678", g, NOW, CODE_ATTEMPTS)
                        for g in guesses
                    )
                )
                judged = [r for r in results if r in ("ok", "wrong")]
                assert len(judged) <= CODE_ATTEMPTS, results
                # after the attempts are used up, even the right code is refused
                await codes.put_code("bob@example.test", "+33698765432", "111111", NOW + 300)
                for _ in range(CODE_ATTEMPTS):
                    assert (
                        await codes.check_code(
                            "bob@example.test", "+33698765432", "000000", NOW, CODE_ATTEMPTS
                        )
                        == "wrong"
                    )
                assert (
                    await codes.check_code("bob@example.test", "+33698765432", "111111", NOW, CODE_ATTEMPTS)
                    == "exhausted"
                )
                # an expired code is refused, right or not; a code is bound to its number
                await codes.put_code("carol@example.test", "+33611111111", "222222", NOW + 300)
                assert (
                    await codes.check_code("carol@example.test", "+33622222222", "222222", NOW, 5) == "none"
                )
                assert (
                    await codes.check_code("carol@example.test", "+33611111111", "222222", NOW + 301, 5)
                    == "expired"
                )
            finally:
                await store.close()

    asyncio.run(run())
