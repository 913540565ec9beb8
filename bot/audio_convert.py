"""Re-encode audio with ffmpeg to a compact speech format (mono, 16 kHz, Opus or MP3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.audio_limits import ConvertFormat
from bot.audio_split import Span, parse_silences
from bot.audio_tools import FFMPEG, FFMPEG_QUIET, run_tool


@dataclass(frozen=True, slots=True)
class Encoding:
    extension: str
    mime: str
    bits_per_second: int
    args: tuple[str, ...]


# Speech at 16 kHz mono needs little: 24 kbit/s Opus or 32 kbit/s MP3 keeps a 25 MB upload
# good for hours. Fastest encoder settings: a 10-minute note must convert in about a second,
# and the recognizer, not a listener, is the audience.
ENCODINGS: dict[ConvertFormat, Encoding] = {
    "ogg": Encoding(
        "ogg",
        "audio/ogg",
        24_000,
        (
            "-c:a",
            "libopus",
            "-b:a",
            "24k",
            "-application",
            "voip",
            "-compression_level",
            "0",
            "-f",
            "ogg",
        ),
    ),
    "mp3": Encoding(
        "mp3",
        "audio/mpeg",
        32_000,
        ("-c:a", "libmp3lame", "-b:a", "32k", "-compression_level", "9", "-f", "mp3"),
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
        *encoding.args,
        "-y",
        str(dst),
    ]
    await run_tool(FFMPEG, args, time_limit=time_limit)


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
