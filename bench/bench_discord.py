"""Benchmark: streamed Discord replies under Discord's per-channel limits, 1/5/20 at once.

Full stack over loopback: fake Discord (enforcing 5 message creates + 5 edits per 5 s per
channel, real 429s) ↔ DiscordAdapter ↔ Dispatcher/ask/StreamingReply ↔ fake gateway
(300-token replies at 40 tokens/s). Prints, per load: first token → first appearance
(p50/p95), staleness of the visible text while streaming (p95: how long the oldest
generated-but-not-shown token had been waiting, sampled every 50 ms), 429s served, writes
per reply, and the time until every reply showed its full text.

    .venv/bin/python -m bench.bench_discord [--loads 1,5,20]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.gateway.client import Gateway
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.discord_harness import running
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.fakes.gateway import FakeGateway

TOKENS = 300
TOKENS_PER_SECOND = 40.0
SAMPLE = 0.05
SCENARIO_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Figures:
    load: int
    first_p50: float
    first_p95: float
    stale_p95: float
    served_429: int
    writes_per_reply: float
    all_complete: float


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _reply_text() -> str:
    # One token per word, as the fake gateway streams them: ~1,500 characters, one message.
    return " ".join(f"w{i:03d}" for i in range(TOKENS))


def _visible_chars(parts: list[FakeMessage], t: float) -> int:
    total = 0
    for part in parts:
        shown = [content for at, content in part.versions if at <= t]
        if shown:
            total += len(shown[-1])
    return total


def _measure(
    parts: list[FakeMessage], token_times: list[float], token_ends: list[int], done_at: float
) -> tuple[float, list[float]]:
    """(first token → first appearance, staleness samples) for one reply."""
    first_token = token_times[0]
    first_seen = min(at for part in parts for at, content in part.versions if content)
    stale: list[float] = []
    t = first_token
    while t <= done_at + 1e-9:
        visible = _visible_chars(parts, t)
        # The oldest generated token whose end is not visible yet.
        hidden = bisect.bisect_right(token_ends, visible)
        generated = bisect.bisect_right(token_times, t)
        stale.append(t - token_times[hidden] if hidden < generated else 0.0)
        t += SAMPLE
    return first_seen - first_token, stale


async def scenario(load: int, root: Path) -> Figures:
    text = _reply_text()
    pieces = text.split(" ")
    # Character offset at which each token ends in the final text.
    ends, offset = [], 0
    for i, piece in enumerate(pieces):
        offset += len(piece) + (1 if i else 0)
        ends.append(offset)
    state = root / f"load{load}"
    async with FakeDiscord() as fake, FakeGateway(chunk_delay=1 / TOKENS_PER_SECOND) as gw:
        gw.reply = text
        config = Config(
            api_key=Secret(gw.api_key),
            base_url=gw.base_url,
            db_path=state / "chatops.db",
            max_reply_tokens=1000,
        )
        store = await SqliteStore.open(config.db_path)
        gateway = Gateway(config.base_url, config.api_key)
        dispatcher = Dispatcher(Services(config, gateway, store, Budgets()), command_table())
        try:
            async with running(
                fake, None, state, commands=command_table(), wire=dispatcher.handler_for
            ):
                async with asyncio.timeout(SCENARIO_TIMEOUT):
                    started = time.monotonic()
                    asks = await asyncio.gather(
                        *(fake.send_message(f"question {i}", mention_bot=True) for i in range(load))
                    )
                    await fake.wait_until(
                        lambda: all(
                            "".join(m.content for m in fake.replies_to(a.id)) == text for a in asks
                        ),
                        within=SCENARIO_TIMEOUT,
                    )
                    finished = time.monotonic()
                await dispatcher.drain(10)
        finally:
            await gateway.aclose()
            await store.close()
    arrivals = {}
    for rec in gw.requests:
        if rec.path.endswith("/chat/completions"):
            question = rec.json["messages"][-1]["content"]
            arrivals[question] = rec.at
    firsts: list[float] = []
    stale: list[float] = []
    writes: list[int] = []
    for i, ask in enumerate(asks):
        parts = fake.replies_to(ask.id)
        start = arrivals[f"question {i}"]
        token_times = [start + (k + 1) / TOKENS_PER_SECOND for k in range(TOKENS)]
        done_at = max(at for part in parts for at, _ in part.versions)
        first, samples = _measure(parts, token_times, ends, done_at)
        firsts.append(first)
        stale += samples
        writes.append(sum(len(p.versions) for p in parts))
    return Figures(
        load=load,
        first_p50=statistics.median(firsts),
        first_p95=_pct(firsts, 0.95),
        stale_p95=_pct(stale, 0.95),
        served_429=fake.served_429,
        writes_per_reply=statistics.mean(writes),
        all_complete=finished - started,
    )


async def defer_latency(count: int, root: Path) -> list[float]:
    """Seconds from INTERACTION_CREATE to the deferral, for `count` /ask at once."""
    async with FakeDiscord() as fake, FakeGateway(chunk_delay=1 / TOKENS_PER_SECOND) as gw:
        config = Config(api_key=Secret(gw.api_key), base_url=gw.base_url, db_path=root / "d.db")
        store = await SqliteStore.open(config.db_path)
        gateway = Gateway(config.base_url, config.api_key)
        dispatcher = Dispatcher(Services(config, gateway, store, Budgets()), command_table())
        try:
            async with running(
                fake, None, root, commands=command_table(), wire=dispatcher.handler_for
            ):
                sent = await asyncio.gather(
                    *(
                        fake.send_interaction(
                            "ask", [{"name": "prompt", "type": 3, "value": f"q{i}"}]
                        )
                        for i in range(count)
                    )
                )
                await fake.wait_until(
                    lambda: all(i.callback_at is not None for i in sent), within=30
                )
                await dispatcher.drain(30)
        finally:
            await gateway.aclose()
            await store.close()
    return [(i.callback_at or 0.0) - i.injected_at for i in sent]


async def main_async(loads: list[int]) -> tuple[list[Figures], list[float]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in loads:
            results.append(await scenario(load, Path(tmp)))
        defers = await defer_latency(20, Path(tmp) / "defer")
    return results, defers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loads", default="1,5,20")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    loads = [int(x) for x in args.loads.split(",") if x]
    results, defers = asyncio.run(main_async(loads))
    print(
        f"Discord limits: 5 creates + 5 edits / 5 s / channel; {TOKENS}-token replies at "
        f"{TOKENS_PER_SECOND:.0f} tokens/s"
    )
    header = (
        f"{'convs':>5} {'first p50':>10} {'first p95':>10} {'stale p95':>10} "
        f"{'429s':>5} {'writes/reply':>13} {'all done':>9}"
    )
    print(header)
    for f in results:
        print(
            f"{f.load:>5} {f.first_p50:>9.3f}s {f.first_p95:>9.3f}s {f.stale_p95:>9.2f}s "
            f"{f.served_429:>5} {f.writes_per_reply:>13.1f} {f.all_complete:>8.1f}s"
        )
    print(
        f"20 simultaneous /ask: INTERACTION_CREATE → deferred p50 "
        f"{statistics.median(defers) * 1000:.0f} ms, max {max(defers) * 1000:.0f} ms "
        "(Discord allows 3,000 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
