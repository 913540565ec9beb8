"""Discord application commands against the fake: sync on change, defer, follow-ups, menus."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from adapters.discord.client import DiscordAdapter
from bot.commands import Command
from bot.commands.table import command_table
from bot.context import Context
from bot.events import Place, Request
from tests.discord_harness import running
from tests.fakes.discord import (
    CHANNEL_ID,
    EPHEMERAL_FLAG,
    VOICE_FLAG,
    FakeDiscord,
    FakeInteraction,
)


async def _never(ctx: Context) -> None:
    raise AssertionError("adapter tests answer requests themselves")


def full_table() -> dict[str, Command]:
    return command_table()


class Answering:
    """Records requests; answers each after `delay` s through reply (and edit)."""

    def __init__(self, *, ephemeral: bool = False, delay: float = 0.0) -> None:
        self.adapter: DiscordAdapter | None = None
        self.requests: list[Request] = []
        self.ephemeral = ephemeral
        self.delay = delay
        self.done = asyncio.Condition()
        self.answered = 0

    async def __call__(self, req: Request) -> None:
        self.requests.append(req)
        assert self.adapter is not None
        await asyncio.sleep(self.delay)
        posted = await self.adapter.reply(req, f"answer to {req.command}", ephemeral=self.ephemeral)
        if not self.ephemeral:
            await self.adapter.edit(posted, f"full answer to {req.command}: {req.text}")
        async with self.done:
            self.answered += 1
            self.done.notify_all()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10), self.done:
            await self.done.wait_for(lambda: self.answered >= count)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fd:
        yield fd


async def _models(place: Place) -> Sequence[str]:
    return ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "o4-mini"]


async def test_commands_sync_once_and_again_only_when_they_change(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering()
    async with running(fake, answering, tmp_path, commands=full_table()) as adapter:
        assert adapter.synced_commands is True
    async with running(fake, answering, tmp_path, commands=full_table()) as adapter:
        assert adapter.synced_commands is False
    changed = full_table()
    changed["extra"] = Command("extra", "Something new.", "extra", _never)
    async with running(fake, answering, tmp_path, commands=changed) as adapter:
        assert adapter.synced_commands is True
    assert len(fake.command_syncs) == 2
    first = {(c.get("type", 1), c["name"]) for c in fake.command_syncs[0]}
    core = {
        name
        for name, command in full_table().items()
        if name == command.name and not command.hidden
    }
    assert {"ask", "image", "transcribe", "models", "model", "quota", "help"} <= core
    menus = {(3, "Transcribe"), (3, "Summarize"), (3, "Translate")}
    assert {(1, n) for n in core} | menus == first, "one per command, no alias"
    options = {c["name"]: c.get("options", []) for c in fake.command_syncs[0]}
    size = next(o for o in options["image"] if o["name"] == "size")
    assert [c["value"] for c in size["choices"]][:3] == ["1024x1024", "1536x1024", "1024x1536"]
    assert next(o for o in options["model"] if o["name"] == "name")["autocomplete"] is True
    assert options["transcribe"][0]["type"] == 11  # ATTACHMENT


async def test_every_slash_command_is_deferred_then_answered(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering(delay=0.2)
    table = full_table()
    options: dict[str, list[dict[str, object]]] = {
        "ask": [{"name": "prompt", "type": 3, "value": "why 429?"}],
        "image": [
            {"name": "prompt", "type": 3, "value": "a red fox"},
            {"name": "size", "type": 3, "value": "1536x1024"},
            {"name": "count", "type": 4, "value": 2},
        ],
        "models": [{"name": "filter", "type": 3, "value": "gpt"}],
        "model": [{"name": "name", "type": 3, "value": "gpt-4o"}],
        "settings": [{"name": "arguments", "type": 3, "value": "temperature 0.2"}],
    }
    audio = fake.add_attachment("note.ogg", b"OggS" + bytes(100), "audio/ogg")
    options["transcribe"] = [{"name": "file", "type": 11, "value": audio["id"]}]
    resolved = {"attachments": {audio["id"]: audio}}
    names = sorted({c.name for c in table.values() if not c.hidden})
    async with running(fake, answering, tmp_path, commands=table) as adapter:
        answering.adapter = adapter
        sent: list[FakeInteraction] = []
        for name in names:
            sent.append(
                await fake.send_interaction(
                    name, options.get(name), resolved=resolved if name == "transcribe" else None
                )
            )
        await answering.wait(len(names))
        await fake.wait_until(
            lambda: all(fake.messages[i.original_id or 0].edits >= 2 for i in sent)
        )
    by_command = {r.command: r for r in answering.requests}
    assert set(by_command) == set(names)
    assert by_command["ask"].text == "why 429?"
    assert by_command["image"].text == "size=1536x1024 n=2 a red fox"
    assert by_command["models"].text == "gpt"
    assert by_command["settings"].text == "temperature 0.2"
    (att,) = by_command["transcribe"].attachments
    assert (att.kind, att.filename) == ("audio", "note.ogg")
    for interaction in sent:
        assert interaction.callback_type == 5, "deferred (thinking)"
        original = fake.messages[interaction.original_id or 0]
        assert original.content == f"full answer to {interaction.name}: " + (
            by_command[interaction.name].text
        )
        private = table[interaction.name].private
        assert bool(interaction.callback_flags & EPHEMERAL_FLAG) == private


async def test_ephemeral_answer_to_a_public_defer_replaces_the_thinking_message(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering(ephemeral=True)
    async with running(fake, answering, tmp_path, commands=full_table()) as adapter:
        answering.adapter = adapter
        fi = await fake.send_interaction("ask", [{"name": "prompt", "type": 3, "value": "x"}])
        await answering.wait(1)
    assert fake.messages[fi.original_id or 0].deleted
    (followup,) = [fake.messages[m] for m in fi.followups]
    assert followup.flags & EPHEMERAL_FLAG and followup.content == "answer to ask"


async def test_transcribe_context_menu_on_a_voice_message(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering()
    async with running(fake, answering, tmp_path, commands=full_table()) as adapter:
        answering.adapter = adapter
        voice = fake.add_attachment("voice-message.ogg", b"OggS", "audio/ogg", duration=2.0)
        # A voice note in a channel the bot is not addressed in still reaches it (flagged).
        target = await fake.send_message("", attachments=[voice], flags=VOICE_FLAG)
        await answering.wait(1)
        await fake.send_interaction("Transcribe", command_type=3, target=target)
        await answering.wait(2)
    menu = answering.requests[1]
    assert menu.command == "transcribe"
    (att,) = menu.attachments
    assert att.kind == "audio" and att.duration == 2.0


async def test_model_names_autocomplete_from_the_gateway_list(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering()
    async with running(fake, answering, tmp_path, commands=full_table(), models=_models):
        fi = await fake.send_interaction(
            "model",
            [{"name": "name", "type": 3, "value": "4o", "focused": True}],
            interaction_type=4,
        )
        await fake.wait_until(lambda: fi.callback_type is not None)
    assert fi.callback_type == 8
    assert [c["value"] for c in fi.callback_data["choices"]] == ["gpt-4o", "gpt-4o-mini"]
    assert not answering.requests, "autocomplete is not a request"


async def test_a_reply_after_the_interaction_expired_continues_as_messages(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering()
    async with running(
        fake, answering, tmp_path, commands=full_table(), interaction_ttl=0.3
    ) as adapter:
        answering.adapter = adapter
        fi = await fake.send_interaction("ask", [{"name": "prompt", "type": 3, "value": "x"}])
        await answering.wait(1)
        req = answering.requests[0]
        await asyncio.sleep(0.4)
        later = await adapter.reply(req, "part two")
        await adapter.edit(later, "part two, complete")
    message = fake.messages[int(later.id)]
    assert message.webhook_id is None and message.channel_id == CHANNEL_ID
    assert message.reference == fi.original_id, "continues the conversation"
    assert message.content == "part two, complete"


def _big_png(path: Path) -> bytes:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", "nullsrc=s=1600x1600,geq=random(1)*255:128:128",
            "-frames:v", "1", "-y", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


async def test_an_image_over_the_upload_limit_is_re_encoded(tmp_path: Path) -> None:
    data = await asyncio.to_thread(_big_png, tmp_path / "noise.png")
    limit = len(data) // 3
    answering = Answering()
    async with FakeDiscord(filesize_limit=limit) as fake:
        async with running(fake, answering, tmp_path, commands=full_table()) as adapter:
            answering.adapter = adapter
            await fake.send_interaction("image", [{"name": "prompt", "type": 3, "value": "n"}])
            await answering.wait(1)
            posted = await adapter.upload(answering.requests[0], data, "noise.png", "here")
        (name, sent), *_ = fake.messages[int(posted.id)].files
    assert name == "noise.jpg" and len(sent) <= limit
    assert sent[:2] == b"\xff\xd8", "a JPEG"


async def test_an_invalidated_interaction_token_falls_back_to_messages(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    answering = Answering()
    async with running(fake, answering, tmp_path, commands=full_table()) as adapter:
        answering.adapter = adapter
        fi = await fake.send_interaction("ask", [{"name": "prompt", "type": 3, "value": "x"}])
        await answering.wait(1)
        # Discord refuses the token early (e.g. the interaction was deleted): 50027.
        fake.failures[("POST", f"/webhooks/{fi.payload['application_id']}/{fi.token}")] = (
            401,
            50027,
            "Invalid Webhook Token",
        )
        later = await adapter.reply(answering.requests[0], "after the token died")
    message = fake.messages[int(later.id)]
    assert message.webhook_id is None and message.reference == fi.original_id


async def test_an_interactions_messages_are_deleted_through_its_webhook(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    deleted = asyncio.Event()
    live: list[DiscordAdapter] = []

    async def answer_then_delete(req: Request) -> None:
        (adapter,) = live
        first = await adapter.reply(req, "⏳ working…")
        second = await adapter.reply(req, "the answer")
        await adapter.delete(first)
        await adapter.delete(second)
        deleted.set()

    async with running(fake, answer_then_delete, tmp_path, commands=full_table()) as adapter:
        live.append(adapter)
        fi = await fake.send_interaction("ask", [{"name": "prompt", "type": 3, "value": "x"}])
        async with asyncio.timeout(10):
            await deleted.wait()
    (followup,) = fi.followups
    assert fake.messages[fi.original_id or 0].deleted and fake.messages[followup].deleted
    webhook_deletes = [c for c in fake.calls if c[1] == "DELETE" and c[2].startswith("/webhooks")]
    assert len(webhook_deletes) == 2
