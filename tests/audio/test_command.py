"""The transcribe command end to end: dispatcher → download → pipeline → fake gateway → thread."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot.audio.pipeline import AudioLimits
from bot.commands.table import command_table
from bot.commands.transcribe import transcribe_command
from bot.dispatch import Dispatcher
from bot.events import Attachment, AttachmentKind, Request, User
from storage.base import ChannelSettings
from tests.audio_fixtures import AudioSamples, audio_samples, ffprobe_bytes, png_like
from tests.core_harness import Core, running_core
from tests.memory_adapter import make_request

__all__ = ["audio_samples"]

SPEAKER = User("U7", "Grace")


@dataclass(slots=True)
class Bot:
    core: Core
    limits: AudioLimits
    scratch: Path

    def use(self, limits: AudioLimits) -> None:
        self.limits = limits

    async def send(self, req: Request) -> None:
        table = {**command_table(), "transcribe": transcribe_command(self.limits)}
        dispatcher = Dispatcher(self.core.services, table)
        async with asyncio.timeout(30):
            await dispatcher.handler_for(self.core.adapter)(req)

    def attach(
        self,
        data: bytes,
        filename: str,
        *,
        kind: AttachmentKind = "audio",
        mime: str = "audio/ogg",
        size: int | None = None,
        claimed: float | None = None,
    ) -> Attachment:
        attachment_id = f"F{len(self.core.adapter.files) + 1}"
        self.core.adapter.add_file(attachment_id, data)
        return Attachment(
            attachment_id,
            filename,
            mime,
            len(data) if size is None else size,
            kind,
            duration=claimed,
        )

    @property
    def texts(self) -> list[str]:
        return list(self.core.adapter.messages.values())


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    async with running_core(tmp_path) as core:
        yield Bot(core, AudioLimits(temp_dir=str(scratch)), scratch)
    assert os.listdir(scratch) == [], "temporary files left behind"


def voice_note(*attachments: Attachment, text: str = "", command: str | None = None) -> Request:
    return make_request(text, attachments=attachments, user=SPEAKER, command=command)


async def test_a_voice_note_is_transcribed_into_the_thread_and_charged_by_measure(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    data = audio_samples.read("voice.ogg")
    # Discord claims a duration; billing must ignore it.
    await bot.send(voice_note(bot.attach(data, "voice-message.ogg", claimed=99.0)))
    [upload] = bot.core.gateway.transcriptions
    assert upload.data == data and upload.filename == "voice-message.ogg"
    assert upload.model == "whisper-1"
    [text] = bot.texts
    assert text == f"🎙️ **Grace** · 0:07\nHeard {len(data)} bytes of audio from voice-message.ogg."
    [row] = await bot.core.store.ledger()
    assert (row.status, row.charge.command, row.charge.model) == ("ok", "transcribe", "whisper-1")
    assert row.amounts.requests == 1
    assert row.amounts.audio_seconds == pytest.approx(audio_samples.speech_seconds, abs=0.15)


async def test_auto_transcription_follows_the_channel_setting(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    channel = make_request().place.channel_key
    await bot.core.store.set_channel_settings(channel, ChannelSettings(auto_transcribe=False))
    note = bot.attach(audio_samples.read("voice.ogg"), "voice-message.ogg")
    await bot.send(voice_note(note))
    assert bot.texts == [] and bot.core.gateway.transcriptions == []
    assert await bot.core.store.ledger() == []
    # Asking explicitly still works.
    await bot.send(voice_note(note, text="transcribe"))
    assert len(bot.core.gateway.transcriptions) == 1
    assert bot.texts[0].startswith("🎙️ **Grace** · 0:07\n")


async def test_explicit_command_takes_a_mislabelled_file_and_converts_it(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    aiff = bot.attach(
        audio_samples.read("speech.aiff"), "memo.bin", kind="file", mime="application/octet-stream"
    )
    await bot.send(voice_note(aiff, command="transcribe", text="de"))
    [upload] = bot.core.gateway.transcriptions
    heard = await ffprobe_bytes(upload.data)
    assert (upload.filename, heard.codec, heard.channels) == ("memo.mp3", "mp3", 1)
    assert upload.language == "de"
    assert bot.texts[0].startswith("🎙️ **Grace** · 0:07\nHeard ")


async def test_long_recording_shows_progress_and_rolls_over(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    bot.use(replace(bot.limits, max_piece_seconds=10, concurrency=2))
    sentence = "All work and no play makes a long transcript that needs several messages. "
    bot.core.gateway.transcript = sentence * 3
    await bot.send(voice_note(bot.attach(audio_samples.long.read_bytes(), "standup.wav")))
    pieces = len(bot.core.gateway.transcriptions)
    assert pieces >= 5
    texts = bot.texts
    # 400-character messages: the transcript rolled over into several, nothing lost.
    assert len(texts) >= 3
    assert texts[0].startswith("🎙️ **Grace** · 0:44\n")
    joined = re.sub(r"\s+", " ", " ".join(texts))
    assert joined.count("All work and no play") == 3 * pieces
    first = next(iter(bot.core.adapter.messages))
    shown = bot.core.adapter.history_of(first)
    assert any(f"piece 1 of {pieces}" in frame for frame in shown)
    [row] = await bot.core.store.ledger()
    assert row.amounts.audio_seconds == pytest.approx(audio_samples.long_seconds, abs=0.15)


async def test_gateway_failure_interrupts_and_charges_nothing(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    bot.core.gateway.fail_next(400, "invalid_request_error", message="could not decode audio")
    await bot.send(voice_note(bot.attach(audio_samples.read("voice.ogg"), "v.ogg")))
    [text] = bot.texts
    assert "Interrupted" in text
    [row] = await bot.core.store.ledger()
    assert row.status == "error" and row.amounts.audio_seconds == 0


async def test_quota_is_checked_with_the_measured_duration(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    channel = make_request().place.channel_key
    await bot.core.store.set_limit(channel, "audio_seconds", "day", 5)
    # Claims 2 s; is 7.4 s.
    await bot.send(voice_note(bot.attach(audio_samples.read("voice.ogg"), "v.ogg", claimed=2)))
    [text] = bot.texts
    assert "daily audio limit would be exceeded" in text and "up to 7 s" in text
    assert bot.core.gateway.transcriptions == []


def _bad_inputs(samples: AudioSamples) -> dict[str, tuple[bytes, str]]:
    return {
        "not audio": (png_like(), "is a PNG image, not a recording"),
        "zero length": (b"", "is empty"),
        "corrupt": (samples.read("voice.ogg")[:300] + os.urandom(30_000), "damaged"),
        "a tap": (samples.read("short.ogg"), "only 0.2 s long"),
        "name lies": (b"%PDF-1.4 quarterly numbers", "is a PDF document"),
    }


@pytest.mark.parametrize("case", ["not audio", "zero length", "corrupt", "a tap", "name lies"])
async def test_bad_input_gets_a_clear_reply_and_costs_nothing(
    bot: Bot, audio_samples: AudioSamples, case: str
) -> None:
    data, expected = _bad_inputs(audio_samples)[case]
    await bot.send(voice_note(bot.attach(data, "voice-message.ogg")))
    [text] = bot.texts
    assert text.startswith("⚠️ ") and expected in text
    assert "voice-message.ogg" in text
    assert await bot.core.store.ledger() == []
    assert bot.core.gateway.transcriptions == []


async def test_declared_size_over_the_cap_is_refused_before_downloading(bot: Bot) -> None:
    bot.use(replace(bot.limits, max_download_bytes=1_000_000))
    huge = Attachment("missing", "meeting.ogg", "audio/ogg", 5_000_000, "audio")
    # The adapter holds no such file: a download attempt would fail differently.
    await bot.send(voice_note(huge))
    [text] = bot.texts
    assert "“meeting.ogg” is larger than 1 MB" in text


async def test_size_over_the_cap_while_downloading_is_refused(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    bot.use(replace(bot.limits, max_download_bytes=100_000))
    # The platform under-declares; the download itself stops past the cap.
    lying = bot.attach(audio_samples.read("speech.wav"), "memo.wav", size=1_000)
    await bot.send(voice_note(lying))
    [text] = bot.texts
    assert "“memo.wav” is larger than 0.1 MB, the most I transcribe" in text
    assert await bot.core.store.ledger() == []


async def test_over_the_maximum_duration_is_refused(bot: Bot, audio_samples: AudioSamples) -> None:
    bot.use(replace(bot.limits, max_duration_seconds=30))
    await bot.send(voice_note(bot.attach(audio_samples.long.read_bytes(), "standup.wav")))
    [text] = bot.texts
    assert "is 0:44 long; the limit is 0:30" in text
    assert await bot.core.store.ledger() == []


async def test_several_files_each_get_an_answer(bot: Bot, audio_samples: AudioSamples) -> None:
    files = (
        bot.attach(audio_samples.read("voice.ogg"), "one.ogg"),
        bot.attach(png_like(), "two.ogg"),
        bot.attach(audio_samples.read("clip.m4a"), "three.m4a"),
    )
    await bot.send(voice_note(*files, text="transcribe"))
    first, second, third = bot.texts
    assert first.startswith("🎙️ **Grace** · 0:07 · one.ogg\n")
    assert second == "⚠️ “two.ogg” is a PNG image, not a recording; attach an audio file."
    assert third.startswith("🎙️ **Grace** · 0:07 · three.m4a\n")
    assert [row.status for row in await bot.core.store.ledger()] == ["ok", "ok"]


async def test_explicit_command_without_attachment_explains_usage(bot: Bot) -> None:
    await bot.send(voice_note(command="transcribe"))
    [text] = bot.texts
    assert "Attach a voice note or audio file" in text


async def test_a_voice_note_said_to_the_bot_is_answered_as_if_typed(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    bot.core.gateway.transcript = "what is the capital of France"
    note = bot.attach(audio_samples.read("voice.ogg"), "voice-message.ogg")
    await bot.send(replace(voice_note(note), conversational=True))
    transcript, answer = bot.texts
    assert transcript.endswith("\nwhat is the capital of France")
    chat = [r.json for r in bot.core.gateway.requests if r.path.endswith("/chat/completions")]
    assert chat[-1]["messages"][-1] == {"role": "user", "content": "what is the capital of France"}
    assert answer == "You said: what is the capital of France"
    commands = [row.charge.command for row in await bot.core.store.ledger()]
    assert commands == ["transcribe", "ask"]


async def test_a_voice_note_merely_posted_in_a_channel_gets_only_its_transcript(
    bot: Bot, audio_samples: AudioSamples
) -> None:
    note = bot.attach(audio_samples.read("voice.ogg"), "voice-message.ogg")
    await bot.send(voice_note(note))
    assert len(bot.texts) == 1
    assert not [r for r in bot.core.gateway.requests if r.path.endswith("/chat/completions")]
