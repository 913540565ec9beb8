"""A chat with tools on each platform: Slack fake, Discord fake, and the console process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.gateway.client import Gateway
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.console_harness import run_console
from tests.discord.test_e2e import FAST
from tests.discord_harness import running
from tests.fakes.discord import FakeDiscord
from tests.fakes.gateway import FakeGateway, ModelTurn, ScriptedCall
from tests.slack.test_e2e import build_stack, mention, streams_stopped, thread_texts

IMAGE_CALL = ScriptedCall("generate_image", json.dumps({"prompt": "a red bicycle"}), "call_img")


def draw_turns(gw: FakeGateway) -> None:
    gw.image_delay = 0.5
    gw.turns.append(ModelTurn(text="Drawing it now.", calls=(IMAGE_CALL,)))


async def test_slack_shows_calls_as_native_tasks_and_answers_from_them(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        draw_turns(gw)
        ts = await mention(slack, "C1", "draw a red bicycle")
        await slack.wait_until(lambda: any("_🔧 used:" in t for t in thread_texts(slack, "C1", ts)))
        answers = [m for m in slack.messages["C1"].values() if m.get("tasks")]
        assert len(answers) == 1, answers
        (answer,) = answers
        assert answer["text"].startswith("Drawing it now.\n\nFrom the tools: Generated 1 image")
        assert answer["text"].endswith("_🔧 used: generate_image_")
        # One task for the call, shown running, then complete.
        assert [(t["id"], t["status"]) for t in answer["task_log"]] == [
            ("call_img", "in_progress"),
            ("call_img", "complete"),
        ]
        assert answer["tasks"]["call_img"]["title"] == "generate_image"
        # The image was uploaded into the thread.
        assert len(slack.uploads) == 1 and next(iter(slack.uploads.values()))[:4] == b"\x89PNG"
        ledger = await stack.store.ledger()
        assert [(r.charge.command, r.status, r.amounts.images) for r in ledger] == [
            ("ask", "ok", 0),
            ("image", "ok", 1),
            ("ask", "ok", 0),
        ]
        assert [(c.tool, c.outcome) for c in await stack.store.tool_calls()] == [
            ("generate_image", "ok")
        ]


async def test_slack_tasks_open_the_stream_when_the_model_says_nothing_first(
    tmp_path: Path,
) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        gw.turns.append(ModelTurn(calls=(ScriptedCall("channel_quota", "{}", "call_q"),)))
        ts = await mention(slack, "C1", "how much quota is left?")
        await slack.wait_until(lambda: any("_🔧 used:" in t for t in thread_texts(slack, "C1", ts)))
        await slack.wait_until(lambda: streams_stopped(slack))
        bot = [m for m in slack.messages["C1"].values() if m.get("thread_ts") == ts]
        # The task opened the stream; the answer was streamed into that same message.
        assert len(bot) == 1
        (answer,) = bot
        assert answer["text"].startswith("From the tools:") and "requests" in answer["text"]
        assert answer["tasks"]["call_q"]["status"] == "complete"
        starts = [args for _, method, args in slack.calls if method == "chat.startStream"]
        assert "markdown_text" not in starts[0] and starts[0]["chunks"][0]["id"] == "call_q"


@asynccontextmanager
async def discord_stack(
    tmp_path: Path,
) -> AsyncIterator[tuple[FakeDiscord, FakeGateway, SqliteStore]]:
    async with FakeDiscord(window=1.0) as fake, FakeGateway() as gw:
        config = Config(api_key=Secret(gw.api_key), base_url=gw.base_url, db_path=tmp_path / "db")
        store = await SqliteStore.open(config.db_path)
        gateway = Gateway(config.base_url, config.api_key)
        dispatcher = Dispatcher(Services(config, gateway, store, Budgets()), command_table())
        try:
            async with running(
                fake,
                None,
                tmp_path,
                commands=command_table(),
                limits=FAST,
                first_delivery=store.first_delivery,
                wire=dispatcher.handler_for,
            ):
                yield fake, gw, store
                await dispatcher.drain(10)
        finally:
            await gateway.aclose()
            await store.close()


async def test_discord_shows_a_status_line_while_the_call_runs(tmp_path: Path) -> None:
    async with discord_stack(tmp_path) as (fake, gw, store):
        draw_turns(gw)
        sent = await fake.send_message("draw a red bicycle", mention_bot=True)

        def answered() -> bool:
            return any("_🔧 used:" in m.content for m in fake.replies_to(sent.id))

        await fake.wait_until(answered)
        replies = fake.replies_to(sent.id)
        (answer,) = [m for m in replies if "🔧 used" in m.content]
        shown = [text for _, text in answer.versions]
        assert any(text.endswith("🔧 generating an image…") for text in shown)
        assert answer.content.startswith("Drawing it now.\n\nFrom the tools: Generated 1 image")
        uploaded = [f for m in fake.bot_messages() for f in m.files]
        assert [name for name, _ in uploaded] == ["image-1.png"]
        ledger = await store.ledger()
        assert [(r.charge.command, r.amounts.images) for r in ledger] == [
            ("ask", 0),
            ("image", 1),
            ("ask", 0),
        ]


async def test_console_process_answers_from_a_tool(tmp_path: Path) -> None:
    async with FakeGateway() as gw:
        gw.turns.append(
            ModelTurn(calls=(ScriptedCall("list_models", json.dumps({"filter": "grok-4"})),))
        )
        run = await run_console(gw, tmp_path, "which grok 4 models are there?\n", within=30)
        assert run.returncode == 0, run.err
        text = run.out
        assert "From the tools: 3 models matching 'grok-4'" in text
        assert "grok-4-0709" in text and "_🔧 used: list_models_" in text
        store = await SqliteStore.open(tmp_path / "console.db")
        try:
            assert [(c.tool, c.outcome) for c in await store.tool_calls()] == [
                ("list_models", "ok")
            ]
        finally:
            await store.close()
