"""Identify a file by its content (ffprobe JSON plus magic bytes) and measure its duration."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.audio.formats import sniff
from bot.audio.tools import FFMPEG, FFMPEG_QUIET, FFPROBE, ToolFailed, run_tool


class Unreadable(Exception):
    """ffprobe could not open the file as media at all."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What a file is, by content. `codec` is empty when there is no audio stream."""

    label: str | None  # container announced by the magic bytes
    format_name: str  # ffprobe's demuxer name(s), e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    has_video: bool
    sample_rate: int
    channels: int
    # What the container header claims, and what demuxing every audio packet measured.
    header_seconds: float | None
    measured_seconds: float | None

    @property
    def has_audio(self) -> bool:
        return bool(self.codec)

    @property
    def seconds(self) -> float | None:
        """The billable duration: measured when possible, the header's claim only as fallback."""
        if self.measured_seconds is not None and self.measured_seconds > 0:
            return self.measured_seconds
        return self.header_seconds


async def probe_file(path: Path, head: bytes, *, time_limit: float) -> Probe:
    """Run ffprobe (what is it) and an ffmpeg stream copy (how long is it) side by side."""
    info_task = asyncio.ensure_future(_ffprobe(path, time_limit))
    measure_task = asyncio.ensure_future(measure_seconds(path, time_limit))
    try:
        info = await info_task
    except BaseException:
        measure_task.cancel()
        await asyncio.gather(measure_task, return_exceptions=True)
        raise
    return probe_from(info, head, await measure_task)


def probe_from(info: dict[str, Any], head: bytes, measured: float | None) -> Probe:
    """A Probe from ffprobe's JSON, the file's leading bytes and the demuxed duration."""
    audio = _first(info, "audio")
    video = [
        s
        for s in info.get("streams", [])
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    fmt = info.get("format", {})
    return Probe(
        label=sniff(head),
        format_name=str(fmt.get("format_name", "")),
        codec=str(audio.get("codec_name", "")) if audio else "",
        has_video=bool(video),
        sample_rate=_int(audio.get("sample_rate")) if audio else 0,
        channels=_int(audio.get("channels")) if audio else 0,
        header_seconds=_float(fmt.get("duration")),
        measured_seconds=measured if audio else None,
    )


# ffprobe: what is in the file (the input goes last).
PROBE_ARGS = ("-v", "error", "-of", "json", "-show_format", "-show_streams")
# ffmpeg: demux the first audio stream without decoding; -progress reports its end time.
MEASURE_OUTPUT = ("-map", "0:a:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-")


async def _ffprobe(path: Path, time_limit: float) -> dict[str, Any]:
    try:
        out = await run_tool(FFPROBE, [*PROBE_ARGS, str(path)], time_limit=time_limit)
    except ToolFailed as exc:
        raise Unreadable(exc.stderr) from None
    return parse_probe(out.stdout)


def parse_probe(stdout: bytes) -> dict[str, Any]:
    """ffprobe's JSON; Unreadable when it names no container."""
    try:
        info = json.loads(stdout or b"{}")
    except ValueError:
        raise Unreadable("ffprobe wrote no JSON") from None
    if not isinstance(info, dict) or not info.get("format"):
        raise Unreadable("ffprobe found no container")
    return info


async def measure_seconds(path: Path, time_limit: float) -> float | None:
    """Seconds of audio by demuxing every packet of the first audio stream (no decoding).

    Headers can claim any length (and WebM from browsers often claims none), so billing
    uses the packets' own timestamps. None when the stream cannot be demuxed.
    """
    args = [*FFMPEG_QUIET, "-i", str(path), *MEASURE_OUTPUT]
    out = await run_tool(FFMPEG, args, time_limit=time_limit, check=False)
    return last_out_time(out.stdout)


def last_out_time(progress: bytes) -> float | None:
    """The final `out_time_us` of ffmpeg's `-progress` output, in seconds."""
    value: float | None = None
    for line in progress.splitlines():
        key, _, raw = line.partition(b"=")
        if key == b"out_time_us" and raw.strip().lstrip(b"-").isdigit():
            value = int(raw) / 1e6
    return value if value is not None and value > 0 else None


def _first(info: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for stream in info.get("streams", []):
        if isinstance(stream, dict) and stream.get("codec_type") == kind:
            return stream
    return None


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
