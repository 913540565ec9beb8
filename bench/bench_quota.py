"""Benchmark: quota reserve + settle throughput and the latency the gate adds (one SQLite file)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bot.quota import QuotaConfig
from storage.base import Amounts, Charge
from storage.sqlite import open_store

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


async def level(path: Path, tasks: int) -> None:
    store = await open_store(path, QuotaConfig.from_env(ENV))
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
            t1 = time.perf_counter()
            await store.settle(reservation, ACTUAL)
            gate.append(time.perf_counter() - t1 + (t1 - t0))

    for _ in range(200):  # warm up caches and the WAL
        await store.settle(
            await store.reserve(Charge("b", "b:w", "u", "ask", "m"), ESTIMATE), ACTUAL
        )
    start = time.perf_counter()
    async with asyncio.timeout(SECONDS_PER_LEVEL + 30):
        await asyncio.gather(*(worker(i) for i in range(tasks)))
    elapsed = time.perf_counter() - start
    rows = len(await store.ledger())
    await store.close()
    ms = [g * 1000 for g in gate]
    print(
        f"{tasks:>5} tasks  {len(gate) / elapsed:>8,.0f} reserve+settle/s   "
        f"gate latency p50 {statistics.median(ms):6.3f} ms  p99 {percentile(ms, 0.99):6.3f} ms  "
        f"max {max(ms):6.2f} ms   ({len(gate)} ops, {rows} ledger rows)"
    )


async def main() -> None:
    print(
        "quota gate on one SQLite file (WAL, synchronous=NORMAL); every limit set, 50% user share"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for tasks in (1, 10, 100):
            await level(Path(tmp) / f"bench-{tasks}.db", tasks)
    print("goals: >= 5,000/s at 10 tasks; p99 gate latency <= 2 ms")


if __name__ == "__main__":
    asyncio.run(main())
