"""Cost of the metrics: CPU per streamed chunk and streaming flush lag, metrics off vs on.

Run: .venv/bin/python -m bench.bench_ops [--requests 300 --chunks 200 --rounds 5]

Whole requests go through the dispatcher, the quota meter on a real SQLite file, the real
gateway client and StreamingReply into an in-memory adapter, from the fake gateway in a
subprocess (so process_time() counts only the bot). "off" is Services with the Silent
telemetry (no ops port), "on" the Prometheus Metrics with a scrape every second, as a
Prometheus would. Rounds alternate off/on so load from elsewhere hits both alike.

1. CPU per content chunk: requests streamed as fast as the fake sends, a few at a time.
2. Flush lag: many concurrent streams at a steady chunk rate; every chunk carries the time the
   fake sent it (CLOCK_MONOTONIC, shared by both processes), so a chunk's lag is the time of
   the first adapter call showing it minus that stamp (the edit interval included).
Also: the time one /metrics scrape takes once every label set exists. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import generate_latest

from bench.bench_streaming import LeanAdapter, fast_limits, pct
from bench.fake_process import fake_gateway_process
from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.events import Posted, Request
from bot.gateway.client import Gateway
from bot.ops.metrics import Metrics
from bot.ops.telemetry import Silent, Telemetry
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.memory_adapter import make_request

KEY = "sk-bench-ops-key"


class StampAdapter(LeanAdapter):
    """Notes each chunk's flush lag: from the fake sending it (its stamp) to the first adapter
    call whose text shows it."""

    def __init__(self, interval: float) -> None:
        super().__init__(fast_limits(interval), latency=0.0)
        self.lags: list[float] = []
        self._shown: dict[str, int] = {}

    def _lag(self, key: str, text: str) -> None:
        now = time.monotonic()
        start = self._shown.get(key, 0)
        self._shown[key] = len(text)
        for word in text[start:].split():
            with contextlib.suppress(ValueError):  # words of a footer or a status line
                self.lags.append(now - float(word))

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        self._lag(req.event_id, text)
        return await super().reply(req, text, ephemeral=ephemeral, streamed=streamed)

    async def edit(self, posted: Posted, text: str) -> None:
        self._lag(posted.id, text)
        await super().edit(posted, text)


@contextmanager
def scraping(metrics: Metrics | None) -> Iterator[list[float]]:
    """Scrape /metrics' text once a second while the block runs; yields the scrape times."""
    times: list[float] = []

    async def scrape() -> None:
        assert metrics is not None
        while True:
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            generate_latest(metrics.registry)
            times.append(time.perf_counter() - started)

    task = asyncio.get_running_loop().create_task(scrape()) if metrics else None
    try:
        yield times
    finally:
        if task is not None:
            task.cancel()


async def _services(base_url: str, folder: Path, metrics: Metrics | None) -> Services:
    config = Config(api_key=Secret(KEY), base_url=base_url, db_path=folder / "bench.db")
    telemetry: Telemetry = metrics or Silent()
    store = await SqliteStore.open(config.db_path)
    gateway = Gateway(base_url, config.api_key, telemetry=telemetry)
    return Services(config, gateway, store, Budgets(), telemetry=telemetry)


async def _close(services: Services) -> None:
    await services.gateway.aclose()
    await services.store.close()


def _question(words: int) -> str:
    # The fake answers "You said: <question>", one word per chunk.
    return " ".join(f"w{i}" for i in range(words))


async def cpu_round(
    base_url: str, folder: Path, on: bool, requests: int, chunks: int, parallel: int
) -> float:
    """CPU µs per content chunk for `requests` whole requests, `parallel` at a time."""
    metrics = Metrics() if on else None
    services = await _services(base_url, folder, metrics)
    adapter = LeanAdapter(fast_limits(0.05), latency=0.0)
    dispatcher = Dispatcher(services, command_table())
    if metrics is not None:
        metrics.watch(in_flight=lambda: dispatcher.inflight, budgets=services.budgets.spare)
    handle = dispatcher.handler_for(adapter)
    text = _question(chunks - 2)
    queue = iter(range(requests))

    async def worker() -> None:
        for n in queue:
            await handle(make_request(text, channel=f"C{n % 50}", event_id=f"r{on}-{n}"))

    for n in range(3):  # warm up connections and caches
        await handle(make_request(text, channel="W", event_id=f"warm{on}-{n}"))
    gc.collect()
    try:
        with scraping(metrics):
            started = time.process_time()
            async with asyncio.timeout(600):
                await asyncio.gather(*(worker() for _ in range(parallel)))
            spent = time.process_time() - started
    finally:
        await _close(services)
    return spent / (requests * chunks) * 1e6


async def lag_round(
    base_url: str, folder: Path, on: bool, streams: int, chunks: int, interval: float
) -> tuple[float, float, float]:
    """(p50, p99 flush lag in ms, CPU share) for `streams` concurrent stamped streams."""
    metrics = Metrics() if on else None
    services = await _services(base_url, folder, metrics)
    adapter = StampAdapter(interval)
    dispatcher = Dispatcher(services, command_table())
    if metrics is not None:
        metrics.watch(in_flight=lambda: dispatcher.inflight, budgets=services.budgets.spare)
    handle = dispatcher.handler_for(adapter)
    text = _question(chunks - 2)

    async def one(k: int) -> None:
        await asyncio.sleep(k / streams)  # started over one second
        await handle(make_request(text, channel=f"L{k}", event_id=f"l{on}-{k}"))

    gc.collect()
    try:
        with scraping(metrics):
            cpu, wall = time.process_time(), time.perf_counter()
            async with asyncio.timeout(600):
                await asyncio.gather(*(one(k) for k in range(streams)))
            share = (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        await _close(services)
    lags = adapter.lags
    return pct(lags, 0.5) * 1e3, pct(lags, 0.99) * 1e3, share


async def scrape_cost(base_url: str, folder: Path) -> None:
    """Time of one scrape after traffic on every command path the benchmark uses."""
    metrics = Metrics()
    services = await _services(base_url, folder, metrics)
    adapter = LeanAdapter(fast_limits(0.05), latency=0.0)
    dispatcher = Dispatcher(services, command_table())
    metrics.watch(in_flight=lambda: dispatcher.inflight, budgets=services.budgets.spare)
    handle = dispatcher.handler_for(adapter)
    try:
        for n in range(200):
            await handle(make_request("w1 w2", channel=f"S{n}", event_id=f"s{n}"))
        times = []
        for _ in range(50):
            started = time.perf_counter()
            body = generate_latest(metrics.registry)
            times.append(time.perf_counter() - started)
    finally:
        await _close(services)
    print(
        f"One /metrics scrape (200 channels' budgets, {len(body)} bytes): "
        f"median {statistics.median(times) * 1e3:.2f} ms"
    )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with fake_gateway_process(KEY) as (base_url, _):
            cpu: dict[bool, list[float]] = {False: [], True: []}
            for r in range(args.rounds):
                for on in (False, True) if r % 2 == 0 else (True, False):
                    sub = folder / f"cpu-{r}-{on}"
                    sub.mkdir()
                    cpu[on].append(
                        await cpu_round(
                            base_url, sub, on, args.requests, args.chunks, args.parallel
                        )
                    )
            off, on_ = statistics.median(cpu[False]), statistics.median(cpu[True])
            print(
                f"CPU per streamed chunk, whole requests ({args.requests} x {args.chunks} chunks, "
                f"{args.parallel} at a time, {args.rounds} rounds each):"
            )
            print(
                f"  metrics off {off:6.1f} us/chunk (rounds {_fmt(cpu[False])})\n"
                f"  metrics on  {on_:6.1f} us/chunk (rounds {_fmt(cpu[True])})\n"
                f"  difference {100 * (on_ - off) / off:+.1f} % (goal <= +5 %)"
            )
            await scrape_cost(base_url, folder)
        async with fake_gateway_process(KEY, delay=1 / args.rate, stamp=True) as (base_url, _):
            print(
                f"Flush lag, {args.streams} concurrent streams x {args.lag_chunks} chunks at "
                f"{args.rate:g}/s, edit_interval {args.interval * 1e3:g} ms (from the fake "
                "sending a chunk to the first adapter call showing it):"
            )
            lag: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
            for r in range(args.rounds):
                for on in (False, True) if r % 2 == 0 else (True, False):
                    sub = folder / f"lag-{r}-{on}"
                    sub.mkdir()
                    lag[on].append(
                        await lag_round(
                            base_url, sub, on, args.streams, args.lag_chunks, args.interval
                        )
                    )
            for on in (False, True):
                p50 = statistics.median(x[0] for x in lag[on])
                p99 = statistics.median(x[1] for x in lag[on])
                share = statistics.median(x[2] for x in lag[on])
                print(
                    f"  metrics {'on ' if on else 'off'}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                    f"CPU {share:4.0%}  (medians of {args.rounds} rounds; by round: p50 "
                    f"{_fmt([x[0] for x in lag[on]])}, p99 {_fmt([x[1] for x in lag[on]])})"
                )


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--lag-chunks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="chunks per second per stream")
    parser.add_argument("--interval", type=float, default=0.1, help="edit_interval, seconds")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
