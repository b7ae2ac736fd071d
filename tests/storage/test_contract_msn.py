"""Storage contract: the MSN transport's interface (:class:`transports.msn.storage.MsnStore`).
Runs once per backend (``backend`` fixture, tests/storage/conftest.py)."""

from __future__ import annotations

from gateway.addressing import BareJid
from gateway.storage import Store
from transports.msn.storage import MsnStore

ALICE = BareJid.parse("alice@example.test")


async def test_registration_finds_who_owns_an_address(store: Store) -> None:
    msn: MsnStore = store  # what build_msn is given
    alice = await store.add_subscriber(ALICE, 1.0)
    assert await msn.subscriber_by_account("msn", "alice@hotmail.test") is None
    await store.set_account(alice.id, "msn", "alice@hotmail.test", None, 1.0)
    assert await msn.subscriber_by_account("msn", "alice@hotmail.test") == alice
    assert await msn.subscriber_by_jid(ALICE) == alice
    assert await msn.subscriber_by_jid(BareJid.parse("bob@example.test")) is None
