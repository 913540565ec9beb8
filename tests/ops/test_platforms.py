"""Each adapter's connection state for /readyz, and platform API calls counted by method."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from yarl import URL

from adapters.api_calls import api_call_trace
from adapters.console import ConsoleAdapter
from adapters.discord.client import DiscordAdapter
from adapters.discord.routes import discord_route
from adapters.slack.app import SlackAdapter
from adapters.slack.calls import slack_method
from adapters.slack.settings import SlackSettings
from bot.adapter import Connection
from bot.events import Request
from bot.ops.metrics import Metrics
from tests.discord_harness import running as running_discord
from tests.discord_harness import settings_for
from tests.fakes.discord import BOT_ID, FakeDiscord
from tests.fakes.slack import FakeSlack, SeenOnce
from tests.fakes.slack import running as running_slack
from tests.ops_harness import eventually, parse_metrics


def _counted(metrics: Metrics, platform: str) -> dict[str, int]:
    got = parse_metrics(generate_latest(metrics.registry).decode())
    counted: dict[str, int] = {}
    for (name, labels), value in got.samples.items():
        if name == "chatops_platform_api_calls_total" and ("platform", platform) in labels:
            method = dict(labels)["method"]
            counted[method] = counted.get(method, 0) + int(value)
    return counted


@pytest.mark.parametrize(
    ("shards", "detail"), [(None, "gateway session READY"), ("1", "1/1 shards READY")]
)
async def test_discord_ready_and_every_rest_call_counted(
    tmp_path: Path, shards: str | None, detail: str
) -> None:
    metrics = Metrics()
    env = {"DISCORD_SHARD_COUNT": shards} if shards else {}
    async with FakeDiscord() as fake:
        idle = DiscordAdapter(settings_for(fake, tmp_path, **env))
        assert await idle.connection() == Connection(False, "gateway not connected")

        async def answer(req: Request) -> None:
            posted = await adapter.reply(req, "first")
            await adapter.edit(posted, "first, then more")

        trace = api_call_trace("discord", discord_route, metrics)
        async with running_discord(fake, answer, tmp_path, env=env, http_trace=trace) as adapter:
            assert await adapter.connection() == Connection(True, detail)
            await fake.send_message("hello", mention_bot=True)

            def seen() -> dict[str, int]:
                routes: dict[str, int] = {}
                for _, method, path, _ in fake.calls:
                    route = discord_route(method, URL(path))
                    routes[route] = routes.get(route, 0) + 1
                return routes

            async def settled() -> bool:
                return bool(fake.bot_messages()) and _counted(metrics, "discord") == seen()

            await eventually(settled)
            counted = _counted(metrics, "discord")
            assert counted["POST /channels/{id}/messages"] == 1
            assert counted["PATCH /channels/{id}/messages/{id}"] == 1

            # Discord asks for a reconnect and takes its time to let the session resume.
            fake.resumable = True
            fake.hold_ready()
            await fake.reconnect()

            async def down() -> bool:
                return not (await adapter.connection()).up

            await eventually(down)
            fake.release_ready()
            await eventually(lambda: _up(adapter))
        assert not (await adapter.connection()).up
    assert not any(str(BOT_ID) in route for route in counted)


async def _up(adapter: DiscordAdapter) -> bool:
    return (await adapter.connection()).up


def test_discord_routes_keep_no_id_or_token() -> None:
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmFiY2RlZmdoaWprbG1ub3A"
    url = URL(f"https://discord.com/api/v10/webhooks/123456789012345678/{token}/messages/@original")
    assert discord_route("patch", url) == "PATCH /webhooks/{id}/{id}/messages/@original"
    emoji = URL("https://discord.com/api/v10/channels/1/messages/2/reactions/%F0%9F%91%8D/@me")
    assert discord_route("PUT", emoji) == "PUT /channels/{id}/messages/{id}/reactions/{id}/@me"


def test_slack_methods_are_named_by_the_api_method_only() -> None:
    assert slack_method("POST", URL("https://slack.com/api/chat.postMessage")) == "chat.postMessage"
    upload = URL("https://files.slack.com/upload/v1/CwABAAAAXgoAAZ2a")
    assert slack_method("POST", upload) == "other"
    assert slack_method("POST", URL("https://slack.com/api/../../x")) == "other"


async def test_slack_http_listener_state() -> None:
    async with FakeSlack() as slack:
        env = slack.env(
            SLACK_SIGNING_SECRET=slack.signing_secret,
            CHATOPS_SLACK_HTTP_PORT="0",
            CHATOPS_SLACK_HTTP_HOST="127.0.0.1",
        )
        del env["SLACK_APP_TOKEN"]
        settings = SlackSettings.from_env(env)
        assert settings is not None
        adapter = SlackAdapter(settings, SeenOnce())
        assert await adapter.connection() == Connection(False, "Events API listener not started")

        async def ignore(req: Request) -> None:
            pass

        async with running_slack(adapter, ignore):
            state = await adapter.connection()
            assert state == Connection(True, f"Events API listener up on port {adapter.http_port}")
        assert not (await adapter.connection()).up


async def test_console_is_up_while_it_reads(tmp_path: Path) -> None:
    script = tmp_path / "input.txt"
    script.write_text("/help\n")
    states: list[Connection] = []
    with script.open() as stdin:
        console = ConsoleAdapter(tmp_path / "uploads", stdin=stdin, stdout=io.StringIO())
        states.append(await console.connection())

        async def handle(req: Request) -> None:
            states.append(await console.connection())

        await console.run(handle)
    states.append(await console.connection())
    assert [s.up for s in states] == [False, True, False]
