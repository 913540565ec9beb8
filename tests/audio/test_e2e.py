"""Recordings through prepare_audio and the real gateway client to the fake gateway over HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.audio.pipeline import AudioLimits, PreparedAudio, prepare_audio, transcribe_prepared
from bot.gateway.client import Gateway, GatewayError
from bot.secret import Secret
from tests.audio_fixtures import AudioSamples, audio_samples, ffprobe_bytes
from tests.fakes.gateway import FakeGateway

__all__ = ["audio_samples"]

MODEL = "whisper-1"
TOLERANCE = 0.15


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    async with FakeGateway() as gw:
        yield gw


@pytest.fixture
async def gateway(fake: FakeGateway) -> AsyncIterator[Gateway]:
    client = Gateway(fake.base_url, Secret(fake.api_key), max_retries=0)
    yield client
    await client.aclose()


@pytest.fixture
def limits(tmp_path: Path) -> AudioLimits:
    return AudioLimits(temp_dir=str(tmp_path))


async def prepare(path: Path, limits: AudioLimits) -> tuple[bytes, PreparedAudio]:
    data = await asyncio.to_thread(path.read_bytes)
    return data, await prepare_audio(data, path.name, limits=limits)


class Watched:
    """Wraps the real client: answers earlier pieces later, and counts pieces in flight."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.in_flight = 0
        self.peak = 0

    async def transcribe(
        self,
        model: str,
        data: bytes,
        filename: str,
        *,
        mime: str | None = None,
        language: str | None = None,
    ) -> str:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            text = await self.gateway.transcribe(
                model, data, filename, mime=mime, language=language
            )
            # Finish in reverse order so joining by completion would scramble the text.
            part = re.search(r"part(\d+)", filename)
            await asyncio.sleep(0.05 / int(part.group(1)) if part else 0)
            return text
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize(
    "name",
    ["voice.ogg", "clip.webm", "clip.m4a", "speech.wav", "speech.flac", "speech.mp3"],
)
async def test_accepted_formats_reach_the_gateway_byte_identical(
    audio_samples: AudioSamples,
    fake: FakeGateway,
    gateway: Gateway,
    limits: AudioLimits,
    name: str,
) -> None:
    data, prepared = await prepare(audio_samples.path(name), limits)
    text = await transcribe_prepared(gateway, MODEL, prepared)
    [upload] = fake.transcriptions
    assert upload.data == data
    assert (upload.filename, upload.model) == (name, MODEL)
    assert upload.content_type == prepared.pieces[0].mime
    heard = await ffprobe_bytes(upload.data)
    assert heard.seconds == pytest.approx(audio_samples.speech_seconds, abs=TOLERANCE)
    assert text == f"Heard {len(data)} bytes of audio from {name}."


@pytest.mark.parametrize("name", ["speech.aiff", "speech.au", "speech.wma"])
async def test_other_formats_reach_the_gateway_converted(
    audio_samples: AudioSamples,
    fake: FakeGateway,
    gateway: Gateway,
    limits: AudioLimits,
    name: str,
) -> None:
    data, prepared = await prepare(audio_samples.path(name), limits)
    await transcribe_prepared(gateway, MODEL, prepared)
    [upload] = fake.transcriptions
    assert upload.data != data
    assert (upload.filename, upload.content_type) == ("speech.mp3", "audio/mpeg")
    heard = await ffprobe_bytes(upload.data)
    assert (heard.format_name, heard.codec, heard.sample_rate, heard.channels) == (
        "mp3",
        "mp3",
        16000,
        1,
    )
    assert heard.seconds == pytest.approx(audio_samples.speech_seconds, abs=TOLERANCE)


async def test_long_recording_goes_in_pieces_and_comes_back_in_order(
    audio_samples: AudioSamples, fake: FakeGateway, gateway: Gateway, limits: AudioLimits
) -> None:
    _, prepared = await prepare(audio_samples.long, replace(limits, max_piece_seconds=10))
    count = len(prepared.pieces)
    assert count >= 5
    watched = Watched(gateway)
    progress: list[tuple[int, int]] = []
    text = await transcribe_prepared(
        watched,
        MODEL,
        prepared,
        concurrency=2,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert len(fake.transcriptions) == count
    heard = [await ffprobe_bytes(t.data) for t in fake.transcriptions]
    assert all(h.codec == "mp3" and h.seconds <= 10 + TOLERANCE for h in heard)
    assert sum(h.seconds for h in heard) == pytest.approx(audio_samples.long_seconds, abs=0.5)
    # Joined in the recording's order, whatever order the answers came back in.
    assert re.findall(r"part(\d+)", text) == [f"{k:02d}" for k in range(1, count + 1)]
    assert progress == [(k, count) for k in range(count + 1)]
    assert watched.peak == 2


async def test_a_failed_piece_fails_the_transcription(
    audio_samples: AudioSamples, fake: FakeGateway, gateway: Gateway, limits: AudioLimits
) -> None:
    _, prepared = await prepare(audio_samples.long, replace(limits, max_piece_seconds=10))
    fake.fail_next(400, "invalid_request_error", message="audio file could not be decoded")
    with pytest.raises(GatewayError) as caught:
        await transcribe_prepared(gateway, MODEL, prepared, concurrency=1)
    assert caught.value.code == "invalid_request_error"
    # Concurrency 1: the first piece failed and the rest were called off, not sent.
    assert len(fake.transcriptions) <= 1 < len(prepared.pieces)
