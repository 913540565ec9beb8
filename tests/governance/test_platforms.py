"""Governance across the real platform seams: fake Slack, fake Discord, the console process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from adapters.slack.app import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot.adapter import Adapter, Handler
from bot.commands.models import usable_model_ids
from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.events import Request
from bot.gateway.client import Gateway
from bot.governance.channels import ChannelDefaults
from bot.governance.policy import Policy
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.console_harness import run_console
from tests.discord_harness import running as running_discord
from tests.fakes.discord import CHANNEL_ID, OWNER_ID, FakeDiscord, FakeInteraction
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.fakes.slack import running as running_slack

REFUSED = "Sorry, I'm not enabled in this channel"


def model_calls(gateway: FakeGateway) -> list[str]:
    return [p for p in gateway.paths() if not p.endswith("/models")]


@dataclass
class Core:
    gateway: FakeGateway
    services: Services
    dispatcher: Dispatcher


@asynccontextmanager
async def core(tmp_path: Path, policy: Policy) -> AsyncIterator[Core]:
    async with FakeGateway() as fake:
        config = Config(
            api_key=Secret(fake.api_key),
            base_url=fake.base_url,
            db_path=tmp_path / "chatops.db",
            governance=policy,
        )
        store = await SqliteStore.open(config.db_path)
        gateway = Gateway(config.base_url, config.api_key, retry_base=0.01)
        services = Services(config, gateway, store, Budgets())
        try:
            yield Core(fake, services, Dispatcher(services, command_table()))
        finally:
            await gateway.aclose()
            await store.close()


# --- Slack ---------------------------------------------------------------------------------


async def test_slack_blocked_channel_by_name_dms_off_and_slash_commands(tmp_path: Path) -> None:
    policy = Policy(channels=ChannelDefaults(block=("#general",), dms=False))
    async with FakeSlack() as slack, core(tmp_path, policy) as stack:
        slack.channel_names["C9"] = "general"
        settings = SlackSettings.from_env(slack.env())
        assert settings is not None
        adapter = SlackAdapter(settings, stack.services.store.first_delivery)

        async def mention(channel: str, text: str) -> None:
            msg = slack.user_message(channel, f"<@{BOT_USER}> {text}")
            event = slack.event_callback({**msg, "type": "app_mention"})
            await slack.wait_ack(await slack.send("events_api", event))
            async with asyncio.timeout(10):
                await adapter.drained()

        async with running_slack(adapter, stack.dispatcher.handler_for(adapter)):
            # Events carry only the id: the name comes from conversations.info, once.
            await mention("C9", "hello?")
            await mention("C9", "anyone?")
            texts = [m["text"] for m in slack.bot_messages("C9")]
            assert len(texts) == 1 and REFUSED in texts[0]
            assert model_calls(stack.gateway) == []
            # A slash command is refused privately (response_url), every time.
            for sent in (1, 2):
                await slack.send("slash_commands", slack.slash_payload("/ask", "hi", channel="C9"))
                await slack.wait_until(lambda n=sent: len(slack.responses) >= n)  # type: ignore[misc]
            assert len(slack.responses) == 2
            assert all(REFUSED in body["text"] for _, body in slack.responses)
            # Direct messages are switched off.
            dm = slack.user_message("D1", "hi", channel_type="im")
            await slack.wait_ack(await slack.send("events_api", slack.event_callback(dm)))
            async with asyncio.timeout(10):
                await adapter.drained()
            (answer,) = [m["text"] for m in slack.bot_messages("D1")]
            assert "I don't take direct messages here" in answer
            # Another channel is answered, through the gateway.
            await mention("C1", "hello")
            assert model_calls(stack.gateway) == ["/v1/chat/completions"]
            assert slack.channel_info_calls == 2, "one conversations.info per channel"


async def test_slack_without_the_channels_read_scope_still_matches_ids(tmp_path: Path) -> None:
    policy = Policy(channels=ChannelDefaults(block=("#general", "C7")))
    async with FakeSlack() as slack, core(tmp_path, policy) as stack:
        slack.channel_names["C9"] = "general"
        slack.errors["conversations.info"] = "missing_scope"
        settings = SlackSettings.from_env(slack.env())
        assert settings is not None
        adapter = SlackAdapter(settings, stack.services.store.first_delivery)
        async with running_slack(adapter, stack.dispatcher.handler_for(adapter)):
            for channel in ("C7", "C9", "C9"):
                msg = slack.user_message(channel, f"<@{BOT_USER}> hello")
                event = slack.event_callback({**msg, "type": "app_mention"})
                await slack.wait_ack(await slack.send("events_api", event))
                async with asyncio.timeout(10):
                    await adapter.drained()
        (refusal,) = [m["text"] for m in slack.bot_messages("C7")]
        assert REFUSED in refusal, "an id entry needs no name"
        # The name is unknown without the scope: a name entry cannot match (documented).
        assert len(model_calls(stack.gateway)) == 2
        lookups = [
            args["channel"] for _, method, args in slack.calls if method == "conversations.info"
        ]
        assert lookups == ["C7", "C9"], "a failed lookup is not retried per message"


# --- Discord -------------------------------------------------------------------------------


async def test_discord_blocked_channel_autocomplete_and_model_refusals(tmp_path: Path) -> None:
    policy = Policy(
        channels=ChannelDefaults(block=("general",)),
        models_allow=("gpt-4o*", "gpt-image-1"),
    )
    async with FakeDiscord() as fake, core(tmp_path, policy) as stack:
        open_channel = fake.add_text_channel("random")
        handled: list[str] = []  # event ids the core has finished with

        def wire(adapter: Adapter) -> Handler:
            inner = stack.dispatcher.handler_for(adapter)

            async def handle(req: Request) -> None:
                try:
                    await inner(req)
                finally:
                    handled.append(req.event_id)

            return handle

        async with running_discord(
            fake,
            None,
            tmp_path,
            commands=command_table(),
            models=usable_model_ids(stack.services),
            first_delivery=stack.services.store.first_delivery,
            wire=wire,
        ):
            first = await fake.send_message("hello?", mention_bot=True)
            await fake.wait_until(lambda: bool(fake.replies_to(first.id)))
            (refusal,) = fake.replies_to(first.id)
            assert REFUSED in refusal.content
            # Autocomplete offers only the models this channel may use.
            fi = await fake.send_interaction(
                "model",
                [{"name": "name", "type": 3, "value": "gpt-4", "focused": True}],
                interaction_type=4,
                channel_id=open_channel,
            )
            await fake.wait_until(lambda: fi.callback_type is not None)
            offered = [c["value"] for c in fi.callback_data["choices"]]
            assert offered and all(v.startswith("gpt-4o") for v in offered), offered
            # Naming a disallowed model anyway: refused, with the nearest allowed ones.
            for name, options in (
                ("model", [{"name": "name", "type": 3, "value": "gpt-4-turbo"}]),
                (
                    "image",
                    [
                        {"name": "prompt", "type": 3, "value": "a fox"},
                        {"name": "model", "type": 3, "value": "flux-kontext-pro"},
                    ],
                ),
            ):
                sent = await fake.send_interaction(
                    name, options, user=OWNER_ID, channel_id=open_channel
                )

                def shown(fi: FakeInteraction = sent) -> list[str]:
                    texts = [fake.messages[m].content for m in fi.followups]
                    original = fake.messages.get(fi.original_id or 0)
                    if original is not None and not original.deleted and original.edits:
                        texts.append(original.content)
                    return texts

                await fake.wait_until(lambda: bool(shown()))
                assert any("is not allowed in this channel" in t for t in shown()), shown()
                assert any("Nearest allowed: `" in t for t in shown()), shown()
            # Last, so the drain below covers it: the blocked channel's second message.
            second = await fake.send_message("anyone?", mention_bot=True, channel_id=CHANNEL_ID)
            await fake.wait_until(lambda: f"discord:m{second.id}" in handled)
            assert fake.replies_to(second.id) == [], "one refusal an hour"
            assert model_calls(stack.gateway) == []


# --- console -------------------------------------------------------------------------------


async def test_console_blocked_and_model_allow_list(tmp_path: Path) -> None:
    async with FakeGateway() as fake:
        run = await run_console(
            fake,
            tmp_path,
            "hello\nstill there?\n/ask hi\n",
            env={"CHATOPS_CHANNELS_BLOCK": "console"},
        )
        assert run.returncode == 0, run.err
        out = run.out
        assert out.count(REFUSED) == 2, out  # the first line, and the slash command
        assert model_calls(fake) == []
        run = await run_console(
            fake,
            tmp_path,
            "/model claude-3-5-haiku-latest\n/image a fox\nhello\n",
            env={"CHATOPS_MODELS_ALLOW": "deepseek-*,gpt-4o-mini", "CHATOPS_ADMINS": "console"},
        )
        assert run.returncode == 0, run.err
        out = run.out
        assert "`claude-3-5-haiku-latest` is not allowed in this channel" in out
        assert "`gpt-image-1` is not allowed in this channel" in out
        assert "Nearest allowed: `" in out
        assert "You said: hello" in out
        assert model_calls(fake) == ["/v1/chat/completions"]
