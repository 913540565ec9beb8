"""Group commit: a failing unit is undone alone; a failed COMMIT fails the whole batch."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage.sqlite.group_commit import GroupCommit


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    return conn


def on_a_thread(fn: Callable[[], Any]) -> Any:
    return asyncio.to_thread(fn)


def insert(key: str, *, then_fail: bool = False) -> Callable[[sqlite3.Connection], str]:
    def unit(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (?)", (key,))
        if then_fail:
            raise ValueError(f"{key} failed after writing")
        return key

    return unit


def keys(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]


async def test_a_unit_that_fails_after_writing_is_rolled_back_alone(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "g.db")
    writes = GroupCommit(conn, on_a_thread)
    async with asyncio.timeout(10):
        results = await asyncio.gather(
            writes.run(insert("a")),
            writes.run(insert("b", then_fail=True)),
            writes.run(insert("c")),
            writes.run(insert("a")),  # a constraint error, also alone
            return_exceptions=True,
        )
        await writes.drain()
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError) and isinstance(results[3], sqlite3.IntegrityError)
    assert keys(conn) == ["a", "c"]
    conn.close()


async def test_when_the_commit_fails_no_unit_of_the_batch_happened(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    conn = open_db(path)
    conn.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    writes = GroupCommit(conn, on_a_thread)
    async with asyncio.timeout(10):
        results = await asyncio.gather(
            writes.run(insert("x")), writes.run(insert("y")), return_exceptions=True
        )
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    other.execute("ROLLBACK")
    other.close()
    # The next batch works once the lock is gone.
    assert await writes.run(insert("z")) == "z"
    assert keys(conn) == ["z"]
    conn.close()


async def test_a_cancelled_caller_does_not_cancel_the_batch(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "g.db")
    writes = GroupCommit(conn, on_a_thread)
    caller = asyncio.create_task(writes.run(insert("kept")))
    other = asyncio.create_task(writes.run(insert("also")))
    await asyncio.sleep(0)
    caller.cancel()
    async with asyncio.timeout(10):
        assert await other == "also"
        await writes.drain()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The unit had been handed to the database: it commits even though its caller left.
    assert keys(conn) == ["also", "kept"]
    conn.close()
