"""The storage boundary: SQLite's exceptions become :class:`gateway.errors.StorageError`.

Everything above ``gateway.storage`` (the bridge, the transports) catches one project
exception whatever the backend; the SQLite error stays as its ``__cause__`` (and its text
as the message, so the operator's log still says "database or disk is full").
:class:`Writes` is the group writer as the store's tables use it, with that translation;
:class:`gateway.storage.reader.Reader` translates its reads the same way.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gateway.errors import StorageError
from gateway.storage.writer import GroupWriter, Params, WriteResult

T = TypeVar("T")


def storage_error(exc: sqlite3.Error) -> StorageError:
    """``exc`` as the project's exception (raise it ``from exc``)."""
    return StorageError(str(exc) or type(exc).__name__)


def is_constraint(exc: StorageError) -> bool:
    """Whether the database refused the write for a constraint (a unique key taken)."""
    return isinstance(exc.__cause__, sqlite3.IntegrityError)


class Writes:
    """:class:`GroupWriter`'s writes, failing with :class:`StorageError`."""

    def __init__(self, writer: GroupWriter) -> None:
        self.raw = writer

    async def write(self, sql: str, params: Params = ()) -> WriteResult:
        try:
            return await self.raw.write(sql, params)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def write_many(self, sql: str, rows: Iterable[Params]) -> WriteResult:
        try:
            return await self.raw.write_many(sql, rows)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def write_group(
        self, statements: Sequence[tuple[str, Params]], *, savepoint: bool = True
    ) -> WriteResult:
        try:
            return await self.raw.write_group(statements, savepoint=savepoint)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self.raw.run(work)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def start_write(self, sql: str, params: Params = ()) -> asyncio.Future[WriteResult]:
        """:meth:`GroupWriter.start_write`: queued now, its future fails with StorageError."""
        try:
            inner = self.raw.start_write(sql, params)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc
        outer: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        inner.add_done_callback(lambda done: _settle(outer, done))
        return outer


def _settle(outer: asyncio.Future[WriteResult], inner: asyncio.Future[WriteResult]) -> None:
    if inner.cancelled():
        outer.cancel()
        return
    error = inner.exception()  # read even when nobody waits any more: no "never retrieved"
    if outer.done():
        return
    if error is None:
        outer.set_result(inner.result())
    elif isinstance(error, sqlite3.Error):
        wrapped = storage_error(error)
        wrapped.__cause__ = error
        outer.set_exception(wrapped)
    else:
        outer.set_exception(error)
