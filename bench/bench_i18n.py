"""Benchmark: what speaking the reader's language costs (catalogs, sentences, the language read).

Printed: the time to read and compile each catalog when it is first used, the cost of one
sentence (t() with and without placeholders, nt()) per language, the whole `quota` view in
English and in Chinese, and the channel-settings read the dispatcher makes per request to
learn the channel's language (SQLite, one file).

Run: .venv/bin/python -m bench.bench_i18n
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.i18n import nt, speaking, t
from bot.i18n.catalog import catalog, translations
from bot.quota.view import format_quota
from storage.base import Amounts, ChannelSettings, Charge
from storage.sqlite.store import SqliteStore

ROUNDS = 20_000
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def per_call_us(work: Callable[[], object], rounds: int = ROUNDS) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - started) / rounds * 1e6


def first_use_ms(language: str) -> float:
    catalog.cache_clear()
    translations.cache_clear()
    started = time.perf_counter()
    translations(language)
    return (time.perf_counter() - started) * 1000


async def quota_view_us(store: SqliteStore, language: str) -> float:
    status = await store.quota_status("slack:C1", now=NOW)
    with speaking(language):
        return per_call_us(lambda: format_quota(status, NOW, "USD"), 2000)


async def settings_read_us(store: SqliteStore) -> tuple[float, float]:
    samples = []
    for _ in range(2000):
        started = time.perf_counter()
        await store.channel_settings("slack:C1")
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


async def main() -> None:
    print("Catalog first use (read .po, compile in memory):")
    for language in ("en", "zh_CN"):
        print(f"  {language:6} {first_use_ms(language):7.1f} ms")
    print(f"\nOne sentence, µs per call ({ROUNDS:,} calls):")
    print("  language  t() plain  t() with values  nt()")
    for language in ("en", "zh_CN"):
        with speaking(language):
            plain = per_call_us(lambda: t("This list."))
            filled = per_call_us(lambda: t("This channel now uses `{model}`.", model="gpt-4o"))
            plural = per_call_us(lambda: nt("{n} token", "{n} tokens", 12345))
        print(f"  {language:8} {plain:10.2f} {filled:16.2f} {plural:5.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "bench.db")
        try:
            await store.set_channel_settings("slack:C1", ChannelSettings(language="zh_CN"))
            charge = Charge("slack", "slack:C1", "U1", "ask", "gpt-4o", "ada")
            for _ in range(5):
                held = await store.reserve(charge, Amounts(1, 100, 100), now=NOW)
                await store.settle(held, Amounts(1, 80, 40))
            print("\nThe whole `quota` view, µs per render:")
            for language in ("en", "zh_CN"):
                print(f"  {language:6} {await quota_view_us(store, language):8.1f}")
            p50, p99 = await settings_read_us(store)
            print(
                "\nThe dispatcher's channel-settings read (the channel's language), per request:"
                f"\n  p50 {p50:.0f} µs, p99 {p99:.0f} µs"
            )
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
