"""prepare_audio on real recordings: pass-through, conversion, splitting, bad input, clean-up."""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bot.audio.pipeline import AudioError, AudioLimits, PreparedAudio, check_ffmpeg, prepare_audio
from bot.audio.tools import FFMPEG, FFMPEG_QUIET, run_tool
from tests.audio_fixtures import (
    AudioSamples,
    audio_samples,
    ffprobe_bytes,
    opus_input_rate,
    png_like,
)

__all__ = ["audio_samples"]  # the session fixture, re-exported for pytest

# name → (extension it is uploaded under, MIME type)
PASSTHROUGH = {
    "voice.ogg": ("ogg", "audio/ogg"),
    "vorbis.ogg": ("ogg", "audio/ogg"),
    "clip.webm": ("webm", "audio/webm"),
    "clip.m4a": ("m4a", "audio/mp4"),
    "speech.wav": ("wav", "audio/wav"),
    "speech.flac": ("flac", "audio/flac"),
    "speech.mp3": ("mp3", "audio/mpeg"),
    "video.mp4": ("mp4", "video/mp4"),
}
CONVERTED = ("speech.aiff", "speech.au", "speech.wma", "speech.mka")
# Lossy encoders pad a little; billing within a tenth of a second is what matters.
TOLERANCE = 0.15
MP3_PADDING = 0.15


@pytest.fixture
def limits(tmp_path: Path) -> AudioLimits:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return AudioLimits(temp_dir=str(scratch))


def leftovers(limits: AudioLimits) -> list[str]:
    assert limits.temp_dir is not None
    return sorted(os.listdir(limits.temp_dir))


async def prepare(path: Path, limits: AudioLimits, name: str | None = None) -> PreparedAudio:
    data = await asyncio.to_thread(path.read_bytes)
    return await prepare_audio(data, name or path.name, limits=limits)


@pytest.mark.parametrize("name", sorted(PASSTHROUGH))
async def test_accepted_formats_pass_through_byte_identical(
    audio_samples: AudioSamples, limits: AudioLimits, name: str
) -> None:
    data = audio_samples.read(name)
    prepared = await prepare_audio(data, name, limits=limits)
    extension, mime = PASSTHROUGH[name]
    assert prepared.passthrough
    [piece] = prepared.pieces
    assert piece.data == data
    assert piece.filename == f"{Path(name).stem}.{extension}"
    assert piece.mime == mime
    truth = await ffprobe_bytes(data)
    assert prepared.duration_seconds == pytest.approx(truth.seconds, abs=TOLERANCE)
    assert leftovers(limits) == []


@pytest.mark.parametrize("name", CONVERTED)
async def test_other_formats_convert_to_mono_16k_mp3(
    audio_samples: AudioSamples, limits: AudioLimits, name: str
) -> None:
    prepared = await prepare(audio_samples.path(name), limits)
    assert not prepared.passthrough
    [piece] = prepared.pieces
    assert piece.filename == "speech.mp3"
    assert piece.mime == "audio/mpeg"
    out = await ffprobe_bytes(piece.data)
    assert (out.format_name, out.codec, out.sample_rate, out.channels) == ("mp3", "mp3", 16000, 1)
    assert out.seconds == pytest.approx(audio_samples.speech_seconds, abs=TOLERANCE)
    assert prepared.duration_seconds == pytest.approx(audio_samples.speech_seconds, abs=TOLERANCE)
    assert leftovers(limits) == []


async def test_opus_is_the_alternative_target(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    prepared = await prepare(
        audio_samples.path("speech.aiff"), replace(limits, convert_format="ogg")
    )
    [piece] = prepared.pieces
    out = await ffprobe_bytes(piece.data)
    assert (piece.filename, piece.mime) == ("speech.ogg", "audio/ogg")
    assert (out.format_name, out.codec, out.channels) == ("ogg", "opus", 1)
    # ffprobe reports Opus at 48 kHz whatever went in; the header keeps the input rate.
    assert opus_input_rate(piece.data) == 16000
    assert out.seconds == pytest.approx(audio_samples.speech_seconds, abs=TOLERANCE)


async def test_source_format_is_read_from_content(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    ogg = await prepare(audio_samples.path("voice.ogg"), limits)
    aiff = await prepare(audio_samples.path("speech.aiff"), limits)
    m4a = await prepare(audio_samples.path("clip.m4a"), limits)
    assert (ogg.source_format, aiff.source_format, m4a.source_format) == (
        "ogg/opus",
        "aiff/pcm_s16be",
        "m4a/aac",
    )


async def test_a_name_that_lies_does_not_matter(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    # Ogg named .mp3 (and labelled nothing useful): uploaded as .ogg, bytes untouched.
    data = audio_samples.read("voice.ogg")
    prepared = await prepare_audio(data, "memo.mp3", limits=limits)
    [piece] = prepared.pieces
    assert prepared.passthrough and piece.data == data
    assert (piece.filename, piece.mime) == ("memo.ogg", "audio/ogg")
    # AIFF dressed up as WAV: still converted.
    aiff = await prepare(audio_samples.path("speech.aiff"), limits, name="memo.wav")
    assert not aiff.passthrough
    assert (await ffprobe_bytes(aiff.pieces[0].data)).codec == "mp3"


async def test_long_recording_is_cut_in_its_silences(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    # 7 s pieces: an even split of the 44 s (6.3 s) would land mid-sentence, never in a pause.
    prepared = await prepare(audio_samples.long, replace(limits, max_piece_seconds=7))
    assert not prepared.passthrough
    assert prepared.duration_seconds == pytest.approx(audio_samples.long_seconds, abs=TOLERANCE)
    count = len(prepared.pieces)
    assert count >= 7
    assert [p.filename for p in prepared.pieces] == [
        f"long.part{k:02d}.mp3" for k in range(1, count + 1)
    ]
    probed = [await ffprobe_bytes(p.data) for p in prepared.pieces]
    assert all(p.codec == "mp3" and p.seconds <= 7 + TOLERANCE for p in probed)
    # MP3 pads every piece to whole frames (~0.1 s at 16 kHz); lost or doubled speech would
    # be whole seconds.
    assert sum(p.seconds for p in probed) == pytest.approx(
        audio_samples.long_seconds, abs=MP3_PADDING * len(probed)
    )
    # Every cut lies inside one of the pauses the recording was built with.
    cuts = []
    clock = 0.0
    for piece in prepared.pieces[:-1]:
        clock += piece.seconds
        cuts.append(clock)
    for cut in cuts:
        assert any(start <= cut <= end for start, end in audio_samples.long_gaps), cut


async def test_vbr_mp3_is_cut_in_one_sequential_pass_at_the_right_places(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    prepared = await prepare(audio_samples.long_mp3, replace(limits, max_piece_seconds=7))
    assert prepared.source_format == "mp3/mp3"
    assert len(prepared.pieces) >= 7
    probed = [await ffprobe_bytes(p.data) for p in prepared.pieces]
    # Each piece is as long as planned: nothing lost or repeated at the cuts.
    for piece, heard in zip(prepared.pieces, probed, strict=True):
        assert heard.seconds == pytest.approx(piece.seconds, abs=0.1)
    clock = 0.0
    for piece in prepared.pieces[:-1]:
        clock += piece.seconds
        assert any(start <= clock <= end for start, end in audio_samples.long_gaps), clock


async def test_over_the_upload_limit_is_converted_and_split_by_size(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    # The WAV is ~330 kB; with a 12 kB limit even 24 kbit/s Opus needs several pieces.
    small = replace(limits, upload_limit_bytes=12_000)
    prepared = await prepare(audio_samples.speech, small)
    assert not prepared.passthrough
    assert len(prepared.pieces) >= 2
    assert all(len(p.data) <= 12_000 for p in prepared.pieces)
    total = sum([(await ffprobe_bytes(p.data)).seconds for p in prepared.pieces])
    padding = MP3_PADDING * len(prepared.pieces)
    assert total == pytest.approx(audio_samples.speech_seconds, abs=padding)


async def test_accepted_format_over_the_piece_length_is_split(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    prepared = await prepare(audio_samples.path("voice.ogg"), replace(limits, max_piece_seconds=4))
    assert not prepared.passthrough
    assert len(prepared.pieces) == 2


def _corrupt_ogg(samples: AudioSamples) -> bytes:
    return samples.read("voice.ogg")[:300] + os.urandom(40_000)


def _truncated_m4a(samples: AudioSamples) -> bytes:
    data = samples.read("clip.m4a")
    return data[: len(data) // 2]


def _undecodable_wav() -> bytes:
    """A WAV header for 8 s of MS ADPCM over bytes no ADPCM decoder accepts."""
    data = random.Random(5).randbytes(64_000)
    fmt = struct.pack("<HHIIHH", 2, 1, 16_000, 8_000, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


BAD_INPUTS: dict[str, tuple[Callable[[AudioSamples], bytes], str]] = {
    "empty": (lambda s: b"", "empty"),
    "text": (lambda s: b"meeting notes: ship it on friday\n" * 50, "text file"),
    "image": (lambda s: png_like(), "PNG image"),
    # Seeded: about 1 in 100 os.urandom blobs is taken by ffprobe for "LRC lyrics" (a
    # low-scoring guess), which is then refused for having no sound instead.
    "random": (lambda s: random.Random(1).randbytes(50_000), "not an audio recording"),
    "corrupt": (_corrupt_ogg, "damaged"),
    "truncated": (_truncated_m4a, "damaged"),
    # Probes fine, fails while converting (in the task group that encodes the pieces).
    "undecodable": (lambda s: _undecodable_wav(), "damaged"),
    "too short": (lambda s: s.read("short.ogg"), "only 0.2 s"),
    "silent video": (lambda s: s.silent_video.read_bytes(), "without a sound track"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_bad_input_gets_a_clear_message_and_leaves_nothing(
    audio_samples: AudioSamples, limits: AudioLimits, case: str
) -> None:
    make, expected = BAD_INPUTS[case]
    with pytest.raises(AudioError) as caught:
        await prepare_audio(make(audio_samples), "voice-note.ogg", limits=limits)
    assert expected in caught.value.message
    assert "“voice-note.ogg”" in caught.value.message
    assert leftovers(limits) == []


async def test_over_max_duration_is_refused(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    with pytest.raises(AudioError, match=r"is 0:44 long; the limit is 0:30"):
        await prepare(audio_samples.long, replace(limits, max_duration_seconds=30))
    assert leftovers(limits) == []


async def test_over_max_download_size_is_refused(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    with pytest.raises(AudioError, match=r"the most I take is 0\.1 MB"):
        await prepare(audio_samples.speech, replace(limits, max_download_bytes=100_000))


async def test_a_conversion_past_its_deadline_is_stopped_and_cleaned_up(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    with pytest.raises(AudioError, match="took longer than"):
        await prepare(audio_samples.long, replace(limits, tool_timeout_seconds=0.001))
    assert leftovers(limits) == []
    # At once: prepare_audio returns only after every ffmpeg it started has exited.
    assert ffmpeg_children() == []


async def test_cancelling_mid_conversion_kills_ffmpeg_and_cleans_up(
    audio_samples: AudioSamples, limits: AudioLimits
) -> None:
    task = asyncio.create_task(prepare(audio_samples.long, replace(limits, max_piece_seconds=10)))
    async with asyncio.timeout(10):
        # Polling /proc: there is no event for "a child process started".
        while not ffmpeg_children():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(limits) == []
    # At once: prepare_audio returns only after every ffmpeg it started has exited.
    assert ffmpeg_children() == []


@pytest.mark.parametrize("first", ["cancelled", "deadline"])
async def test_a_tool_cancelled_again_while_it_is_killed_returns_only_once_it_exited(
    first: str,
) -> None:
    # Tools that share a deadline (ffprobe and the measuring ffmpeg, pieces in one task
    # group) time out together, so one is often cancelled again while it is still killing
    # its ffmpeg. It must not return before that ffmpeg has exited: the scratch directory
    # is removed right after, under a process that may still be writing into it.
    # "cancelled": the first cancellation comes at once (often while asyncio still starts
    # the process); "deadline": the tool's own time limit kills it.
    before = set(ffmpeg_children())
    endless = [*FFMPEG_QUIET, "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"]
    limit = 0.2 if first == "deadline" else 60
    task = asyncio.create_task(run_tool(FFMPEG, endless, time_limit=limit))
    async with asyncio.timeout(10):
        # Seen before the deadline: these polls are due long before its timer.
        while not (started := set(ffmpeg_children()) - before):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if first == "cancelled":
            task.cancel()
        # The kill and the wait for its exit begin in one step, and asyncio learns of the
        # exit a few loop iterations after the kernel: the next cancel lands in that wait.
        while not all(killed(pid) for pid in started):  # noqa: ASYNC110
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [pid for pid in started if not reaped(pid)] == []


async def test_ffmpeg_check_passes_here_and_explains_when_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await check_ffmpeg() is None
    monkeypatch.setenv("PATH", "/nonexistent")
    message = await check_ffmpeg()
    assert message is not None
    assert "ffmpeg" in message and "apt-get install ffmpeg" in message


def ffmpeg_children() -> list[int]:
    """Live (not zombie) ffmpeg/ffprobe processes whose parent is this test process."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and name in ("ffmpeg", "ffprobe") and state != "Z":
            found.append(int(entry))
    return found


def reaped(pid: int) -> bool:
    """`pid` has exited and been waited for (a zombie still shows in /proc)."""
    return not Path(f"/proc/{pid}").exists()


def killed(pid: int) -> bool:
    """SIGKILL is pending for `pid`, or it has already died."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
    return fields.get("State", "").startswith(("Z", "X")) or bool(pending & (1 << 8))
