"""Slack native streams (chat.startStream/appendStream/stopStream) through the adapter API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.slack.app import SlackAdapter
from adapters.slack.settings import SlackSettings
from adapters.slack.stream import STREAMS_BURST
from bot.errors import PlatformRateLimited
from bot.events import Posted, Request
from tests.fakes.slack import TEAM, FakeSlack, SeenOnce
from tests.memory_adapter import make_request


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def adapter(slack: FakeSlack) -> AsyncIterator[SlackAdapter]:
    settings = SlackSettings.from_env(slack.env())
    assert settings is not None
    made = SlackAdapter(settings, SeenOnce())
    yield made
    await made.aclose()


def in_thread(channel: str = "C1", thread: str = "1.1") -> Request:
    return make_request(channel=channel, thread=thread, platform="slack", workspace=TEAM)


def methods(slack: FakeSlack) -> list[str]:
    """Message writes, in order (auth.test and the like left out)."""
    return [method for _, method, _ in slack.calls if method.startswith("chat.")]


def message(slack: FakeSlack, posted: Posted) -> dict[str, object]:
    return slack.messages[posted.place.channel][posted.id]


async def test_edits_that_extend_the_text_are_appended_as_markdown(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    posted = await adapter.reply(in_thread(), "**Bold** start", streamed=True)
    await adapter.edit(posted, "**Bold** start, then [a link](https://example.com)")
    await adapter.edit(posted, "**Bold** start, then [a link](https://example.com)")
    await adapter.finalize(posted)
    assert methods(slack) == ["chat.startStream", "chat.appendStream", "chat.stopStream"]
    (append,) = [args for _, m, args in slack.calls if m == "chat.appendStream"]
    assert append["markdown_text"] == ", then [a link](https://example.com)"
    msg = message(slack, posted)
    assert msg["text"] == "**Bold** start, then [a link](https://example.com)"
    assert msg["streaming"] is False


async def test_a_text_that_does_not_extend_stops_the_stream_and_replaces_it(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    posted = await adapter.reply(in_thread(), "🎙️ Transcribing…", streamed=True)
    await adapter.edit(posted, "the transcript")
    await adapter.edit(posted, "the transcript, longer")
    await adapter.finalize(posted)
    assert methods(slack) == [
        "chat.startStream",
        "chat.stopStream",
        "chat.update",
        "chat.update",
    ]
    updates = [args for _, m, args in slack.calls if m == "chat.update"]
    assert [u["markdown_text"] for u in updates] == ["the transcript", "the transcript, longer"]
    assert all("text" not in u for u in updates)
    assert message(slack, posted)["text"] == "the transcript, longer"


async def test_a_stream_slack_ended_by_itself_is_updated_instead(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    posted = await adapter.reply(in_thread(), "one", streamed=True)
    message(slack, posted)["streaming"] = False  # Slack's own timeout
    await adapter.edit(posted, "one two")
    await adapter.finalize(posted)
    assert methods(slack) == ["chat.startStream", "chat.appendStream", "chat.update"]
    assert message(slack, posted)["text"] == "one two"


async def test_a_failed_append_is_not_retried_but_replaced_whole(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    # A 5xx may come after Slack appended: a second append could show the text twice.
    posted = await adapter.reply(in_thread(), "one", streamed=True)
    slack.server_errors["chat.appendStream"] = 1
    await adapter.edit(posted, "one two")
    assert methods(slack) == [
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
        "chat.update",
    ]
    assert message(slack, posted)["text"] == "one two"


async def test_append_429_surfaces_and_the_retry_sends_what_is_missing(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    slack.append_burst = 1
    posted = await adapter.reply(in_thread(), "a", streamed=True)
    await adapter.edit(posted, "a b")
    with pytest.raises(PlatformRateLimited) as caught:
        await adapter.edit(posted, "a b c")
    assert caught.value.retry_after >= 1
    slack.refill()
    await adapter.edit(posted, "a b c d")
    assert message(slack, posted)["text"] == "a b c d"


async def test_streams_start_only_while_the_tier_2_allowance_lasts(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    burst = int(STREAMS_BURST)
    posts = [await adapter.reply(in_thread(f"C{n}"), "hi", streamed=True) for n in range(burst + 2)]
    assert methods(slack).count("chat.startStream") == burst
    assert methods(slack).count("chat.postMessage") == 2
    for posted in posts:
        await adapter.finalize(posted)
    assert methods(slack).count("chat.stopStream") == burst
    assert not slack.rate_limited


async def test_a_start_429_falls_back_to_a_post() -> None:
    async with FakeSlack(stream_burst=1, stream_rate=0.01) as strict:
        settings = SlackSettings.from_env(strict.env())
        assert settings is not None
        made = SlackAdapter(settings, SeenOnce())
        try:
            await made.reply(in_thread("C1"), "streamed", streamed=True)
            await made.reply(in_thread("C2"), "posted", streamed=True)
            await made.reply(in_thread("C3"), "posted too", streamed=True)
        finally:
            await made.aclose()
    # After the 429 no stream is tried until Retry-After has passed.
    assert methods(strict) == [
        "chat.startStream",
        "chat.startStream",
        "chat.postMessage",
        "chat.postMessage",
    ]
    assert strict.rate_limited["chat.startStream"] == 1


async def test_only_streamed_public_thread_replies_stream(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    # A one-shot message is final as posted: no stream that would wait for a stop.
    await adapter.reply(in_thread(), "a settings answer")
    await adapter.reply(in_thread(), "private", ephemeral=True, streamed=True)
    top = make_request(channel="C1", platform="slack", workspace=TEAM)
    await adapter.reply(top, "top level", streamed=True)
    assert "chat.startStream" not in methods(slack)
    assert methods(slack) == ["chat.postMessage", "chat.postEphemeral", "chat.postMessage"]


async def test_other_refusals_post_this_reply_and_try_again_next_time(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    slack.errors["chat.startStream"] = "channel_type_not_supported"
    first = await adapter.reply(in_thread(), "posted", streamed=True)
    del slack.errors["chat.startStream"]
    second = await adapter.reply(in_thread(), "streamed", streamed=True)
    assert methods(slack) == ["chat.startStream", "chat.postMessage", "chat.startStream"]
    assert message(slack, first)["text"] == "posted" and "streaming" in message(slack, second)
