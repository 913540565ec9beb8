"""The Summarize and Translate message shortcuts and commands against the fake Slack."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.slack.mrkdwn import to_mrkdwn
from bot.i18n import speaking, t
from tests.fakes.slack import FakeSlack
from tests.slack.test_e2e import build_stack, mention

pytestmark = pytest.mark.timeout(30)


async def shortcut(slack: FakeSlack, callback_id: str, message: dict[str, object]) -> None:
    payload = slack.shortcut_payload(callback_id, "C1", message)
    await slack.wait_ack(await slack.send("interactive", payload))


async def test_summarize_shortcut_on_a_40_message_thread_is_private(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        gw.reply = "Ada and root agreed to ship Friday. Open questions: who writes the notes?"
        root = slack.user_message("C1", "release planning, kick-off")
        thread = str(root["ts"])
        replies = [
            slack.user_message(
                "C1", f"point {i} about the release", user=("UADMIN", "U1")[i % 2], thread_ts=thread
            )
            for i in range(39)
        ]
        await shortcut(slack, "summarize", replies[10])
        await slack.wait_until(lambda: bool(slack.responses))
        ((_, answer),) = slack.responses
        assert answer["response_type"] == "ephemeral"
        assert answer["text"].startswith("*Summary of 40 messages* in this thread")
        assert answer["text"].endswith(gw.reply)
        lines = gw.chat_bodies()[0]["messages"][1]["content"].splitlines()
        assert lines[0] == "[ada] release planning, kick-off"
        assert lines[1] == "[root] point 0 about the release"
        assert len(lines) == 40
        # Nothing public was posted, and the channel was charged like chat.
        assert slack.bot_messages("C1") == []
        (row,) = await stack.store.ledger()
        assert (row.charge.command, row.charge.channel, row.status) == (
            "summarize",
            "slack:C1",
            "ok",
        )


async def test_translate_shortcut_uses_the_askers_slack_locale(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        slack.users["U1"]["locale"] = "zh-CN"
        gw.reply = "部署被迁移阻塞了。"
        message = slack.user_message("C1", "The deploy is blocked on the migration.", user="UADMIN")
        await shortcut(slack, "translate", message)
        await slack.wait_until(lambda: bool(slack.responses))
        system, user = gw.chat_bodies()[0]["messages"]
        assert "into Chinese (Simplified, China)" in system["content"]
        assert user["content"] == "The deploy is blocked on the migration."
        ((_, answer),) = slack.responses
        # The asker reads Chinese, so the bot's own words are Chinese too.
        with speaking("zh_CN"):
            header = t(
                "**Translation into {language}** of {author}'s message",
                language="中文 (简体, 中国)",
                author="root",
            )
        assert answer["text"] == to_mrkdwn(f"{header}\n\n{gw.reply}")


async def test_summarize_share_in_a_mention_streams_in_the_thread(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        gw.reply = "Everyone likes tea."
        for text in ("tea?", "tea!", "coffee?"):
            slack.user_message("C1", text)
        ts = await mention(slack, "C1", "summarize 3 share")
        await slack.wait_until(
            lambda: any(m["text"].endswith(gw.reply) for m in slack.thread("C1", ts))
        )
        assert slack.responses == [] and gw.chat_bodies()[0]["messages"][1]["content"] == (
            "[ada] tea?\n[ada] tea!\n[ada] coffee?"
        )


async def test_summarize_where_the_bot_cannot_read_says_so(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        slack.errors["conversations.history"] = "not_in_channel"
        payload = slack.slash_payload("/summarize", "20")
        await slack.wait_ack(await slack.send("slash_commands", payload))
        await slack.wait_until(lambda: bool(slack.responses))
        ((_, answer),) = slack.responses
        assert "not a member of this channel" in answer["text"]
        assert stack.gateway.chat_bodies() == []
