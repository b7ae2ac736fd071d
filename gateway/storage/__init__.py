"""Storage behind a small interface: :class:`Store` (SQLite via aiosqlite).

The record types live in :mod:`gateway.core.records` and the storage exceptions in
:mod:`gateway.errors`; both are re-exported here for the code that imports them from here.
"""

from gateway.core.records import Account, Contact, OutboxItem, Subscriber
from gateway.errors import Conflict, StorageError
from gateway.storage.crypto import Cipher, KeyError_, create_key_file
from gateway.storage.store import Store

__all__ = [
    "Account",
    "Cipher",
    "Conflict",
    "Contact",
    "KeyError_",
    "OutboxItem",
    "StorageError",
    "Store",
    "Subscriber",
    "create_key_file",
]
