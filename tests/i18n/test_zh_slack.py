"""A zh-CN workspace against the fake Slack: no English sentence from the bot anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.i18n import LanguageDefaults
from tests.fakes.slack import DM, TEAM, FakeSlack
from tests.i18n.english import english_sentences
from tests.slack.test_e2e import build_stack, mention, streams_stopped

pytestmark = pytest.mark.timeout(60)
REPLY = "部署被数据库迁移阻塞了，预计明天完成。"


def everything_said(slack: FakeSlack) -> str:
    """Every text the bot put in front of people: messages, private answers, status lines,
    suggested prompts and the labels of its buttons."""
    said = [w.text for w in slack.writes]
    said += [str(body.get("text", "")) for _, body in slack.responses]
    for status in slack.statuses:
        said.append(str(status.get("status", "")))
        said += [str(m) for m in status.get("loading_messages") or ()]
    for call in slack.suggested:
        said.append(str(call.get("title", "")))
        said += [f"{p['title']} {p['message']}" for p in call["prompts"]]
    blocks = [m.get("blocks") for c in slack.messages.values() for m in c.values()]
    said += [json.dumps(b, ensure_ascii=False) for b in blocks if b]
    return "\n".join(said)


async def slash(slack: FakeSlack, command: str, text: str, channel: str) -> None:
    before = len(slack.responses)
    payload = slack.slash_payload(command, text, channel=channel)
    await slack.wait_ack(await slack.send("slash_commands", payload))
    await slack.wait_until(lambda: len(slack.responses) > before)


async def test_a_zh_cn_workspace_hears_only_chinese_from_the_bot(tmp_path: Path) -> None:
    language = LanguageDefaults.from_env({"CHATOPS_LANGUAGE": f"{TEAM}=zh-CN"})
    async with build_stack(tmp_path, language=language) as stack:
        slack, gw = stack.slack, stack.gateway
        gw.reply = REPLY
        # An AI-app thread: greeting, prompts, status.
        _, started = slack.start_assistant_thread(viewing="C1")
        await slack.wait_ack(await slack.send("events_api", slack.event_callback(started)))
        await slack.wait_until(lambda: bool(slack.suggested))
        # A question, answered with feedback buttons; a 👍 on it.
        asked = await mention(slack, "C1", "部署进展如何？")
        await slack.wait_until(lambda: streams_stopped(slack))
        (answer,) = [m for m in slack.thread("C1", asked) if m.get("blocks")]
        payload = slack.feedback_payload("C1", answer, positive=True)
        await slack.wait_ack(await slack.send("interactive", payload))
        await slack.wait_until(lambda: len(slack.responses) == 1)
        # Views, refusals and errors.
        for n, (command, text) in enumerate(
            [
                ("/help", ""),
                ("/quota", ""),
                ("/settings", ""),
                ("/model", "no-such-model"),
                ("/chatops", "temperature 9"),
                ("/summarize", "0"),
                ("/translate", ""),
                ("/chatops", "nonsense"),
            ]
        ):
            # A channel each: Slack paces posts per channel, and so does the bot.
            await slash(slack, command, text, f"CZ{n}")
        # A private translation through the message shortcut.
        message = slack.user_message("C1", "The deploy is blocked.")
        payload = slack.shortcut_payload("translate", "C1", message)
        await slack.wait_ack(await slack.send("interactive", payload))
        await slack.wait_until(
            lambda: any(REPLY in str(b.get("text")) for _, b in slack.responses[-1:])
        )
    said = everything_said(slack)
    assert "你好！" in said and "总结本频道" in said and "正在思考" in said
    assert "本频道的配额" in said and "这个回答有帮助" in said
    assert REPLY in said and DM in {w.channel for w in slack.writes}
    assert english_sentences(said) == []
