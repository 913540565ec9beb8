"""ffprobe and ffmpeg started ahead of need, so a short voice note skips their start-up time.

A distribution ffmpeg links some 200 shared libraries and spends ~50 ms initialising them
before it reads a byte, which is the whole latency budget of a pass-through voice note.
A Standby keeps one probe pair already started and blocked on stdin; a voice note is piped
into that pair and a replacement is started in the background. It only serves small files
in containers ffmpeg can read from a pipe (MP4/M4A may keep their index at the end and
need seeking); everything else, and any failure here, takes the regular file-based path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from bot.audio.probe import (
    MEASURE_OUTPUT,
    PROBE_ARGS,
    Probe,
    Unreadable,
    last_out_time,
    parse_probe,
    probe_from,
)
from bot.audio.tools import FFMPEG, FFPROBE, ToolTimeout, kill_and_reap

log = logging.getLogger(__name__)

# Piping copies what the child has not read yet into the transport's buffer, twice (one
# per child): fine for voice notes, not for the 24 MB files whose memory is budgeted.
STANDBY_MAX_BYTES = 4_000_000
# Containers that carry everything needed in stream order.
PIPEABLE = frozenset({"ogg", "webm", "mp3", "wav", "flac"})

Process = asyncio.subprocess.Process


@dataclass(frozen=True, slots=True)
class _Pair:
    probe: Process
    measure: Process


class Standby:
    """Owns at most one ready probe pair (and one being started). Close it with `aclose`."""

    def __init__(self) -> None:
        self._ready: _Pair | None = None
        self._starting: asyncio.Task[None] | None = None
        self._closed = False
        self.served = 0  # voice notes probed through a ready pair, for tests and logs

    def warm(self) -> None:
        """Start a pair in the background unless one is ready or on its way."""
        if self._closed or self._ready is not None or self._starting is not None:
            return
        self._starting = asyncio.get_running_loop().create_task(self._start())

    async def wait_ready(self) -> bool:
        """Warm, and wait (bounded by the caller) until a pair is ready; False if it failed."""
        self.warm()
        if self._starting is not None:
            await asyncio.shield(self._starting)
        return self._ready is not None

    def usable(self, label: str | None, size: int) -> bool:
        return label in PIPEABLE and 0 < size <= STANDBY_MAX_BYTES

    async def probe(
        self, data: bytes, head: bytes, label: str | None, *, time_limit: float
    ) -> Probe | None:
        """Probe `data` through the ready pair; None when there is none or it did not work.

        None sends the caller to the file-based path, which then decides about the file.
        """
        if not self.usable(label, len(data)):
            return None
        pair, self._ready = self._ready, None
        self.warm()
        if pair is None:
            return None
        try:
            async with asyncio.timeout(time_limit):
                (info, probe_err), (progress, _) = await asyncio.gather(
                    pair.probe.communicate(data), pair.measure.communicate(data)
                )
        except TimeoutError:
            raise ToolTimeout(FFPROBE, time_limit) from None
        finally:
            await _kill(pair)
        if pair.probe.returncode != 0:
            log.debug("standby probe failed: %s", probe_err.decode(errors="replace")[-200:])
            return None
        try:
            probe = probe_from(parse_probe(info), head, last_out_time(progress))
        except Unreadable:
            return None
        self.served += 1
        return probe

    async def aclose(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        pair, self._ready = self._ready, None
        if pair is not None:
            await _kill(pair)

    async def __aenter__(self) -> Standby:
        self.warm()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _start(self) -> None:
        try:
            pair = await _spawn()
        except OSError as exc:
            log.warning("could not start a standby ffprobe/ffmpeg: %s", exc)
            return
        finally:
            self._starting = None
        if self._closed:
            await _kill(pair)
            return
        self._ready = pair


async def _spawn() -> _Pair:
    probe = await _started(FFPROBE, *PROBE_ARGS, "pipe:0")
    try:
        measure = await _started(
            FFMPEG, "-hide_banner", "-nostats", "-v", "error", "-i", "pipe:0", *MEASURE_OUTPUT
        )
    except BaseException:
        await _kill(_Pair(probe, probe))
        raise
    return _Pair(probe, measure)


async def _started(tool: str, *args: str) -> Process:
    pipe = asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(tool, *args, stdin=pipe, stdout=pipe, stderr=pipe)


async def _kill(pair: _Pair) -> None:
    # Returns only once both have exited, even if our caller is cancelled meanwhile.
    await kill_and_reap(pair.probe, pair.measure)
