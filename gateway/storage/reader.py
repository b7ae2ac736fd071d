"""Reads in one hop to the database thread each.

``async with db.execute(...) as cur: await cur.fetchone()`` costs three calls to
aiosqlite's thread (execute, fetch, close); :meth:`Reader.execute` costs one
(``execute_fetchall``), which is what every look-up on the message path uses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from gateway.errors import StorageError


class Reader:
    """Read-only statements over the store's connection, counted in :attr:`hops`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.hops = 0

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Every row of the result (use a ``LIMIT`` or a key for a single row)."""
        self.hops += 1
        try:
            return list(await self._db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:  # the storage boundary (see gateway.storage.boundary)
            raise StorageError(str(exc) or type(exc).__name__) from exc


def first(rows: list[sqlite3.Row]) -> sqlite3.Row | None:
    return rows[0] if rows else None
