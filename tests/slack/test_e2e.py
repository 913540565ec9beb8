"""End to end: fake Slack ↔ Slack adapter ↔ core (dispatcher, commands, store) ↔ fake gateway."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.slack.app import SlackAdapter
from adapters.slack.events import SLASH_COMMANDS
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.settings import SlackSettings
from bot.commands import Command
from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.gateway.client import Gateway
from bot.i18n import LanguageDefaults
from bot.knowledge.memory import ChannelMemory
from bot.secret import Secret
from bot.services import Services, utc_now
from bot.streaming.budgets import Budgets
from storage.base import QuotaConfig
from storage.sqlite.store import SqliteStore
from tests.audio_fixtures import AudioSamples, audio_samples
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, TEAM, FakeSlack, running

__all__ = ["audio_samples"]

REPLY = (
    "## Answer\n\nHere is **the** answer with a [link](https://example.com).\n\n"
    "- one\n- two\n\n```python\nprint('a < b')\n```\n"
)


def commands() -> dict[str, Command]:
    """The core's table; with the audio command until the lead's table lists it."""
    table = command_table()
    return table


@dataclass
class Stack:
    slack: FakeSlack
    gateway: FakeGateway
    adapter: SlackAdapter
    store: SqliteStore
    memory: ChannelMemory
    budgets: Budgets


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with build_stack(tmp_path) as built:
        yield built


@asynccontextmanager
async def build_stack(
    tmp_path: Path,
    *,
    native: bool = True,
    quota: QuotaConfig | None = None,
    env: dict[str, str] | None = None,
    slack: FakeSlack | None = None,
    language: LanguageDefaults | None = None,
    **limits: float,
) -> AsyncIterator[Stack]:
    # A FakeSlack given by the caller outlives this stack (a second adapter, a restart).
    own = FakeSlack(**limits) if slack is None else contextlib.nullcontext(slack)
    async with own as slack, FakeGateway() as fake_gw:
        config = Config(
            api_key=Secret(fake_gw.api_key),
            base_url=fake_gw.base_url,
            db_path=tmp_path / "db",
            quota=quota or QuotaConfig(),
            language=language or LanguageDefaults(),
        )
        store = await SqliteStore.open(config.db_path, config.quota)
        gateway = Gateway(config.base_url, config.api_key)
        budgets = Budgets()
        memory = ChannelMemory(store, gateway, config.knowledge, clock=utc_now, flush_delay=0.01)
        await memory.start()
        services = Services(config, gateway, store, budgets, memory=memory)
        dispatcher = Dispatcher(services, commands())
        extra = dict(env or {})
        if not native:
            extra["CHATOPS_SLACK_NATIVE_STREAM"] = "false"
        settings = SlackSettings.from_env(slack.env(**extra))
        assert settings is not None
        adapter = SlackAdapter(settings, store.first_delivery, budgets, languages=config.language)
        adapter.observer = memory.intake(adapter)
        try:
            async with running(adapter, dispatcher.handler_for(adapter)):
                yield Stack(slack, fake_gw, adapter, store, memory, budgets)
                async with asyncio.timeout(20):
                    await adapter.drained()
        finally:
            await memory.close()
            await gateway.aclose()
            await store.close()


async def mention(slack: FakeSlack, channel: str, text: str, **kw: object) -> str:
    msg = slack.user_message(channel, f"<@{BOT_USER}> {text}", **kw)  # type: ignore[arg-type]
    eid = await slack.send("events_api", slack.event_callback({**msg, "type": "app_mention"}))
    await slack.wait_ack(eid)
    return str(msg["ts"])


def thread_texts(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in slack.thread(channel, ts) if m.get("user") == BOT_USER]


def shown(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    """Every text one message showed, in order (post or stream start, then each change)."""
    return [w.text for w in slack.writes if w.channel == channel and w.ts == ts]


def streams_stopped(slack: FakeSlack) -> bool:
    """Every native stream has been stopped (and the fake saw at least one)."""
    streamed = [m for c in slack.messages.values() for m in c.values() if "streaming" in m]
    return bool(streamed) and not any(m["streaming"] for m in streamed)


async def test_mention_reply_streams_natively_and_ends_with_full_text(stack: Stack) -> None:
    slack, gw = stack.slack, stack.gateway
    gw.chunks = [REPLY[i : i + 4] for i in range(0, len(REPLY), 4)]
    gw.chunk_delay = 0.04
    ts = await mention(slack, "C1", "explain")
    # Streams take standard Markdown: the model's text is shown as written.
    await slack.wait_until(lambda: thread_texts(slack, "C1", ts) == [REPLY])
    await slack.wait_until(lambda: streams_stopped(slack))
    writes = [w for w in slack.writes if w.channel == "C1"]
    assert writes[0].method == "chat.startStream" and writes[0].thread_ts == ts
    assert {w.method for w in writes[1:-1]} == {"chat.appendStream"}
    assert writes[-1].method == "chat.stopStream"
    (start,) = [args for _, method, args in slack.calls if method == "chat.startStream"]
    assert start["recipient_user_id"] == "U1" and start["recipient_team_id"] == TEAM
    # Each append carried only the new text; the message only ever grew.
    texts = shown(slack, "C1", writes[0].ts)
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)) and texts[-1] == REPLY
    assert not [c for c in slack.calls if c[1] in ("chat.update", "chat.postMessage")]
    assert [s["status"] for s in slack.statuses] == ["is thinking…"]
    assert sum(slack.rate_limited.values()) == 0


@pytest.mark.parametrize("refusal", ["unknown_method", "not_allowed_token_type"])
async def test_without_native_streams_replies_are_posted_then_edited(
    stack: Stack, refusal: str
) -> None:
    slack, gw = stack.slack, stack.gateway
    slack.streaming, slack.streaming_error = False, refusal
    gw.chunks = [REPLY[i : i + 4] for i in range(0, len(REPLY), 4)]
    gw.chunk_delay = 0.04
    want = to_mrkdwn(REPLY)
    for channel in ("C1", "C2"):
        ts = await mention(slack, channel, "explain")
        await slack.wait_until(lambda: thread_texts(slack, channel, ts) == [want])  # noqa: B023
        writes = [w for w in slack.writes if w.channel == channel]
        assert writes[0].method == "chat.postMessage" and writes[0].thread_ts == ts
        assert len(writes) >= 2 and all(w.method == "chat.update" for w in writes[1:])
    # Tried once; the workspace is remembered as one without native streams.
    assert [c[1] for c in slack.calls].count("chat.startStream") == 1
    assert sum(slack.rate_limited.values()) == 0


async def test_native_streaming_can_be_switched_off(tmp_path: Path) -> None:
    async with build_stack(tmp_path, native=False) as built:
        slack, gw = built.slack, built.gateway
        gw.reply = "plain **edits**"
        ts = await mention(slack, "C1", "hi")
        await slack.wait_until(lambda: thread_texts(slack, "C1", ts) == ["plain *edits*"])
        assert not [c for c in slack.calls if c[1].endswith("Stream")]


async def test_interrupted_native_reply_keeps_its_text_and_is_stopped(stack: Stack) -> None:
    slack, gw = stack.slack, stack.gateway
    gw.chunks = [f"part{i} " for i in range(12)]
    gw.chunk_delay = 0.02
    gw.quirks.error_after = 6
    ts = await mention(slack, "C1", "go")
    await slack.wait_until(lambda: any("Interrupted" in t for t in thread_texts(slack, "C1", ts)))
    await slack.wait_until(lambda: streams_stopped(slack))
    (text,) = thread_texts(slack, "C1", ts)
    assert text.startswith("part0 part1 part2 part3 part4 part5") and "⚠️ Interrupted:" in text
    methods = [w.method for w in slack.writes if w.channel == "C1"]
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    assert "chat.update" not in methods


async def test_a_status_line_replaced_by_the_answer_stops_the_stream_first(
    stack: Stack, audio_samples: AudioSamples
) -> None:
    # A transcription shows a progress line first; the transcript replaces it, which a
    # stream cannot do by appending: the stream is stopped and the message updated.
    slack, gw = stack.slack, stack.gateway
    gw.transcript = "the transcript"
    clip = slack.add_file(
        "audio_message.webm", "audio/webm", audio_samples.read("clip.webm"), subtype="slack_audio"
    )
    msg = slack.user_message("C1", "", files=[clip])
    await slack.wait_ack(await slack.send("events_api", slack.event_callback(msg)))
    await slack.wait_until(
        lambda: any("the transcript" in t for t in thread_texts(slack, "C1", msg["ts"]))
    )
    methods = [w.method for w in slack.writes if w.channel == "C1"]
    assert methods[0] == "chat.startStream" and "Transcribing" in slack.writes[0].text
    assert methods.index("chat.stopStream") < methods.index("chat.update")
    assert streams_stopped(slack)


async def test_thirty_conversations_in_one_workspace_draw_no_429(stack: Stack) -> None:
    slack, gw = stack.slack, stack.gateway
    text = " ".join(f"word{i}" for i in range(60))
    gw.chunks = [w + " " for w in text.split()]
    gw.chunk_delay = 0.02
    channels = [f"C{n:02d}" for n in range(30)]
    threads = await asyncio.gather(*(mention(slack, c, "go") for c in channels))
    # Native streams show the Markdown, edited messages its mrkdwn.
    wants = ([to_mrkdwn("".join(gw.chunks))], ["".join(gw.chunks)])

    def complete() -> bool:
        pairs = zip(channels, threads, strict=True)
        return all(thread_texts(slack, c, t) in wants for c, t in pairs)

    await slack.wait_until(complete, within=30)
    await slack.wait_until(lambda: streams_stopped(slack))
    assert slack.rate_limited == {}
    # Streams start only while Slack's Tier 2 allowance has room; the rest are edited.
    started = [c for c in slack.calls if c[1] == "chat.startStream"]
    posted = [c for c in slack.calls if c[1] == "chat.postMessage"]
    assert started and posted and len(started) + len(posted) == 30


async def test_image_uploaded_into_thread(stack: Stack) -> None:
    slack = stack.slack
    ts = await mention(slack, "C1", "image a red fox")
    await slack.wait_until(lambda: any(m.get("files") for m in slack.thread("C1", ts)))
    (msg,) = [m for m in slack.thread("C1", ts) if m.get("files")]
    file_id = msg["files"][0]["id"]
    assert slack.uploads[file_id].startswith(b"\x89PNG")


@pytest.mark.parametrize("via", ["bare clip", "shortcut"])
async def test_audio_clip_becomes_transcript(
    stack: Stack, audio_samples: AudioSamples, via: str
) -> None:
    slack, gw = stack.slack, stack.gateway
    gw.transcript = "hello from the clip"
    data = audio_samples.read("clip.webm")
    clip = slack.add_file("audio_message.webm", "audio/webm", data, subtype="slack_audio")
    msg = slack.user_message("C1", "", files=[clip])
    if via == "bare clip":
        eid = await slack.send("events_api", slack.event_callback(msg))
    else:
        eid = await slack.send("interactive", slack.shortcut_payload("transcribe", "C1", msg))
    await slack.wait_ack(eid)
    heard = "hello from the clip"
    await slack.wait_until(lambda: any(heard in t for t in thread_texts(slack, "C1", msg["ts"])))
    assert slack.downloads == [clip["id"]]
    (sent,) = gw.transcriptions
    assert len(sent.data) > 0


async def test_every_slash_command_acked_within_3s_and_answered(stack: Stack) -> None:
    slack, gw = stack.slack, stack.gateway
    gw.reply = "pong"
    for n, name in enumerate(SLASH_COMMANDS):
        channel = f"CS{n}"
        before = len(slack.responses)
        args = {"ask": "ping", "image": "a dot", "model": ""}.get(name, "")
        eid = await slack.send(
            "slash_commands", slack.slash_payload(f"/{name}", args, channel=channel)
        )
        # Slack's own deadline: without an ack within 3 s the user sees an error.
        await slack.wait_ack(eid, within=3.0)

        def answered(channel: str = channel, before: int = before) -> bool:
            posted = any(w.channel == channel for w in slack.writes)
            return posted or len(slack.responses) > before

        await slack.wait_until(answered)


async def test_slash_command_where_bot_is_not_a_member_says_how_to_fix(stack: Stack) -> None:
    slack, gw = stack.slack, stack.gateway
    gw.reply = "never shown"
    slack.not_member.add("CPRIV")
    eid = await slack.send("slash_commands", slack.slash_payload("/ask", "hi", channel="CPRIV"))
    await slack.wait_ack(eid, within=3.0)
    await slack.wait_until(lambda: bool(slack.responses))
    (_, body), *_ = slack.responses
    assert body["response_type"] == "ephemeral" and "/invite" in body["text"]
    assert not [w for w in slack.writes if w.channel == "CPRIV"]


async def test_unexpected_429s_are_waited_out_and_the_full_text_still_lands(
    tmp_path: Path,
) -> None:
    # A workspace far stricter than Slack's published tier: the fake answers 429s, the
    # adapter surfaces them, the streamer waits out Retry-After and still finishes.
    async with build_stack(tmp_path, native=False, update_rate=2.0, update_burst=2) as built:
        slack, gw = built.slack, built.gateway
        gw.chunks = [f"w{i} " for i in range(40)]
        gw.chunk_delay = 0.03
        channels = [f"C{n}" for n in range(4)]
        threads = await asyncio.gather(*(mention(slack, c, "go") for c in channels))
        want = to_mrkdwn("".join(gw.chunks))

        def complete() -> bool:
            pairs = zip(channels, threads, strict=True)
            return all(thread_texts(slack, c, t) == [want] for c, t in pairs)

        await slack.wait_until(complete, within=30)
        assert slack.rate_limited["chat.update"] > 0


async def test_a_clip_sent_in_a_dm_is_transcribed_then_answered(
    stack: Stack, audio_samples: AudioSamples
) -> None:
    slack, gw = stack.slack, stack.gateway
    gw.transcript = "remind me what a 429 means"
    clip = slack.add_file(
        "audio_message.webm", "audio/webm", audio_samples.read("clip.webm"), subtype="slack_audio"
    )
    msg = slack.user_message("D1", "", files=[clip], channel_type="im")
    await slack.wait_ack(await slack.send("events_api", slack.event_callback(msg)))
    answer = to_mrkdwn("You said: remind me what a 429 means")
    await slack.wait_until(lambda: answer in thread_texts(slack, "D1", msg["ts"]))
    texts = thread_texts(slack, "D1", msg["ts"])
    assert texts[0].endswith("remind me what a 429 means") and texts[-1] == answer


async def test_native_stream_429s_are_waited_out_and_the_full_text_still_lands(
    tmp_path: Path,
) -> None:
    # chat.appendStream far stricter than Slack's Tier 4: its 429s reach the core's budget
    # as PlatformRateLimited, and every reply still ends complete and stopped.
    async with build_stack(tmp_path, append_rate=2.0, append_burst=2) as built:
        slack, gw = built.slack, built.gateway
        gw.chunks = [f"w{i} " for i in range(40)]
        gw.chunk_delay = 0.03
        channels = [f"C{n}" for n in range(4)]
        threads = await asyncio.gather(*(mention(slack, c, "go") for c in channels))
        want = "".join(gw.chunks)

        def complete() -> bool:
            pairs = zip(channels, threads, strict=True)
            return all(thread_texts(slack, c, t) == [want] for c, t in pairs)

        await slack.wait_until(complete, within=30)
        await slack.wait_until(lambda: streams_stopped(slack))
        assert slack.rate_limited["chat.appendStream"] > 0
        assert not [c for c in slack.calls if c[1] == "chat.update"]
