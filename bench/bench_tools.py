"""Tool calling: latency per tool round, and CPU per chunk through /v1/responses vs chat.

Added latency per tool round for a built-in and an MCP stdio tool; CPU per streamed chunk
through /v1/responses vs /v1/chat/completions.

Run: .venv/bin/python -m bench.bench_tools [--rounds 40 --streams 100 --chunks 300]

Latency: from the moment the fake gateway wrote the last byte of a turn's tool-call
arguments to the moment the request carrying the tool's result arrived back at it (parse,
schema check, the tool, the ledger rows, the next round's reservation, the HTTP request).
The fake runs in this process for that (one monotonic clock); for CPU per chunk it runs in a
subprocess, so only the client's CPU is counted. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.bench_gateway import KEY, cpu_per_chunk, messages_for
from bench.fake_process import fake_gateway_process
from bot.events import User
from bot.gateway.client import Gateway
from bot.secret import Secret
from bot.tools.config import ServerSpec
from bot.tools.mcp import McpServers
from tests.core_harness import running_core
from tests.fakes.gateway import ModelTurn, ScriptedCall
from tests.memory_adapter import make_request

ADMIN = User("U0", "admin", is_admin=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def round_latency(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_core(Path(tmp)) as core:
            core.adapter.limits = replace(core.adapter.limits, max_chars=4000)
            servers = McpServers(
                (ServerSpec("demo", command=sys.executable, args=("-m", "tests.tools.mcp_server")),)
            )
            await servers.start()
            core.services.mcp = servers
            try:
                await core.send(make_request("tools enable demo", user=ADMIN))
                cases = {
                    "built-in channel_settings": ScriptedCall("channel_settings", "{}"),
                    "built-in list_models (cached)": ScriptedCall(
                        "list_models", json.dumps({"filter": "claude"})
                    ),
                    "MCP stdio demo.lookup": ScriptedCall(
                        "demo__lookup", json.dumps({"word": "cat"})
                    ),
                }
                print(f"Added latency per tool round ({rounds} rounds each, median / p95):")
                for label, scripted in cases.items():
                    waits: list[float] = []
                    for index in range(rounds + 3):
                        core.gateway.turns.append(ModelTurn(calls=(scripted,)))
                        before = len(core.gateway.requests)
                        await core.send(make_request(f"question {index}"))
                        sent = core.gateway.calls_sent_at[-1]
                        back = [r.at for r in core.gateway.requests[before:] if r.at > sent]
                        if index >= 3:  # warm-up: connections, caches, first spawn
                            waits.append(back[0] - sent)
                    print(
                        f"  {label:<32} {statistics.median(waits) * 1e3:6.2f} ms / "
                        f"{percentile(waits, 95) * 1e3:6.2f} ms"
                    )
            finally:
                await servers.close()


async def responses_cpu(streams: int, chunks: int) -> None:
    async with fake_gateway_process(KEY) as (base_url, _pid):
        messages = messages_for(chunks)
        gateway = Gateway(base_url, Secret(KEY), responses_models=["gpt-5-mini"])
        figures = {}
        try:
            for label, model in (("chat completions", "gpt-4o-mini"), ("responses", "gpt-5-mini")):

                async def once(model: str = model) -> int:
                    count = 0
                    async for _delta in gateway.chat(model, messages):
                        count += 1
                    return count

                figures[label] = await cpu_per_chunk(once, streams, parallel=4)
        finally:
            await gateway.aclose()
    print(f"CPU per streamed chunk ({streams} streams x {chunks} chunks, 4 in parallel):")
    for label, (micros, count) in figures.items():
        print(f"  {label:<18} {micros:6.1f} us/chunk ({count} chunks)")
    ratio = figures["responses"][0] / figures["chat completions"][0]
    print(f"  responses / chat completions: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=300)
    args = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(round_latency(args.rounds))
    asyncio.run(responses_cpu(args.streams, args.chunks))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
