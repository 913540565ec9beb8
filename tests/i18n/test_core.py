"""The core speaks the request's language: channel setting, CHATOPS_LANGUAGE, the reader."""

from __future__ import annotations

from pathlib import Path

from bot.events import User
from bot.i18n import LanguageDefaults, speaking, t
from tests.core_harness import running_core
from tests.memory_adapter import make_request

ADMIN = User("UA", "root", is_admin=True)


async def test_an_admin_sets_the_channel_language_and_the_bot_speaks_it(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("language zh-CN"))  # not an admin: refused in English
        await core.send(make_request("language zh-CN", user=ADMIN))
        await core.send(make_request("help"))
        await core.send(make_request("language"))
        refused, changed, listing, shown = list(core.adapter.messages.values())
        assert refused.startswith("⚠️ Only admins can change this channel's language")
        assert changed == "从现在起，我在本频道使用简体中文 (zh-CN)。"
        assert listing.startswith("**命令**")
        with speaking("zh_CN"):
            assert t("This list.") in listing
        assert shown == "我在这里使用简体中文 (zh-CN)（本频道的设置）。"
        settings = await core.store.channel_settings("memory:C1")
        assert settings.language == "zh_CN"
        await core.send(make_request("language default", user=ADMIN))
        await core.send(make_request("language"))
        assert list(core.adapter.messages.values())[-1].startswith("I speak English here")


async def test_the_workspace_default_and_the_model_is_asked_for_the_language(
    tmp_path: Path,
) -> None:
    defaults = LanguageDefaults.from_env({"CHATOPS_LANGUAGE": "zh-CN,W2=en"})
    async with running_core(tmp_path, language=defaults) as core:
        await core.send(make_request("hello"))
        system = core.gateway.chat_bodies()[-1]["messages"][0]
        assert system == {
            "role": "system",
            "content": "Answer in Simplified Chinese, unless the user asks for another language "
            "or writes the whole question in one.",
        }
        await core.send(make_request("hello", workspace="W2", channel="C2"))
        assert core.gateway.chat_bodies()[-1]["messages"][0]["role"] == "user"
        await core.send(make_request("nosuchcommand", command="nosuchcommand"))
        assert list(core.adapter.messages.values())[-1] == (
            "⚠️ 我不认识命令 `nosuchcommand`。试试 `help`。"
        )


async def test_the_readers_own_language_when_nothing_else_is_set(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        reader = User("U7", "li", locale="zh-CN")
        await core.send(make_request("quota", user=reader))
        (view,) = core.adapter.messages.values()
        assert view.startswith("**本频道的配额**") and "今天" in view and "本月" in view
