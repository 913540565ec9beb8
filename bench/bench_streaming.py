"""Streaming replies: first-delta latency, flush lag of many concurrent streams, peak RSS.

Run: .venv/bin/python -m bench.bench_streaming [--levels 100,300,500 --rate 20 --seconds 5]

1. Added latency from a reply's first write() to the first call handed to the adapter (idle).
2. N concurrent streams writing `rate` chunks/s each into an in-memory adapter that takes
   `--latency` per call (a network round trip): flush lag = time from a chunk's write() to the
   first adapter call whose text contains it (edit_interval included), p50/p99; producer
   lateness (how late the writers themselves ran: event-loop saturation); CPU; peak RSS.
3. Through the real gateway client from the fake gateway (a subprocess): time from the first
   SSE `data:` byte on the wire (seen by a loopback proxy) to the first adapter call.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import resource
import time
from collections import deque
from dataclasses import dataclass, field

from bench.fake_process import fake_gateway_process
from bot.errors import PlatformRateLimited
from bot.events import Limits, Place, Posted, Request
from bot.streaming.budgets import Budgets
from bot.streaming.reply import StreamingReply
from tests.memory_adapter import MemoryAdapter, make_request

KEY = "sk-bench-streaming-key"
TEXT_EVENT = re.compile(rb'"content": ?"[^"]')


@dataclass
class Trace:
    """What one stream wrote and what the adapter was handed for it."""

    writes: list[tuple[float, int]] = field(default_factory=list)  # (time, length so far)
    calls: list[tuple[float, int]] = field(default_factory=list)  # (time, text length)


class LeanAdapter(MemoryAdapter):
    """MemoryAdapter that keeps only (time, length) per call, so RSS measures the bot."""

    def __init__(self, limits: Limits, latency: float) -> None:
        super().__init__(limits=limits, latency=latency)
        self.traces: dict[str, Trace] = {}
        self.first_call: dict[str, asyncio.Future[float]] = {}

    def _note(self, key: str, text: str) -> None:
        now = time.perf_counter()
        self.traces.setdefault(key, Trace()).calls.append((now, len(text)))
        waiter = self.first_call.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        # One message per reply in these benchmarks: the request's key names both.
        key = req.event_id or req.place.channel
        self._note(key, text)
        if self.latency:
            await asyncio.sleep(self.latency)
        return Posted(place=req.place, id=key)

    async def edit(self, posted: Posted, text: str) -> None:
        self._note(posted.id, text)
        if self.latency:
            await asyncio.sleep(self.latency)

    async def finalize(self, posted: Posted) -> None:
        """Nothing to end in memory."""

    async def delete(self, posted: Posted) -> None:
        """A message replaced by a new one under the same key: what shows is that one's."""
        if self.latency:
            await asyncio.sleep(self.latency)


@dataclass(frozen=True)
class Platform:
    """A platform's real write limits (what its fake enforces) and the Limits its adapter
    declares (copied from adapters/slack/app.py and adapters/discord/client.py)."""

    name: str
    limits: Limits
    # (scope, writes, seconds): "workspace" or "channel".
    post_rule: tuple[str, int, float]
    edit_rule: tuple[str, int, float]
    delete_rule: tuple[str, int, float] = ("channel", 5, 5.0)


SLACK = Platform(
    "Slack",
    Limits(
        max_chars=3500,
        edit_interval=1.0,
        budget_per_second=0.8,
        budget_burst=50,
        budget_scope="workspace",
        post_per_second=0.9,
        post_burst=2,
        post_scope="channel",
        delete_per_second=0.8,
        delete_burst=50,
        delete_scope="workspace",
    ),
    post_rule=("channel", 1, 1.0),  # chat.postMessage ~1/s per channel
    edit_rule=("workspace", 50, 60.0),  # chat.update Tier 3, ~50/min per workspace
    delete_rule=("workspace", 50, 60.0),  # chat.delete Tier 3, its own limit
)
DISCORD = Platform(
    "Discord",
    Limits(
        max_chars=2000,
        edit_interval=1.0,
        budget_per_second=1.0,
        budget_burst=5,
        post_per_second=1.0,
        post_burst=5,
    ),
    post_rule=("channel", 5, 5.0),
    edit_rule=("channel", 5, 5.0),
)


class EnforcingAdapter(LeanAdapter):
    """Answers 429 whenever a write breaks the platform's sliding-window limits."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform.limits, latency=0.0)
        self.platform = platform
        self.refused = 0
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def _admit(self, kind: str, rule: tuple[str, int, float], place: Place) -> None:
        scope, count, seconds = rule
        key = (kind, place.workspace if scope == "workspace" else place.channel)
        window = self._windows.setdefault(key, deque())
        now = time.monotonic()
        while window and window[0] <= now - seconds:
            window.popleft()
        if len(window) >= count:
            self.refused += 1
            raise PlatformRateLimited(window[0] + seconds - now)
        window.append(now)

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        self._admit("post", self.platform.post_rule, req.place)
        return await super().reply(req, text, ephemeral=ephemeral, streamed=streamed)

    async def edit(self, posted: Posted, text: str) -> None:
        self._admit("edit", self.platform.edit_rule, posted.place)
        await super().edit(posted, text)

    async def delete(self, posted: Posted) -> None:
        self._admit("delete", self.platform.delete_rule, posted.place)
        await super().delete(posted)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fast_limits(edit_interval: float) -> Limits:
    # Budget out of the way: this measures the bot's own overhead, not a platform's limits.
    return Limits(
        max_chars=1_000_000,
        edit_interval=edit_interval,
        budget_per_second=1e6,
        budget_burst=100_000,
        budget_scope="platform",
    )


async def first_delta_latency(samples: int) -> None:
    adapter = LeanAdapter(fast_limits(1.0), latency=0.0)
    budgets = Budgets()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    for n in range(samples):
        channel = f"L{n}"
        waiter: asyncio.Future[float] = loop.create_future()
        adapter.first_call[channel] = waiter
        reply = StreamingReply(adapter, make_request(channel=channel), budgets)
        started = time.perf_counter()
        reply.write("Hello")
        async with asyncio.timeout(5):
            latencies.append(await waiter - started)
        await reply.finish()
        del adapter.first_call[channel], adapter.traces[channel]
    print(f"First write() -> first adapter call, idle ({samples} replies):")
    print(
        f"  p50 {pct(latencies, 0.5) * 1e3:6.3f} ms   p95 {pct(latencies, 0.95) * 1e3:6.3f} ms"
        f"   max {max(latencies) * 1e3:6.3f} ms   (goal p50 <= 5 ms)"
    )


async def concurrent(
    level: int, rate: float, seconds: float, interval: float, latency: float
) -> None:
    adapter = LeanAdapter(fast_limits(interval), latency=latency)
    budgets = Budgets()
    loop = asyncio.get_running_loop()
    period = 1 / rate
    chunks = int(seconds * rate)
    ramp = 1.0
    traces: dict[str, Trace] = {}
    lateness: list[float] = []
    firsts: list[float] = []

    async def one(k: int) -> None:
        channel = f"S{k}"
        trace = traces[channel] = Trace()
        waiter: asyncio.Future[float] = loop.create_future()
        adapter.first_call[channel] = waiter
        await asyncio.sleep(k * ramp / level)
        length = 0
        start = loop.time()
        async with StreamingReply(adapter, make_request(channel=channel), budgets) as reply:
            for i in range(chunks):
                due = start + i * period
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                lateness.append(loop.time() - due)
                delta = f"tok{i} "
                now = time.perf_counter()
                reply.write(delta)
                length += len(delta)
                trace.writes.append((now, length))
                if i == 0:
                    firsts.append(await waiter - now)

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    async with asyncio.timeout(seconds * 6 + 60):
        await asyncio.gather(*(one(k) for k in range(level)))
    wall = time.perf_counter() - wall
    cpu_share = (time.process_time() - cpu) / wall
    lags: list[float] = []
    for channel, trace in traces.items():
        calls = adapter.traces[channel].calls
        j = 0
        for written_at, length in trace.writes:
            while calls[j][1] < length:
                j += 1
            lags.append(calls[j][0] - written_at)
    calls_total = sum(len(t.calls) for t in adapter.traces.values())
    print(
        f"  {level:4d} streams: flush lag p50 {pct(lags, 0.5) * 1e3:6.1f} ms  "
        f"p99 {pct(lags, 0.99) * 1e3:6.1f} ms; first write->call p50 "
        f"{pct(firsts, 0.5) * 1e3:5.2f} p95 {pct(firsts, 0.95) * 1e3:5.2f} ms; "
        f"writer lateness p99 {pct(lateness, 0.99) * 1e3:5.1f} ms; "
        f"{calls_total / level:4.1f} calls/stream; CPU {cpu_share:4.0%}; "
        f"peak RSS {peak_rss_mib():.0f} MiB"
    )


# --- through the real gateway client ------------------------------------------------------


@dataclass
class FirstByteProxy:
    """A loopback TCP proxy noting when each response's first SSE event, and its first event
    with text (the role-only chunk before it has none), pass on their way to the client."""

    upstream_port: int
    port: int = 0
    seen: list[float] = field(default_factory=list)
    seen_text: list[float] = field(default_factory=list)
    _awaiting: bool = False
    _awaiting_text: bool = False
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            try:
                while data := await src.read(65536):
                    now = time.perf_counter()
                    if not down:
                        # A new request: watch for its first event and its first text.
                        self._awaiting = self._awaiting_text = True
                    else:
                        if self._awaiting and b"data:" in data:
                            self.seen.append(now)
                            self._awaiting = False
                        if self._awaiting_text and TEXT_EVENT.search(data):
                            self.seen_text.append(now)
                            self._awaiting_text = False
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))


async def through_gateway(samples: int) -> None:
    try:
        from bot.gateway.client import Gateway
        from bot.secret import Secret
    except ImportError:
        print("bot.gateway.client not available: skipping the gateway figures")
        return
    async with fake_gateway_process(KEY, delay=0.002) as (base_url, _):
        upstream_port = int(base_url.rsplit(":", 1)[1].split("/", 1)[0])
        proxy = FirstByteProxy(upstream_port)
        await proxy.start()
        gateway = Gateway(f"http://127.0.0.1:{proxy.port}/v1", Secret(KEY))
        adapter = LeanAdapter(fast_limits(1.0), latency=0.0)
        budgets = Budgets()
        loop = asyncio.get_running_loop()
        messages = [{"role": "user", "content": " ".join(f"w{i}" for i in range(20))}]
        latencies: list[float] = []
        text_latencies: list[float] = []
        try:
            for n in range(samples + 3):
                channel = f"G{n}"
                waiter: asyncio.Future[float] = loop.create_future()
                adapter.first_call[channel] = waiter
                before, before_text = len(proxy.seen), len(proxy.seen_text)
                async with (
                    asyncio.timeout(30),
                    StreamingReply(adapter, make_request(channel=channel), budgets) as reply,
                ):
                    async for delta in gateway.chat("gpt-4o-mini", messages):
                        reply.write(delta)
                if n >= 3 and len(proxy.seen) > before:  # the first three warm up
                    latencies.append(waiter.result() - proxy.seen[before])
                    text_latencies.append(waiter.result() - proxy.seen_text[before_text])
        finally:
            await gateway.aclose()
            await proxy.close()
    print(f"Through the real gateway client from the fake gateway ({samples} streams, 2 ms/chunk):")
    print(
        f"  first SSE event on the wire -> first adapter call: p50 {pct(latencies, 0.5) * 1e3:6.3f}"
        f" ms  p95 {pct(latencies, 0.95) * 1e3:6.3f} ms (includes the wait for the first text)"
    )
    print(
        "  first SSE event with text   -> first adapter call: "
        f"p50 {pct(text_latencies, 0.5) * 1e3:6.3f} ms  p95 {pct(text_latencies, 0.95) * 1e3:6.3f}"
        " ms (goal p50 <= 5 ms; includes one loopback proxy hop)"
    )


async def platform_run(platform: Platform, conversations: int, tokens: int, rate: float) -> str:
    """`conversations` replies at once under the platform's real limits; one line of figures."""
    adapter = EnforcingAdapter(platform)
    budgets = Budgets()
    loop = asyncio.get_running_loop()
    traces: dict[str, Trace] = {}
    spans: dict[str, tuple[float, float]] = {}
    firsts: list[float] = []

    async def one(k: int) -> None:
        key = f"{platform.name}-{conversations}-{k}"
        # Slack: one channel per conversation, one workspace; Discord: all in one channel.
        channel = f"C{k}" if platform is SLACK else "C0"
        trace = traces[key] = Trace()
        waiter: asyncio.Future[float] = loop.create_future()
        adapter.first_call[key] = waiter
        req = make_request(channel=channel, workspace="W1", event_id=key)
        start = loop.time()
        length = 0
        async with StreamingReply(adapter, req, budgets) as reply:
            for i in range(tokens):
                wait = start + i / rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                delta = f"t{i} "
                reply.write(delta)
                length += len(delta)
                trace.writes.append((time.perf_counter(), length))
            streamed = time.perf_counter()
        spans[key] = (trace.writes[0][0], streamed)
        firsts.append(await waiter - trace.writes[0][0])

    started = time.perf_counter()
    async with asyncio.timeout(180):
        await asyncio.gather(*(one(k) for k in range(conversations)))
    complete = time.perf_counter() - started
    stale: list[float] = []
    for key, trace in traces.items():
        calls = adapter.traces[key].calls
        begin, end = spans[key]
        t = begin
        while t < end:
            shown = max((n for at, n in calls if at <= t), default=0)
            unseen = next((at for at, n in trace.writes if n > shown), None)
            stale.append(0.0 if unseen is None or unseen > t else t - unseen)
            t += 0.1
    writes = sum(len(adapter.traces[k].calls) for k in traces) / conversations
    complete_ok = all(adapter.traces[k].calls[-1][1] >= t.writes[-1][1] for k, t in traces.items())
    return (
        f"  {platform.name:7s} {conversations:3d} conv: first text p50 {pct(firsts, 0.5):5.2f} s "
        f"p95 {pct(firsts, 0.95):5.2f} s; staleness p95 {pct(stale, 0.95):5.2f} s; "
        f"429s {adapter.refused}; writes/reply {writes:4.1f}; all complete in {complete:5.1f} s"
        f"{'' if complete_ok else ' (SOME INCOMPLETE)'}"
    )


async def platforms(tokens: int, rate: float) -> None:
    print(
        f"Platform limits enforced in memory, {tokens}-token replies at {rate:g} tokens/s "
        f"(streams take {tokens / rate:g} s; goals: Slack 50 within ~10 s, Discord 20 within "
        "~18 s, 0 429s):"
    )
    runs = [(SLACK, n) for n in (1, 10, 50)] + [(DISCORD, n) for n in (1, 5, 20)]
    # Each run has its own adapter and budgets, so they run side by side to save time.
    for line in await asyncio.gather(*(platform_run(p, n, tokens, rate) for p, n in runs)):
        print(line)


async def main_async(args: argparse.Namespace) -> None:
    await first_delta_latency(args.samples)
    print(
        f"Concurrent streams, {args.rate:g} chunks/s each for {args.seconds:g} s, "
        "started over 1 s; "
        f"edit_interval {args.interval * 1e3:g} ms, adapter round trip {args.latency * 1e3:g} ms "
        "(goal at 500: flush lag p99 <= 250 ms):"
    )
    for level in args.levels:
        await concurrent(level, args.rate, args.seconds, args.interval, args.latency)
    await through_gateway(args.gateway_samples)
    if args.tokens:
        await platforms(args.tokens, args.token_rate)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--gateway-samples", type=int, default=200)
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[100, 300, 500]
    )
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.1, help="edit_interval, seconds")
    parser.add_argument("--latency", type=float, default=0.01, help="adapter round trip, s")
    parser.add_argument("--tokens", type=int, default=300, help="0 skips the platform runs")
    parser.add_argument("--token-rate", type=float, default=40.0)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
