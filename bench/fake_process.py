"""The fake gateway in a process of its own, so benchmarks measure only the bot's side."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.asynccontextmanager
async def fake_gateway_process(
    key: str, *, delay: float = 0.0, stamp: bool = False
) -> AsyncIterator[tuple[str, int]]:
    """Yields the fake's base URL and pid; stops it on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.gateway",
        "--port",
        "0",
        "--key",
        key,
        "--delay",
        str(delay),
        *(["--stamp"] if stamp else []),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            base_url = (await process.stdout.readline()).decode().strip()
        yield base_url, process.pid
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            await process.wait()
