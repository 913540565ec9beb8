"""Background WAL checkpoints on a second connection, keeping fsync off the quota gate's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiosqlite

log = logging.getLogger(__name__)

INTERVAL = 0.5
# The writer's own (inline) checkpoint stays as a backstop for sustained heavy writing, when
# a concurrent checkpoint never catches up with the writer: it bounds the WAL at this size.
INLINE_PAGES = 4000


class Checkpointer:
    """Copies committed WAL pages into the database file every INTERVAL seconds.

    A commit in WAL mode with synchronous=NORMAL does not fsync; a checkpoint does. Left to
    the writer, one commit in a few hundred would pay for that fsync (milliseconds) while
    holding the write lock. A PASSIVE checkpoint on another connection and thread takes no
    write lock, so it runs beside the writer instead of in front of it.
    """

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._db: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._db = await aiosqlite.connect(self._path, isolation_level=None, timeout=10.0)
        self._task = asyncio.create_task(self._run(self._db), name="sqlite-checkpoint")

    async def _run(self, db: aiosqlite.Connection) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except aiosqlite.Error as e:  # busy or I/O: the inline backstop still works
                log.warning("background checkpoint failed: %s", e)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._db is not None:
            await self._db.close()
