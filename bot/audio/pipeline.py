"""Voice notes to text: identify, pass through or convert, split, transcribe, join in order."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.audio.convert import ENCODINGS, Encoding, detect_silences, encode, encode_segments
from bot.audio.formats import (
    HEAD_BYTES,
    accepted_format,
    describe,
    is_audio_container,
    seeks_exactly,
    sniff,
)
from bot.audio.limits import MB, AudioLimits
from bot.audio.probe import Probe, Unreadable, probe_file
from bot.audio.split import Span, plan_pieces
from bot.audio.standby import Standby
from bot.audio.tools import FFMPEG, ToolFailed, ToolMissing, ToolTimeout, run_tool, tools_on_path
from bot.errors import UserFacingError
from bot.i18n import t

__all__ = [
    "AudioError",
    "AudioLimits",
    "Piece",
    "PreparedAudio",
    "Progress",
    "Standby",
    "Transcriber",
    "check_ffmpeg",
    "format_duration",
    "prepare_audio",
    "transcribe_prepared",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Converted pieces aim below this share of the upload limit: bitrates are averages.
_SIZE_MARGIN = 0.8


class AudioError(UserFacingError):
    """A recording we cannot transcribe, with a sentence saying why and what to do."""


class Transcriber(Protocol):
    """The one gateway capability the pipeline needs (bot.gateway.client.Gateway has it)."""

    async def transcribe(
        self,
        model: str,
        data: bytes,
        filename: str,
        *,
        mime: str | None = None,
        language: str | None = None,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Piece:
    """One upload to the gateway."""

    data: bytes = field(repr=False)
    filename: str
    mime: str
    seconds: float


@dataclass(frozen=True, slots=True)
class PreparedAudio:
    pieces: tuple[Piece, ...]
    # Measured from the file's own packets: what gets charged.
    duration_seconds: float
    # True when the one piece is the downloaded bytes, unchanged.
    passthrough: bool
    # Container/codec found by content, e.g. "ogg/opus", "aiff/pcm_s16be".
    source_format: str


async def prepare_audio(
    data: bytes, filename: str, *, limits: AudioLimits, standby: Standby | None = None
) -> PreparedAudio:
    """Turn downloaded bytes into gateway-ready pieces, or raise AudioError saying why not.

    Never trusts the file name or the platform's MIME type: the content decides. All
    scratch files live in one temporary directory that is gone when this returns. With a
    `standby`, a small voice note is probed by already-started tools, without a file.
    """
    name = display_name(filename)
    if not data:
        raise AudioError(
            t("“{name}” is empty (0 bytes), so there is nothing to transcribe.", name=name)
        )
    if len(data) > limits.max_download_bytes:
        raise AudioError(
            t(
                "“{name}” is {size}; the most I take is {limit}.",
                name=name,
                size=_mb(len(data)),
                limit=_mb(limits.max_download_bytes),
            )
        )
    head = data[:HEAD_BYTES]
    label = sniff(head)
    kind = describe(label)
    if kind is not None:
        raise AudioError(
            t("“{name}” is {kind}, not a recording; attach an audio file.", name=name, kind=kind)
        )
    probe: Probe | None = None
    try:
        if standby is not None:
            probe = await standby.probe(data, head, label, time_limit=limits.tool_timeout_seconds)
            if probe is not None:
                ready = _pass_through(data, filename, probe, limits)
                if ready is not None:
                    return ready
        async with _scratch(limits) as scratch:
            src = scratch / "input"
            # No extension: ffmpeg must go by the content, not by a name that may lie.
            await asyncio.to_thread(src.write_bytes, data)
            if probe is None:
                probe = await _identify(src, head, name, limits)
                ready = _pass_through(data, filename, probe, limits)
                if ready is not None:
                    return ready
            seconds = _check_duration(probe, name, limits)
            pieces = await _convert(src, scratch, probe, seconds, filename, limits)
            return PreparedAudio(pieces, seconds, False, _source_format(probe))
    except ToolTimeout as exc:
        took = f"{exc.seconds:g}"
        raise AudioError(
            t(
                "Reading “{name}” took longer than {seconds} s, so I gave up. Try a shorter "
                "recording.",
                name=name,
                seconds=took,
            )
        ) from None
    except ToolMissing:
        raise AudioError(
            t(
                "Voice notes can't be transcribed right now: ffmpeg is not installed on the "
                "bot's server. Please tell the bot's operator."
            )
        ) from None
    except ToolFailed as exc:
        log.warning("ffmpeg failed on %s (%s): %s", name, probe and probe.format_name, exc)
        raise AudioError(_damaged(name, probe.label if probe else None)) from None


def _pass_through(
    data: bytes, filename: str, probe: Probe, limits: AudioLimits
) -> PreparedAudio | None:
    """The file as it is, when the gateway takes it and it fits; None when it needs work."""
    name = display_name(filename)
    _check_audio(probe, name)
    seconds = _check_duration(probe, name, limits)
    fmt = accepted_format(probe.label, probe.format_name, probe.codec, probe.has_video)
    fits = len(data) <= limits.upload_limit_bytes and seconds <= limits.max_piece_seconds
    if fmt is None or not fits:
        return None
    piece = Piece(data, f"{_stem(filename)}.{fmt.extension}", fmt.mime, seconds)
    return PreparedAudio((piece,), seconds, True, _source_format(probe))


async def transcribe_prepared(
    gateway: Transcriber,
    model: str,
    prepared: PreparedAudio,
    *,
    concurrency: int = 4,
    on_progress: Progress | None = None,
    language: str | None = None,
) -> str:
    """Transcribe every piece (at most `concurrency` at once) and join the texts in order.

    `on_progress(done, total)` is called with (0, n) first and after each finished piece.
    The first failure cancels the other pieces and is raised as is (e.g. GatewayError).
    """
    total = len(prepared.pieces)
    texts = [""] * total
    gate = asyncio.Semaphore(max(1, concurrency))
    done = 0
    if on_progress is not None:
        on_progress(0, total)

    async def one(index: int, piece: Piece) -> None:
        nonlocal done
        async with gate:
            text = await gateway.transcribe(
                model, piece.data, piece.filename, mime=piece.mime, language=language
            )
        texts[index] = text.strip()
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    try:
        async with asyncio.TaskGroup() as group:
            for index, piece in enumerate(prepared.pieces):
                group.create_task(one(index, piece))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return " ".join(text for text in texts if text)


async def check_ffmpeg(limits: AudioLimits | None = None) -> str | None:
    """None when ffmpeg/ffprobe are usable; otherwise one line for the start-up log."""
    limits = limits or AudioLimits()
    missing = tools_on_path()
    if missing:
        return (
            f"{' and '.join(missing)} not found on PATH, so voice notes cannot be transcribed. "
            "Install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg)."
        )
    try:
        out = await run_tool(FFMPEG, ["-hide_banner", "-encoders"], time_limit=30)
    except (ToolFailed, ToolTimeout, ToolMissing) as exc:
        return f"ffmpeg is installed but does not run ({exc}); voice notes cannot be transcribed."
    encoder = ENCODINGS[limits.convert_format].codec_args[1]
    if f" {encoder} ".encode() not in out.stdout:
        return (
            f"this ffmpeg has no {encoder} encoder, which CHATOPS_AUDIO_FORMAT="
            f"{limits.convert_format} needs; install a full ffmpeg build or choose the other "
            "format."
        )
    return None


def format_duration(seconds: float) -> str:
    """0:07, 4:05, 1:02:03."""
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def display_name(filename: str) -> str:
    """The file name as safe to quote in a reply: one line, bounded length."""
    name = " ".join(filename.split()) or t("the file")
    return name if len(name) <= 80 else name[:77] + "…"


async def _identify(src: Path, head: bytes, name: str, limits: AudioLimits) -> Probe:
    try:
        return await probe_file(src, head, time_limit=limits.tool_timeout_seconds)
    except Unreadable as exc:
        log.info("ffprobe could not read %s: %s", name, exc)
        raise AudioError(_damaged(name, sniff(head))) from None


def _check_audio(probe: Probe, name: str) -> None:
    if probe.has_audio:
        return
    if probe.has_video:
        raise AudioError(
            t("“{name}” is a video without a sound track; nothing to transcribe.", name=name)
        )
    raise AudioError(
        t("“{name}” has no sound in it that I can find; attach an audio recording.", name=name)
    )


def _check_duration(probe: Probe, name: str, limits: AudioLimits) -> float:
    seconds = probe.seconds
    if seconds is None or not math.isfinite(seconds):
        raise AudioError(_damaged(name, probe.label))
    if seconds < limits.min_duration_seconds:
        raise AudioError(
            t(
                "“{name}” is only {seconds} s long; send a recording of at least {least} s.",
                name=name,
                seconds=f"{seconds:.1f}",
                least=f"{limits.min_duration_seconds:g}",
            )
        )
    if seconds > limits.max_duration_seconds:
        raise AudioError(
            t(
                "“{name}” is {length} long; the limit is {limit}. Trim it or split it and send "
                "the parts.",
                name=name,
                length=format_duration(seconds),
                limit=format_duration(limits.max_duration_seconds),
            )
        )
    return seconds


async def _convert(
    src: Path, scratch: Path, probe: Probe, seconds: float, filename: str, limits: AudioLimits
) -> tuple[Piece, ...]:
    encoding = ENCODINGS[limits.convert_format]
    time_limit = limits.tool_timeout_seconds
    by_size = limits.upload_limit_bytes * 8 * _SIZE_MARGIN / encoding.bits_per_second
    max_piece = min(limits.max_piece_seconds, by_size)
    silences: list[Span] = []
    if seconds > max_piece:
        silences = await detect_silences(src, seconds, time_limit=time_limit)
    spans = plan_pieces(seconds, silences, max_piece)
    if len(spans) > 1 and not seeks_exactly(probe.label):
        cuts = [end for _, end in spans[:-1]]
        files = await encode_segments(src, scratch, encoding, cuts, time_limit=time_limit)
        datas = [await asyncio.to_thread(path.read_bytes) for path in files]
    else:
        datas = await _encode_pieces(src, scratch, encoding, spans, time_limit)
    if datas and len(datas) != len(spans):
        # The segmenter makes no file for a cut at the very end: the spans were only a plan.
        step = seconds / len(datas)
        spans = [(step * k, step * (k + 1)) for k in range(len(datas))]
    stem, ext = _stem(filename), encoding.extension
    pieces = tuple(
        Piece(
            data,
            f"{stem}.part{k:02d}.{ext}" if len(datas) > 1 else f"{stem}.{ext}",
            encoding.mime,
            end - start,
        )
        for k, (data, (start, end)) in enumerate(zip(datas, spans, strict=True), start=1)
    )
    _check_pieces(pieces, encoding, filename, probe, limits)
    return pieces


async def _encode_pieces(
    src: Path, scratch: Path, encoding: Encoding, spans: list[Span], time_limit: float
) -> list[bytes]:
    """Encode each span by seeking into the source, in parallel: one ffmpeg per core."""
    cores = asyncio.Semaphore(max(1, os.cpu_count() or 1))

    async def one(index: int, span: Span) -> bytes:
        start, end = span
        dst = scratch / f"piece{index:03d}.{encoding.extension}"
        last = index == len(spans) - 1
        async with cores:
            await encode(
                src,
                dst,
                encoding,
                start=start,
                # The last piece runs to the end of the stream, whatever the measurement missed.
                length=None if last else end - start,
                time_limit=time_limit,
            )
        data = await asyncio.to_thread(dst.read_bytes)
        await asyncio.to_thread(dst.unlink)
        return data

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, span)) for i, span in enumerate(spans)]
    except BaseExceptionGroup as failed:
        # prepare_audio turns ToolFailed/ToolTimeout into a sentence for the user, not a group.
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _check_pieces(
    pieces: tuple[Piece, ...], encoding: Encoding, filename: str, probe: Probe, limits: AudioLimits
) -> None:
    if not pieces or not all(piece.data for piece in pieces):
        # ffmpeg decoded nothing: the file broke down after its header.
        raise AudioError(_damaged(display_name(filename), probe.label))
    for piece in pieces:
        if len(piece.data) > limits.upload_limit_bytes:
            # Cannot happen with a sane bitrate; refuse rather than send a request that fails.
            raise AudioError(
                t(
                    "“{name}” did not shrink below the gateway's upload limit as {format}; try "
                    "a shorter recording.",
                    name=display_name(filename),
                    format=encoding.extension,
                )
            )


@asynccontextmanager
async def _scratch(limits: AudioLimits) -> AsyncIterator[Path]:
    holder = await asyncio.to_thread(
        tempfile.TemporaryDirectory,
        prefix="chatops-audio-",
        dir=limits.temp_dir,
        ignore_cleanup_errors=True,
    )
    try:
        yield Path(holder.name)
    finally:
        # Shielded: a cancelled transcription still removes its files.
        await asyncio.shield(asyncio.to_thread(holder.cleanup))


def _source_format(probe: Probe) -> str:
    container = probe.label if is_audio_container(probe.label) else None
    return f"{container or probe.format_name.split(',')[0]}/{probe.codec}"


def _damaged(name: str, label: str | None) -> str:
    if is_audio_container(label):
        return t(
            "“{name}” looks like {format} but is damaged or incomplete, so I can't read it. Try "
            "recording or exporting it again.",
            name=name,
            format=label.upper() if label else "audio",
        )
    return t("“{name}” is not an audio recording I can read; attach an audio file.", name=name)


def _stem(filename: str) -> str:
    # Gateways infer the format from the extension: keep the stem, we choose the extension.
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename).stem).strip("._")
    return stem[:60] or "audio"


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"
