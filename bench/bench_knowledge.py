"""Benchmark: time to first visible text with a 3 MB attached log, and channel memory search.

Prints figures; asserts nothing. Run: `.venv/bin/python -m bench.bench_knowledge`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.events import Attachment, ChannelMessage, Place
from bot.knowledge.memory import ChannelMemory
from storage.base import Charge, Passage
from storage.sqlite.store import SqliteStore
from storage.vectors import unit
from tests.core_harness import Core, running_core
from tests.document_fixtures import big_log
from tests.memory_adapter import make_request

NEEDLE = "payment gateway rejected card token tok_visa_4242 with ERR_CARD_DECLINED"
QUESTION = "why was the card token rejected by the payment gateway"
RUNS = 5
CHUNKS = 20_000
DIMENSION = 1536  # text-embedding-3-small
SEARCHES = 300
MODEL = "text-embedding-3-small"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def first_text(core: Core, thread: str, files: tuple[Attachment, ...]) -> float:
    """Seconds from the request to the first reply carrying the model's text."""
    request = make_request(QUESTION, thread=thread, attachments=files)
    place = request.place
    start = time.monotonic()
    await core.send(request)
    shown = [e.at for e in core.adapter.events if e.place == place and "You said" in e.text]
    return shown[0] - start


async def time_to_first_text() -> None:
    data = big_log(3 * 1024 * 1024, NEEDLE)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_core(Path(tmp)) as core:
            # A reply long enough to stream; the first token is what the user waits for.
            core.gateway.chunk_delay = 0.002
            plain, cold, cached = [], [], []
            for run in range(RUNS):
                plain.append(await first_text(core, f"plain{run}", ()))
                # A log that differs per run (so nothing is cached), then the same one again.
                fresh = data.replace(b"heartbeat", f"beat{run:03d}x".encode())
                attachment = Attachment(f"F{run}", "app.log", "text/plain", len(fresh), "file")
                core.adapter.add_file(attachment.id, fresh)
                cold.append(await first_text(core, f"cold{run}", (attachment,)))
                cached.append(await first_text(core, f"again{run}", (attachment,)))
    median = statistics.median
    print(f"time to first visible text, median of {RUNS} (fake gateway, memory adapter):")
    print(f"  without a file                   {median(plain) * 1000:8.1f} ms")
    print(f"  with a 3 MB log, first ask       {median(cold) * 1000:8.1f} ms")
    print(f"  with the same log, asked again   {median(cached) * 1000:8.1f} ms")
    extra = median(cold) - median(plain)
    print(f"  added by the 3 MB log            {extra * 1000:8.1f} ms (goal <= 2000 ms)")


async def search_latency() -> None:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = await SqliteStore.open(path)
        at = datetime(2026, 6, 15, tzinfo=UTC)
        started = time.monotonic()
        for start in range(0, CHUNKS, 500):
            for index in range(start, start + 500):
                passage = Passage(
                    "bench:C1",
                    f"m{index}",
                    0,
                    f"message {index} " + "word " * 40,
                    "ada",
                    at + timedelta(seconds=index),
                    f"https://chat.example/m{index}",
                )
                vector = unit(rng.standard_normal(DIMENSION).astype(np.float32))
                await store.index_message(
                    "bench:C1", passage.message_id, [passage], MODEL, [vector]
                )
        indexed = time.monotonic() - started
        queries = [unit(rng.standard_normal(DIMENSION).astype(np.float32)) for _ in range(SEARCHES)]
        loaded = time.monotonic()
        await store.search_memory("bench:C1", MODEL, queries[0], 5)
        cold = time.monotonic() - loaded
        times = []
        for query in queries:
            began = time.perf_counter()
            hits = await store.search_memory("bench:C1", MODEL, query, 5)
            times.append((time.perf_counter() - began) * 1000)
            assert len(hits) == 5
        held = store.vectors.nbytes
        # A message arrives between two searches: the next one reads only what changed.
        after_write = []
        for index, query in enumerate(queries[:50]):
            passage = Passage("bench:C1", f"new{index}", 0, "new", "bob", at, "")
            vector = unit(rng.standard_normal(DIMENSION).astype(np.float32))
            await store.index_message("bench:C1", passage.message_id, [passage], MODEL, [vector])
            began = time.perf_counter()
            await store.search_memory("bench:C1", MODEL, query, 5)
            after_write.append((time.perf_counter() - began) * 1000)
        await store.close()
        size = await asyncio.to_thread(
            lambda: sum(p.stat().st_size for p in Path(tmp).glob("bench.db*"))
        )
    print(f"channel memory search over {CHUNKS:,} passages of {DIMENSION} dimensions (SQLite):")
    print(f"  indexing                         {indexed:8.1f} s ({CHUNKS / indexed:,.0f}/s)")
    print(f"  first search (loads the vectors) {cold * 1000:8.1f} ms")
    print(
        f"  search p50 {statistics.median(times):6.2f} ms  p99 {percentile(times, 0.99):6.2f} ms"
        f"  (goal p99 <= 50 ms; {SEARCHES} searches)"
    )
    print(
        f"  search right after a new message p50 {statistics.median(after_write):6.2f} ms  "
        f"p99 {percentile(after_write, 0.99):6.2f} ms"
    )
    print(f"  vectors held in memory           {held / 1e6:8.1f} MB")
    print(f"  database file (with WAL)         {size / 1e6:8.1f} MB")


async def search_end_to_end() -> None:
    """`search` as the command runs it: the question embedded (fake gateway), then the store."""
    with tempfile.TemporaryDirectory() as tmp:
        async with running_core(Path(tmp)) as core:
            memory: ChannelMemory = core.memory
            await memory.switch("memory:C1", True)
            intake = memory.intake(core.adapter)
            for index in range(2000):
                intake.observe(
                    ChannelMessage(
                        Place("memory", "C1"),
                        f"m{index}",
                        "posted",
                        f"note {index}: deploy window {index % 17} owner team{index % 29}",
                        "ada",
                    )
                )
            async with asyncio.timeout(120):
                await memory.idle()
            charge = Charge("memory", "memory:C1", "U1", "search", MODEL)
            times = []
            for index in range(100):
                began = time.perf_counter()
                question = f"who owns deploy window {index % 17} question {index}"
                await memory.search("memory:C1", question, charge)
                times.append((time.perf_counter() - began) * 1000)
    print("search as the command runs it (question embedded by the fake gateway, 2,000 passages):")
    print(f"  p50 {statistics.median(times):6.2f} ms  p99 {percentile(times, 0.99):6.2f} ms")


async def main() -> None:
    await time_to_first_text()
    await search_latency()
    await search_end_to_end()


if __name__ == "__main__":
    asyncio.run(main())
