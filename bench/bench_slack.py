"""Benchmark: streamed Slack replies under Slack's real limits, for 1, 10 and 50 conversations.

The whole service runs against the fakes: fake Slack (chat.update ~50/min per workspace,
chat.postMessage ~1/s per channel, 429 + Retry-After beyond) ↔ Slack adapter ↔ dispatcher and
StreamingReply ↔ fake gateway streaming 300 tokens at 40 tokens/s. One conversation per
channel, all in one workspace, all started at once. Staleness (how long the oldest token a
reader cannot see yet has been out of the model) is set beside what the limits allow
(bench/staleness.py); "all tidy" is when no superseded first frame is left either.

Then a voice clip after a burst: 60 such conversations (10 native streams, 50 posted and
edited) spend the workspace's chat.update allowance, then a real (espeak-ng/ffmpeg) voice
clip is posted in another channel. Printed: seconds from the gateway's transcription
answer to the transcript being visible in Slack, with final texts posted anew when their
edit would wait (the default) and, for comparison, with that turned off (every final text
waits for its chat.update).

Run: .venv/bin/python -m bench.bench_slack [conversations ...]
"""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from adapters.slack.app import LIMITS, SlackAdapter
from adapters.slack.settings import SlackSettings
from bench.staleness import allowed, pct, samples
from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.gateway.client import Gateway
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.audio_fixtures import generate
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, FakeSlack, running

TOKENS = 300
TOKENS_PER_SECOND = 40.0
LEVELS = (1, 10, 50)
LEVEL_TIMEOUT = 120.0
# Past every final, how long superseded first frames may take to be deleted.
TIDY_TIMEOUT = 180.0
BURST = 60
TRANSCRIPT = "the transcript of the voice clip"
_TOKEN = re.compile(r"\bt(\d+)\b")


@dataclass(frozen=True, slots=True)
class Figures:
    conversations: int
    first_p50: float
    first_p95: float
    stale_p95: float
    stale_allowed: float
    rate_limited: int
    writes_per_reply: float
    backwards: int
    all_complete: float
    all_tidy: float


def visible_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@asynccontextmanager
async def service(
    slack: FakeSlack, fake_gw: FakeGateway, tmp: str, *, repost: bool = True
) -> AsyncIterator[tuple[SlackAdapter, Dispatcher]]:
    """The whole service on SQLite against the fakes, running, wired as bot/__main__.py does."""
    config = Config(
        api_key=Secret(fake_gw.api_key),
        base_url=fake_gw.base_url,
        db_path=Path(tmp) / "bench.db",
        max_reply_tokens=TOKENS + 50,
    )
    store = await SqliteStore.open(config.db_path)
    gateway = Gateway(config.base_url, config.api_key)
    budgets = Budgets()
    dispatcher = Dispatcher(Services(config, gateway, store, budgets), command_table())
    settings = SlackSettings.from_env(slack.env())
    assert settings is not None
    # One Budgets for the core and the adapter, as bot/__main__.py wires them.
    adapter = SlackAdapter(settings, store.first_delivery, budgets)
    if not repost:
        # Without a delete budget the core never posts a final text anew.
        adapter.limits = replace(LIMITS, delete_per_second=None)
    try:
        async with running(adapter, dispatcher.handler_for(adapter)):
            yield adapter, dispatcher
    finally:
        await gateway.aclose()
        await store.close()


def last_complete(slack: FakeSlack, channels: list[str]) -> float:
    """When the last of these channels' replies first showed all its tokens."""
    return max(
        min(w.at for w in slack.writes if w.channel == c and visible_tokens(w.text) == TOKENS)
        for c in channels
    )


async def converse_in(slack: FakeSlack, channels: list[str]) -> None:
    """A mention in each channel, then wait until every reply shows all its tokens."""
    for channel in channels:
        msg = slack.user_message(channel, f"<@{BOT_USER}> go {channel}")
        await slack.send("events_api", slack.event_callback({**msg, "type": "app_mention"}))

    def complete() -> bool:
        done = {w.channel for w in slack.writes if visible_tokens(w.text) == TOKENS}
        return len(done) == len(channels)

    await slack.wait_until(complete, within=LEVEL_TIMEOUT)


async def level(conversations: int) -> Figures:
    chunks = [f"t{k} " for k in range(TOKENS)]
    delay = 1 / TOKENS_PER_SECOND
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack, FakeGateway(chunk_delay=delay) as fake_gw:
            fake_gw.chunks = chunks
            channels = [f"C{n:03d}" for n in range(conversations)]
            async with service(slack, fake_gw, tmp) as (adapter, dispatcher):
                start = time.monotonic()
                await converse_in(slack, channels)
                ended = last_complete(slack, channels)
                # Replies end once their superseded first frames are deleted too.
                async with asyncio.timeout(TIDY_TIMEOUT):
                    await dispatcher.drain(TIDY_TIMEOUT)
                tidy = max([ended] + [w.at for w in slack.writes if w.method == "chat.delete"])
                await adapter.drained()

        # Token k of a conversation left the gateway at (request arrival + (k+1) * delay).
        began: dict[str, float] = {}
        for req in fake_gw.requests:
            if req.path.endswith("/chat/completions"):
                text = str(req.json["messages"][-1]["content"])
                began[text.rsplit(" ", 1)[-1]] = req.at
        writes = defaultdict(list)
        for w in slack.writes:
            # A message deleted after its text was posted anew takes nothing back from view.
            if w.method != "chat.delete":
                writes[w.channel].append((w.at, visible_tokens(w.text)))

        firsts: list[float] = []
        stale: list[float] = []
        backwards = 0
        for channel in channels:
            t0 = began[channel]
            seen = writes[channel]
            firsts.append(seen[0][0] - (t0 + delay))
            backwards += sum(1 for a, b in itertools.pairwise(seen) if b[1] < a[1])
            stale += samples(t0, seen, tokens=TOKENS, delay=delay)
        return Figures(
            conversations=conversations,
            first_p50=statistics.median(firsts),
            first_p95=pct(firsts, 0.95),
            stale_p95=pct(stale, 0.95),
            stale_allowed=allowed(conversations, tokens=TOKENS, delay=delay),
            rate_limited=sum(slack.rate_limited.values()),
            writes_per_reply=len(slack.writes) / conversations,
            backwards=backwards,
            all_complete=ended - start,
            all_tidy=tidy - start,
        )


@dataclass(frozen=True, slots=True)
class ClipFigures:
    policy: str
    answer_to_visible: float
    placeholder_left: bool
    rate_limited: int


async def clip_after_burst(clip: bytes, *, repost: bool) -> ClipFigures:
    """A voice clip transcribed right after BURST conversations drained chat.update."""
    chunks = [f"t{k} " for k in range(TOKENS)]
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack, FakeGateway(chunk_delay=1 / TOKENS_PER_SECOND) as fake_gw:
            fake_gw.chunks = chunks
            fake_gw.transcript = TRANSCRIPT
            fake_gw.transcript_release = asyncio.Event()
            channels = [f"C{n:03d}" for n in range(BURST)]

            def bot_texts(channel: str) -> list[str]:
                return [str(m["text"]) for m in slack.bot_messages(channel)]

            async with service(slack, fake_gw, tmp, repost=repost) as (adapter, _):
                await converse_in(slack, channels)
                file = slack.add_file("voice.webm", "audio/webm", clip, subtype="slack_audio")
                msg = slack.user_message("CVOICE", "", files=[file])
                await slack.send("events_api", slack.event_callback(msg))
                await slack.wait_until(
                    lambda: any("Transcribing" in t for t in bot_texts("CVOICE")),
                    within=LEVEL_TIMEOUT,
                )
                fake_gw.transcript_release.set()
                await slack.wait_until(
                    lambda: any(TRANSCRIPT in t for t in bot_texts("CVOICE")),
                    within=LEVEL_TIMEOUT,
                )
                await adapter.drained()
        (answered,) = fake_gw.transcribed_at
        visible = min(w.at for w in slack.writes if w.channel == "CVOICE" and TRANSCRIPT in w.text)
        return ClipFigures(
            policy="post anew + delete" if repost else "wait for the edit",
            answer_to_visible=visible - answered,
            placeholder_left=any("Transcribing" in t for t in bot_texts("CVOICE")),
            rate_limited=sum(slack.rate_limited.values()),
        )


async def main(levels: tuple[int, ...] = LEVELS) -> None:
    print(
        f"Slack streaming: {TOKENS}-token replies at {TOKENS_PER_SECOND:g} tokens/s "
        f"(stream {TOKENS / TOKENS_PER_SECOND:.1f} s), one conversation per channel, one workspace"
    )
    header = (
        f"{'convs':>5} {'first p50':>10} {'first p95':>10} {'stale p95':>10} {'allowed':>8} "
        f"{'429s':>5} {'writes/reply':>12} {'backwards':>9} {'all done':>9} {'all tidy':>9}"
    )
    print(header)
    for n in levels:
        f = await level(n)
        print(
            f"{f.conversations:>5} {f.first_p50:>9.3f}s {f.first_p95:>9.3f}s {f.stale_p95:>9.2f}s "
            f"{f.stale_allowed:>7.2f}s {f.rate_limited:>5} {f.writes_per_reply:>12.1f} "
            f"{f.backwards:>9} {f.all_complete:>8.2f}s {f.all_tidy:>8.2f}s",
            flush=True,
        )
    print()
    print(f"A voice clip in another channel right after {BURST} such conversations:")
    print(f"{'final text':>20} {'answer → visible':>17} {'placeholder left':>17} {'429s':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = generate(Path(tmp)).read("clip.webm")
    for repost in (True, False):
        c = await clip_after_burst(clip, repost=repost)
        left = "yes" if c.placeholder_left else "no"
        print(f"{c.policy:>20} {c.answer_to_visible:>16.3f}s {left:>17} {c.rate_limited:>5}")


if __name__ == "__main__":
    # Optional conversation counts pick levels (the voice clip runs after them), e.g. 150.
    asyncio.run(main(tuple(int(a) for a in sys.argv[1:]) or LEVELS))
