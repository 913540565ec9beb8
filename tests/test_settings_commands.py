"""Channel settings commands: shown to anyone, changed by admins, validated, persisted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.events import User
from storage.base import ChannelSettings
from storage.sqlite.store import SqliteStore
from tests.memory_adapter import make_request
from tests.quota.test_commands import ADMIN, CHANNEL, MEMBER, core_with_quota, last


async def test_settings_shows_defaults_then_changes(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.send(make_request("settings", user=MEMBER))
        shown = core.adapter.writes()[-1]
        assert shown.ephemeral
        assert "model: `gpt-4o-mini` (default)" in shown.text
        assert "persona: none" in shown.text and "temperature: model default" in shown.text
        assert "max reply tokens: no cap (default)" in shown.text
        assert "auto-transcribe voice notes: on" in shown.text
        for text in (
            "persona You are a terse SRE.",
            "temperature 0.25",
            "maxtokens 2,000",
            "autotranscribe off",
        ):
            await core.send(make_request(text, user=ADMIN))
            assert "now" in last(core), last(core)
        await core.send(make_request("settings"))
        text = last(core)
        assert "persona: “You are a terse SRE.”" in text and "temperature: 0.25" in text
        assert "max reply tokens: 2,000\n" in text and "voice notes: off" in text
    # Persisted: a new process sees the same settings.
    store = await SqliteStore.open(tmp_path / "chatops.db")
    try:
        assert await store.channel_settings(CHANNEL) == ChannelSettings(
            system_prompt="You are a terse SRE.",
            temperature=0.25,
            max_tokens=2000,
            auto_transcribe=False,
        )
    finally:
        await store.close()


async def test_the_persona_reaches_the_model(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.send(make_request("persona Answer like a pirate.", user=ADMIN))
        await core.send(make_request("temperature 1.5", user=ADMIN))
        await core.send(make_request("hello"))
        sent = core.gateway.requests[-1].json
        assert sent["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
        await core.send(make_request("persona clear", user=ADMIN))
        assert "cleared" in last(core)
        assert (await core.store.channel_settings(CHANNEL)).system_prompt is None


async def test_reading_each_setting_is_open(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.store.set_channel_settings(
            CHANNEL, ChannelSettings(system_prompt="Be kind.", temperature=0.7, max_tokens=300)
        )
        expected = {
            "persona": "“Be kind.”",
            "temperature": "temperature is 0.7",
            "maxtokens": "capped at 300 tokens",
            "autotranscribe": "voice notes is on",
        }
        for name, says in expected.items():
            await core.send(make_request(name, user=MEMBER))
            assert says in last(core)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("temperature 2.5", "from 0 to 2"),
        ("temperature -0.1", "from 0 to 2"),
        ("temperature warm", "from 0 to 2"),
        ("temperature nan", "from 0 to 2"),
        ("maxtokens -5", "whole number of tokens from 16"),
        ("maxtokens 1.5", "whole number of tokens from 16"),
        ("maxtokens 10", "whole number of tokens from 16"),
        ("maxtokens 99999999999", "whole number of tokens from 16"),
        ("autotranscribe maybe", "Use `autotranscribe on`"),
        ("persona " + "x" * 4001, "keep it under 4,000"),
    ],
)
async def test_bad_values_are_explained_and_change_nothing(
    tmp_path: Path, text: str, says: str
) -> None:
    async with core_with_quota(tmp_path) as core:
        before = ChannelSettings(temperature=0.3, max_tokens=500, system_prompt="p")
        await core.store.set_channel_settings(CHANNEL, before)
        await core.send(make_request(text, user=ADMIN))
        assert says in last(core) and last(core).startswith("⚠️")
        assert await core.store.channel_settings(CHANNEL) == before


@pytest.mark.parametrize(
    "text",
    ["persona be evil", "persona clear", "temperature 1", "maxtokens 100", "autotranscribe off"],
)
async def test_non_admins_cannot_change(tmp_path: Path, text: str) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.send(make_request(text, user=MEMBER))
        assert "Only admins can change" in last(core)
        assert await core.store.channel_settings(CHANNEL) == ChannelSettings()


async def test_the_allowlist_makes_an_admin(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        core.services.config = type(core.services.config)(
            api_key=core.services.config.api_key,
            base_url=core.services.config.base_url,
            admins=frozenset({"U7"}),
        )
        await core.send(make_request("temperature 0", user=User("U7", "listed")))
        assert "now 0" in last(core)
        assert (await core.store.channel_settings(CHANNEL)).temperature == 0


async def test_the_reply_cap_reads_as_none_until_one_is_set(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.send(make_request("maxtokens", user=MEMBER))
        assert "not capped: they run to the model's own output limit" in last(core)
        await core.send(make_request("maxtokens 4096", user=ADMIN))
        assert "now capped at 4,096 tokens" in last(core)
        await core.send(make_request("maxtokens default", user=ADMIN))
        assert "back to the default of no cap" in last(core)
        assert (await core.store.channel_settings(CHANNEL)).max_tokens is None
