"""Slack file handling against the fake: host allowlist, login page, size limits, v2 upload."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from adapters.slack.app import SlackAdapter
from adapters.slack.events import Origin, attachment
from adapters.slack.files import ForeignHost
from adapters.slack.settings import SlackSettings
from bot.errors import TooLarge, UserFacingError
from tests.fakes.slack import BOT_USER, FakeSlack, SeenOnce
from tests.memory_adapter import make_request

AUDIO = b"RIFF" + bytes(range(256)) * 64


@pytest.fixture
async def pair() -> AsyncIterator[tuple[FakeSlack, SlackAdapter]]:
    async with FakeSlack() as slack:
        settings = SlackSettings.from_env(slack.env())
        assert settings is not None
        adapter = SlackAdapter(settings, SeenOnce())
        yield slack, adapter
        await adapter.aclose()


async def test_download_with_bot_token(pair: tuple[FakeSlack, SlackAdapter]) -> None:
    slack, adapter = pair
    att = attachment(slack.add_file("voice.m4a", "audio/mp4", AUDIO))
    assert att is not None and att.kind == "audio"
    assert await adapter.download(att, 1_000_000) == AUDIO
    assert slack.downloads == [att.id]


async def test_download_refuses_other_hosts(pair: tuple[FakeSlack, SlackAdapter]) -> None:
    slack, adapter = pair
    # Same server, other host name: the token must not be sent there.
    att = attachment(slack.add_file("x.m4a", "audio/mp4", AUDIO, host="localhost"))
    assert att is not None
    with pytest.raises(ForeignHost):
        await adapter.download(att, 1_000_000)
    assert slack.downloads == []


async def test_login_page_means_missing_files_read(pair: tuple[FakeSlack, SlackAdapter]) -> None:
    slack, adapter = pair
    slack.files_read = False
    att = attachment(slack.add_file("x.m4a", "audio/mp4", AUDIO))
    assert att is not None
    with pytest.raises(UserFacingError) as caught:
        await adapter.download(att, 1_000_000)
    assert "files:read" in caught.value.message


async def test_size_limit_declared_and_streamed(pair: tuple[FakeSlack, SlackAdapter]) -> None:
    slack, adapter = pair
    big = attachment(slack.add_file("big.m4a", "audio/mp4", AUDIO))
    assert big is not None
    with pytest.raises(TooLarge):
        await adapter.download(big, len(AUDIO) - 1)
    assert slack.downloads == []  # refused from the declared size, before any request
    # A file whose declared size lies is still cut off while downloading.
    liar = attachment(slack.add_file("liar.m4a", "audio/mp4", AUDIO, size=10))
    assert liar is not None
    with pytest.raises(TooLarge):
        await adapter.download(liar, len(AUDIO) - 1)


@pytest.mark.parametrize(
    ("mime", "subtype", "kind"),
    [
        ("audio/webm", "slack_audio", "audio"),
        ("video/mp4", "slack_audio", "audio"),
        ("video/mp4", "slack_video", "audio"),
        ("audio/mpeg", None, "audio"),
        ("video/mp4", None, "file"),
        ("image/png", None, "image"),
        ("application/pdf", None, "file"),
    ],
)
async def test_attachment_kinds(
    pair: tuple[FakeSlack, SlackAdapter], mime: str, subtype: str | None, kind: str
) -> None:
    slack, _ = pair
    att = attachment(slack.add_file("f", mime, b"x", subtype=subtype))
    assert att is not None and att.kind == kind


async def test_upload_into_thread(pair: tuple[FakeSlack, SlackAdapter]) -> None:
    slack, adapter = pair
    req = make_request(channel="C1", thread="1700000000.000001", platform="slack")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    posted = await adapter.upload(req, png, "fox.png", "**A fox**")
    assert slack.uploads[posted.id] == png
    (msg,) = [m for m in slack.bot_messages("C1") if m.get("files")]
    assert msg["thread_ts"] == req.place.thread and msg["text"] == "*A fox*"
    assert msg["files"][0]["name"] == "fox.png"


async def test_history_maps_thread_to_turns(pair: tuple[FakeSlack, SlackAdapter]) -> None:
    slack, adapter = pair
    img = slack.add_file("cat.png", "image/png", b"\x89PNGcat")
    parent = slack.user_message("C1", f"<@{BOT_USER}> look", files=[img])
    parent_ts = parent["ts"]
    ts = slack.new_ts()
    slack.messages["C1"][ts] = {"user": BOT_USER, "text": "a cat", "ts": ts, "thread_ts": parent_ts}
    later = slack.user_message("C1", "what colour?", thread_ts=parent_ts)
    base = make_request(channel="C1", thread=parent_ts, platform="slack")
    req = replace(base, text="what colour?", native=Origin(ts=later["ts"]))
    turns = await adapter.history(req)
    assert [(t.role, t.text) for t in turns] == [("user", "look"), ("assistant", "a cat")]
    assert turns[0].image_urls == (
        "data:image/png;base64," + base64.b64encode(b"\x89PNGcat").decode(),
    )
    fetches = adapter.history_cache.fetches
    await adapter.history(req)
    assert adapter.history_cache.fetches == fetches  # cached


async def test_history_is_best_effort_under_rate_limits() -> None:
    async with FakeSlack(replies_rate=0.01, replies_burst=1) as slack:
        settings = SlackSettings.from_env(slack.env())
        assert settings is not None
        adapter = SlackAdapter(settings, SeenOnce())
        parent = slack.user_message("C1", "first")
        later = slack.user_message("C1", "second", thread_ts=parent["ts"])
        base = make_request(channel="C1", thread=parent["ts"], platform="slack")
        req = replace(base, native=Origin(ts=later["ts"]))
        assert [t.text for t in await adapter.history(req)] == ["first"]
        adapter.history_cache.forget("C1", parent["ts"])
        # The next conversations.replies draws a 429 with a long Retry-After: no context.
        assert await adapter.history(req) == ()
        assert slack.rate_limited["conversations.replies"] == 1
        # A message that starts its own thread needs no call at all.
        root = replace(base, native=Origin(ts=parent["ts"]))
        assert await adapter.history(root) == ()
        assert slack.rate_limited["conversations.replies"] == 1
        await adapter.aclose()
