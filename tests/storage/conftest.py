"""The storage contract suite's backend fixture: every ``test_contract_*`` test runs once
per backend in :data:`BACKENDS`.

A backend is the few things the tests cannot do through the interfaces: open its store
(again, for a restart), show what it keeps at rest, and make its database refuse writes.
This is the only place that knows what the backend is; to add one (PostgreSQL next),
write a :class:`Backend` for it here and add it to :data:`BACKENDS`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.storage import Cipher, Store, create_key_file


class Backend:
    """How the contract tests reach one storage backend."""

    name = "abstract"

    async def open(self) -> Store:
        """A store over the backend's database (the same data each time)."""
        raise NotImplementedError

    def at_rest(self) -> bytes:
        """Everything the backend keeps on disk, as bytes (to look for a secret in)."""
        raise NotImplementedError

    def refusing_writes(self) -> contextlib.AbstractContextManager[None]:
        """While entered, the database refuses every new outbox row, SMS part and sighting."""
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"
    REFUSED = ("outbox", "sms_parts_sent", "seen", "subscribers")

    def __init__(self, directory: Path) -> None:
        self.path = directory / "gw.db"
        create_key_file(directory / "secret.key")
        self.cipher = Cipher.from_file(directory / "secret.key")

    async def open(self) -> Store:
        return await Store.open(self.path, self.cipher)

    def at_rest(self) -> bytes:
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())

    @contextlib.contextmanager
    def refusing_writes(self) -> Iterator[None]:
        # the way a full disk refuses: the statement fails in the database, not in Python
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            for table in self.REFUSED:
                conn.execute(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                )
            try:
                yield
            finally:
                for table in self.REFUSED:
                    conn.execute(f"DROP TRIGGER refuse_{table}")


BACKENDS = {"sqlite": SqliteBackend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    made: Backend = BACKENDS[request.param](tmp_path)
    return made


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.open()
    try:
        yield opened
    finally:
        await opened.close()
