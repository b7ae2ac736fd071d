"""The group writer: one hand-over to its thread per batch, with the semantics of a
statement-by-statement transaction (per-operation constraint isolation, per-statement
rowcounts, lastrowid, every future failed when the batch does not commit)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from gateway.storage.store import _writer_connection
from gateway.storage.writer import GroupWriter, WriterClosed, WriteResult

SCHEMA = """
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE parent (id INTEGER PRIMARY KEY);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED
);
"""


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """The reading connection (as the store's), with the schema."""
    conn = await aiosqlite.connect(tmp_path / "w.db", isolation_level=None)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.executescript(SCHEMA)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def w(db: aiosqlite.Connection, tmp_path: Path) -> AsyncIterator[GroupWriter]:
    writer = await GroupWriter.start(lambda: _writer_connection(tmp_path / "w.db"))
    try:
        yield writer
    finally:
        await writer.close()


async def names(db: aiosqlite.Connection) -> list[str]:
    return [row[0] for row in await db.execute_fetchall("SELECT name FROM t ORDER BY id")]


@contextlib.asynccontextmanager
async def one_batch(w: GroupWriter) -> AsyncIterator[None]:
    """Keep the writer's thread busy (with a batch of its own) while the body submits
    writes: they all wait in the queue, and the thread then takes them as one batch."""
    busy, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(5)

    holder = asyncio.ensure_future(w.run(hold))
    while not busy.is_set():
        await asyncio.sleep(0.001)
    try:
        yield
        await asyncio.sleep(0.01)  # the body's tasks reach the queue
    finally:
        release.set()
        await holder


# -- the thread and its connection ----------------------------------------------------------


async def test_work_runs_on_the_writers_thread_with_the_pragmas(w: GroupWriter) -> None:
    def look(conn: sqlite3.Connection) -> tuple[int, int, int, str]:
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return threading.get_ident(), synchronous, foreign_keys, mode

    ident, synchronous, foreign_keys, mode = await w.run(look)
    assert ident != threading.get_ident()
    assert (synchronous, foreign_keys, mode) == (2, 1, "wal")  # FULL: durability unchanged


async def test_a_connection_that_cannot_open_fails_the_start(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await GroupWriter.start(lambda: sqlite3.connect(tmp_path / "missing" / "x.db"))


async def test_close_commits_what_was_submitted_then_refuses(
    w: GroupWriter, db: aiosqlite.Connection
) -> None:
    pending = [
        asyncio.ensure_future(w.write("INSERT INTO t (name) VALUES (?)", (f"n{i}",))) for i in range(5)
    ]
    await asyncio.sleep(0)
    await w.close()
    assert all(t.done() and t.exception() is None for t in pending)
    assert len(await names(db)) == 5
    with pytest.raises(WriterClosed):
        await w.write("INSERT INTO t (name) VALUES ('late')")


async def test_drain_waits_for_every_write(w: GroupWriter, db: aiosqlite.Connection) -> None:
    tasks = [asyncio.ensure_future(w.write("INSERT INTO t (name) VALUES (?)", (f"n{i}",))) for i in range(5)]
    await asyncio.sleep(0)
    await w.drain()
    await asyncio.sleep(0)  # the waiters resume
    assert all(t.done() for t in tasks)
    assert len(await names(db)) == 5


# -- batches --------------------------------------------------------------------------------


async def test_one_hop_and_one_commit_per_batch(w: GroupWriter, db: aiosqlite.Connection) -> None:
    """Writes submitted together are one batch: one hand-over, one transaction, one fsync."""
    async with one_batch(w):
        results = asyncio.gather(
            *(w.write("INSERT INTO t (name) VALUES (?)", (f"n{i}",)) for i in range(20)),
            w.write_many("INSERT INTO t (name) VALUES (?)", [("m1",), ("m2",)]),
            w.write_group(
                [("INSERT INTO t (name) VALUES ('g1')", ()), ("UPDATE t SET name = 'g2' WHERE id = 23", ())]
            ),
            w.run(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]),
        )
    done = await results
    assert (w.hops, w.commits, w.writes) == (2, 2, 24)
    assert [r.lastrowid for r in done[:20]] == list(range(1, 21))
    assert done[20] == WriteResult(22, 2, (1, 1))
    assert done[21] == WriteResult(23, 2, (1, 1))
    assert done[22] == 23  # reads inside the batch see the batch so far
    assert (await names(db))[-1] == "g2"


async def test_one_write_alone_is_one_hop(w: GroupWriter) -> None:
    await w.write("INSERT INTO t (name) VALUES ('a')")
    await w.write("INSERT INTO t (name) VALUES ('b')")
    assert (w.hops, w.commits, w.writes) == (2, 2, 2)


async def test_a_constraint_failure_fails_its_operation_alone(
    w: GroupWriter, db: aiosqlite.Connection
) -> None:
    await w.write("INSERT INTO t (name) VALUES ('taken')")
    async with one_batch(w):
        gathered = asyncio.gather(
            w.write("INSERT INTO t (name) VALUES ('before')"),
            w.write("INSERT INTO t (name) VALUES ('taken')"),  # a single statement: rolled back by SQLite
            w.write_many("INSERT INTO t (name) VALUES (?)", [("m1",), ("taken",), ("m3",)]),  # savepoint
            w.write_group(
                [("INSERT INTO t (name) VALUES ('g1')", ()), ("INSERT INTO t (name) VALUES ('taken')", ())]
            ),
            w.write("UPDATE t SET name = name || '!' WHERE name IN ('before', 'after', 'nothing')"),
            w.write("INSERT INTO t (name) VALUES ('after')"),
            return_exceptions=True,
        )
    outcomes = await gathered
    assert (w.hops, w.commits) == (3, 3)  # the first write, the holder, then all these
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert isinstance(outcomes[2], sqlite3.IntegrityError)
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert isinstance(outcomes[4], WriteResult) and outcomes[4].rowcounts == (1,)  # 'after' comes later
    # the savepoints undid all of m1..m3 and g1; everything else committed
    assert await names(db) == ["taken", "before!", "after"]


async def test_a_group_without_savepoint_keeps_what_ran_before_the_failure(
    w: GroupWriter, db: aiosqlite.Connection
) -> None:
    """As before: without a savepoint only the failing statement is undone."""
    await w.write("INSERT INTO t (name) VALUES ('taken')")
    with pytest.raises(sqlite3.IntegrityError):
        await w.write_group(
            [("INSERT INTO t (name) VALUES ('kept')", ()), ("INSERT INTO t (name) VALUES ('taken')", ())],
            savepoint=False,
        )
    assert await names(db) == ["taken", "kept"]


async def test_per_statement_rowcounts(w: GroupWriter) -> None:
    await w.write_many("INSERT INTO t (name) VALUES (?)", [("a",), ("b",), ("c",)])
    result = await w.write_group(
        [
            ("UPDATE t SET name = name || '1' WHERE name IN ('a', 'b')", ()),
            ("DELETE FROM t WHERE name = 'nothing'", ()),
            ("DELETE FROM t WHERE name = 'c'", ()),
        ],
        savepoint=False,
    )
    assert result.rowcounts == (2, 0, 1) and result.rowcount == 3


async def test_a_failed_commit_fails_every_future(
    w: GroupWriter, db: aiosqlite.Connection, tmp_path: Path
) -> None:
    """A deferred foreign key is only checked by COMMIT: the whole batch is rolled back."""
    async with one_batch(w):
        gathered = asyncio.gather(
            w.write("INSERT INTO t (name) VALUES ('a')"),
            w.write("INSERT INTO child (parent_id) VALUES (99)"),  # no parent 99: COMMIT fails
            w.run(lambda conn: conn.execute("INSERT INTO t (name) VALUES ('b')").lastrowid),
            return_exceptions=True,
        )
    outcomes = await gathered
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert (w.hops, w.commits, w.writes) == (2, 1, 1)  # the holder's batch, then this one
    assert await names(db) == []
    with sqlite3.connect(tmp_path / "w.db", timeout=0) as other:  # rolled back: no lock left
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
    await w.write("INSERT INTO t (name) VALUES ('c')")
    assert await names(db) == ["c"]


async def test_a_full_disk_fails_the_batch(w: GroupWriter, db: aiosqlite.Connection) -> None:
    await w.write("INSERT INTO t (name) VALUES ('first')")
    pages = (await db.execute_fetchall("PRAGMA page_count"))[0][0]  # type: ignore[index]
    await w.run(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))  # per connection
    async with one_batch(w):
        gathered = asyncio.gather(
            w.write("INSERT INTO t (name) VALUES ('small')"),
            w.write_many("INSERT INTO t (name) VALUES (?)", [(str(i) * 2000,) for i in range(10)]),
            return_exceptions=True,
        )
    outcomes = await gathered
    assert all(isinstance(o, sqlite3.OperationalError) and "full" in str(o) for o in outcomes), outcomes
    assert await names(db) == ["first"]
    await w.run(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
    await w.write("INSERT INTO t (name) VALUES ('again')")
    assert await names(db) == ["first", "again"]


async def test_run_fails_alone_on_its_own_errors(w: GroupWriter, db: aiosqlite.Connection) -> None:
    def buggy(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (name) VALUES ('undone')")
        raise ValueError("a bug in the work")

    def duplicate(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (name) VALUES ('x')")
        conn.execute("INSERT INTO t (name) VALUES ('x')")

    async with one_batch(w):
        gathered = asyncio.gather(
            w.write("INSERT INTO t (name) VALUES ('kept')"),
            w.run(buggy),
            w.run(duplicate),
            w.run(lambda conn: conn.execute("INSERT INTO t (name) VALUES ('also kept')").rowcount),
            return_exceptions=True,
        )
    outcomes = await gathered
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], sqlite3.IntegrityError)
    assert outcomes[3] == 1
    assert (w.hops, w.commits) == (2, 2)
    assert await names(db) == ["kept", "also kept"]


async def test_a_database_error_in_run_fails_the_batch(w: GroupWriter, db: aiosqlite.Connection) -> None:
    async with one_batch(w):
        gathered = asyncio.gather(
            w.write("INSERT INTO t (name) VALUES ('a')"),
            w.run(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)")),
            return_exceptions=True,
        )
    outcomes = await gathered
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
    assert await names(db) == []


async def test_writes_are_committed_once_acknowledged(
    w: GroupWriter, db: aiosqlite.Connection, tmp_path: Path
) -> None:
    """An acknowledged write is committed: the reading connection and another one see it."""
    await w.write("INSERT INTO t (name) VALUES ('durable')")
    assert await names(db) == ["durable"]
    with sqlite3.connect(tmp_path / "w.db") as other:
        assert other.execute("SELECT name FROM t").fetchall() == [("durable",)]


async def test_writes_settle_in_the_order_they_were_submitted(
    w: GroupWriter, db: aiosqlite.Connection
) -> None:
    first = asyncio.ensure_future(w.write("INSERT INTO t (name) VALUES ('first')"))
    await asyncio.sleep(0)  # submitted, not awaited
    await w.write("INSERT INTO t (name) VALUES ('second')")
    assert first.done() and first.exception() is None
    assert await names(db) == ["first", "second"]


async def test_a_started_write_is_settled_once_a_later_write_is(
    w: GroupWriter, db: aiosqlite.Connection
) -> None:
    started = w.start_write("INSERT INTO t (name) VALUES (?)", ("first",))
    assert not started.done()  # submitted, not yet committed
    await w.write("INSERT INTO t (name) VALUES (?)", ("second",))
    assert started.done()
    assert (await started).rowcount == 1
    assert await names(db) == ["first", "second"]


async def test_a_started_write_that_fails_fails_alone(w: GroupWriter, db: aiosqlite.Connection) -> None:
    await w.write("INSERT INTO t (name) VALUES (?)", ("taken",))
    started = w.start_write("INSERT INTO t (name) VALUES (?)", ("taken",))
    await w.write("INSERT INTO t (name) VALUES (?)", ("after",))
    with pytest.raises(sqlite3.IntegrityError):
        await started
    assert await names(db) == ["taken", "after"]
