"""An EditBudget whose writes also come from a window in the database, shared by all replicas."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from bot.streaming.budgets import Clock, EditBudget
from storage.base import DatabaseUnavailable

log = logging.getLogger(__name__)

# A write taken from the database ahead of its use (for try_acquire, which cannot wait) must
# be used within this many seconds or is dropped. The database keeps every write for a
# window plus this, so a write sent up to LEASE s after it was taken still counts a whole
# window from when the platform saw it.
LEASE = 0.25
# After the database refused, ask again at the latest after this long (pledges change).
RELOOK = 1.0


class Windows(Protocol):
    """Sliding windows kept where every replica sees them (storage/postgres/budgets.py)."""

    async def take(self, key: str, *, burst: int, window: float, reserve: int = 0) -> float: ...

    async def block(self, key: str, seconds: float) -> None: ...


class SharedEditBudget(EditBudget):
    """An EditBudget for a scope the platform counts across every process of the app.

    Each write is taken twice: from this process's own window (the EditBudget rules: its
    queue, its pledges, a 429 pause) and, with one atomic statement, from the scope's window
    in the database, which all replicas share, so together they stay inside one allowance.
    `try_acquire` cannot wait for the database: when no write is at hand it asks for one in
    the background and answers False; the caller's next look (StreamingReply looks again
    after `delay()`) finds it. A 429 seen by one replica pauses the scope for all of them.
    If the database cannot be reached, the process's own window still applies.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        key: str,
        windows: Windows,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(rate, burst, clock=clock)
        self.key = key
        self._windows = windows
        self._shared_window = self.window + LEASE
        self._ready_at: float | None = None  # when a write taken ahead was granted
        self._fetch: asyncio.Task[None] | None = None
        self._refused_until = -math.inf  # the database said: nothing before this
        self._turn = asyncio.Lock()  # this process's acquire() callers, one at a time
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> bool:
        return self._turn.locked() or super().waiting

    def delay(self, tokens: int = 1) -> float:
        wait = max(super().delay(tokens), self._refused_until - self._clock())
        return max(wait, 0.0)

    def try_acquire(self, reserve: int = 0) -> bool:
        if not self._holding():
            if not self.waiting and self.available() >= 1 + reserve:
                self._take_ahead(reserve)
            return False
        if not super().try_acquire(reserve):
            return False
        self._ready_at = None
        return True

    async def try_take(self) -> bool:
        if not self._holding():
            if self.waiting or self.available() < 1 or self._clock() < self._refused_until:
                return False
            if await self._take(0) != 0.0:
                return False
            self._ready_at = self._clock()
        return self.try_acquire()

    async def acquire(self) -> None:
        async with self._turn:
            while True:
                if self._holding():
                    self._ready_at = None
                    break
                wait = await self._take(0)
                if wait == 0.0:
                    break
                await asyncio.sleep(min(wait, RELOOK))
            # This process's own rules (a 429 pause, its window) still hold the write back.
            await super().acquire()

    def penalize(self, seconds: float) -> None:
        super().penalize(seconds)
        self._chore(self._block(seconds))

    @property
    def idle(self) -> bool:
        return super().idle and self._fetch is None and not self._turn.locked()

    # --- the database's window -------------------------------------------------------------

    def _holding(self) -> bool:
        """Whether a write taken ahead is at hand (and still fresh enough to use)."""
        if self._ready_at is not None and self._clock() - self._ready_at > LEASE:
            self._ready_at = None
        return self._ready_at is not None

    def _take_ahead(self, reserve: int) -> None:
        if self._fetch is not None or self._clock() < self._refused_until:
            return

        async def fetch() -> None:
            try:
                if await self._take(reserve) == 0.0:
                    self._ready_at = self._clock()
            finally:
                self._fetch = None

        self._fetch = asyncio.get_running_loop().create_task(fetch())

    async def _take(self, reserve: int) -> float:
        """One write from the database's window: 0.0, or seconds to wait before asking again."""
        try:
            wait = await self._windows.take(
                self.key, burst=self.burst, window=self._shared_window, reserve=reserve
            )
        except DatabaseUnavailable as e:
            log.warning(
                "budget %s: database unavailable (%s); this process's own only", self.key, e
            )
            return 0.0
        if wait > 0:
            self._refused_until = self._clock() + min(wait, RELOOK)
        return wait

    async def _block(self, seconds: float) -> None:
        try:
            await self._windows.block(self.key, seconds)
        except DatabaseUnavailable as e:
            log.warning("budget %s: could not share a 429 pause (%s)", self.key, e)

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
