"""Run ffmpeg/ffprobe as asyncio subprocesses with a deadline, never blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from typing import TypeVar

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# Quiet and non-interactive: ffmpeg otherwise reads stdin for keyboard commands.
FFMPEG_QUIET = ("-hide_banner", "-nostdin", "-nostats", "-v", "error")

Process = asyncio.subprocess.Process
T = TypeVar("T")


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
    """Run `tool args…`; kill it on timeout or cancellation so no stray process is left.

    Returns or raises only once the process has exited, also when cancelled while it starts
    or while it is being killed: callers remove the scratch files it works on right after.
    """
    proc = await _start(tool, args)
    try:
        async with asyncio.timeout(time_limit):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        await kill_and_reap(proc)
        raise ToolTimeout(tool, time_limit) from None
    except BaseException:
        await kill_and_reap(proc)
        raise
    if check and proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ToolFailed(tool, proc.returncode or -1, " | ".join(tail))
    return ToolOutput(stdout, stderr)


async def kill_and_reap(*procs: Process) -> None:
    """SIGKILL `procs` and return once they have exited (waiting at most REAP_SECONDS).

    A cancellation that arrives meanwhile waits for the exit too and is raised afterwards.
    Tools sharing a deadline (ffprobe and the measuring ffmpeg, the pieces of one task group)
    time out together, so one is often cancelled again while it is still killing its process;
    returning then would leave that process running for a moment after its caller moved on.
    """
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    cancelled = await _settle(asyncio.ensure_future(_exited(procs)))
    if cancelled is not None:
        raise cancelled


# A SIGKILLed process exits within milliseconds; this only bounds a wait that should not hang.
REAP_SECONDS = 5.0


async def _start(tool: str, args: list[str]) -> Process:
    # asyncio kills a process whose start is cancelled, but returns without waiting for its
    # exit if cancelled again meanwhile: finish starting it, then kill and reap it ourselves.
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            tool,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    )
    cancelled = await _settle(starting)
    if cancelled is not None:
        if not starting.cancelled() and starting.exception() is None:
            await kill_and_reap(starting.result())
        raise cancelled
    try:
        return starting.result()
    except FileNotFoundError:
        raise ToolMissing(tool) from None


async def _settle(future: asyncio.Future[T]) -> asyncio.CancelledError | None:
    """Wait until `future` is done even if we are cancelled; the cancellation, if any."""
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            cancelled = exc
    return cancelled


async def _exited(procs: tuple[Process, ...]) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REAP_SECONDS):
            await asyncio.gather(*(proc.wait() for proc in procs))


def tools_on_path() -> list[str]:
    """The names of the required tools that are missing from PATH."""
    return [tool for tool in (FFMPEG, FFPROBE) if shutil.which(tool) is None]
