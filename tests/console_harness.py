"""`chatops console` as a real subprocess against the fake gateway: its environment and runs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.fakes.gateway import FakeGateway


def console_env(fake: FakeGateway, db: Path, **extra: str) -> dict[str, str]:
    """This machine's environment without our own variables, pointed at the fake gateway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    return env | {
        "WEELINKING_API_KEY": fake.api_key,
        "WEELINKING_BASE_URL": fake.base_url,
        "CHATOPS_DB": str(db),
        "CHATOPS_SHUTDOWN_GRACE": "0.5",
        **extra,
    }


async def start_console(
    fake: FakeGateway,
    db: Path,
    cwd: Path,
    stdin: int | IO[Any] = asyncio.subprocess.PIPE,
    *,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        cwd=cwd,
        env=console_env(fake, db, **(env or {})),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@dataclass(frozen=True, slots=True)
class ConsoleRun:
    """How a console session ended and what it printed."""

    returncode: int
    out: str
    err: str


async def run_console(
    fake: FakeGateway,
    cwd: Path,
    script: str,
    *,
    env: Mapping[str, str] | None = None,
    within: float = 60.0,
) -> ConsoleRun:
    """One piped session: `script` as stdin until its end (bounded), a database in `cwd`."""
    proc = await start_console(fake, cwd / "console.db", cwd, env=env)
    async with asyncio.timeout(within):
        out, err = await proc.communicate(script.encode())
    assert proc.returncode is not None
    return ConsoleRun(proc.returncode, out.decode(), err.decode())
