"""Shared write budgets that pace posts and edits across every reply in one platform scope."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from bot.events import Limits, Place

if TYPE_CHECKING:
    from bot.streaming.shared import Windows

Clock = Callable[[], float]


class EditBudget:
    """A token bucket shared by every reply in one scope (a channel, a workspace).

    At most `burst` writes in any window of `burst / rate` seconds: a spent token comes back
    one window after it was spent, instead of trickling back. That never exceeds the
    platform's allowance whether the platform counts in a token bucket, a fixed window
    (Discord's 5 per 5 s) or a sliding one (Slack's per-minute tiers).

    `pledged` counts writes that replies will certainly need (a first post, a final edit);
    replies spend tokens on optional intermediate edits only beyond that reserve.
    """

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("an edit budget needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.window = burst / rate
        self.pledged = 0
        self._clock = clock
        self._spent: deque[float] = deque()  # when each live token was spent, oldest first
        self._blocked_until = -math.inf
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    # --- queries ---------------------------------------------------------------------------

    def available(self) -> int:
        """Tokens that could be spent right now."""
        now = self._clock()
        if now < self._blocked_until:
            return 0
        self._expire(now)
        return self.burst - len(self._spent)

    def delay(self, tokens: int = 1) -> float:
        """Seconds until `tokens` tokens are available, if nobody spends any (inf: never)."""
        if tokens > self.burst:
            return math.inf
        now = self._clock()
        self._expire(now)
        free = self.burst - len(self._spent)
        at = now if free >= tokens else self._spent[tokens - free - 1] + self.window
        return max(0.0, max(at, self._blocked_until) - now)

    def eta(self) -> float:
        """Seconds until an acquire() made now would be granted: after the queue ahead of it."""
        return self.delay(self._queued() + 1)

    @property
    def waiting(self) -> bool:
        """Whether some acquire() is queued (try_acquire never jumps that queue)."""
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        return bool(self._waiters)

    # --- spending --------------------------------------------------------------------------

    def try_acquire(self, reserve: int = 0) -> bool:
        """Take a token now if one is free beyond `reserve` and nobody queues ahead."""
        if self.waiting or self.available() < 1 + reserve:
            return False
        self._spent.append(self._clock())
        return True

    async def try_take(self) -> bool:
        """try_acquire() for callers that can await a shared budget's answer (never waits
        for a token to come back)."""
        return self.try_acquire()

    async def acquire(self) -> None:
        """Wait (first come, first served) for a token and take it."""
        if not self.waiting and self.available() >= 1:
            self._spent.append(self._clock())
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._schedule()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # Granted, then cancelled before use: hand the token to the next in line.
                self._spent.pop()
                self._grant()
            raise

    def penalize(self, seconds: float) -> None:
        """The platform answered 429: spend nothing in this scope for `seconds`."""
        until = self._clock() + max(0.0, seconds)
        if until > self._blocked_until:
            self._blocked_until = until
            self._schedule()

    # --- pledges ---------------------------------------------------------------------------

    def pledge(self, count: int = 1) -> None:
        self.pledged += count

    def unpledge(self, count: int = 1) -> None:
        self.pledged = max(0, self.pledged - count)

    @property
    def idle(self) -> bool:
        """Nothing spent in the last window, nobody waiting or pledged: safe to forget."""
        return self.available() == self.burst and not self._waiters and not self.pledged

    # --- internals -------------------------------------------------------------------------

    def _queued(self) -> int:
        return sum(1 for fut in self._waiters if not fut.done())

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0] + self.window <= now:
            self._spent.popleft()

    def _schedule(self) -> None:
        """One timer per budget wakes the head of the queue when its token comes back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        if self._waiters:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.delay(1), self._grant)

    def _grant(self) -> None:
        self._timer = None
        while self._waiters:
            fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if self.available() < 1:
                break
            self._waiters.popleft()
            self._spent.append(self._clock())
            fut.set_result(None)
        if self._waiters:
            self._schedule()


class Budgets:
    """Every EditBudget of the process, one per platform scope, created on first use.

    With `shared` (the PostgreSQL store's windows), the budgets of platforms that count
    writes per app (Limits.app_wide: Slack) are also taken from a window every replica
    shares (bot/streaming/shared.py); the others stay in this process.
    """

    # Forget idle per-channel budgets once there are this many (thousands of Discord channels).
    PRUNE_AT = 5000

    def __init__(self, *, clock: Clock = time.monotonic, shared: Windows | None = None) -> None:
        self._clock = clock
        self._shared = shared
        self._budgets: dict[tuple[str, str], EditBudget] = {}

    def for_place(self, limits: Limits, place: Place) -> EditBudget:
        """The budget edits (and, unless the platform limits them apart, posts) draw from."""
        key = ("write", limits.budget_key(place))
        return self._get(key, limits.budget_per_second, limits.budget_burst, limits.app_wide)

    def for_posts(self, limits: Limits, place: Place) -> EditBudget:
        """The budget new messages draw from: the edit budget unless Limits sets its own."""
        if limits.post_per_second is None:
            return self.for_place(limits, place)
        key = ("post", limits.post_budget_key(place))
        return self._get(key, limits.post_per_second, limits.post_burst, limits.app_wide)

    def named(
        self, name: str, scope: str, rate: float, burst: int, *, app_wide: bool
    ) -> EditBudget:
        """A budget for a limit an adapter keeps itself (Slack's native streams per
        workspace), shared by replicas like the others when `app_wide`."""
        return self._get((name, scope), rate, burst, app_wide)

    def for_deletes(self, limits: Limits, place: Place) -> EditBudget | None:
        """The budget deleting messages draws from; None where the core never deletes."""
        if limits.delete_per_second is None:
            return None
        key = ("delete", limits.delete_budget_key(place))
        return self._get(key, limits.delete_per_second, limits.delete_burst, limits.app_wide)

    def __len__(self) -> int:
        return len(self._budgets)

    def spare(self) -> Iterator[tuple[str, str, int]]:
        """(kind, scope key, writes free beyond pledges) of every budget, for metrics."""
        for (kind, key), budget in list(self._budgets.items()):
            yield kind, key, max(0, budget.available() - budget.pledged)

    def _get(self, key: tuple[str, str], rate: float, burst: int, app_wide: bool) -> EditBudget:
        budget = self._budgets.get(key)
        if budget is None:
            if len(self._budgets) >= self.PRUNE_AT:
                self._prune()
            if app_wide and self._shared is not None:
                # Imported here: shared.py builds on EditBudget above.
                from bot.streaming.shared import SharedEditBudget

                budget = SharedEditBudget(
                    rate, burst, key=":".join(key), windows=self._shared, clock=self._clock
                )
            else:
                budget = EditBudget(rate, burst, clock=self._clock)
            self._budgets[key] = budget
        return budget

    def _prune(self) -> None:
        for key in [k for k, b in self._budgets.items() if b.idle]:
            del self._budgets[key]
