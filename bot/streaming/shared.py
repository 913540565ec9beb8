"""An EditBudget whose writes also come from a window in the database, shared by all replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, Protocol

from bot.streaming.budgets import Clock, EditBudget, Outlook
from storage.base import DatabaseUnavailable
from storage.postgres.budgets import PLEDGE_SECONDS, Taken, View

log = logging.getLogger(__name__)

# A write taken from the database ahead of its use (for try_acquire, which cannot wait) must
# be used within this many seconds, or it is given back. The database keeps every write for
# a window plus this, so a write sent up to LEASE s after it was taken still counts a whole
# window from when the platform saw it.
LEASE = 0.25
# After the database refused, ask again at the latest after this long (pledges change).
RELOOK = 1.0
# How the scope looks across replicas (outlook, shortfall) is read again after this long,
# in the background; a view older than VIEW_STALE is not used (this process's own instead).
VIEW_EVERY = 0.5
VIEW_STALE = 5.0


class Windows(Protocol):
    """Sliding windows every replica sees (storage/postgres/budgets.py's SharedWindows)."""

    async def take(
        self,
        key: str,
        *,
        burst: int,
        window: float,
        reserve: int = 0,
        optional: bool = False,
        pledged: int = 0,
    ) -> Taken: ...

    async def pledge(self, key: str, count: int) -> None: ...

    async def streaming(self, key: str, count: int) -> None: ...

    async def view(self, key: str, *, window: float, horizon: float) -> View: ...

    async def give_back(self, key: str, at: datetime) -> None: ...

    async def block(self, key: str, seconds: float) -> None: ...


class SharedEditBudget(EditBudget):
    """An EditBudget for a scope the platform counts across every process of the app.

    Each write is taken twice: from this process's own window (the EditBudget rules: its
    queue, a 429 pause) and, with one atomic statement, from the scope's window in the
    database, which all replicas share, so together they stay inside one allowance. Pledges
    are shared too: an optional write (try_acquire with a reserve) leaves room for what every
    replica's open replies will surely still need, so no replica's intermediate edits starve
    another's final ones. `try_acquire` cannot wait for the database: when no write is at
    hand it asks for one in the background and answers False; the caller's next look
    (StreamingReply looks again after `delay()`) finds it, or it is given back. A 429 seen by
    one replica pauses the scope for all. Without the database, the process's own rules hold.

    `outlook` and `shortfall` count every replica's writes, pledges and streaming replies
    (a view read in the background at most every VIEW_EVERY s), and `eta` the wait the
    database last named, so that a replica shares out spare writes and decides between an
    edit and a new message knowing what the others spent.
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
        self._ready = False  # a write taken ahead is at hand
        self._ready_at: datetime | None = None  # its time in the database (to give it back)
        self._lapse: asyncio.TimerHandle | None = None
        self._arrived = asyncio.Event()
        self._fetch: asyncio.Task[None] | None = None
        self._refused_until = -math.inf  # the database said: nothing before this
        self._turn = asyncio.Lock()  # this process's acquire() callers, one at a time
        self._published = 0
        self._published_streaming = 0
        self._published_at = -math.inf
        self._streaming_at = -math.inf
        self._publisher: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[None]] = set()
        self._free_at = -math.inf  # when the database last said a required write fits
        self._acquirers = 0  # acquire() calls under way in this process
        self._view: View | None = None
        self._view_at = -math.inf
        self._view_horizon = 0.0
        self._viewing: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> bool:
        return self._turn.locked() or super().waiting

    def delay(self, tokens: int = 1) -> float:
        now = self._clock()
        return max(super().delay(tokens), self._refused_until - now, self._free_at - now, 0.0)

    def eta(self) -> float:
        return self.delay(self._acquirers + 1)

    def outlook(self, horizon: float) -> Outlook:
        own = super().outlook(horizon)
        view = self._seen(horizon)
        if view is None:
            return own
        everyone = self.burst - view.older + self.refills(horizon)
        supply = 0 if view.blocked else min(own.supply, everyone)
        return Outlook(supply, self._all_pledged(view), self._all_streaming(view))

    def shortfall(self) -> int:
        view = self._seen(None)
        if view is None:
            return super().shortfall()
        free = 0 if view.blocked else min(self.available(), self.burst - view.live)
        return max(0, self._all_pledged(view) - free)

    def try_acquire(self, reserve: int = 0) -> bool:
        if not self._ready:
            if not self.waiting and self.available() >= 1 + reserve:
                self._take_ahead(reserve)
            return False
        if not super().try_acquire(reserve):
            return False
        self._use_ready()
        return True

    async def try_take(self) -> bool:
        if not self._ready:
            if self.waiting or self.available() < 1 or self._clock() < self._refused_until:
                return False
            taken = await self._take(0)
            if taken.at is None and taken.wait > 0:
                return False
            self._hold(taken.at)
        return self.try_acquire()

    async def acquire(self) -> None:
        self._acquirers += 1
        try:
            async with self._turn:
                while not self._ready:
                    self._arrived.clear()
                    taken = await self._take(0)
                    if taken.at is not None or taken.wait == 0:
                        self._hold(taken.at)
                        break
                    # A write taken ahead for try_acquire may arrive meanwhile: use that.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(taken.wait, RELOOK)):
                            await self._arrived.wait()
                self._use_ready()
                # This process's own rules (a 429 pause, its window) still hold the write back.
                await super().acquire()
        finally:
            self._acquirers -= 1

    def penalize(self, seconds: float) -> None:
        super().penalize(seconds)
        self._chore(self._shared("share a 429 pause", self._windows.block(self.key, seconds)))

    def pledge(self, count: int = 1) -> None:
        super().pledge(count)
        self._publish()

    def unpledge(self, count: int = 1) -> None:
        super().unpledge(count)
        self._publish()

    def join(self) -> None:
        super().join()
        self._publish()

    def leave(self) -> None:
        super().leave()
        self._publish()

    @property
    def idle(self) -> bool:
        return (
            super().idle
            and not self._ready
            and self._fetch is None
            and self._publisher is None
            and self._viewing is None
            and not self._turn.locked()
        )

    # --- the database's window -------------------------------------------------------------

    def _take_ahead(self, reserve: int) -> None:
        if self._fetch is not None or self._clock() < self._refused_until:
            return

        async def fetch() -> None:
            try:
                taken = await self._take(reserve)
                if taken.at is not None or taken.wait == 0:
                    self._hold(taken.at)
            finally:
                self._fetch = None

        self._fetch = asyncio.get_running_loop().create_task(fetch())

    async def _take(self, reserve: int) -> Taken:
        """One write from the database's window (optional when it must leave a reserve)."""
        try:
            taken = await self._windows.take(
                self.key,
                burst=self.burst,
                window=self._shared_window,
                reserve=reserve,
                optional=reserve > 0,
                pledged=self.pledged,
            )
        except DatabaseUnavailable as e:
            log.warning(
                "budget %s: database unavailable (%s); this process's own only", self.key, e
            )
            return Taken(None, 0.0)
        self._published = self.pledged  # the take recorded them
        self._published_at = self._clock()
        if taken.at is None:
            self._refused_until = self._clock() + min(taken.wait, RELOOK)
            if not reserve:
                self._free_at = self._clock() + taken.wait
        return taken

    def _hold(self, at: datetime | None) -> None:
        """A write is at hand; unused after LEASE it goes back to the window."""
        if self._ready:
            # One at hand already (taken ahead while acquire() asked too): this one goes back.
            if at is not None:
                self._chore(self._shared("give back", self._windows.give_back(self.key, at)))
            return
        self._ready, self._ready_at = True, at
        self._arrived.set()
        self._lapse = asyncio.get_running_loop().call_later(LEASE, self._unused)

    def _use_ready(self) -> None:
        if self._lapse is not None:
            self._lapse.cancel()
            self._lapse = None
        self._ready, self._ready_at = False, None

    def _unused(self) -> None:
        at = self._ready_at
        self._lapse = None
        self._ready, self._ready_at = False, None
        if at is not None:
            self._chore(self._shared("give back", self._windows.give_back(self.key, at)))

    def _publish(self, *, again: bool = False) -> None:
        """Tell the other replicas this process's pledges and streaming replies (one
        publisher at a time; `again`: also when unchanged, before the database forgets)."""
        if self._publisher is not None:
            return

        async def publish() -> None:
            try:
                first = again
                while first or self._published != self.pledged:
                    first, count = False, self.pledged
                    await self._shared("share pledges", self._windows.pledge(self.key, count))
                    self._published, self._published_at = count, self._clock()
                first = again
                while first or self._published_streaming != self.streaming:
                    first, count = False, self.streaming
                    work = self._windows.streaming(self.key, count)
                    await self._shared("share streaming replies", work)
                    self._published_streaming, self._streaming_at = count, self._clock()
            finally:
                self._publisher = None

        self._publisher = asyncio.get_running_loop().create_task(publish())

    # --- every replica's view --------------------------------------------------------------

    def _seen(self, horizon: float | None) -> View | None:
        """The last view of the scope (refreshed in the background), unless too old or
        taken over another horizon (None: any will do)."""
        now = self._clock()
        other = horizon is not None and horizon != self._view_horizon
        if (other or now - self._view_at > VIEW_EVERY) and self._viewing is None:
            looking = self._view_horizon or self.window if horizon is None else horizon
            self._viewing = asyncio.get_running_loop().create_task(self._look(looking))
        if other or now - self._view_at > VIEW_STALE:
            return None
        return self._view

    async def _look(self, horizon: float) -> None:
        try:
            self._view = await self._windows.view(
                self.key, window=self._shared_window, horizon=horizon
            )
            self._view_horizon = horizon
        except DatabaseUnavailable as e:
            # Read twice a second: the takes' warnings already tell of an outage.
            log.debug("budget %s: database unavailable (%s); own view only", self.key, e)
            self._view = None
        finally:
            self._view_at = self._clock()
            self._viewing = None
        # Pledges and counts the database keeps for a while only: said again before it forgets.
        said = min(self._published_at, self._streaming_at)
        if (self.pledged or self.streaming) and self._clock() - said > PLEDGE_SECONDS / 3:
            self._publish(again=True)

    def _all_pledged(self, view: View) -> int:
        """Every replica's pledges: the others' as the database has them, and ours now."""
        return max(0, view.pledged - self._published) + self.pledged

    def _all_streaming(self, view: View) -> int:
        return max(0, view.streaming - self._published_streaming) + self.streaming

    async def _shared(self, what: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except DatabaseUnavailable as e:
            log.warning("budget %s: could not %s (%s)", self.key, what, e)

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
