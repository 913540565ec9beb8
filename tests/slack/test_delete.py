"""SlackAdapter.delete against the fake Slack: chat.delete, its own limit, streams and history."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.slack.app import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot.errors import PlatformRateLimited
from tests.fakes.slack import TEAM, FakeSlack, SeenOnce
from tests.memory_adapter import make_request


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(delete_burst=2) as fake:
        yield fake


@pytest.fixture
async def adapter(slack: FakeSlack) -> AsyncIterator[SlackAdapter]:
    settings = SlackSettings.from_env(slack.env())
    assert settings is not None
    made = SlackAdapter(settings, SeenOnce())
    yield made
    await made.aclose()


async def test_a_deleted_message_is_gone_and_deleting_it_again_is_quiet(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    root = slack.user_message("C1", "question")
    req = make_request(channel="C1", thread=root["ts"], platform="slack", workspace=TEAM)
    # The thread is cached: what the bot posts and deletes must show in its history.
    await adapter.history_cache.messages("C1", root["ts"])
    placeholder = await adapter.reply(req, "🎙️ Transcribing voice.webm (0:03)…")
    answer = await adapter.reply(req, "the transcript")
    await adapter.delete(placeholder)
    await adapter.delete(placeholder)
    assert [m["text"] for m in slack.bot_messages("C1")] == ["the transcript"]
    cached = await adapter.history_cache.messages("C1", root["ts"])
    assert [m["ts"] for m in cached] == [root["ts"], answer.id]
    deletes = [w for w in slack.writes if w.method == "chat.delete"]
    assert [w.ts for w in deletes] == [placeholder.id]


async def test_a_deleted_native_stream_is_not_stopped_afterwards(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    req = make_request(channel="C1", thread="1.1", platform="slack", workspace=TEAM)
    posted = await adapter.reply(req, "thinking…", streamed=True)
    await adapter.delete(posted)
    await adapter.finalize(posted)
    methods = [m for _, m, _ in slack.calls if m.startswith("chat.")]
    assert methods == ["chat.startStream", "chat.delete"]
    assert slack.bot_messages("C1") == []


async def test_a_delete_429_surfaces_with_retry_after(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    req = make_request(channel="C1", thread="1.1", platform="slack", workspace=TEAM)
    posted = [await adapter.reply(req, f"m{n}") for n in range(3)]
    await adapter.delete(posted[0])
    await adapter.delete(posted[1])
    with pytest.raises(PlatformRateLimited) as caught:
        await adapter.delete(posted[2])
    assert caught.value.retry_after >= 1
    assert slack.rate_limited == {"chat.delete": 1}
    # chat.update is a limit of its own: still untouched.
    await adapter.edit(posted[2], "m2, edited")
    assert [m["text"] for m in slack.bot_messages("C1")] == ["m2, edited"]
