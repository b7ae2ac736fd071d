"""Group commit: every write goes through one writer that commits in batches.

A write returns only once the transaction holding it is committed (``synchronous=FULL``),
so durability is unchanged; but writes issued while a commit is in progress share the
next one, so one fsync serves many messages. This is what lets the outbox keep up with
the XMPP side without weakening "persisted before acknowledged".

The writer has its own connection on its own thread (WAL lets it write while the store's
aiosqlite connection reads). A batch is one hand-over each way: the thread takes every
write waiting in its queue, runs ``BEGIN IMMEDIATE``, each operation (under a savepoint
when it needs one), ``COMMIT`` (or ``ROLLBACK``), and settles the whole batch with one
callback on the event loop; then it starts on the writes that queued meanwhile, without
waiting for the loop. Reads never queue behind a commit's fsync.

Writes run and commit in the order they were submitted: once a write's result is known,
every write submitted before it is settled too (committed, or failed). A caller may thus
start a write, go on (to later writes, say) and await it afterwards without waiting longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

Params = Sequence[Any]
T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
Connect = Callable[[], sqlite3.Connection]


@dataclass(frozen=True, slots=True)
class WriteResult:
    lastrowid: int | None
    rowcount: int
    rowcounts: tuple[int, ...] = ()  # per statement, for groups


@dataclass(slots=True)
class _Op:
    future: asyncio.Future[Any]
    statements: list[tuple[str, Params]] = field(default_factory=list)
    call: Work | None = None  # a function run with the connection, instead of statements
    guarded: bool = False  # under its own savepoint


@dataclass(frozen=True, slots=True)
class _Failed:
    """An operation that failed alone (its changes undone); the rest of the batch commits."""

    error: BaseException


class WriterClosed(sqlite3.ProgrammingError):
    """A write submitted after :meth:`GroupWriter.close`."""


class GroupWriter:
    """Serialises writes into batched transactions on one connection of its own.

    Create with :meth:`start` (which opens the connection with ``connect`` on the writer's
    thread); stop with :meth:`close`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[list[_Op] | None] = queue.SimpleQueue()
        self._outgoing: list[_Op] = []  # submitted in this turn of the event loop
        self._thread: threading.Thread | None = None
        self._outstanding = 0  # submitted, not yet settled
        self._settled = asyncio.Event()
        self._closed = False
        self.commits = 0
        self.writes = 0
        self.hops = 0  # batches handed to the writer's thread (and settled back): one each way

    @classmethod
    async def start(cls, connect: Connect) -> GroupWriter:
        """Start the writer's thread; ``connect`` runs there and must give a connection in
        autocommit mode (``isolation_level=None``) with the database's pragmas set."""
        loop = asyncio.get_running_loop()
        writer = cls(loop)
        opened: asyncio.Future[None] = loop.create_future()
        writer._thread = threading.Thread(
            target=writer._serve, args=(connect, opened), name="passerelle-db-writer", daemon=True
        )
        writer._thread.start()
        await opened
        return writer

    async def drain(self) -> None:
        """Wait until every submitted write is committed (or failed)."""
        while self._outstanding:
            self._settled.clear()
            await self._settled.wait()

    async def close(self) -> None:
        """Finish every submitted write, then stop the thread and close its connection."""
        await self.drain()
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    async def write(self, sql: str, params: Params = ()) -> WriteResult:
        return cast(WriteResult, await self._submit([(sql, params)]))

    async def write_many(self, sql: str, rows: Iterable[Params]) -> WriteResult:
        return cast(WriteResult, await self._submit([(sql, row) for row in rows], guarded=True))

    async def write_group(
        self, statements: Sequence[tuple[str, Params]], *, savepoint: bool = True
    ) -> WriteResult:
        """Several statements that commit together (in the same transaction). Without a
        savepoint (statements that cannot violate a constraint) the group costs less."""
        return cast(WriteResult, await self._submit(list(statements), guarded=savepoint))

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` inside the next batch's transaction; return its result
        once that transaction is committed.

        ``work`` runs on the writer's thread under its own savepoint: it may read and write
        (reads see the batch so far), must only use the connection it is given, and must
        not commit. A constraint failure or any non-database exception it raises undoes its
        changes and fails it alone; a database error (disk full, I/O) fails the batch.
        """
        return cast(T, await self._submit([], call=work, guarded=True))

    def start_write(self, sql: str, params: Params = ()) -> asyncio.Future[WriteResult]:
        """Submit a write now and await it later. It is in the queue when this returns, so
        it commits no later than any write submitted after it (in the same transaction, or
        an earlier one): a caller may start a write, then await a later one that must not
        commit without it. The future must be awaited (or its exception read)."""
        return cast("asyncio.Future[WriteResult]", self._enqueue([(sql, params)]))

    async def _submit(
        self, statements: list[tuple[str, Params]], *, call: Work | None = None, guarded: bool = False
    ) -> Any:
        return await self._enqueue(statements, call=call, guarded=guarded)

    def _enqueue(
        self, statements: list[tuple[str, Params]], *, call: Work | None = None, guarded: bool = False
    ) -> asyncio.Future[Any]:
        if self._closed or self._thread is None or not self._thread.is_alive():
            raise WriterClosed("the database writer is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._outstanding += 1
        self._outgoing.append(_Op(future, statements, call, guarded))
        if len(self._outgoing) == 1:
            self._loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        """Give the writes of this turn of the loop to the thread in one go: waking a thread
        costs far more than queueing (a cross-CPU wake-up), so it happens once per turn."""
        ops, self._outgoing = self._outgoing, []
        self._queue.put(ops)

    def _settle(self, batch: list[_Op], outcome: list[Any] | BaseException) -> None:
        """On the event loop: the batch's transaction is over (committed, or not at all)."""
        self.hops += 1
        self._outstanding -= len(batch)
        if not self._outstanding:
            self._settled.set()
        if isinstance(outcome, BaseException):  # the commit failed (disk full, I/O error)
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(outcome)
            return
        self.commits += 1
        self.writes += len(batch)
        for op, result in zip(batch, outcome, strict=True):
            if op.future.done():  # the caller gave up waiting; the write was still made
                continue
            if isinstance(result, _Failed):
                op.future.set_exception(result.error)
            else:
                op.future.set_result(result)

    # -- on the writer's thread ------------------------------------------------------------

    def _serve(self, connect: Connect, opened: asyncio.Future[None]) -> None:
        try:
            conn = connect()
        except BaseException as exc:
            self._loop.call_soon_threadsafe(_settle_future, opened, exc)
            return
        self._loop.call_soon_threadsafe(_settle_future, opened, None)
        try:
            running = True
            while running:
                batch, running = self._take()
                if not batch:
                    continue
                try:
                    outcome: list[Any] | BaseException = _execute_batch(conn, batch)
                except BaseException as exc:  # settled on the loop: every future fails with it
                    outcome = exc
                try:
                    self._loop.call_soon_threadsafe(self._settle, batch, outcome)
                except RuntimeError:  # the event loop is closed: nobody is waiting any more
                    return
        finally:
            conn.close()

    def _take(self) -> tuple[list[_Op], bool]:
        """Wait for writes, then take every write queued with them; False once closed."""
        batch = self._queue.get()
        if batch is None:
            return [], False
        with contextlib.suppress(queue.Empty):
            while True:
                ops = self._queue.get_nowait()
                if ops is None:
                    return batch, False
                batch.extend(ops)
        return batch, True


def _settle_future(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _execute_batch(conn: sqlite3.Connection, batch: list[_Op]) -> list[Any]:
    """One transaction holding every operation of ``batch``; raises if it does not commit."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        outcomes = [_execute_op(conn, op) for op in batch]
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _execute_op(conn: sqlite3.Connection, op: _Op) -> Any:
    """One operation; a constraint failure fails it alone (SQLite rolls back the statement,
    or the savepoint undoes the whole operation)."""
    if op.guarded:
        conn.execute("SAVEPOINT op")
    try:
        result = op.call(conn) if op.call is not None else _execute_statements(conn, op.statements)
    except Exception as exc:
        alone = isinstance(exc, sqlite3.IntegrityError) or (
            op.call is not None and not isinstance(exc, sqlite3.Error)
        )
        if not alone:
            raise
        if op.guarded:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
        return _Failed(exc)
    if op.guarded:
        conn.execute("RELEASE op")
    return result


def _execute_statements(conn: sqlite3.Connection, statements: list[tuple[str, Params]]) -> WriteResult:
    counts: list[int] = []
    lastrowid: int | None = None
    for sql, params in statements:
        cur = conn.execute(sql, params)
        counts.append(max(cur.rowcount, 0))
        lastrowid = cur.lastrowid
    return WriteResult(lastrowid, sum(counts), tuple(counts))
