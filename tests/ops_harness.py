"""Reads the operations port over HTTP (health, readiness, Prometheus samples) and runs
`chatops run` as a real process with one, for the operations tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
_PORT_LINE = re.compile(r"operations port: http://[^\s:]+:(\d+)")


@dataclass(frozen=True, slots=True)
class Scrape:
    """One /metrics answer, parsed by prometheus-client's own parser."""

    samples: Mapping[tuple[str, Labels], float]
    # Every name the text defines: family names, their sample names, and sample names.
    names: frozenset[str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    def label_values(self) -> set[str]:
        return {value for (_, labels) in self.samples for _, value in labels}

    def label_names(self) -> set[str]:
        return {key for (_, labels) in self.samples for key, _ in labels}


def parse_metrics(text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, frozenset(names))


async def get(url: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, await response.text()


async def scrape(base: str) -> Scrape:
    status, text = await get(f"{base}/metrics")
    assert status == 200, text
    return parse_metrics(text)


async def readyz(base: str) -> tuple[int, dict[str, Any]]:
    status, text = await get(f"{base}/readyz")
    body: dict[str, Any] = json.loads(text)
    return status, body


async def wait_readyz(base: str, status: int, within: float = 20.0) -> dict[str, Any]:
    """Poll /readyz (bounded) until it answers `status`; returns that answer's body."""
    async with asyncio.timeout(within):
        while True:
            got, body = await readyz(base)
            if got == status:
                return body
            await asyncio.sleep(0.05)


async def wait_metrics(base: str, holds: Callable[[Scrape], bool], within: float = 20.0) -> Scrape:
    """Scrape (bounded) until `holds` is true of the answer; returns that scrape."""
    async with asyncio.timeout(within):
        while True:
            got = await scrape(base)
            if holds(got):
                return got
            await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` (bounded) until it holds: for state only visible by asking."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.01)


@dataclass
class Service:
    """A running `chatops run` and everything it has written to stderr so far."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    port: int = 0
    returncode: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def service_env(extra: Mapping[str, str], db: Path) -> dict[str, str]:
    """This process's environment without any bot settings, plus `extra` and an ops port."""
    prefixes = ("WEELINKING", "CHATOPS", "SLACK", "DISCORD")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | {"CHATOPS_DB": str(db), "CHATOPS_OPS_PORT": "0", **extra}


@contextlib.asynccontextmanager
async def running_service(env: Mapping[str, str], cwd: Path) -> AsyncIterator[Service]:
    """`python -m bot run` until the block ends (then SIGTERM); its ops port known on entry."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    service = Service(proc)
    found: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        assert proc.stderr is not None
        while raw := await proc.stderr.readline():
            line = raw.decode("utf-8", "replace").rstrip("\n")
            service.lines.append(line)
            if not found.done() and (match := _PORT_LINE.search(line)):
                found.set_result(int(match.group(1)))
        if not found.done():
            tail = "\n".join(service.lines[-30:])
            found.set_exception(AssertionError(f"the service ended without an ops port:\n{tail}"))

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(30):
            await found
        service.port = found.result()
        yield service
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            service.returncode = await proc.wait()
            await reader
