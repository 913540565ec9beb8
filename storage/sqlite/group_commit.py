"""Group commit: write transactions that queue up while one is in flight share one COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
RunOnThread = Callable[[Callable[[], list[tuple[bool, Any]]]], Awaitable[list[tuple[bool, Any]]]]


class GroupCommit:
    """Runs write units on the DB thread, batching those submitted meanwhile.

    Each unit runs inside its own SAVEPOINT, so a unit that raises is undone alone and the
    others commit. A unit's future resolves only after the COMMIT that made it durable; if
    that COMMIT fails, every unit of the batch fails with it (none of them happened). With
    one task this is a plain transaction per unit; with many, the COMMIT (the WAL write, the
    biggest cost of a small transaction) is paid once per batch.
    """

    def __init__(self, conn: sqlite3.Connection, run_on_thread: RunOnThread) -> None:
        self._conn = conn
        self._run_on_thread = run_on_thread
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # A cancelled caller cancels only its own future: its unit was handed over and still
        # runs (and commits) with the batch; the batch skips setting a result nobody awaits.
        return await future

    async def drain(self) -> None:
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            units = [work for work, _ in batch]
            try:
                results = await self._run_on_thread(partial(self._commit, units))
            except BaseException as e:  # the batch as a whole did not commit
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                if not isinstance(e, Exception):
                    raise
                continue
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, units: list[Work]) -> list[tuple[bool, Any]]:
        """On the DB thread. BEGIN IMMEDIATE takes the write lock up front, so another
        process's writer makes us wait in busy_timeout rather than fail at COMMIT."""
        conn = self._conn
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for work in units:
                conn.execute("SAVEPOINT unit")
                try:
                    results.append((True, work(conn)))
                except Exception as e:
                    conn.execute("ROLLBACK TO unit")
                    results.append((False, e))
                conn.execute("RELEASE unit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results
