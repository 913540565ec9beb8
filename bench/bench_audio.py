"""Voice-note pipeline: bytes-arrived → upload-start latency, event-loop lag, and peak RSS.

Run: .venv/bin/python -m bench.bench_audio [--runs 10]

Recordings are made on the spot with espeak-ng and ffmpeg. Uploads go through the real
gateway client to the fake gateway, which runs in a subprocess. "Upload start" is the
moment the pipeline hands the first piece to Gateway.transcribe. Peak RSS is measured in a
fresh child process per file (ru_maxrss after handling minus before the file was read).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.fake_process import fake_gateway_process
from bot.audio.pipeline import (
    AudioLimits,
    PreparedAudio,
    Standby,
    prepare_audio,
    transcribe_prepared,
)
from bot.gateway.client import Gateway
from bot.secret import Secret
from tests.audio_fixtures import generate, loop_to

KEY = "sk-bench-audio"
MODEL = "whisper-1"
MB = 1_000_000
CHILD_TIMEOUT = 300
ARRIVAL_GAP = 0.5


class FirstUpload:
    """The real client, noting when the first piece is handed over for upload."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.started: float | None = None

    async def transcribe(
        self,
        model: str,
        data: bytes,
        filename: str,
        *,
        mime: str | None = None,
        language: str | None = None,
    ) -> str:
        if self.started is None:
            self.started = time.perf_counter()
        return await self.gateway.transcribe(model, data, filename, mime=mime, language=language)


async def handle(
    gateway: Gateway,
    data: bytes,
    name: str,
    limits: AudioLimits,
    standby: Standby | None = None,
) -> tuple[float, PreparedAudio, float]:
    """(seconds to upload start, the prepared audio, worst event-loop lag meanwhile)."""
    lag = 0.0

    async def heartbeat() -> None:
        nonlocal lag
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lag = max(lag, time.perf_counter() - before - 0.005)

    beat = asyncio.create_task(heartbeat())
    watched = FirstUpload(gateway)
    arrived = time.perf_counter()
    prepared = await prepare_audio(data, name, limits=limits, standby=standby)
    await transcribe_prepared(watched, MODEL, prepared, concurrency=limits.concurrency)
    beat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beat
    assert watched.started is not None
    return watched.started - arrived, prepared, lag


async def latency(
    base_url: str, path: Path, runs: int, limits: AudioLimits, *, warm: bool = False
) -> None:
    data = await asyncio.to_thread(path.read_bytes)
    gateway = Gateway(base_url, Secret(KEY))
    standby = Standby() if warm else None
    try:
        figures: list[float] = []
        lags: list[float] = []
        prepared: PreparedAudio | None = None
        for _ in range(runs):
            if standby is not None:
                async with asyncio.timeout(10):
                    await standby.wait_ready()
            # Voice notes arrive seconds apart: a replacement standby pair has finished
            # loading its libraries by then, and the previous run's processes are gone.
            await asyncio.sleep(ARRIVAL_GAP)
            seconds, prepared, lag = await handle(gateway, data, path.name, limits, standby)
            figures.append(seconds)
            lags.append(lag)
    finally:
        await gateway.aclose()
        if standby is not None:
            await standby.aclose()
    assert prepared is not None
    how = "pass-through" if prepared.passthrough else f"converted, {len(prepared.pieces)} pieces"
    if standby is not None:
        how += f", standby served {standby.served}/{runs}"
    print(
        f"  {path.name:<22} {len(data) / MB:6.1f} MB {prepared.duration_seconds:7.1f} s  {how}\n"
        f"    bytes-arrived → upload-start: median {statistics.median(figures) * 1000:7.1f} ms, "
        f"min {min(figures) * 1000:7.1f} ms, max {max(figures) * 1000:7.1f} ms ({runs} runs); "
        f"worst event-loop lag {max(lags) * 1000:.1f} ms"
    )


def peak_rss(base_url: str, path: Path, limits: AudioLimits) -> dict[str, float]:
    """Handle one file in a fresh interpreter and report its memory high-water marks."""
    import subprocess

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_audio",
            "--child",
            str(path),
            "--base-url",
            base_url,
            "--piece-seconds",
            str(limits.max_piece_seconds),
        ],
        check=True,
        capture_output=True,
        timeout=CHILD_TIMEOUT,
    )
    result: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


async def child(path: Path, base_url: str, piece_seconds: float) -> None:
    gateway = Gateway(base_url, Secret(KEY))
    limits = AudioLimits(max_piece_seconds=piece_seconds)
    # Reset the kernel's high-water mark, so the peak is what handling the file cost.
    await asyncio.to_thread(Path("/proc/self/clear_refs").write_text, "5")
    baseline = _status_mb("VmRSS")
    data = await asyncio.to_thread(path.read_bytes)
    prepared = await prepare_audio(data, path.name, limits=limits)
    prepared_peak = _status_mb("VmHWM")
    await transcribe_prepared(gateway, MODEL, prepared, concurrency=limits.concurrency)
    await gateway.aclose()
    print(
        json.dumps(
            {
                "file_mb": len(data) / MB,
                "baseline_mb": baseline,
                "prepared_peak_mb": prepared_peak,
                "peak_mb": _status_mb("VmHWM"),
                "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "passthrough": float(prepared.passthrough),
                "pieces": float(len(prepared.pieces)),
            }
        )
    )


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (reported in kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as scratch:
        root = Path(scratch)
        made = time.perf_counter()
        samples = generate(root / "samples")
        ogg30 = loop_to(
            samples.long,
            root / "voice-30s.ogg",
            30,
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-ar",
            "48000",
        )
        aiff10 = loop_to(
            samples.long, root / "memo-10min.aiff", 600, "-c:a", "pcm_s16be", "-f", "aiff"
        )
        # 24 MB each: as it is (WAV), converted (AIFF), converted and split (MP3, 25 min).
        # 48 kHz stereo: 24 MB is 125 s, short enough to go as it is.
        wav24 = loop_to(
            samples.long, root / "big-24mb.wav", 24 * MB / 192_000, "-ar", "48000", "-ac", "2"
        )
        aiff24 = loop_to(
            samples.long,
            root / "big-24mb.aiff",
            24 * MB / 44_100,
            "-c:a",
            "pcm_s16be",
            "-f",
            "aiff",
        )
        mp3_24 = loop_to(
            samples.long,
            root / "big-24mb.mp3",
            24 * MB / 16_000,
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
        )
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
            f"test audio made in {time.perf_counter() - made:.1f} s"
        )
        limits = AudioLimits()
        async with fake_gateway_process(KEY) as (base_url, _):
            print(
                f"latency (default limits: {limits.max_piece_seconds:g} s pieces, "
                f"{limits.convert_format} target)"
            )
            print(" with a Standby (pre-started ffprobe/ffmpeg):")
            await latency(base_url, ogg30, runs, limits, warm=True)
            await latency(base_url, aiff10, max(2, runs // 3), limits, warm=True)
            print(" without (tools started per file):")
            await latency(base_url, ogg30, runs, limits)
            print("peak RSS above baseline, each in a fresh process")
            for path in (wav24, aiff24, mp3_24):
                figures = await asyncio.to_thread(peak_rss, base_url, path, limits)
                size = figures["file_mb"]
                prepared = figures["prepared_peak_mb"] - figures["baseline_mb"]
                total = figures["peak_mb"] - figures["baseline_mb"]
                how = (
                    "pass-through" if figures["passthrough"] else f"{figures['pieces']:.0f} pieces"
                )
                print(
                    f"  {path.name:<14} {size:5.1f} MB ({how}): pipeline +{prepared:5.1f} MB "
                    f"= {prepared / size:.2f} x the file; with the upload +{total:5.1f} MB "
                    f"= {total / size:.2f} x (baseline {figures['baseline_mb']:.0f} MB; "
                    f"largest ffmpeg child {figures['children_peak_mb']:.0f} MB)"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--piece-seconds", type=float, default=300.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(child(args.child, args.base_url, args.piece_seconds))
    else:
        asyncio.run(main(args.runs))
