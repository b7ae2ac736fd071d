"""What the MSN transport reads from storage, declared by the transport: :class:`MsnStore`.

The MSN transport keeps no tables of its own (its contacts come from the network and are
written by the bridge); it only asks who owns an MSN address when someone registers.
``gateway.storage`` implements this; failures come out as
:class:`gateway.errors.StorageError`.
"""

from __future__ import annotations

from typing import Protocol

from gateway.addressing import BareJid
from gateway.core.records import Subscriber


class MsnStore(Protocol):
    """The owner look-ups registration needs. Raises ``StorageError`` on failure."""

    async def subscriber_by_account(self, network: str, legacy_id: str) -> Subscriber | None:
        """The subscriber whose account on ``network`` is ``legacy_id``, if any."""
        ...

    async def subscriber_by_jid(self, jid: BareJid) -> Subscriber | None:
        """The subscriber with this JID, if any."""
        ...
