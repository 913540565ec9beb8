"""Standby: pre-started ffprobe/ffmpeg give the same answers as the file path, or step aside."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.audio.pipeline import AudioError, AudioLimits, Standby, prepare_audio
from bot.audio.standby import STANDBY_MAX_BYTES
from tests.audio.test_pipeline import ffmpeg_children
from tests.audio_fixtures import AudioSamples, audio_samples

__all__ = ["audio_samples"]


@pytest.fixture
def limits(tmp_path: Path) -> AudioLimits:
    return AudioLimits(temp_dir=str(tmp_path))


@pytest.fixture
async def standby() -> AsyncIterator[Standby]:
    async with Standby() as ready:
        async with asyncio.timeout(10):
            assert await ready.wait_ready()
        yield ready
    assert ffmpeg_children() == [], "closing returns once its tools have exited"


async def ready(standby: Standby) -> None:
    async with asyncio.timeout(10):
        assert await standby.wait_ready()


@pytest.mark.parametrize(
    "name", ["voice.ogg", "vorbis.ogg", "clip.webm", "speech.wav", "speech.flac", "speech.mp3"]
)
async def test_voice_notes_are_probed_by_the_standby_with_the_same_result(
    audio_samples: AudioSamples, limits: AudioLimits, standby: Standby, name: str
) -> None:
    data = audio_samples.read(name)
    cold = await prepare_audio(data, name, limits=limits)
    warm = await prepare_audio(data, name, limits=limits, standby=standby)
    assert standby.served == 1
    assert warm == cold
    assert warm.passthrough and warm.pieces[0].data == data
    assert os.listdir(limits.temp_dir or "") == []


@pytest.mark.parametrize("name", ["clip.m4a", "speech.aiff"])
async def test_containers_that_need_seeking_take_the_file_path(
    audio_samples: AudioSamples, limits: AudioLimits, standby: Standby, name: str
) -> None:
    data = audio_samples.read(name)
    warm = await prepare_audio(data, name, limits=limits, standby=standby)
    assert standby.served == 0
    cold = await prepare_audio(data, name, limits=limits)
    # Ogg streams get a random serial number, so converted bytes differ run to run.
    assert [(p.filename, p.mime, p.seconds) for p in warm.pieces] == [
        (p.filename, p.mime, p.seconds) for p in cold.pieces
    ]
    assert (warm.passthrough, warm.duration_seconds) == (cold.passthrough, cold.duration_seconds)


async def test_a_used_pair_is_replaced_for_the_next_voice_note(
    audio_samples: AudioSamples, limits: AudioLimits, standby: Standby
) -> None:
    data = audio_samples.read("voice.ogg")
    for expected in (1, 2, 3):
        await ready(standby)
        await prepare_audio(data, "voice.ogg", limits=limits, standby=standby)
        assert standby.served == expected


async def test_notes_arriving_together_share_one_standby(
    audio_samples: AudioSamples, limits: AudioLimits, standby: Standby
) -> None:
    data = audio_samples.read("voice.ogg")
    results = await asyncio.gather(
        *(prepare_audio(data, f"v{i}.ogg", limits=limits, standby=standby) for i in range(4))
    )
    assert [r.pieces[0].filename for r in results] == ["v0.ogg", "v1.ogg", "v2.ogg", "v3.ogg"]
    assert len({r.duration_seconds for r in results}) == 1
    assert standby.served == 1


async def test_a_damaged_note_falls_back_and_is_refused_as_before(
    audio_samples: AudioSamples, limits: AudioLimits, standby: Standby
) -> None:
    data = audio_samples.read("voice.ogg")[:300] + os.urandom(30_000)
    with pytest.raises(AudioError, match="damaged"):
        await prepare_audio(data, "v.ogg", limits=limits, standby=standby)
    assert standby.served == 0
    assert os.listdir(limits.temp_dir or "") == []


async def test_a_tap_is_refused_straight_from_the_standby(
    audio_samples: AudioSamples, limits: AudioLimits, standby: Standby
) -> None:
    with pytest.raises(AudioError, match=r"only 0\.2 s"):
        await prepare_audio(
            audio_samples.read("short.ogg"), "v.ogg", limits=limits, standby=standby
        )
    assert standby.served == 1


def test_only_small_pipeable_files_use_the_standby() -> None:
    standby = Standby()
    assert standby.usable("ogg", 100_000)
    assert not standby.usable("ogg", STANDBY_MAX_BYTES + 1)
    assert not standby.usable("m4a", 100_000)
    assert not standby.usable(None, 100_000)


async def test_closing_stops_the_waiting_tools() -> None:
    standby = Standby()
    await ready(standby)
    assert len(ffmpeg_children()) == 2
    await standby.aclose()
    assert ffmpeg_children() == []
    standby.warm()  # closed: starts nothing
    assert ffmpeg_children() == []
