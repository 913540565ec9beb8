"""DiscordSettings.from_env: what enables the adapter, what is refused, what stays secret."""

from __future__ import annotations

import discord
import pytest
from discord.http import Route

from adapters.discord.settings import DEFAULT_API_BASE, DiscordSettings, invite_url
from bot.errors import ConfigError


def test_no_token_means_no_discord() -> None:
    assert DiscordSettings.from_env({}) is None
    assert DiscordSettings.from_env({"DISCORD_BOT_TOKEN": "  "}) is None


def test_defaults_and_the_token_stays_secret() -> None:
    settings = DiscordSettings.from_env({"DISCORD_BOT_TOKEN": "abc.def.ghi"})
    assert settings is not None
    assert settings.token.reveal() == "abc.def.ghi"
    assert "abc.def" not in repr(settings) and "abc.def" not in str(settings.token)
    assert settings.api_base == DEFAULT_API_BASE and settings.gateway_url is None
    assert settings.shard_count is None and not settings.allow_all_bots


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DISCORD_BOT_TOKEN": "Bot abc"}, "DISCORD_BOT_TOKEN"),
        ({"DISCORD_API_BASE": "discord.example/api"}, "DISCORD_API_BASE"),
        ({"DISCORD_GATEWAY_URL": "http://127.0.0.1:1/gw"}, "DISCORD_GATEWAY_URL"),
        ({"DISCORD_ALLOW_BOTS": "somebot"}, "DISCORD_ALLOW_BOTS"),
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "2"}, "DISCORD_SHARD_IDS"),
        ({"DISCORD_COMMAND_GUILDS": "x"}, "DISCORD_COMMAND_GUILDS"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        DiscordSettings.from_env({"DISCORD_BOT_TOKEN": "t", **env})
    assert caught.value.variable == variable


def test_endpoints_are_applied_to_discord_py() -> None:
    settings = DiscordSettings.from_env(
        {
            "DISCORD_BOT_TOKEN": "t",
            "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10/",
            "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
            "DISCORD_ALLOW_BOTS": "1,2",
            "DISCORD_SHARD_COUNT": "4",
            "DISCORD_SHARD_IDS": "0,1",
        }
    )
    assert settings is not None
    saved = Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        settings.apply_endpoints()
        assert Route.BASE == "http://127.0.0.1:9/api/v10"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway"
    finally:
        Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
    assert settings.allowed_bots == frozenset({1, 2})
    assert (settings.shard_count, settings.shard_ids) == (4, (0, 1))


def test_invite_url_asks_for_what_the_bot_uses() -> None:
    url = invite_url(1234)
    perms = int(url.split("permissions=")[1].split("&")[0])
    granted = discord.Permissions(perms)
    assert granted.send_messages and granted.attach_files and granted.send_messages_in_threads
    assert granted.read_message_history and not granted.administrator
    assert "scope=bot+applications.commands" in url
