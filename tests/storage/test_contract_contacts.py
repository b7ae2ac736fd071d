"""Storage contract: contacts, their linked phone numbers, the last correspondent.

Runs once per backend (``backend`` fixture, tests/storage/conftest.py)."""

from __future__ import annotations

from gateway.addressing import BareJid
from gateway.storage import Contact, Store

PHONE = "+33612345678"


async def _alice(store: Store) -> int:
    return (await store.add_subscriber(BareJid.parse("alice@example.test"), 1.0)).id


async def test_upsert_inserts_then_updates(store: Store) -> None:
    sub = await _alice(store)
    await store.upsert_contacts(
        [
            Contact(sub, "msn", "dave@x.test", "Dave", (), 1),
            Contact(sub, "msn", "carol@x.test", "C", ("a",), 3),
        ]
    )
    await store.upsert_contacts([Contact(sub, "msn", "carol@x.test", "Carol", ("b", "c"), 11, PHONE)])
    assert await store.contacts(sub, "msn") == [
        Contact(sub, "msn", "carol@x.test", "Carol", ("b", "c"), 11, PHONE),
        Contact(sub, "msn", "dave@x.test", "Dave", (), 1),
    ]
    assert await store.contact(sub, "msn", "carol@x.test") == (await store.contacts(sub, "msn"))[0]
    assert await store.contacts(sub, "sms") == []


async def test_an_operators_link_wins_over_the_networks_number(store: Store) -> None:
    sub = await _alice(store)
    await store.upsert_contacts([Contact(sub, "msn", "carol@x.test", "Carol", (), 1, "+33600000000")])
    await store.link_phone(sub, "msn", "carol@x.test", PHONE)
    await store.upsert_contacts([Contact(sub, "msn", "carol@x.test", "Carol", (), 1, "+33600000000")])
    carol = await store.contact(sub, "msn", "carol@x.test")
    assert carol is not None and (carol.phone, carol.phone_manual) == (PHONE, True)
    assert await store.contact_by_phone(sub, "msn", PHONE) == carol
    assert await store.contact_by_phone(sub, "msn", "+33600000000") is None


async def test_unlink_keeps_no_number_and_says_whether_the_contact_exists(store: Store) -> None:
    sub = await _alice(store)
    await store.upsert_contacts([Contact(sub, "msn", "carol@x.test", "Carol", (), 1, PHONE)])
    assert await store.unlink_phone(sub, "msn", "carol@x.test")
    assert not await store.unlink_phone(sub, "msn", "nobody@x.test")
    await store.upsert_contacts([Contact(sub, "msn", "carol@x.test", "Carol", (), 1, PHONE)])
    assert await store.contact_by_phone(sub, "msn", PHONE) is None


async def test_removed_contacts_are_gone(store: Store) -> None:
    sub = await _alice(store)
    await store.upsert_contacts([Contact(sub, "sms", PHONE, PHONE, (), 1)])
    assert await store.contact(sub, "sms", PHONE) is not None
    await store.remove_contacts(sub, "sms", [PHONE])
    assert await store.contact(sub, "sms", PHONE) is None


async def test_the_last_correspondent_is_the_latest_set(store: Store) -> None:
    sub = await _alice(store)
    assert await store.last_correspondent(sub) is None
    await store.set_last_correspondent(sub, "carol@x.test", 5.0)
    await store.set_last_correspondent(sub, "dave@x.test", 6.0)
    assert await store.last_correspondent(sub) == ("dave@x.test", 6.0)
