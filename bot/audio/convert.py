"""Re-encode audio with ffmpeg to a compact speech format (mono, 16 kHz, Opus or MP3)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot.audio.limits import ConvertFormat
from bot.audio.split import Span, parse_silences
from bot.audio.tools import FFMPEG, FFMPEG_QUIET, run_tool


@dataclass(frozen=True, slots=True)
class Encoding:
    extension: str
    mime: str
    muxer: str
    bits_per_second: int
    codec_args: tuple[str, ...]


# Speech at 16 kHz mono needs little: 32 kbit/s MP3 or 24 kbit/s Opus keeps a 25 MB upload
# good for hours, and the recognizer, not a listener, is the audience. MP3 is the default:
# every gateway backend takes it, and LAME encodes speech ~3x faster than libopus (a
# 10-minute note in ~0.6 s of CPU against ~2 s), which is what a busy 2-core host feels.
ENCODINGS: dict[ConvertFormat, Encoding] = {
    "ogg": Encoding(
        "ogg",
        "audio/ogg",
        "ogg",
        24_000,
        ("-c:a", "libopus", "-b:a", "24k", "-application", "voip", "-compression_level", "0"),
    ),
    "mp3": Encoding(
        "mp3",
        "audio/mpeg",
        "mp3",
        32_000,
        ("-c:a", "libmp3lame", "-b:a", "32k", "-compression_level", "7"),
    ),
}
SAMPLE_RATE = 16_000
# silencedetect: quieter than -35 dBFS for at least 0.3 s counts as a pause between words.
SILENCE_FILTER = "silencedetect=noise=-35dB:duration=0.3"


async def encode(
    src: Path,
    dst: Path,
    encoding: Encoding,
    *,
    start: float = 0.0,
    length: float | None = None,
    time_limit: float,
) -> None:
    """Encode the first audio stream of `src` into `dst`: `length` s from `start`, or all of it."""
    window: list[str] = []
    if start > 0:
        # Input-side seeking: each piece decodes only its own stretch of the file.
        window += ["-ss", f"{start:.3f}"]
    if length is not None:
        window += ["-t", f"{length:.3f}"]
    args = [
        *FFMPEG_QUIET,
        *window,
        "-i",
        str(src),
        *_speech(encoding),
        "-f",
        encoding.muxer,
        "-y",
        str(dst),
    ]
    await run_tool(FFMPEG, args, time_limit=time_limit)


async def encode_segments(
    src: Path, scratch: Path, encoding: Encoding, cuts: list[float], *, time_limit: float
) -> list[Path]:
    """Encode all of `src` in one pass, starting a new file at each cut (in seconds).

    For sources whose timestamps are estimated (MP3 without an exact index, raw AMR):
    seeking into them lands seconds off, while one sequential pass cuts exactly.
    """
    pattern = scratch / f"segment%03d.{encoding.extension}"
    args = [
        *FFMPEG_QUIET,
        "-i",
        str(src),
        *_speech(encoding),
        "-f",
        "segment",
        "-segment_format",
        encoding.muxer,
        "-segment_times",
        ",".join(f"{cut:.3f}" for cut in cuts),
        "-reset_timestamps",
        "1",
        "-y",
        str(pattern),
    ]
    await run_tool(FFMPEG, args, time_limit=time_limit)
    return await asyncio.to_thread(lambda: sorted(scratch.glob(f"segment*.{encoding.extension}")))


def _speech(encoding: Encoding) -> list[str]:
    """Output options: the first audio stream only, no metadata, mono 16 kHz, compact."""
    return [
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        *encoding.codec_args,
    ]


async def detect_silences(src: Path, duration: float, *, time_limit: float) -> list[Span]:
    """Pauses in the first audio stream, from one decoding pass with ffmpeg silencedetect."""
    args = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        # silencedetect reports at the info level.
        "-v",
        "info",
        "-i",
        str(src),
        "-map",
        "0:a:0",
        "-af",
        SILENCE_FILTER,
        "-f",
        "null",
        "-",
    ]
    out = await run_tool(FFMPEG, args, time_limit=time_limit)
    return parse_silences(out.stderr, duration)
