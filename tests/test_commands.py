"""Core end to end: dispatcher → commands → gateway over HTTP → streamed replies and the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.events import Attachment, Turn, User
from storage.base import ChannelSettings
from tests.core_harness import running_core
from tests.fakes.gateway import png_bytes
from tests.memory_adapter import make_request

ADMIN = User("U0", "admin", is_admin=True)


async def test_mention_streams_reply_and_records_usage(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.chunks = ["Hel", "lo, ", "wor", "ld!"]
        await core.send(make_request("say hello"))
        assert list(core.adapter.messages.values()) == ["Hello, world!"]
        sent = core.gateway.requests[-1].json
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
        assert sent["messages"][-1] == {"role": "user", "content": "say hello"}
        [row] = await core.store.ledger()
        assert (row.status, row.charge.command, row.charge.model) == ("ok", "ask", "gpt-4o-mini")
        # The usage the fake reported, not the estimate (which would include max_tokens).
        assert 0 < row.amounts.tokens_out < 100


async def test_history_and_persona_reach_the_gateway(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.adapter.turns = [Turn("user", "my name is Ada"), Turn("assistant", "Hi Ada")]
        channel = make_request().place.channel_key
        await core.store.set_channel_settings(
            channel, ChannelSettings(system_prompt="You are terse.")
        )
        await core.send(make_request("what is my name?"))
        messages = core.gateway.requests[-1].json["messages"]
        assert messages[0] == {"role": "system", "content": "You are terse."}
        assert [m["content"] for m in messages[1:]] == [
            "my name is Ada",
            "Hi Ada",
            "what is my name?",
        ]


async def test_model_choice_is_validated_and_persisted(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("model gpt-4o-mimi", user=ADMIN))
        refusal = list(core.adapter.messages.values())[-1]
        assert "no model `gpt-4o-mimi`" in refusal and "`gpt-4o-mini`" in refusal
        await core.send(make_request("model claude-sonnet-4-20250514"))
        assert "Only admins" in list(core.adapter.messages.values())[-1]
        await core.send(make_request("model CLAUDE-sonnet-4-20250514", user=ADMIN))
        await core.send(make_request("hi"))
        assert core.gateway.requests[-1].json["model"] == "claude-sonnet-4-20250514"
        await core.send(make_request("model"))
        assert "claude-sonnet-4-20250514" in list(core.adapter.messages.values())[-1]


async def test_empty_prompt_is_explained_and_not_charged(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("ask", command=None))
        await core.send(make_request("   ", command="ask"))
        texts = list(core.adapter.messages.values())
        assert len(texts) == 2 and all("Ask me something" in t for t in texts)
        assert await core.store.ledger() == []
        assert not [r for r in core.gateway.requests if r.path.endswith("/chat/completions")]


async def test_bad_key_gives_plain_advice_and_releases_quota(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.fail_next(401, "invalid_api_key")
        await core.send(make_request("hello"))
        [text] = core.adapter.messages.values()
        assert "WEELINKING_API_KEY" in text
        [row] = await core.store.ledger()
        assert row.status == "error" and row.amounts.tokens == 0
        # The service carries on.
        await core.send(make_request("again"))
        assert list(core.adapter.messages.values())[-1] == "You said: again"


async def test_mid_stream_failure_keeps_partial_text_and_says_so(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.chunks = ["one ", "two ", "three ", "four"]
        core.gateway.quirks.error_after = 2
        await core.send(make_request("count"))
        [text] = core.adapter.messages.values()
        assert text.startswith("one two")
        assert "interrupted" in text.lower()
        [row] = await core.store.ledger()
        assert row.status == "interrupted" and row.amounts.tokens_out > 0


async def test_gateway_down_is_explained(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.gateway.close()
        await core.send(make_request("anyone there?"))
        [text] = core.adapter.messages.values()
        assert "gateway" in text.lower() and "Traceback" not in text
        [row] = await core.store.ledger()
        assert row.status == "error"


async def test_image_is_uploaded_and_counted(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.image_format = "url"
        await core.send(make_request("a red bicycle size=1536x1024", command="image"))
        [upload] = core.adapter.writes(("upload",))
        assert upload.data == png_bytes() or upload.data.startswith(b"\x89PNG")
        assert upload.filename == "image-1.png"
        sent = [r for r in core.gateway.requests if r.path.endswith("/images/generations")][-1]
        assert sent.json["size"] == "1536x1024" and sent.json["prompt"] == "a red bicycle"
        # The image URL is fetched without our API key.
        assert all("Authorization" not in headers for headers in core.gateway.downloads)
        [row] = await core.store.ledger()
        assert (row.status, row.amounts.images) == ("ok", 1)
        assert any("a red bicycle" in t for t in core.adapter.messages.values())


async def test_models_are_grouped_filtered_and_paged(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("", command="models"))
        first = list(core.adapter.messages.values())[-1]
        assert "page 1/" in first and "Next page: `models 2`" in first
        await core.send(make_request("claude", command="models"))
        listing = list(core.adapter.messages.values())[-1]
        assert "claude-sonnet-4-20250514" in listing and "`gpt-4o`" not in listing
        await core.send(make_request("no-such-vendor", command="models"))
        assert "No model matches" in list(core.adapter.messages.values())[-1]
        assert all(mid in core.adapter.ephemeral_ids for mid in core.adapter.messages)


async def test_help_and_unknown_commands(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("", command="help"))
        text = list(core.adapter.messages.values())[-1]
        for name in ("ask", "image", "models", "model", "help"):
            assert f"`{name}" in text
        await core.send(make_request("", command="imgae"))
        assert "Did you mean `image`" in list(core.adapter.messages.values())[-1]


async def test_transcribe_without_audio_is_explained(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("", command="transcribe"))
        text = list(core.adapter.messages.values())[-1]
        assert "audio" in text.lower()
        assert await core.store.ledger() == []


async def test_drain_cuts_a_slow_reply_short_and_settles_it(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.chunks = [f"word{i} " for i in range(200)]
        core.gateway.chunk_delay = 0.05
        sending = asyncio.create_task(core.send(make_request("long story")))
        await core.adapter.wait_for(lambda: bool(core.adapter.messages), within=10)
        await core.dispatcher.drain(grace=0.2)
        await asyncio.wait_for(asyncio.shield(sending), 10)
        [text] = core.adapter.messages.values()
        assert text.startswith("word0") and "stopped before this reply was finished" in text
        [row] = await core.store.ledger()
        assert row.status == "cancelled" and row.amounts.tokens_out > 0
        # No new work is taken after drain.
        await core.send(make_request("late"))
        assert "restarting" in list(core.adapter.messages.values())[-1]


async def test_image_attachment_goes_inline_to_vision_models(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.adapter.add_file("img1", png_bytes())
        photo = Attachment("img1", "p.png", "image/png", 80, "image")
        await core.send(make_request("what colour?", attachments=(photo,)))
        content = core.gateway.requests[-1].json["messages"][-1]["content"]
        assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_settings_changes_one_setting_for_slash_only_platforms(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        channel = make_request().place.channel_key
        await core.send(make_request("temperature 0.3", command="settings", user=ADMIN))
        await core.send(make_request("model gpt-4o", command="settings", user=ADMIN))
        stored = await core.store.channel_settings(channel)
        assert (stored.temperature, stored.model) == (0.3, "gpt-4o")
        await core.send(make_request("persona be rude", command="settings"))
        assert "Only admins" in list(core.adapter.messages.values())[-1]
        await core.send(make_request("colour blue", command="settings", user=ADMIN))
        assert "no setting `colour`" in list(core.adapter.messages.values())[-1]
        assert await core.store.channel_settings(channel) == stored


async def test_unknown_default_model_suggests_close_names(tmp_path: Path) -> None:
    async with running_core(tmp_path, default_model="gpt-4o-mimi") as core:
        await core.send(make_request("hello"))
        [text] = core.adapter.messages.values()
        assert "no model `gpt-4o-mimi`" in text and "`gpt-4o-mini`" in text
        [row] = await core.store.ledger()
        assert row.status == "error" and row.amounts.tokens == 0


# 1,500 tokens as the fake gateway counts them (one per piece): past the old 1,024 default.
LONG = [f"w{i} " for i in range(1500)]
WORDS = [piece.strip() for piece in LONG]


async def test_a_long_answer_is_delivered_whole_with_no_cap_by_default(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.chunks = LONG
        await core.send(make_request("write at length"))
        assert "max_tokens" not in core.gateway.requests[-1].json
        shown = " ".join(core.adapter.messages.values())
        assert shown.split() == WORDS  # every word, and no "stopped at" footer
        [row] = await core.store.ledger()
    # Held at the estimate, settled at what the gateway reported.
    assert (row.status, row.estimate.tokens_out, row.amounts.tokens_out) == ("ok", 1024, 1500)


@pytest.mark.parametrize("who", ["operator", "channel"])
async def test_a_cap_set_by_the_operator_or_the_channel_is_sent(tmp_path: Path, who: str) -> None:
    config = {"max_reply_tokens": 1000} if who == "operator" else {}
    async with running_core(tmp_path, **config) as core:
        if who == "channel":
            channel = make_request().place.channel_key
            await core.store.set_channel_settings(channel, ChannelSettings(max_tokens=1000))
        core.gateway.chunks = LONG
        await core.send(make_request("write at length"))
        assert core.gateway.requests[-1].json["max_tokens"] == 1000
        shown = " ".join(core.adapter.messages.values())
        assert shown.endswith("_(reply stopped at the 1,000-token limit)_")
        assert shown.split()[:1000] == WORDS[:1000] and "w1000" not in shown
        [row] = await core.store.ledger()
    # A cap is held whole: the limit can never be passed.
    assert (row.estimate.tokens_out, row.amounts.tokens_out) == (1000, 1000)


async def test_an_uncapped_reply_passes_a_token_limit_by_at_most_itself(tmp_path: Path) -> None:
    async with running_core(tmp_path, reply_tokens_estimate=200) as core:
        channel = make_request().place.channel_key
        await core.store.set_limit(channel, "tokens", "day", 1000)
        core.gateway.chunks = LONG
        await core.send(make_request("go"))  # the hold (about 200) fits; the reply is 1,500
        await core.send(make_request("again"))
        *answer, refusal = core.adapter.messages.values()
        assert " ".join(answer).split() == WORDS
        assert "daily token limit is used up (1,501 tokens of 1,000)" in refusal
        rows = await core.store.ledger()
    assert [(r.status, r.estimate.tokens_out, r.amounts.tokens) for r in rows] == [
        ("ok", 200, 1501),
        ("refused", 200, 0),
    ]
