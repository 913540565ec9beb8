"""End to end: fake Discord ↔ adapter ↔ core (dispatcher, commands, store) ↔ fake gateway."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from adapters.discord.client import DISCORD_LIMITS, DiscordAdapter
from bot.adapter import Handler
from bot.commands import Command
from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.events import Place
from bot.gateway.client import Gateway
from bot.knowledge.memory import ChannelMemory
from bot.secret import Secret
from bot.services import Services, utc_now
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.audio_fixtures import AudioSamples, audio_samples, duration_of
from tests.discord_harness import running
from tests.fakes.discord import MEMBER_ID, VOICE_FLAG, FakeDiscord, FakeMessage
from tests.fakes.gateway import FakeGateway

__all__ = ["audio_samples"]

# Discord's limits with time running 5x faster (5 creates + 5 edits per 1 s per channel),
# so the same budget arithmetic plays out in a fifth of the wall time.
SPEED = 5.0
FAST = replace(
    DISCORD_LIMITS,
    edit_interval=DISCORD_LIMITS.edit_interval / SPEED,
    budget_per_second=DISCORD_LIMITS.budget_per_second * SPEED,
    post_per_second=(DISCORD_LIMITS.post_per_second or 1.0) * SPEED,
)
FENCE = re.compile(r"^```[^\n]*$", re.MULTILINE)


def table() -> dict[str, Command]:
    commands = command_table()
    return commands


@dataclass
class Stack:
    discord: FakeDiscord
    gateway: FakeGateway
    adapter: DiscordAdapter
    store: SqliteStore
    dispatcher: Dispatcher
    memory: ChannelMemory


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with FakeDiscord(window=5.0 / SPEED) as fake, FakeGateway(chunk_delay=0.005) as gw:
        config = Config(
            api_key=Secret(gw.api_key),
            base_url=gw.base_url,
            db_path=tmp_path / "chatops.db",
            max_reply_tokens=4000,
        )
        store = await SqliteStore.open(config.db_path)
        gateway = Gateway(config.base_url, config.api_key)
        memory = ChannelMemory(store, gateway, config.knowledge, clock=utc_now, flush_delay=0.01)
        await memory.start()
        services = Services(config, gateway, store, Budgets(), memory=memory)
        dispatcher = Dispatcher(services, table())

        def wire(adapter: DiscordAdapter) -> Handler:
            adapter.observer = memory.intake(adapter)
            return dispatcher.handler_for(adapter)

        async def models(place: Place) -> list[str]:
            return [m.id for m in await gateway.models()]

        try:
            async with running(
                fake,
                None,
                tmp_path,
                commands=table(),
                models=models,
                limits=FAST,
                first_delivery=store.first_delivery,
                wire=wire,
            ) as adapter:
                yield Stack(fake, gw, adapter, store, dispatcher, memory)
                await dispatcher.drain(10)
        finally:
            await memory.close()
            await gateway.aclose()
            await store.close()


def _final(messages: list[FakeMessage]) -> str:
    return "".join(m.content for m in messages)


async def test_mention_gets_a_reply_edited_to_the_full_text(stack: Stack) -> None:
    fake = stack.discord
    stack.gateway.reply = " ".join(f"word{i}" for i in range(60))
    sent = await fake.send_message("tell me something", mention_bot=True)
    await fake.wait_until(lambda: _final(fake.replies_to(sent.id)) == stack.gateway.reply)
    (reply,) = fake.replies_to(sent.id)
    assert len(reply.versions) >= 2, "posted early, then edited to the full text"
    user_turn = stack.gateway.requests[-1].json["messages"][-1]
    assert user_turn["content"] == "tell me something"


def _strip_fences(text: str) -> str:
    return re.sub(r"\s+", " ", FENCE.sub("", text)).strip()


async def test_a_5000_character_reply_with_code_spans_three_messages(stack: Stack) -> None:
    fake = stack.discord
    prose = " ".join(f"Sentence {i} explains one more detail of the fix." for i in range(30))
    code = "\n".join(f"    result_{i} = compute(value_{i})  # step {i}" for i in range(60))
    text = f"{prose}\n\n```python\n{code}\n```\n\nThat is all."
    text += "\n\n" + "Closing words. " * ((5000 - len(text)) // 15)
    assert 4900 < len(text) <= 5200
    stack.gateway.reply = text
    sent = await fake.send_message("explain the fix", mention_bot=True)
    # The text only says what was shown so far (an early frame can already end with
    # "Closing words."); the request's end says the reply is complete. Its first post
    # happens inside the request, so once it shows, draining waits for that request.
    await fake.wait_until(lambda: bool(fake.replies_to(sent.id)), within=20)
    await stack.dispatcher.drain(20)
    parts = fake.replies_to(sent.id)
    assert len(parts) == 3
    for part in parts:
        assert len(part.content) <= 2000
        assert len(FENCE.findall(part.content)) % 2 == 0, "each part closes its code block"
    assert _strip_fences(_final(parts)) == _strip_fences(text)
    assert fake.served_429 == 0


async def test_ten_simultaneous_conversations_finish_without_429s(stack: Stack) -> None:
    fake = stack.discord
    stack.gateway.reply = " ".join(f"token{i}" for i in range(80))
    asks = await asyncio.gather(
        *(fake.send_message(f"question {i}", mention_bot=True) for i in range(10))
    )
    await fake.wait_until(
        lambda: all(_final(fake.replies_to(m.id)) == stack.gateway.reply for m in asks),
        within=30,
    )
    assert fake.served_429 == 0
    assert all(len(fake.replies_to(m.id)) == 1 for m in asks)


async def test_a_spoken_voice_message_becomes_a_transcript(
    stack: Stack, audio_samples: AudioSamples
) -> None:
    fake = stack.discord
    stack.gateway.transcript = "Alpha. The first part explains the deployment window."
    data = audio_samples.read("voice.ogg")
    seconds = duration_of(audio_samples.path("voice.ogg"))
    voice = fake.add_attachment(
        "voice-message.ogg", data, "audio/ogg", duration=seconds, waveform=bytes(range(64))
    )
    sent = await fake.send_message("", attachments=[voice], flags=VOICE_FLAG)
    await fake.wait_until(
        lambda: "deployment window" in _final(fake.replies_to(sent.id)), within=20
    )
    (upload,) = stack.gateway.transcriptions
    assert upload.data[:4] == b"OggS", "Discord's Ogg/Opus goes to the gateway as is"


async def test_every_slash_command_is_deferred_and_answered(
    stack: Stack, audio_samples: AudioSamples
) -> None:
    fake = stack.discord
    voice = fake.add_attachment("voice.ogg", audio_samples.read("voice.ogg"), "audio/ogg")
    options: dict[str, list[dict[str, object]]] = {
        "ask": [{"name": "prompt", "type": 3, "value": "hello there"}],
        "image": [
            {"name": "prompt", "type": 3, "value": "a lighthouse"},
            {"name": "size", "type": 3, "value": "1024x1024"},
        ],
        "transcribe": [{"name": "file", "type": 11, "value": voice["id"]}],
        "translate": [{"name": "text", "type": 3, "value": "bonjour"}],
    }
    # Something for summarize to read (not addressed to the bot, so not answered itself).
    await fake.send_message("we ship on friday")
    resolved = {"attachments": {voice["id"]: voice}}
    names = sorted({c.name for c in table().values() if not c.hidden})
    sent = [
        await fake.send_interaction(
            name, options.get(name), resolved=resolved if name == "transcribe" else None
        )
        for name in names
    ]

    def answered(i: int) -> bool:
        fi = sent[i]
        original = fake.messages.get(fi.original_id or 0)
        shown = [fake.messages[m] for m in fi.followups]
        if original is not None and not original.deleted:
            shown.insert(0, original)
        if fi.name == "image":  # progress first, then the picture
            return any(m.files for m in shown)
        return any(m.edits or m.files for m in shown)

    await fake.wait_until(lambda: all(answered(i) for i in range(len(sent))), within=30)
    for fi in sent:
        assert fi.callback_type == 5, f"/{fi.name} deferred"
        original = fake.messages[fi.original_id or 0]
        first_answer = original.versions[1][0] if len(original.versions) > 1 else None
        if first_answer is not None and fi.callback_at is not None:
            assert fi.callback_at <= first_answer, "acknowledged before answering"
        shown = [original, *(fake.messages[m] for m in fi.followups)]
        assert not any(m.content.startswith("⚠️") for m in shown), (fi.name, shown[0].content)
    image = next(fi for fi in sent if fi.name == "image")
    (picture,) = [m for m in fake.bot_messages() if m.interaction_id == image.id and m.files]
    assert picture.files[0][1][:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_voice_message_in_a_dm_is_transcribed_then_answered(
    stack: Stack, audio_samples: AudioSamples
) -> None:
    fake = stack.discord
    stack.gateway.transcript = "what time is the deploy"
    voice = fake.add_attachment(
        "voice-message.ogg", audio_samples.read("voice.ogg"), "audio/ogg", duration=7.0
    )
    dm = fake.open_dm(MEMBER_ID)
    sent = await fake.send_message("", channel_id=dm, attachments=[voice], flags=VOICE_FLAG)

    def answered() -> bool:
        return any(m.content == "You said: what time is the deploy" for m in fake.bot_messages(dm))

    await fake.wait_until(answered, within=20)
    assert any(m.content.endswith("what time is the deploy") for m in fake.replies_to(sent.id))
