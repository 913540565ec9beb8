"""Benchmark: what governance adds to a request (rule read, policy checks, priced metering)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from bot.events import Place
from bot.governance.channels import ChannelDefaults
from bot.governance.policy import Policy
from bot.governance.prices import load_prices
from bot.quota.meter import metered
from storage.base import (
    MICRO,
    AccessRule,
    AccessRules,
    Amounts,
    Charge,
    Metric,
    QuotaConfig,
    Rates,
    RuleScope,
    Window,
)
from storage.sqlite.store import SqliteStore, open_store
from tests.fakes.gateway import CATALOGUE

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "prices.example.toml"
ESTIMATE = Amounts(tokens_in=300, tokens_out=1000)
ACTUAL = Amounts(tokens_in=280, tokens_out=412)
OPS = 4000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def summary(ms: list[float]) -> str:
    return f"p50 {statistics.median(ms):6.3f} ms  p99 {percentile(ms, 0.99):6.3f} ms"


async def timed(tasks: int, op: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    """`tasks` workers running `op` OPS times in all: (ops per second, ms per op)."""
    took: list[float] = []
    counter = iter(range(OPS))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(i)
            took.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    async with asyncio.timeout(120):
        await asyncio.gather(*(worker() for _ in range(tasks)))
    return OPS / (time.perf_counter() - start), took


async def rule_reads(store: SqliteStore) -> None:
    for w in range(20):  # 20 workspaces, each with lists and per-channel model lists
        scope = RuleScope("slack", f"T{w}")
        await store.add_access_rules(scope, "channel_block", [f"C{i}" for i in range(10)])
        await store.add_access_rules(scope, "model_allow", ["gpt-4o*", "deepseek-*"])
        for c in range(20):
            await store.add_access_rules(
                RuleScope("slack", f"T{w}", f"C{c}"), "model_allow", ["gpt-4o*"]
            )
    for tasks in (1, 10, 100):
        rate, ms = await timed(
            tasks, lambda i: store.access_rules("slack", f"T{i % 20}", f"C{i % 20}")
        )
        print(f"  access rules read, {tasks:>3} tasks: {rate:>8,.0f}/s  {summary(ms)}")


async def notices(store: SqliteStore) -> None:
    hour = timedelta(hours=1)
    for tasks in (1, 100):
        rate, ms = await timed(
            tasks, lambda i: store.claim_notice(f"refusal:slack:C{i % 50}", every=hour)
        )
        print(f"  refusal notice claim, {tasks:>3} tasks: {rate:>8,.0f}/s  {summary(ms)}")


async def metering(path: Path, policy: Policy) -> None:
    """reserve + settle through the meter, unpriced and priced (all limits set, cost too)."""
    limits: dict[tuple[Metric, Window], float | None] = {
        (m, w): 1e12 for m in ("requests", "tokens", "cost") for w in ("day", "month")
    }
    for label, priced in (("unpriced", False), ("priced", True)):
        store = await open_store(path / f"{label}.db", QuotaConfig(limits=limits, user_share=0.5))
        rates = policy.rates("gpt-4o-mini") if priced else Rates()

        async def one(i: int, store: SqliteStore = store, rates: Rates = rates) -> None:
            charge = Charge(
                "bench", f"bench:C{i % 8}", f"U{i % 50}", "ask", "gpt-4o-mini", rates=rates
            )
            async with metered(store, charge, ESTIMATE) as meter:
                meter.actual = ACTUAL

        cpu = time.process_time()
        rate, ms = await timed(10, one)
        cpu_us = (time.process_time() - cpu) / OPS * 1e6
        await store.close()
        print(
            f"  meter {label:<8} 10 tasks: {rate:>8,.0f}/s  {cpu_us:5.0f} us CPU each  "
            + summary(ms)
        )


def policy_checks(policy: Policy) -> None:
    rules = AccessRules(
        (
            AccessRule("channel_block", "", "general"),
            AccessRule("channel_allow", "", "ops-*"),
            AccessRule("model_allow", "C1", "gpt-4o*"),
        )
    )
    place = Place("slack", "C1", None, "T1", name="ops-alerts")
    ids = [m for m, _ in CATALOGUE]
    start = time.perf_counter()
    for _ in range(10_000):
        policy.verdict(place, rules)
        policy.model_problem("gpt-4o-mini", rules)
    each = (time.perf_counter() - start) / 10_000 * 1e6
    start = time.perf_counter()
    for _ in range(20):
        [m for m in ids if not policy.model_problem(m, rules)]
    listing = (time.perf_counter() - start) / 20 * 1000
    print(f"  policy per request (channel verdict + model check, 46-entry table): {each:.1f} us")
    print(f"  usable models of a {len(ids)}-model list (models, autocomplete): {listing:.2f} ms")


async def main() -> None:
    policy = Policy(
        channels=ChannelDefaults(block=("random",)),
        models_allow=("gpt-4o*", "deepseek-*"),
        prices=load_prices(str(EXAMPLE)),
    )
    print("governance on one SQLite file (WAL); what each request pays on top of the quota gate")
    policy_checks(policy)
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "rules.db")
        await rule_reads(store)
        await notices(store)
        await store.close()
        await metering(Path(tmp), policy)
    print(f"(money is integer micro-units: 1 USD = {MICRO:,})")


if __name__ == "__main__":
    asyncio.run(main())
