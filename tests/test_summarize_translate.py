"""summarize and translate in the core: what the model is given, privacy, trimming, charging."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.commands.options import parse_options
from bot.events import Place, Said, User
from bot.i18n import speaking, t
from tests.core_harness import running_core
from tests.memory_adapter import make_request


def said(n: int) -> list[Said]:
    people = ("ada", "grace", "linus")
    return [Said(people[i % 3], f"message number {i} about the release", str(i)) for i in range(n)]


async def test_summarize_a_thread_privately_with_names_and_charge(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.reply = "Ada and Grace discussed the release. Open questions: none."
        core.adapter.thread_said = said(40)
        await core.send(make_request("summarize", thread="T1"))
        (body,) = core.gateway.chat_bodies()
        system, user = body["messages"]
        assert "Open questions" in system["content"] and "English" in system["content"]
        lines = user["content"].splitlines()
        assert len(lines) == 40
        assert lines[0] == "[ada] message number 0 about the release"
        assert lines[-1] == "[ada] message number 39 about the release"
        assert lines[38] == "[linus] message number 38 about the release"
        (out,) = core.adapter.messages.values()
        assert out.startswith("**Summary of 40 messages** in this thread")
        assert "left out" not in out and out.endswith(core.gateway.reply)
        # Only the asker sees it, and it is charged to the channel like chat.
        assert set(core.adapter.messages) == core.adapter.ephemeral_ids
        (row,) = await core.store.ledger()
        assert row.charge.command == "summarize" and row.charge.channel == "memory:C1"
        assert row.status == "ok" and row.amounts.tokens_in > 0


async def test_a_long_thread_is_trimmed_from_the_oldest_side(tmp_path: Path) -> None:
    async with running_core(tmp_path, context_tokens=300) as core:
        core.gateway.reply = "A summary."
        core.adapter.thread_said = said(40)
        await core.send(make_request("summarize", thread="T1"))
        user = core.gateway.chat_bodies()[0]["messages"][1]["content"]
        lines = user.splitlines()
        assert 0 < len(lines) < 40
        # The newest messages are the ones kept.
        assert lines[-1].endswith("message number 39 about the release")
        (out,) = core.adapter.messages.values()
        dropped = 40 - len(lines)
        assert f"**Summary of {len(lines)} messages** in this thread" in out
        assert f"the {dropped} oldest did not fit" in out


async def test_summarize_n_reads_the_channel_and_share_posts_for_everyone(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.reply = "Shared summary."
        core.adapter.thread_said = said(3)
        core.adapter.channel_said = said(30)
        await core.send(make_request("summarize 10 share"))
        user = core.gateway.chat_bodies()[0]["messages"][1]["content"]
        assert len(user.splitlines()) == 10 and "number 29" in user
        assert core.adapter.ephemeral_ids == set()
        (out,) = core.adapter.messages.values()
        assert out.startswith("**Summary of 10 messages** in this channel")
        assert out.endswith("Shared summary.")  # the model's answer, streamed in public


async def test_summarize_outside_a_thread_and_bad_counts(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("summarize"))
        await core.send(make_request("summarize 0"))
        texts = list(core.adapter.messages.values())
        assert texts == [
            "⚠️ There is nothing to summarize in this channel yet.",
            "⚠️ Give a number of messages from 1 to 500.",
        ]
        assert core.gateway.chat_bodies() == []
        assert await core.store.ledger() == []


async def test_beside_a_channel_summarize_reads_that_channel(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.reply = "Beside."
        core.adapter.thread_said = said(5)  # the assistant thread itself: not what is meant
        core.adapter.channel_said = said(8)
        asked = make_request("summarize", thread="T9")
        req = replace(
            asked,
            place=replace(asked.place, direct=True),
            viewing=Place("memory", "C7", None, "W1"),
        )
        await core.send(req)
        user = core.gateway.chat_bodies()[0]["messages"][1]["content"]
        assert len(user.splitlines()) == 8
        (out,) = core.adapter.messages.values()
        # A one-to-one conversation: no need to hide it, so it streams there.
        assert "the channel you are looking at" in out and not core.adapter.ephemeral_ids


async def test_translate_the_target_into_the_askers_language(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        zh = User("U2", "li", locale="zh-CN")
        req = replace(
            make_request("", command="translate", user=zh),
            target=Said("ada", "The deploy is blocked on the migration.", "m1"),
        )
        await core.send(req)
        system, user = core.gateway.chat_bodies()[0]["messages"]
        assert "into Chinese (Simplified, China)" in system["content"]
        assert user["content"] == "The deploy is blocked on the migration."
        (out,) = core.adapter.messages.values()
        # The asker reads Chinese: the bot's own words are Chinese too.
        with speaking("zh_CN"):
            header = t(
                "**Translation into {language}** of {author}'s message",
                language="中文 (简体, 中国)",
                author="ada",
            )
        assert out.startswith(header)
        assert core.adapter.ephemeral_ids == set(core.adapter.messages)


@pytest.mark.parametrize(
    ("args", "language", "text"),
    [
        ("French good morning", "French", "good morning"),
        ("to ja: good morning", "Japanese", "good morning"),
        ("it is raining", "English", "it is raining"),
    ],
)
async def test_translate_named_languages_and_text(
    tmp_path: Path, args: str, language: str, text: str
) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request(f"translate {args}"))
        system, user = core.gateway.chat_bodies()[0]["messages"]
        assert f"into {language}." in system["content"] and user["content"] == text


async def test_translate_without_text_takes_the_message_before(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.adapter.thread_said = [Said("ada", "first"), Said("grace", "wie spät ist es?")]
        await core.send(make_request("translate", thread="T1"))
        assert core.gateway.chat_bodies()[0]["messages"][1]["content"] == "wie spät ist es?"
        core.adapter.thread_said = []
        await core.send(make_request("translate"))
        assert list(core.adapter.messages.values())[-1].startswith("⚠️ Tell me what to translate")


def test_share_and_language_options() -> None:
    options = parse_options("share to German Guten Tag", languages=True)
    assert options.share and options.language is not None
    assert (options.language.name, options.rest) == ("German", "Guten Tag")
    # A language code that is also a word is text unless it stands alone or before a colon.
    assert parse_options("it is raining", languages=True).language is None
    assert parse_options("de", languages=True).language is not None
