"""Real test audio made during the run: espeak-ng speaks, ffmpeg encodes (session fixture)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SENTENCES = (
    "Alpha. The first voice note talks about the weekly deployment.",
    "Bravo. The second part asks who is on call tonight.",
    "Charlie. The third part says the database migration is finished.",
    "Delta. The fourth part reminds everyone to update the runbook.",
    "Echo. The last part thanks the team for the quick review.",
)
SAMPLE_RATE = 22_050  # espeak-ng's native rate
GAP_SECONDS = 1.0  # silence between sentences in the long recording
LONG_REPEATS = 2

# name → ffmpeg output arguments, all made from the same short speech recording.
ENCODES: dict[str, tuple[str, ...]] = {
    # Discord voice messages: Opus in Ogg at 48 kHz.
    "voice.ogg": ("-c:a", "libopus", "-b:a", "32k", "-ar", "48000"),
    "vorbis.ogg": ("-c:a", "libvorbis", "-q:a", "2"),
    # Slack audio clips: WebM/Opus from browsers, M4A/AAC from the mobile apps.
    "clip.webm": ("-c:a", "libopus", "-b:a", "32k", "-f", "webm"),
    "clip.m4a": ("-c:a", "aac", "-b:a", "48k", "-f", "ipod"),
    "speech.flac": (
        "-c:a",
        "flac",
    ),
    "speech.mp3": ("-c:a", "libmp3lame", "-b:a", "48k"),
    # Not accepted by the gateway: converted.
    "speech.aiff": ("-c:a", "pcm_s16be", "-f", "aiff"),
    "speech.au": ("-c:a", "pcm_mulaw", "-f", "au"),
    "speech.wma": ("-c:a", "wmav2", "-b:a", "48k", "-f", "asf"),
    "speech.mka": ("-c:a", "flac", "-f", "matroska"),
    # 0.2 seconds: a mis-tap.
    "short.ogg": ("-t", "0.2", "-c:a", "libopus", "-b:a", "32k"),
}


@dataclass(frozen=True, slots=True)
class AudioSamples:
    """Paths of generated recordings and what they are known to contain."""

    root: Path
    speech: Path  # wav, two sentences with a short pause
    speech_seconds: float
    long: Path  # wav, every sentence LONG_REPEATS times, GAP_SECONDS of silence between
    long_seconds: float
    # (start, end) of each silence in `long`, as built.
    long_gaps: tuple[tuple[float, float], ...]
    long_mp3: Path  # the same as VBR MP3, whose timestamps ffmpeg can only estimate
    video: Path  # mp4 with an H.264 picture and AAC sound
    silent_video: Path  # mp4 with a picture and no sound

    def path(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


def generate(root: Path) -> AudioSamples:
    """Make every sample under `root` (about a second: the encodes run in parallel)."""
    root.mkdir(parents=True, exist_ok=True)
    parts = [root / f"sentence{i}.wav" for i in range(len(SENTENCES))]
    _parallel(
        [
            ["espeak-ng", "-s", "190", "-w", str(p), text]
            for p, text in zip(parts, SENTENCES, strict=True)
        ]
    )
    silence = root / "gap.wav"
    pause = root / "pause.wav"
    _parallel(
        [
            _ffmpeg(
                "-f", "lavfi", "-i", _silence_source(GAP_SECONDS), "-c:a", "pcm_s16le", str(silence)
            ),
            _ffmpeg("-f", "lavfi", "-i", _silence_source(0.6), "-c:a", "pcm_s16le", str(pause)),
        ]
    )
    speech = root / "speech.wav"
    _concat(root / "speech.list", [parts[0], pause, parts[1]], speech)

    sequence: list[Path] = []
    gaps: list[tuple[float, float]] = []
    clock = 0.0
    for _ in range(LONG_REPEATS):
        for part in parts:
            clock += duration_of(part)
            sequence += [part, silence]
            gaps.append((clock, clock + GAP_SECONDS))
            clock += GAP_SECONDS
    long = root / "long.wav"
    _concat(root / "long.list", sequence, long)

    jobs = [_ffmpeg("-i", str(speech), *args, str(root / name)) for name, args in ENCODES.items()]
    long_mp3 = root / "long.mp3"
    jobs.append(_ffmpeg("-i", str(long), "-c:a", "libmp3lame", "-q:a", "6", str(long_mp3)))
    video = root / "video.mp4"
    silent_video = root / "silent.mp4"
    picture = ("-f", "lavfi", "-i", "color=c=blue:s=64x64:r=10")
    jobs.append(
        _ffmpeg(
            *picture,
            "-i",
            str(speech),
            "-shortest",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-b:a",
            "48k",
            str(video),
        )
    )
    jobs.append(
        _ffmpeg(*picture, "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", str(silent_video))
    )
    _parallel(jobs)
    return AudioSamples(
        root=root,
        speech=speech,
        speech_seconds=duration_of(speech),
        long=long,
        long_seconds=duration_of(long),
        long_gaps=tuple(gaps),
        long_mp3=long_mp3,
        video=video,
        silent_video=silent_video,
    )


def loop_to(source: Path, out: Path, seconds: float, *args: str) -> Path:
    """`source` repeated to `seconds`, encoded with ffmpeg output `args` (benchmark inputs)."""
    _run(_ffmpeg("-stream_loop", "-1", "-i", str(source), "-t", f"{seconds}", *args, str(out)))
    return out


def duration_of(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


@dataclass(frozen=True, slots=True)
class ProbedAudio:
    """What ffprobe (run here, independently of bot.audio.pipeline) says about some bytes."""

    format_name: str
    codec: str
    sample_rate: int
    channels: int
    seconds: float


async def ffprobe_bytes(data: bytes) -> ProbedAudio:
    """ffprobe `data` through a scratch file; raises AssertionError when it is not audio."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "upload"
        await asyncio.to_thread(path.write_bytes, data)
        proc = await asyncio.create_subprocess_exec(
            "ffprobe",
            "-v",
            "error",
            "-of",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode(errors="replace")
    info: dict[str, Any] = json.loads(stdout)
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert audio, f"no audio stream in {info['format']['format_name']}"
    return ProbedAudio(
        format_name=info["format"]["format_name"],
        codec=audio[0]["codec_name"],
        sample_rate=int(audio[0]["sample_rate"]),
        channels=int(audio[0]["channels"]),
        # The sound's own length: a video track may run longer.
        seconds=float(audio[0].get("duration", info["format"]["duration"])),
    )


# Each test module imports the fixture, which makes it one fixture per module to pytest;
# this keeps the generation to once per test session all the same.
_GENERATED: dict[int, AudioSamples] = {}


@pytest.fixture(scope="session")
def audio_samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AudioSamples]:
    key = id(tmp_path_factory)
    if key not in _GENERATED:
        _GENERATED[key] = generate(tmp_path_factory.mktemp("audio"))
    yield _GENERATED[key]


def _silence_source(seconds: float) -> str:
    return f"anullsrc=r={SAMPLE_RATE}:cl=mono:d={seconds}"


def _ffmpeg(*args: str) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args]


def _concat(listing: Path, parts: Sequence[Path], out: Path) -> None:
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    _run(_ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out)))


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def _parallel(cmds: list[list[str]]) -> None:
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for cmd in cmds
    ]
    for cmd, proc in zip(cmds, procs, strict=True):
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {err.decode(errors='replace')}")


def opus_input_rate(data: bytes) -> int:
    """The input sample rate in an Ogg/Opus OpusHead (ffprobe always reports 48 kHz)."""
    at = data.index(b"OpusHead")
    return int.from_bytes(data[at + 12 : at + 16], "little")


def png_like() -> bytes:
    """The start of a PNG image: an attachment that is plainly not audio."""
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)
