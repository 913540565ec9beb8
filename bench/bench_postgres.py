"""Benchmark: the quota gate and shared budget takes on PostgreSQL, in one and three processes."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.bench_quota import ACTUAL, ENV, ESTIMATE, gated_request, percentile
from bot.quota.config import quota_config_from_env
from storage.base import Charge
from storage.postgres.store import PostgresStore
from tests.postgres import redacted, server_url, with_database

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 5.0
OPS_CAP = 20_000


async def closed_loop(url: str, tasks: int, seconds: float, tag: str = "") -> dict[str, float]:
    """`tasks` workers doing reserve + settle back to back for `seconds`; returns figures."""
    quota = quota_config_from_env(ENV)
    store = await PostgresStore.open(url, quota, pool_size=min(max(tasks, 1), 20))
    gate: list[float] = []
    deadline = 0.0

    async def worker(i: int) -> None:
        charge = Charge("bench", f"bench:C{i % 8}", f"U{tag}{i}", "ask", "gpt-4o-mini")
        while time.perf_counter() < deadline and len(gate) < OPS_CAP:
            t0 = time.perf_counter()
            reservation = await store.reserve(charge, ESTIMATE)
            await store.settle(reservation, ACTUAL)
            gate.append(time.perf_counter() - t0)

    for _ in range(100):  # connections, prepared statements, caches
        warm = Charge("b", "b:w", f"w{tag}", "ask", "m")
        await store.settle(await store.reserve(warm, ESTIMATE), ACTUAL)
    deadline = time.perf_counter() + seconds
    start, cpu = time.perf_counter(), time.process_time()
    async with asyncio.timeout(seconds + 60):
        await asyncio.gather(*(worker(i) for i in range(tasks)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await store.close()
    ms = [g * 1000 for g in gate]
    return {
        "ops": len(gate),
        "elapsed": elapsed,
        "cpu_us": cpu / len(gate) * 1e6,
        "p50": statistics.median(ms),
        "p99": percentile(ms, 0.99),
        "max": max(ms),
    }


def line(label: str, f: dict[str, float]) -> str:
    return (
        f"{label:<22} {f['ops'] / f['elapsed']:>8,.0f} reserve+settle/s  "
        f"p50 {f['p50']:6.2f} ms  p99 {f['p99']:6.2f} ms  max {f['max']:7.2f} ms"
        + (f"  {f['cpu_us']:5.0f} us client CPU each" if "cpu_us" in f else "")
    )


async def in_processes(url: str, processes: int, mode: str, load: float) -> list[dict[str, Any]]:
    """`processes` replicas started together, each running `mode` (closed: `load` workers;
    open: `load` arrivals a second); their figures."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.bench_postgres",
            "--child",
            mode,
            url,
            str(load),
            str(i),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(processes)
    ]
    figures = []
    async with asyncio.timeout(SECONDS + 120):
        for child in children:
            out, _ = await child.communicate()
            figures.append(json.loads(out))
    return figures


async def across_processes(url: str, processes: int, tasks: int) -> None:
    """`processes` replicas, each with `tasks` workers doing reserve + settle back to back."""
    figures = await in_processes(url, processes, "closed", tasks)
    ops = sum(f["ops"] for f in figures)
    elapsed = max(f["elapsed"] for f in figures)
    p99s = ", ".join(f"{f['p99']:.2f}" for f in figures)
    print(
        f"{processes} processes x {tasks:<3} tasks {ops / elapsed:>8,.0f} reserve+settle/s  "
        f"p99 per process {p99s} ms"
    )


async def open_loop(url: str, rate: float, tag: str = "") -> list[float]:
    """Requests arriving at `rate`/s, each reserve, a 20 ms gateway call, settle: what the
    gate adds to each request's latency at that load, in ms."""
    store = await PostgresStore.open(url, quota_config_from_env(ENV))
    added: list[float] = []

    async def request(i: int) -> None:
        added.append(await gated_request(store, i, tag))

    count = int(rate * SECONDS)
    start = time.perf_counter()
    async with asyncio.timeout(SECONDS + 60), asyncio.TaskGroup() as group:
        for i in range(count):
            await asyncio.sleep(max(start + i / rate - time.perf_counter(), 0))
            group.create_task(request(i))
    await store.close()
    return [a * 1000 for a in added]


def added_line(label: str, ms: list[float]) -> str:
    return (
        f"{label:<26} gate adds p50 {statistics.median(ms):6.2f} ms  "
        f"p99 {percentile(ms, 0.99):6.2f} ms  max {max(ms):7.2f} ms"
    )


async def open_across(url: str, processes: int, rate: float) -> None:
    """`rate` requests a second in all, arriving evenly at `processes` replicas."""
    figures = await in_processes(url, processes, "open", rate / processes)
    ms = [m for f in figures for m in f["added"]]
    print(added_line(f"{rate:,.0f}/s over {processes} processes", ms))


async def budget_take(url: str) -> None:
    """One shared budget take's latency (storage/postgres/budgets.py), as a reply sees it."""
    store = await PostgresStore.open(url, pool_size=2)
    windows = store.budgets()
    ms: list[float] = []
    try:
        for i in range(3000):
            t0 = time.perf_counter()
            # Slack's chat.update allowance (50 a minute); 40 takes per scope, all granted,
            # with 3 pledges of this replica's and another replica's to leave room for.
            taken = await windows.take(
                f"bench:{i // 40}", burst=50, window=62.75, reserve=3, optional=True, pledged=3
            )
            ms.append((time.perf_counter() - t0) * 1000)
            assert taken.at is not None
    finally:
        await store.close()
    print(
        f"budget take (one statement)  p50 {statistics.median(ms):.3f} ms  "
        f"p99 {percentile(ms, 0.99):.3f} ms  max {max(ms):.2f} ms"
    )


async def main() -> None:
    with server_url(durable=True) as server:
        admin = await asyncpg.connect(server)
        await admin.execute("DROP DATABASE IF EXISTS bench_quota WITH (FORCE)")
        await admin.execute("CREATE DATABASE bench_quota")
        await admin.close()
        url = with_database(server, "bench_quota")
        print(f"quota gate on PostgreSQL ({redacted(url)}, fsync and synchronous_commit on);")
        print("all limits set, 50% user share, 8 channels; reserve + settle per request")
        for tasks in (1, 10, 100):
            print(line(f"1 process x {tasks} tasks", await closed_loop(url, tasks, SECONDS)))
        for tasks in (10, 30):
            await across_processes(url, 3, tasks)
        for rate in (100.0, 500.0):
            print(added_line(f"{rate:,.0f}/s in 1 process", await open_loop(url, rate)))
        for rate in (1_000.0, 3_000.0, 5_000.0):
            await open_across(url, 3, rate)
        await budget_take(url)
    print("goals: >= 5,000 reserve+settle/s across processes; p99 the gate adds <= 5 ms")


def child(mode: str, url: str, load: float, tag: str) -> None:
    if mode == "closed":
        figures: dict[str, Any] = asyncio.run(closed_loop(url, int(load), SECONDS, tag=f"p{tag}-"))
    else:
        figures = {"added": asyncio.run(open_loop(url, load, tag=f"p{tag}-"))}
    print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4, metavar=("MODE", "URL", "LOAD", "TAG"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], float(args.child[2]), args.child[3])
    else:
        asyncio.run(main())
