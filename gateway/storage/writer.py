"""Group commit: every write goes through one writer that commits in batches.

A write returns only once the transaction holding it is committed (``synchronous=FULL``),
so durability is unchanged; but writes issued while a commit is in progress share the
next one, so one fsync serves many messages. This is what lets the outbox keep up with
the XMPP side without weakening "persisted before acknowledged".
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class WriteResult:
    lastrowid: int | None
    rowcount: int
    rowcounts: tuple[int, ...] = ()  # per statement, for groups


@dataclass
class _Op:
    statements: list[tuple[str, Params]]
    many: bool
    future: asyncio.Future[WriteResult]
    savepoint: bool = True


class GroupWriter:
    """Serialises writes into batched transactions on one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._pending: list[_Op] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0
        self.writes = 0

    async def drain(self) -> None:
        """Wait until every submitted write is committed (or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})

    async def write(self, sql: str, params: Params = ()) -> WriteResult:
        return await self._submit([(sql, params)], many=False)

    async def write_many(self, sql: str, rows: Iterable[Params]) -> WriteResult:
        return await self._submit([(sql, row) for row in rows], many=True)

    async def write_group(
        self, statements: Sequence[tuple[str, Params]], *, savepoint: bool = True
    ) -> WriteResult:
        """Several statements that commit together (in the same transaction). Without a
        savepoint (statements that cannot violate a constraint) the group costs fewer calls."""
        return await self._submit(list(statements), many=True, savepoint=savepoint)

    async def _submit(
        self, statements: list[tuple[str, Params]], many: bool, savepoint: bool = True
    ) -> WriteResult:
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(statements, many, future, savepoint))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            outcomes: list[tuple[_Op, WriteResult | BaseException]] = []
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                for op in batch:
                    outcomes.append((op, await self._run(op)))
                await self._db.execute("COMMIT")
                self.commits += 1
                self.writes += len(batch)
            except Exception as exc:  # the commit failed (disk full, I/O error): nothing of it holds
                with contextlib.suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
                for op in batch:
                    if not op.future.done():
                        op.future.set_exception(exc)
                continue
            for op, outcome in outcomes:
                if op.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    op.future.set_exception(outcome)
                else:
                    op.future.set_result(outcome)

    async def _run(self, op: _Op) -> WriteResult | BaseException:
        """One operation; a constraint failure fails it alone (SQLite rolls back the statement)."""
        counts: list[int] = []
        lastrowid: int | None = None
        guarded = op.many and op.savepoint
        try:
            if guarded:
                await self._db.execute("SAVEPOINT op")
            for sql, params in op.statements:
                cur = await self._db.execute(sql, params)
                counts.append(max(cur.rowcount, 0))
                lastrowid = cur.lastrowid
            if guarded:
                await self._db.execute("RELEASE op")
        except sqlite3.IntegrityError as exc:
            if guarded:
                await self._db.execute("ROLLBACK TO op")
                await self._db.execute("RELEASE op")
            return exc
        return WriteResult(lastrowid, sum(counts), tuple(counts))
