"""A disallowed model is refused everywhere it can be named, with the nearest allowed ones."""

from __future__ import annotations

import json
from pathlib import Path

from bot.events import Attachment, Place, Request, User
from bot.governance.policy import Policy
from bot.governance.prices import load_prices
from storage.base import ChannelSettings
from tests.core_harness import Core, running_core
from tests.fakes.gateway import ModelTurn, ScriptedCall

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "prices.example.toml"
MEMBER = User("U1", "member")
ADMIN = User("U0", "admin", is_admin=True)
ALLOWED = Policy(models_allow=("gpt-4o*", "deepseek-*"))


def said(
    text: str, *, command: str | None = None, user: User = MEMBER, channel: str = "C1"
) -> Request:
    return Request(
        place=Place("slack", channel, None, "T1", name="general"),
        user=user,
        text=text,
        command=command,
        conversational=command is None,
    )


def last(core: Core) -> str:
    return [e.text for e in core.adapter.events if e.kind == "reply"][-1]


def model_calls(core: Core) -> list[str]:
    return [p for p in core.gateway.paths() if not p.endswith("/models")]


async def test_models_lists_only_what_the_channel_may_use_and_admins_see_all_marked(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path, governance=ALLOWED) as core:
        await core.send(said("", command="models"))
        listing = last(core)
        assert "models this channel may use" in listing
        assert "`gpt-4o-mini`" in listing and "`deepseek-v3`" in listing
        assert "claude" not in listing and "gemini" not in listing
        await core.send(said("claude", command="models"))
        assert "No model this channel may use matches `claude`" in last(core)
        await core.send(said("claude-3-haiku", command="models", user=ADMIN))
        marked = last(core)
        assert "⛔`claude-3-haiku-20240307`" in marked
        assert "⛔ marks models this channel may not use" in marked


async def test_model_and_image_refuse_a_disallowed_model_naming_the_nearest(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path, governance=ALLOWED) as core:
        await core.send(said("gpt-4-turbo", command="model", user=ADMIN))
        refusal = last(core)
        assert refusal.startswith(
            "⚠️ `gpt-4-turbo` is not allowed in this channel; allowed: `gpt-4o*`, `deepseek-*` "
            "(the service default, CHATOPS_MODELS_ALLOW). Nearest allowed: `gpt-4o"
        )
        assert (await core.store.channel_settings("slack:C1")).model is None
        await core.send(said("gpt-4o", command="model", user=ADMIN))
        assert last(core) == "This channel now uses `gpt-4o`."
        # The image model is named by an option, or is the service default: both checked.
        await core.send(said("model=flux-kontext-pro a red bicycle", command="image"))
        assert "`flux-kontext-pro` is not allowed in this channel" in last(core)
        await core.send(said("a red bicycle", command="image"))
        assert "`gpt-image-1` is not allowed in this channel" in last(core)
        assert not [p for p in model_calls(core) if "images" in p]


async def test_a_channel_list_then_a_workspace_list_and_the_chat_model_obey_them(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path) as core:
        await core.store.set_channel_settings("slack:C1", ChannelSettings(model="gpt-4o"))
        await core.send(said("gtp-4*", command="allowlist", user=ADMIN))
        assert "is not something I know" in last(core)
        await core.send(said("add gtp-4*", command="allowlist", user=ADMIN))
        assert "`gtp-4*` matches no model the gateway offers. Nearest:" in last(core)
        await core.send(said("add deepseek-*", command="allowlist"))
        assert "Only admins can change which models may be used" in last(core)
        await core.send(said("add deepseek-* qwen-max", command="allowlist", user=ADMIN))
        view = last(core)
        assert "`deepseek-*`, `qwen-max` (set for this channel)" in view
        assert "This channel's model `gpt-4o` may not be used under this list" in view
        # The chat model resolved for a question obeys the list: refused before any call.
        await core.send(said("hello"))
        assert "`gpt-4o` is not allowed in this channel" in last(core)
        assert "Nearest allowed: `" in last(core) and model_calls(core) == []
        # A workspace list applies where a channel sets none; the channel's own list wins.
        await core.send(said("workspace add gpt-4o*", command="allowlist", user=ADMIN))
        await core.send(said("hello", channel="C2"))
        assert model_calls(core) == ["/v1/chat/completions"]
        await core.send(said("hello"))
        assert len(model_calls(core)) == 1, "C1 keeps its own list"
        await core.send(said("clear", command="allowlist", user=ADMIN))
        await core.send(said("hello"))
        assert len(model_calls(core)) == 2, "cleared: the workspace list allows gpt-4o"


async def test_tool_driven_and_responses_routed_calls_respect_the_list(tmp_path: Path) -> None:
    async with running_core(tmp_path, governance=ALLOWED) as core:
        # The model asks for an image: the image tool's model is not allowed here.
        core.gateway.turns.append(
            ModelTurn(calls=(ScriptedCall("generate_image", json.dumps({"prompt": "a cat"})),))
        )
        await core.send(said("draw a cat"))
        assert not [p for p in model_calls(core) if "images" in p]
        tool_result = core.gateway.chat_bodies()[1]["messages"][-1]
        assert tool_result["role"] == "tool"
        assert "`gpt-image-1` is not allowed in this channel" in tool_result["content"]
        # A model served through /v1/responses, chosen before the list changed: refused.
        core.services.gateway.responses_models = ("gpt-5-pro*",)
        core.gateway.models["gpt-5-pro"] = "openai"
        await core.store.set_channel_settings("slack:C1", ChannelSettings(model="gpt-5-pro"))
        calls = len(model_calls(core))
        await core.send(said("hello"))
        assert "`gpt-5-pro` is not allowed in this channel" in last(core)
        assert len(model_calls(core)) == calls and "/v1/responses" not in model_calls(core)


async def test_with_a_price_table_an_unpriced_model_cannot_be_used(tmp_path: Path) -> None:
    prices = Policy(prices=load_prices(str(EXAMPLE)))
    async with running_core(tmp_path, governance=prices) as core:
        await core.send(said("gpt-4-turbo", command="model", user=ADMIN))
        assert last(core).startswith(
            "⚠️ `gpt-4-turbo` has no price in the price table (USD), so it cannot be used"
        )
        await core.send(said("gpt-4o", command="model", user=ADMIN))
        assert last(core) == "This channel now uses `gpt-4o`."
        await core.send(said("gpt-4", command="models"))
        assert "`gpt-4-turbo`" not in last(core) and "`gpt-4o`" in last(core)


async def test_a_posted_voice_note_is_left_alone_where_transcription_is_not_allowed(
    tmp_path: Path,
) -> None:
    voice = Attachment("F1", "memo.ogg", "audio/ogg", 2048, "audio")
    async with running_core(tmp_path, governance=ALLOWED) as core:
        posted = Request(
            place=Place("slack", "C1", None, "T1", name="general"),
            user=MEMBER,
            text="",
            attachments=(voice,),
        )
        await core.send(posted)
        assert core.adapter.events == [] and model_calls(core) == []
