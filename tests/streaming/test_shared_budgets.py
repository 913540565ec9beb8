"""Budgets shared by replicas through PostgreSQL: together they stay inside one allowance."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from adapters.slack.stream import STREAMS_BURST, STREAMS_PER_SECOND
from bot.events import Limits, Place
from bot.streaming.budgets import Budgets, EditBudget
from bot.streaming.shared import SharedEditBudget
from storage.postgres.store import PostgresStore

PLACE = Place(platform="slack", channel="C1", workspace="T1")
# Five writes per 500 s window: nothing comes back while a test runs.
SCARCE = Limits(
    max_chars=100, edit_interval=0.0, budget_per_second=0.01, budget_burst=5, app_wide=True
)


@contextlib.asynccontextmanager
async def replicas(url: str, count: int) -> AsyncIterator[list[Budgets]]:
    """`count` processes' worth of budgets: each its own store (pool) on one database."""
    stores = [await PostgresStore.open(url) for _ in range(count)]
    try:
        yield [Budgets(shared=store.budgets()) for store in stores]
    finally:
        for store in stores:
            await store.close()


async def test_replicas_together_take_no_more_than_the_allowance(postgres_url: str) -> None:
    async with replicas(postgres_url, 3) as budgets:
        scopes = [b.for_place(SCARCE, PLACE) for b in budgets]
        assert all(isinstance(s, SharedEditBudget) for s in scopes)
        granted = 0

        async def waits(budget: EditBudget) -> None:
            nonlocal granted
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.5):
                    await budget.acquire()
                    granted += 1

        async def polls(budget: EditBudget) -> None:
            nonlocal granted
            for _ in range(100):
                if budget.try_acquire():
                    granted += 1
                await asyncio.sleep(0.01)

        await asyncio.gather(*(f(s) for s in scopes for f in (waits, waits, polls)))
    # Each replica alone would have granted 5; all three together grant 5.
    assert granted == 5


async def test_pledges_keep_writes_for_sure_needs_across_replicas(postgres_url: str) -> None:
    async with replicas(postgres_url, 2) as (one, two):
        first, second = one.for_place(SCARCE, PLACE), two.for_place(SCARCE, PLACE)
        for _ in range(3):
            await first.acquire()
        # Two writes left in the shared window; the second replica pledges both, so an
        # optional write (try_acquire beyond the pledges) is refused there and here...
        second.pledge(2)
        for _ in range(20):
            assert not second.try_acquire(reserve=second.pledged)
            await asyncio.sleep(0.005)
        # ...while the sure writes still get through.
        async with asyncio.timeout(5):
            await second.acquire()
            await second.acquire()
        assert not first.try_acquire()


async def test_a_429_in_one_replica_pauses_the_scope_in_all(postgres_url: str) -> None:
    a, b = [await PostgresStore.open(postgres_url) for _ in range(2)]
    try:
        key = "write:slack:T1"
        assert (await b.budgets().take(key, burst=50, window=60.0)).at is not None
        await a.budgets().block(key, 30.0)
        refused = await b.budgets().take(key, burst=50, window=60.0)
        assert refused.at is None and 25.0 < refused.wait <= 30.0
    finally:
        await a.close()
        await b.close()


async def test_without_the_database_a_replica_keeps_its_own_budget(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    budgets = Budgets(shared=store.budgets())
    budget = budgets.for_place(SCARCE, PLACE)
    await store.close()  # the database is gone: writes fall back to this process's window
    async with asyncio.timeout(5):
        for _ in range(5):
            await budget.acquire()
    assert not budget.try_acquire()


async def test_only_app_wide_budgets_are_shared_and_only_with_a_database(
    postgres_url: str,
) -> None:
    discord = Limits(max_chars=100, edit_interval=1.0, budget_per_second=1, budget_burst=5)
    async with replicas(postgres_url, 1) as (budgets,):
        assert type(budgets.for_place(SCARCE, PLACE)) is SharedEditBudget
        # Discord's budgets are per channel, and a channel's guild lives on one shard.
        guild = Place(platform="discord", channel="42", workspace="7")
        assert type(budgets.for_place(discord, guild)) is EditBudget
    assert type(Budgets().for_place(SCARCE, PLACE)) is EditBudget  # SQLite: one process


async def test_slack_streams_allowance_is_shared_by_replicas(postgres_url: str) -> None:
    async with replicas(postgres_url, 3) as budgets:
        allowances = [
            b.named("streams", "slack:T1", STREAMS_PER_SECOND, STREAMS_BURST, app_wide=True)
            for b in budgets
        ]
        started = [await a.try_take() for _ in range(STREAMS_BURST) for a in allowances]
    # chat.startStream is counted per workspace by Slack: 10 in all, not 10 per replica.
    assert sum(started) == STREAMS_BURST
