"""Slack AI-app threads end to end: prompts, titles, status, the channel the user looks at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.slack.assistant import CONTEXT_EVENT, DEFAULT_PROMPTS, title_of
from adapters.slack.settings import SlackSettings
from bot.errors import ConfigError
from tests.fakes.slack import BOT_USER, DM, TEAM, FakeSlack
from tests.slack.test_e2e import build_stack, streams_stopped, thread_texts

pytestmark = pytest.mark.timeout(30)


async def start_thread(slack: FakeSlack, viewing: str | None = "C1") -> str:
    ts, event = slack.start_assistant_thread(viewing=viewing)
    eid = await slack.send("events_api", slack.event_callback(event))
    await slack.wait_ack(eid)
    return ts


async def ask(slack: FakeSlack, thread_ts: str, text: str) -> str:
    msg = slack.user_message(DM, text, thread_ts=thread_ts, channel_type="im")
    eid = await slack.send("events_api", slack.event_callback(msg))
    await slack.wait_ack(eid)
    return str(msg["ts"])


def answers(slack: FakeSlack, thread_ts: str) -> list[str]:
    """The bot's answers in an assistant thread (not its placeholder root or greeting)."""
    return [
        str(m["text"])
        for m in slack.thread(DM, thread_ts)
        if m.get("user") == BOT_USER and not m.get("subtype") and not m.get("metadata")
    ]


def greeting(slack: FakeSlack, thread_ts: str) -> dict[str, object]:
    (first,) = [m for m in slack.thread(DM, thread_ts) if m.get("metadata")]
    return first


async def test_a_new_thread_is_greeted_with_the_default_prompts(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        ts = await start_thread(slack)
        await slack.wait_until(lambda: bool(slack.suggested))
        (call,) = slack.suggested
        assert call["channel_id"] == DM and call["thread_ts"] == ts
        assert [p["message"] for p in call["prompts"]] == [p.message for p in DEFAULT_PROMPTS]
        # The greeting carries the thread's context (the channel the user was looking at).
        await slack.wait_until(lambda: any(m.get("metadata") for m in slack.thread(DM, ts)))
        meta = greeting(slack, ts)["metadata"]
        assert meta == {
            "event_type": CONTEXT_EVENT,
            "event_payload": {"channel_id": "C1", "team_id": TEAM, "enterprise_id": None},
        }


async def test_prompts_are_configured_per_workspace(tmp_path: Path) -> None:
    prompts = {
        TEAM: [{"title": "Standup notes", "message": "summarize 30"}, "What changed today?"],
        "*": ["for everyone else"],
    }
    env = {"CHATOPS_SLACK_SUGGESTED_PROMPTS": json.dumps(prompts)}
    async with build_stack(tmp_path, env=env) as stack:
        slack = stack.slack
        await start_thread(slack)
        await slack.wait_until(lambda: bool(slack.suggested))
        assert slack.suggested[0]["prompts"] == [
            {"title": "Standup notes", "message": "summarize 30"},
            {"title": "What changed today?", "message": "What changed today?"},
        ]


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '["a", "b", "c", "d", "e"]', '[{"title": "no message"}]', '"text"'],
)
def test_bad_prompt_settings_name_the_variable(raw: str) -> None:
    slack = FakeSlack()
    with pytest.raises(ConfigError) as caught:
        SlackSettings.from_env(slack.env(CHATOPS_SLACK_SUGGESTED_PROMPTS=raw))
    assert caught.value.variable == "CHATOPS_SLACK_SUGGESTED_PROMPTS"


async def test_first_question_titles_the_thread_and_the_answer_streams(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        gw.reply = "Here is a long and careful answer."
        ts = await start_thread(slack)
        await slack.wait_until(lambda: bool(slack.suggested))
        question = "How do I rotate the staging database credentials without downtime?"
        await ask(slack, ts, question)
        await slack.wait_until(lambda: answers(slack, ts) == [gw.reply])
        await slack.wait_until(lambda: streams_stopped(slack))
        assert [(t["thread_ts"], t["title"]) for t in slack.titles] == [(ts, title_of(question))]
        assert len(title_of(question)) <= 60 and title_of(question).endswith("…")
        # Streamed natively into the thread, with the status and its loading messages first.
        methods = [w.method for w in slack.writes if w.channel == DM and w.thread_ts == ts]
        assert "chat.startStream" in methods and methods[-1] == "chat.stopStream"
        (status,) = [s for s in slack.statuses if s["status"]]
        assert status["thread_ts"] == ts and len(status["loading_messages"]) >= 2
        # A second question is not a new topic: the title stays.
        await ask(slack, ts, "and for production?")
        await slack.wait_until(lambda: len(answers(slack, ts)) == 2)
        assert len(slack.titles) == 1


async def test_questions_about_this_channel_read_the_channel_being_viewed(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        slack.user_message("C1", "the deploy is blocked on the migration", user="UADMIN")
        slack.user_message("C2", "lunch is at noon")
        slack.user_message("C2", "who reviews the auth change?")
        ts = await start_thread(slack, viewing="C1")
        await slack.wait_until(lambda: bool(slack.suggested))
        # The user switches to C2 in the client; Slack tells the app.
        changed = slack.assistant_event("assistant_thread_context_changed", ts, viewing="C2")
        await slack.wait_ack(await slack.send("events_api", slack.event_callback(changed)))
        await slack.wait_until(
            lambda: greeting(slack, ts)["metadata"]["event_payload"]["channel_id"] == "C2"  # type: ignore[index]
        )
        await ask(slack, ts, "what is being discussed in this channel?")
        await slack.wait_until(lambda: len(answers(slack, ts)) == 1)
        system = gw.chat_bodies()[-1]["messages"][0]
        assert system["role"] == "system"
        assert "[ada] who reviews the auth change?" in system["content"]
        assert "[ada] lunch is at noon" in system["content"]
        assert "deploy" not in system["content"]
        # A question that is not about the channel does not read it.
        reads = [c for c in slack.calls if c[1] == "conversations.history"]
        await ask(slack, ts, "what is 2+2?")
        await slack.wait_until(lambda: len(answers(slack, ts)) == 2)
        assert [c for c in slack.calls if c[1] == "conversations.history"] == reads
        assert gw.chat_bodies()[-1]["messages"][0]["role"] != "system"


async def test_another_process_finds_the_context_on_the_greeting(tmp_path: Path) -> None:
    """A replica (or a restart) that never saw the thread start reads the context from Slack."""
    async with FakeSlack() as slack:
        async with build_stack(tmp_path / "a", slack=slack) as first:
            ts = await start_thread(first.slack, viewing="C2")
            await slack.wait_until(lambda: any(m.get("metadata") for m in slack.thread(DM, ts)))
        slack.user_message("C2", "the build is red again")
        async with build_stack(tmp_path / "b", slack=slack) as second:
            await ask(slack, ts, "what is this channel about?")
            await slack.wait_until(lambda: len(answers(slack, ts)) == 1)
            body = second.gateway.chat_bodies()[-1]
            assert "[ada] the build is red again" in body["messages"][0]["content"]
            # `summarize` there means the channel beside the thread too, answered in the thread.
            second.gateway.reply = "The build is failing."
            await ask(slack, ts, "summarize")
            await slack.wait_until(lambda: answers(slack, ts)[-1].endswith("The build is failing."))
            assert answers(slack, ts)[-1].startswith(
                "**Summary of 1 message** in the channel you are looking at"
            )
            transcript = second.gateway.chat_bodies()[-1]["messages"][1]["content"]
            assert transcript == "[ada] the build is red again"


async def test_without_the_ai_app_feature_dm_threads_work_as_before(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack, gw = stack.slack, stack.gateway
        slack.status_supported = False  # no assistant:write: no status, titles or prompts
        root = slack.user_message(DM, "first question", channel_type="im")
        await slack.wait_ack(await slack.send("events_api", slack.event_callback(root)))
        await slack.wait_until(lambda: bool(slack.bot_messages(DM)))
        await ask(slack, str(root["ts"]), "a follow-up in the thread")
        await slack.wait_until(
            lambda: "You said: a follow-up in the thread" in thread_texts(slack, DM, root["ts"])
        )
        assert slack.titles == [] and slack.suggested == []
        assert all(m["user"] == BOT_USER for m in slack.bot_messages(DM))
        assert gw.chat_bodies()[-1]["messages"][-1]["content"] == "a follow-up in the thread"
