"""Benchmark: quota reserve + settle throughput and the latency the gate adds (one SQLite file)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bot.quota.config import quota_config_from_env
from storage.base import Amounts, Charge, Store
from storage.sqlite.store import SqliteStore, open_store

# Every limit set (high) so the gate evaluates all its conditions, as in production.
ENV = {
    f"CHATOPS_QUOTA_{m}_{w}": "1000000000"
    for m in ("REQUESTS", "TOKENS", "IMAGES", "AUDIO_SECONDS")
    for w in ("DAY", "MONTH")
} | {"CHATOPS_QUOTA_USER_SHARE": "50%", "CHATOPS_QUOTA_TZ": "Europe/Berlin"}
OPS_PER_LEVEL = 6000
SECONDS_PER_LEVEL = 5.0
ESTIMATE = Amounts(tokens_in=300, tokens_out=1000)
ACTUAL = Amounts(tokens_in=280, tokens_out=412)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def summary(ms: list[float]) -> str:
    return (
        f"p50 {statistics.median(ms):6.3f} ms  p99 {percentile(ms, 0.99):6.3f} ms  "
        f"max {max(ms):6.2f} ms"
    )


async def closed_loop(path: Path, tasks: int) -> None:
    """`tasks` workers doing reserve + settle back to back: throughput."""
    store = await open_store(path, quota_config_from_env(ENV))
    gate: list[float] = []  # reserve + settle seconds, per request
    done = 0
    deadline = time.perf_counter() + SECONDS_PER_LEVEL

    async def worker(i: int) -> None:
        nonlocal done
        charge = Charge("bench", f"bench:C{i % 8}", f"U{i}", "ask", "gpt-4o-mini")
        while done < OPS_PER_LEVEL and time.perf_counter() < deadline:
            done += 1
            t0 = time.perf_counter()
            reservation = await store.reserve(charge, ESTIMATE)
            await store.settle(reservation, ACTUAL)
            gate.append(time.perf_counter() - t0)

    await warm_up(store)
    start, cpu = time.perf_counter(), time.process_time()
    async with asyncio.timeout(SECONDS_PER_LEVEL + 30):
        await asyncio.gather(*(worker(i) for i in range(tasks)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await store.close()
    print(
        f"{tasks:>5} tasks   {len(gate) / elapsed:>8,.0f} reserve+settle/s  "
        f"{cpu / len(gate) * 1e6:5.0f} us CPU each   {summary([g * 1000 for g in gate])}"
    )


async def gated_request(store: Store, i: int, tag: str = "") -> float:
    """Request `i`: reserve, a 20 ms gateway call, settle; the seconds the gate added."""
    charge = Charge("bench", f"bench:C{i % 8}", f"U{tag}{i % 50}", "ask", "gpt-4o-mini")
    t0 = time.perf_counter()
    reservation = await store.reserve(charge, ESTIMATE)
    t1 = time.perf_counter()
    await asyncio.sleep(0.02)
    t2 = time.perf_counter()
    await store.settle(reservation, ACTUAL)
    return (t1 - t0) + (time.perf_counter() - t2)


async def open_loop(path: Path, rate: float) -> None:
    """Requests arriving at `rate`/s, each reserve → 20 ms gateway call → settle: what the
    gate adds to one request's latency at a given load."""
    store = await open_store(path, quota_config_from_env(ENV))
    await warm_up(store)
    added: list[float] = []

    async def request(i: int) -> None:
        added.append(await gated_request(store, i))

    count = int(rate * SECONDS_PER_LEVEL / 2)
    start = time.perf_counter()
    async with asyncio.timeout(SECONDS_PER_LEVEL + 30), asyncio.TaskGroup() as group:
        for i in range(count):
            await asyncio.sleep(max(start + i / rate - time.perf_counter(), 0))
            group.create_task(request(i))
    await store.close()
    print(f"{rate:>7,.0f}/s arriving: gate adds {summary([a * 1000 for a in added])}")


async def warm_up(store: SqliteStore) -> None:
    for _ in range(200):  # caches and the WAL
        charge = Charge("b", "b:w", "u", "ask", "m")
        await store.settle(await store.reserve(charge, ESTIMATE), ACTUAL)


async def main() -> None:
    print("quota gate on one SQLite file (WAL, synchronous=NORMAL); all limits set, 50% user share")
    with tempfile.TemporaryDirectory() as tmp:
        for tasks in (1, 10, 100):
            await closed_loop(Path(tmp) / f"closed-{tasks}.db", tasks)
        for rate in (50.0, 500.0, 2000.0):
            await open_loop(Path(tmp) / f"open-{rate:.0f}.db", rate)
    print("goals: >= 5,000 reserve+settle/s at 10 tasks; p99 the gate adds <= 2 ms")


if __name__ == "__main__":
    asyncio.run(main())
