"""Gateway client throughput: CPU per streamed chunk vs the openai SDK, and concurrent streams.

Run: .venv/bin/python -m bench.bench_gateway [--streams 200 --chunks 500 --levels 100,300,500]

The fake gateway runs in a subprocess, so time.process_time() here counts only the client's
CPU (parsing HTTP, SSE and JSON), not the server's. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.fake_process import fake_gateway_process
from bot.gateway.client import Gateway
from bot.secret import Secret

KEY = "sk-bench-key"
MODEL = "gpt-4o-mini"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def messages_for(chunks: int) -> list[dict[str, Any]]:
    # The fake answers "You said: <text>" one word per chunk: 2 + words chunks.
    words = " ".join(f"w{index}" for index in range(chunks - 2))
    return [{"role": "user", "content": words}]


StreamOnce = Callable[[], Awaitable[int]]


async def cpu_per_chunk(stream_once: StreamOnce, streams: int, parallel: int) -> tuple[float, int]:
    """(CPU µs per content chunk, chunks) for `streams` streams, `parallel` at a time."""
    for _ in range(3):  # warm up connections, imports, caches
        await stream_once()
    gc.collect()
    queue = iter(range(streams))
    total = 0

    async def worker() -> None:
        nonlocal total
        for _ in queue:
            count = await stream_once()
            total += count  # not `total += await ...`: that reads total before awaiting

    started = time.process_time()
    async with asyncio.timeout(300):
        await asyncio.gather(*(worker() for _ in range(parallel)))
    spent = time.process_time() - started
    return spent / total * 1e6, total


def new_gateway(base_url: str, transport: str = "aiohttp") -> Gateway:
    """Our client over its default aiohttp transport, or over httpx's own (httpcore + h11)."""
    return Gateway(
        base_url, Secret(KEY), transport="httpcore" if transport == "httpcore" else "aiohttp"
    )


async def bench_cpu(base_url: str, streams: int, chunks: int) -> None:
    import openai  # the test extra; imported here so RSS figures above exclude it
    from openai.types.chat import ChatCompletionMessageParam

    messages = messages_for(chunks)
    sdk_messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": messages[0]["content"]}
    ]
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    firsts: dict[str, list[float]] = {"aiohttp": [], "httpcore": [], "sdk": []}

    def ours(gateway: Gateway, label: str) -> StreamOnce:
        async def once() -> int:
            count = 0
            started = time.perf_counter()
            async for _delta in gateway.chat(MODEL, messages):
                if not count:
                    firsts[label].append(time.perf_counter() - started)
                count += 1
            return count

        return once

    async def theirs() -> int:
        count = 0
        started = time.perf_counter()
        stream = await sdk.chat.completions.create(
            model=MODEL,
            messages=sdk_messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not count:
                    firsts["sdk"].append(time.perf_counter() - started)
                count += 1
        return count

    figures: dict[str, tuple[float, int]] = {}
    try:
        for label in ("aiohttp", "httpcore"):
            gateway = new_gateway(base_url, label)
            try:
                figures[label] = await cpu_per_chunk(ours(gateway, label), streams, parallel=4)
            finally:
                await gateway.aclose()
        figures["sdk"] = await cpu_per_chunk(theirs, streams, parallel=4)
    finally:
        await sdk.close()
    names = {
        "aiohttp": "bot.gateway.client (aiohttp transport, default)",
        "httpcore": "bot.gateway.client (httpx's own transport)",
        "sdk": f"openai SDK {openai.__version__}",
    }
    print(f"CPU per streamed chunk ({streams} streams x {chunks} chunks, 4 in parallel):")
    for label, (micros, count) in figures.items():
        print(
            f"  {names[label]:<42} {micros:6.1f} us/chunk ({count} chunks); "
            f"first delta p50 {statistics.median(firsts[label]) * 1e3:6.2f} ms"
        )
    sdk_us = figures["sdk"][0]
    print(
        f"  ratio to the SDK: {figures['aiohttp'][0] / sdk_us:.2f} (default), "
        f"{figures['httpcore'][0] / sdk_us:.2f} (httpx transport); goal <= 0.50"
    )


async def bench_concurrency(
    base_url: str, server_pid: int, levels: list[int], seconds: float, rate: float, transport: str
) -> None:
    interval = 1 / rate
    ramp = 1.0
    chunks = int(seconds * rate)
    messages = messages_for(chunks)
    gateway = new_gateway(base_url, transport)
    print(
        f"Concurrent streams, {transport} transport, {rate:g} chunks/s each for {seconds:g} s, "
        f"started over {ramp:g} s.\n  delivery = server write -> delta in our caller (what the "
        "client adds); lateness = vs the server's schedule (adds the fake's own lag); "
        "first delta = request -> first text:"
    )

    async def one(offset: float) -> tuple[float, list[float], list[float]]:
        """(request start, arrival of each text delta, its delay since the server wrote it)."""
        await asyncio.sleep(offset)
        started = time.monotonic()
        arrivals: list[float] = []
        delays: list[float] = []
        with contextlib.suppress(Exception):  # a failed stream shows as missing chunks
            async for delta in gateway.chat(MODEL, messages):
                # The fake runs with --stamp: each delta is its send time on the same clock.
                now = time.monotonic()
                arrivals.append(now)
                delays.append(now - float(delta))
        return started, arrivals, delays

    try:
        for level in levels:
            wall_start = time.perf_counter()
            cpu = time.process_time()
            server_cpu = cpu_seconds(server_pid)
            async with asyncio.timeout(seconds * 4 + 30):
                # Users arrive over a second, not within one millisecond.
                results = await asyncio.gather(*(one(i * ramp / level) for i in range(level)))
            wall = time.perf_counter() - wall_start
            cpu_spent = time.process_time() - cpu
            cpu_share = cpu_spent / wall
            server_share = (cpu_seconds(server_pid) - server_cpu) / wall
            lateness: list[float] = []
            firsts: list[float] = []
            delivery: list[float] = []
            incomplete = 0
            for started, arrivals, delays in results:
                delivery.extend(delays)
                if len(arrivals) < chunks:
                    incomplete += 1
                if not arrivals:
                    continue
                firsts.append(arrivals[0] - started)
                # Chunk i is due at t0 + i·interval, t0 the best-aligned chunk's implied start:
                # lateness is lag on top of the server's pace, not connection set-up.
                t0 = min(at - i * interval for i, at in enumerate(arrivals))
                lateness.extend(at - (t0 + i * interval) for i, at in enumerate(arrivals))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            delivered = sum(len(arrivals) for _, arrivals, _ in results)
            # CPU per chunk does not depend on what else the machine runs; lateness does.
            paced_us = cpu_spent / max(1, delivered) * 1e6
            # Few streams leave the loop's fixed costs unamortized: no capacity estimate then.
            capacity = f", one core carries ~{1e6 / paced_us / rate:.0f}" if level >= 100 else ""
            print(
                f"  {level:5d} streams: delivery p50 {percentile(delivery, 50):6.2f} ms, "
                f"p99 {percentile(delivery, 99):6.1f} ms; "
                f"lateness p50 {percentile(lateness, 50):6.1f} ms, "
                f"p99 {percentile(lateness, 99):6.1f} ms; "
                f"first delta p99 {percentile(firsts, 99):5.0f} ms; "
                f"CPU client {cpu_share:4.0%} ({paced_us:.0f} us/chunk{capacity}) "
                f"server {server_share:4.0%}; "
                f"incomplete {incomplete}; peak RSS {rss:.0f} MiB"
            )
    finally:
        await gateway.aclose()


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile in milliseconds (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1e3


async def main_async(args: argparse.Namespace) -> None:
    print(f"python {sys.version.split()[0]}; fake gateway in a subprocess")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS before streaming: {rss:.0f} MiB")
    async with fake_gateway_process(KEY, delay=1 / args.rate, stamp=True) as (paced_url, pid):
        for transport in args.transports:
            await bench_concurrency(paced_url, pid, args.levels, args.seconds, args.rate, transport)
    async with fake_gateway_process(KEY, delay=0) as (fast_url, _):
        await bench_cpu(fast_url, args.streams, args.chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument(
        "--levels", type=lambda text: [int(v) for v in text.split(",")], default=[1, 100, 300, 500]
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--transports",
        type=lambda text: text.split(","),
        default=["aiohttp", "httpcore"],
        help="for the concurrency runs: aiohttp (default transport), httpcore",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="chunks per second per stream")
    started = time.perf_counter()
    asyncio.run(main_async(parser.parse_args()))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
