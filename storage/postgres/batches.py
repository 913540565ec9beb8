"""Quota gate items from many tasks, sent to PostgreSQL a batch per round trip and commit."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.postgres.gate import CALL, CHANNEL, NAMES, NOTHING, USER, item

log = logging.getLogger(__name__)

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
Item: TypeAlias = tuple[Any, ...]
# Runs work on a pooled connection, turning a lost connection into DatabaseUnavailable.
RunOnce = Callable[[Callable[[Conn], Awaitable[list[int | None]]]], Awaitable[Any]]

# More items than this wait for the next batch: a batch holds its channels' counter rows
# locked until it commits, and other replicas' batches for those channels wait for them.
MAX_BATCH = 256
# Channels are split into this many groups, each with its own queue and at most one batch
# in flight per process. On the 2-core benchmark machine (bench/bench_postgres.py, 3
# processes) 1 group gave 5,255 reserve+settle/s, 2 gave 6,167, 3 and 4 about 5,100-5,300:
# two groups keep two server cores busy on disjoint rows, more split batches into smaller
# ones that each pay a round trip and a commit.
GROUPS = 2
KIND = NAMES.index("kind")

Queued: TypeAlias = list[tuple[Item, "asyncio.Future[int | None]"]]


def group_of(channel: str) -> int:
    """A channel's group, the same in every replica (unlike hash(), which is per process), so
    two replicas' batches of different groups never touch the same rows."""
    return zlib.crc32(channel.encode()) % GROUPS


class GateBatches:
    """Sends reservations and settlements to the gate function, many in one call.

    Every reservation in a channel changes that channel's counter row, so a channel's gate
    work is serial in the database whatever the client does: a transaction holds the row
    until it commits. Items queue per group of channels (GROUPS). An item whose group has
    nothing in flight goes at once, alone: one round trip, as if it were a single statement.
    Items that arrive while their group's batch is out wait, and when it comes back they all
    go as the next batch (up to MAX_BATCH): one round trip and one commit (the fsync) for
    all of them, so throughput grows with load instead of queueing behind commits, and no
    item waits longer than the batch ahead of it.

    A batch is one transaction, sorted by channel and user, and the gate function locks a
    channel's counter row, then its users', before anything else: every replica's batches
    take their locks in one order and never deadlock. Items in a batch were all in flight at
    once, so any order among them is one the callers could have seen. When a batch fails
    (the connection was lost), every item in it fails with the same error and none of them
    took effect, or its fate is unknown exactly as for a single statement: callers retry
    settlements (finishing twice is a no-op) and never reservations. A caller cancelled after
    its reservation went out has the hold given back at once, not after the reservation TTL.
    """

    def __init__(self, run_once: RunOnce) -> None:
        self._run_once = run_once
        # A group has a queue exactly while its flusher runs; the flusher removes it in the
        # same step that finds it empty, so an item never waits with nobody to send it.
        self._queues: dict[int, Queued] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        self._releases: set[asyncio.Task[Any]] = set()

    async def run(self, one: Item) -> int | None:
        """The item's outcome: a reservation's ledger id (None: refused), or for the other
        kinds how many ledger rows it finished (0 or 1)."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        group = group_of(one[CHANNEL])
        queue = self._queues.get(group)
        if queue is None:
            self._queues[group] = queue = []
            flusher = asyncio.create_task(self._flush(group, queue))
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        queue.append((one, future))
        return await future

    async def drain(self) -> None:
        """Wait for every batch in flight and every hold given back for a cancelled caller."""
        while self._flushers or self._releases:
            await asyncio.gather(*self._flushers, *self._releases, return_exceptions=True)

    async def _flush(self, group: int, queue: Queued) -> None:
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                await self._send(batch)
        finally:
            del self._queues[group]

    async def _send(self, batch: Queued) -> None:
        # A caller cancelled before its item went out needs nothing done.
        batch = [(one, future) for one, future in batch if not future.cancelled()]
        if not batch:
            return
        batch.sort(key=lambda entry: (str(entry[0][CHANNEL]), str(entry[0][USER])))
        items = [one for one, _ in batch]
        try:
            outcomes = await self._run_once(partial(_call, items))
        except Exception as e:  # the batch as a whole did not happen (or is unknown)
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        except BaseException:  # this process is stopping: nobody is left waiting in vain
            for _, future in batch:
                future.cancel()
            raise
        for (one, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
            elif one[KIND] == "reserve" and outcome is not None:
                self._give_back(one, outcome)

    def _give_back(self, reserved: Item, ledger_id: int) -> None:
        """Release a hold whose caller was cancelled while the batch was out."""
        values = dict(zip(NAMES, reserved, strict=True)) | NOTHING
        values |= {"id": ledger_id, "status": "cancelled"}
        task = asyncio.create_task(self.run(item("release", values)))
        self._releases.add(task)
        task.add_done_callback(self._release_done)

    def _release_done(self, task: asyncio.Task[Any]) -> None:
        self._releases.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The hold expires after the reservation TTL instead.
            log.warning("a cancelled request's hold was not given back: %s", task.exception())


async def _call(items: list[Item], conn: Conn) -> list[int | None]:
    outcomes: list[int | None] = await conn.fetchval(CALL, items)
    return outcomes
