"""Run ffmpeg/ffprobe as asyncio subprocesses with a deadline, never blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# Quiet and non-interactive: ffmpeg otherwise reads stdin for keyboard commands.
FFMPEG_QUIET = ("-hide_banner", "-nostdin", "-nostats", "-v", "error")


class ToolFailed(Exception):
    """ffmpeg/ffprobe exited non-zero; `stderr` carries its last lines for the log."""

    def __init__(self, tool: str, returncode: int, stderr: str) -> None:
        super().__init__(f"{tool} exited {returncode}: {stderr}")
        self.tool = tool
        self.returncode = returncode
        self.stderr = stderr


class ToolTimeout(Exception):
    """ffmpeg/ffprobe ran past its deadline and was killed."""

    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(f"{tool} ran longer than {seconds:g} s")
        self.tool = tool
        self.seconds = seconds


class ToolMissing(Exception):
    """ffmpeg/ffprobe is not installed (or not on PATH)."""


@dataclass(frozen=True, slots=True)
class ToolOutput:
    stdout: bytes
    stderr: bytes


async def run_tool(
    tool: str, args: list[str], *, time_limit: float, check: bool = True
) -> ToolOutput:
    """Run `tool args…`; kill it on timeout or cancellation so no stray process is left."""
    try:
        proc = await asyncio.create_subprocess_exec(
            tool,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise ToolMissing(tool) from None
    try:
        async with asyncio.timeout(time_limit):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        await _kill(proc)
        raise ToolTimeout(tool, time_limit) from None
    except BaseException:
        await _kill(proc)
        raise
    if check and proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ToolFailed(tool, proc.returncode or -1, " | ".join(tail))
    return ToolOutput(stdout, stderr)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    # Shielded: the reaping goes on even if our caller is cancelled meanwhile.
    with contextlib.suppress(TimeoutError):
        await asyncio.shield(asyncio.wait_for(proc.wait(), 5))


def tools_on_path() -> list[str]:
    """The names of the required tools that are missing from PATH."""
    return [tool for tool in (FFMPEG, FFPROBE) if shutil.which(tool) is None]
