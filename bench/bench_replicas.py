"""Benchmark: Slack replies streamed by 1 or 3 `chatops run` replicas on one PostgreSQL.

Real processes in Slack HTTP mode against the fake Slack (chat.update ~50/min per workspace,
chat.postMessage ~1/s per channel, streams 20/min, 429 + Retry-After beyond) and the fake
gateway streaming 300 tokens at 40 tokens/s; one conversation per channel, one workspace,
all started at once and spread round-robin over the replicas. Prints 429s, the time until
every reply is complete, and staleness (how far behind the model the text a reader sees is
while replies stream), as bench/bench_slack.py does for one in-process service.

Run: .venv/bin/python -m bench.bench_replicas
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import asyncpg

from bench.bench_slack import TOKENS, TOKENS_PER_SECOND, pct, visible_tokens
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import UPDATE_PER_SECOND, FakeSlack
from tests.postgres import server_url, with_database
from tests.replica_harness import deliver, mention, slack_replicas

LEVELS = ((1, 10), (3, 10), (1, 50), (3, 50), (1, 150), (3, 150))
# Past the floor (below) by this much, a level reports how many replies were complete.
LEVEL_SLACK = 60.0
SAMPLE_EVERY = 0.02
# What the limits allow: every reply needs its final text written once; Slack lets 50
# chat.update through at once, then ~0.83/s (native streams carry a few without updates).
UPDATE_BURST = 50


async def level(server: str, replicas: int, conversations: int) -> str:
    name = f"bench_r{replicas}_{conversations}"
    admin = await asyncpg.connect(server)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    delay = 1 / TOKENS_PER_SECOND
    stream = TOKENS / TOKENS_PER_SECOND
    floor = stream + max(0, conversations - UPDATE_BURST) / UPDATE_PER_SECOND
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack, FakeGateway(chunk_delay=delay) as gateway:
            gateway.chunks = [f"t{k} " for k in range(TOKENS)]
            async with slack_replicas(
                replicas,
                slack,
                gateway,
                with_database(server, name),
                Path(tmp),
                CHATOPS_MAX_REPLY_TOKENS=str(TOKENS + 50),
            ) as running:
                channels = [f"C{n:03d}" for n in range(conversations)]
                bodies = [mention(slack, c, f"go {c}", f"EvB{c}")[1] for c in channels]
                start = time.monotonic()
                await asyncio.gather(
                    *(
                        deliver(running[i % replicas], body, slack.signing_secret)
                        for i, body in enumerate(bodies)
                    )
                )

                def finished() -> set[str]:
                    return {w.channel for w in slack.writes if visible_tokens(w.text) == TOKENS}

                try:
                    await slack.wait_until(
                        lambda: len(finished()) == conversations, within=floor + LEVEL_SLACK
                    )
                    ended = max(
                        min(
                            w.at
                            for w in slack.writes
                            if w.channel == c and visible_tokens(w.text) == TOKENS
                        )
                        for c in channels
                    )
                    done = f"{ended - start:.1f}s"
                except TimeoutError:
                    done = f"{len(finished())}/{conversations} by {floor + LEVEL_SLACK:.0f}s"
    began: dict[str, float] = {}
    for req in gateway.requests:
        if req.path.endswith("/chat/completions"):
            began[str(req.json["messages"][-1]["content"]).rsplit(" ", 1)[-1]] = req.at
    writes = defaultdict(list)
    for w in slack.writes:
        writes[w.channel].append((w.at, visible_tokens(w.text)))
    stale: list[float] = []
    for channel in channels:
        if channel not in began:
            continue
        t0 = began[channel]
        emit = [t0 + (k + 1) * delay for k in range(TOKENS)]
        seen = writes[channel]
        t, i, shown = emit[0], 0, 0
        while t <= emit[-1]:
            while i < len(seen) and seen[i][0] <= t:
                shown = max(shown, seen[i][1])
                i += 1
            emitted = int((t - t0) / delay)
            stale.append(t - emit[shown] if shown < min(emitted, TOKENS) else 0.0)
            t += SAMPLE_EVERY
    return (
        f"{replicas:>8} {conversations:>5} {sum(slack.rate_limited.values()):>5} "
        f"{done:>10} {floor:>9.1f}s {pct(stale, 0.95):>9.2f}s"
    )


async def main(levels: tuple[tuple[int, int], ...] = LEVELS) -> None:
    print(__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "")
    print(
        f"{'replicas':>8} {'convs':>5} {'429s':>5} {'all done':>10} {'floor':>10} {'stale p95':>10}"
    )
    with server_url(durable=True) as server:
        for replicas, conversations in levels:
            print(await level(server, replicas, conversations), flush=True)
    print(
        "floor: the stream itself plus the chat.update allowance beyond its burst "
        f"({UPDATE_BURST} at once, then {UPDATE_PER_SECOND * 60:.0f}/min); at 10 conversations "
        "the limits allow about 1 s of staleness (one edit per message per second)"
    )


if __name__ == "__main__":
    # Optional "replicas:conversations" arguments pick levels, e.g. 3:150.
    picked = tuple((int(a.split(":")[0]), int(a.split(":")[1])) for a in sys.argv[1:])
    asyncio.run(main(picked or LEVELS))
