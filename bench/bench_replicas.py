"""Benchmark: Slack replies streamed by 1 or 3 `chatops run` replicas on one PostgreSQL.

Real processes in Slack HTTP mode against the fake Slack (chat.update ~50/min per workspace,
chat.postMessage ~1/s per channel, streams 20/min, 429 + Retry-After beyond) and the fake
gateway streaming 300 tokens at 40 tokens/s; one conversation per channel, one workspace,
all started at once and spread round-robin over the replicas. Prints 429s, when every reply
shows its full text (all done) and when no superseded first frame is left either (all tidy),
each beside the floor Slack's limits allow, and staleness (how far behind the model the text
a reader sees is while replies stream) beside what the limits allow, as bench/bench_slack.py
does for one in-process service.

Run: .venv/bin/python -m bench.bench_replicas [replicas:conversations ...]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import asyncpg

from bench.bench_slack import TOKENS, TOKENS_PER_SECOND, last_complete, visible_tokens
from bench.staleness import allowed, pct, samples, tidy_floor
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.postgres import server_url, with_database
from tests.replica_harness import deliver, mention, slack_replicas

LEVELS = ((1, 10), (3, 10), (1, 50), (3, 50), (1, 150), (3, 150))
# Past a floor (below) by this much, a level reports how many replies got there.
LEVEL_SLACK = 60.0
# The budgets give a write back a whole window (62.5 s) after it was spent, where Slack's
# buckets refill continuously: tidying may take up to a window past its floor.
TIDY_SLACK = 120.0


async def level(server: str, replicas: int, conversations: int) -> str:
    name = f"bench_r{replicas}_{conversations}"
    admin = await asyncpg.connect(server)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    delay = 1 / TOKENS_PER_SECOND
    stream = TOKENS / TOKENS_PER_SECOND
    # Every final can go out at once as a new message (posts are per channel).
    floor = stream
    tidy_by = tidy_floor(conversations, stream)
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
                asked = [mention(slack, c, f"go {c}", f"EvB{c}") for c in channels]
                start = time.monotonic()
                await asyncio.gather(
                    *(
                        deliver(running[i % replicas], body, slack.signing_secret)
                        for i, (_, body) in enumerate(asked)
                    )
                )

                def finished() -> set[str]:
                    return {w.channel for w in slack.writes if visible_tokens(w.text) == TOKENS}

                def tidied() -> int:
                    def only_final(channel: str, ts: str) -> bool:
                        bot = [m for m in slack.thread(channel, ts) if m.get("user") == BOT_USER]
                        return len(bot) == 1 and visible_tokens(str(bot[0]["text"])) == TOKENS

                    pairs = zip(channels, asked, strict=True)
                    return sum(1 for c, (ts, _) in pairs if only_final(c, ts))

                try:
                    await slack.wait_until(
                        lambda: len(finished()) == conversations, within=floor + LEVEL_SLACK
                    )
                    ended = last_complete(slack, channels)
                    done = f"{ended - start:.1f}s"
                except TimeoutError:
                    done = f"{len(finished())}/{conversations} by {floor + LEVEL_SLACK:.0f}s"
                try:
                    await slack.wait_until(
                        lambda: tidied() == conversations,
                        within=max(0.0, start + tidy_by + TIDY_SLACK - time.monotonic()),
                    )
                    last = max([start] + [w.at for w in slack.writes])
                    tidy = f"{last - start:.1f}s"
                except TimeoutError:
                    tidy = f"{tidied()}/{conversations} by {tidy_by + TIDY_SLACK:.0f}s"
    began: dict[str, float] = {}
    for req in gateway.requests:
        if req.path.endswith("/chat/completions"):
            began[str(req.json["messages"][-1]["content"]).rsplit(" ", 1)[-1]] = req.at
    writes = defaultdict(list)
    for w in slack.writes:
        if w.method != "chat.delete":
            writes[w.channel].append((w.at, visible_tokens(w.text)))
    stale: list[float] = []
    for channel in channels:
        if channel in began:
            stale += samples(began[channel], writes[channel], tokens=TOKENS, delay=delay)
    limit = allowed(conversations, tokens=TOKENS, delay=delay)
    return (
        f"{replicas:>8} {conversations:>5} {sum(slack.rate_limited.values()):>5} "
        f"{done:>10} {floor:>6.1f}s {tidy:>10} {tidy_by:>6.1f}s "
        f"{pct(stale, 0.95):>9.2f}s {limit:>7.2f}s {len(slack.writes) / conversations:>7.1f}"
    )


async def main(levels: tuple[tuple[int, int], ...] = LEVELS) -> None:
    print(__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "")
    print(
        f"{'replicas':>8} {'convs':>5} {'429s':>5} {'all done':>10} {'floor':>7} "
        f"{'all tidy':>10} {'floor':>7} {'stale p95':>10} {'allowed':>8} {'writes':>7}"
    )
    with server_url(durable=True) as server:
        for replicas, conversations in levels:
            print(await level(server, replicas, conversations), flush=True)
    print(
        "floors: every final can go out at once as a new message (posts are per channel); "
        "tidy needs one chat.update or chat.delete per reply that was not a native stream "
        "(Slack's buckets: 50 at once each, then 50/min each). allowed: staleness p95 of a "
        "scheduler knowing every stream's length, with the writes the adapter declares "
        "(bench/staleness.py). writes: Slack writes per reply."
    )


if __name__ == "__main__":
    # Optional "replicas:conversations" arguments pick levels, e.g. 3:150.
    picked = tuple((int(a.split(":")[0]), int(a.split(":")[1])) for a in sys.argv[1:])
    asyncio.run(main(picked or LEVELS))
