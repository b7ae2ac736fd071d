"""Storage behind a small interface: :class:`Store` (SQLite via aiosqlite)."""

from gateway.storage.crypto import Cipher, KeyError_, create_key_file
from gateway.storage.store import (
    Account,
    Conflict,
    Contact,
    OutboxItem,
    StorageError,
    Store,
    Subscriber,
)

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
