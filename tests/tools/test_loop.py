"""The tool loop end to end in the core: fake gateway over HTTP, real SQLite, memory adapter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from bot.conversation import estimate_tokens
from bot.events import User
from bot.tools.config import ToolsConfig
from storage.base import ChannelSettings, LedgerRow, ToolCallRecord
from tests.core_harness import Core, running_core
from tests.fakes.gateway import ModelTurn, ScriptedCall
from tests.memory_adapter import make_request

ADMIN = User("U0", "admin", is_admin=True)


@asynccontextmanager
async def core_at(tmp_path: Path, **config: object) -> AsyncIterator[Core]:
    """The test core, with messages long enough that a reply stays in one message."""
    async with running_core(tmp_path, **config) as core:
        core.adapter.limits = replace(core.adapter.limits, max_chars=4000)
        yield core


def call(name: str, arguments: object | str = "{}", call_id: str = "") -> ScriptedCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ScriptedCall(name, text, call_id)


async def rows(core: Core) -> tuple[list[LedgerRow], list[ToolCallRecord]]:
    return await core.store.ledger(), await core.store.tool_calls()


def final_text(core: Core) -> str:
    return list(core.adapter.messages.values())[-1]


async def test_builtins_answer_with_their_results_and_are_ledgered(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        core.gateway.turns.append(
            ModelTurn(
                text="Let me look.",
                calls=(
                    call("list_models", {"filter": "claude-opus-4-1"}),
                    call("channel_settings"),
                ),
            )
        )
        await core.send(make_request("which opus models are there?"))
        text = final_text(core)
        assert text.startswith("Let me look.\n\nFrom the tools: 3 models matching")
        assert "claude-opus-4-1-20250805" in text and "model: `gpt-4o-mini` (default)" in text
        assert text.endswith("_🔧 used: list_models, channel_settings_")
        # The second request carried the calls and their results back.
        second = core.gateway.chat_bodies()[1]["messages"]
        assert second[-3]["tool_calls"][0]["function"]["name"] == "list_models"
        assert second[-3]["content"] == "Let me look."
        assert [m["role"] for m in second[-2:]] == ["tool", "tool"]
        ledger, calls = await rows(core)
        assert [(r.charge.command, r.status) for r in ledger] == [("ask", "ok"), ("ask", "ok")]
        assert [r.amounts.requests for r in ledger] == [1, 0]  # one question, two rounds
        assert all(r.amounts.tokens > 0 for r in ledger)
        # Recorded as each ends (they run in parallel).
        assert sorted((c.tool, c.outcome, c.ledger_id) for c in calls) == [
            ("channel_settings", "ok", ledger[0].id),
            ("list_models", "ok", ledger[0].id),
        ]


async def test_generate_image_uploads_charges_images_and_shows_progress(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        core.gateway.image_delay = 0.3
        core.gateway.turns.append(
            ModelTurn(calls=(call("generate_image", {"prompt": "a red bicycle", "n": 2}),))
        )
        await core.send(make_request("draw me a red bicycle"))
        uploads = core.adapter.writes(("upload",))
        assert [u.filename for u in uploads] == ["image-1.png", "image-2.png"]
        assert all(u.data.startswith(b"\x89PNG") for u in uploads)
        [reply_id] = [mid for mid in core.adapter.streamed_ids]
        shown = core.adapter.history_of(reply_id)
        assert any("🔧 generating an image…" in frame for frame in shown)
        assert "🔧" not in shown[-1].replace("_🔧 used: generate_image_", "")
        assert "From the tools: Generated 2 image(s)" in shown[-1]
        ledger, calls = await rows(core)
        assert [(r.charge.command, r.status, r.amounts.images) for r in ledger] == [
            ("ask", "ok", 0),
            ("image", "ok", 2),
            ("ask", "ok", 0),
        ]
        assert [(c.tool, c.outcome) for c in calls] == [("generate_image", "ok")]


async def test_bad_calls_are_told_to_the_model_and_shown(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        core.gateway.turns.append(
            ModelTurn(
                calls=(
                    call("delete_everything", {}),
                    call("generate_image", {"prompt": "x", "n": 9}),
                    call("list_models", '{"filter": "gpt'),
                )
            )
        )
        await core.send(make_request("do things"))
        text = final_text(core)
        assert "Error: there is no tool named 'delete_everything'" in text
        assert "n: 9 is greater than the maximum of 4" in text
        assert "not valid JSON" in text
        assert text.endswith(
            "_🔧 used: delete_everything (failed), generate_image (failed), list_models (failed)_"
        )
        # An invalid argument text is not echoed back (providers refuse the next request).
        echoed = core.gateway.chat_bodies()[1]["messages"][-4]["tool_calls"][2]
        assert echoed["function"]["arguments"] == "{}"
        ledger, calls = await rows(core)
        assert sorted((c.tool, c.outcome) for c in calls) == [
            ("delete_everything", "unknown"),
            ("generate_image", "invalid"),
            ("list_models", "invalid"),
        ]
        assert [r.charge.command for r in ledger] == ["ask", "ask"]  # no image was charged
        assert not core.adapter.writes(("upload",))


async def test_a_tool_past_its_timeout_is_stopped_and_not_charged(tmp_path: Path) -> None:
    async with core_at(tmp_path, tools=ToolsConfig(image_timeout=0.3)) as core:
        core.gateway.image_delay = 5
        core.gateway.turns.append(ModelTurn(calls=(call("generate_image", {"prompt": "slow"}),)))
        await core.send(make_request("draw slowly"))
        assert "generate_image did not finish within 0.3 seconds" in final_text(core)
        ledger, calls = await rows(core)
        assert [(r.charge.command, r.status, r.amounts.images) for r in ledger] == [
            ("ask", "ok", 0),
            ("image", "cancelled", 0),
            ("ask", "ok", 0),
        ]
        assert [(c.outcome, c.detail) for c in calls] == [("timeout", "no answer within 0.3 s")]


async def test_rounds_are_bounded(tmp_path: Path) -> None:
    async with core_at(tmp_path, tools=ToolsConfig(rounds=1)) as core:
        core.gateway.turns.extend(
            [ModelTurn(calls=(call("channel_quota"),)), ModelTurn(calls=(call("channel_quota"),))]
        )
        await core.send(make_request("how much quota?"))
        bodies = core.gateway.chat_bodies()
        assert len(bodies) == 2 and bodies[1]["tool_choice"] == "none"
        assert "From the tools:" in final_text(core) and "requests" in final_text(core)
        assert len(core.gateway.turns) == 1


async def test_quota_refusing_a_later_round_is_plain_and_charges_once(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        # What the first round holds, learned from the same question in another channel.
        core.gateway.turns.append(ModelTurn(text="done"))
        await core.send(make_request("show my settings", channel="C9"))
        first_hold = (await core.store.ledger())[0].estimate.tokens
        # Room for the first round's hold, not for the second's (its prompt carries the call).
        channel = make_request().place.channel_key
        await core.store.set_limit(channel, "tokens", "day", first_hold)
        core.gateway.turns.append(ModelTurn(calls=(call("channel_settings"),)))
        await core.send(make_request("show my settings"))
        text = final_text(core)
        assert "⚠️ Interrupted:" in text and "daily token limit" in text.lower()
        ledger = [r for r in await core.store.ledger() if r.charge.channel == channel]
        assert [(r.status, r.amounts.requests) for r in ledger] == [("ok", 1), ("refused", 0)]
        assert [c.outcome for c in await core.store.tool_calls()] == ["ok"]


async def test_a_question_is_one_request_however_many_rounds_it_takes(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        channel = make_request().place.channel_key
        await core.store.set_limit(channel, "requests", "day", 1)
        core.gateway.turns.extend(
            [
                ModelTurn(calls=(call("channel_settings"),)),
                ModelTurn(calls=(call("channel_quota"),)),
            ]
        )
        await core.send(make_request("show my settings and quota"))
        assert final_text(core).endswith("_🔧 used: channel_settings, channel_quota_")
        ledger = await core.store.ledger()
        assert [(r.status, r.amounts.requests) for r in ledger] == [("ok", 1), ("ok", 0), ("ok", 0)]
        assert all(r.amounts.tokens > 0 for r in ledger)
        [day, _] = (await core.store.quota_status(channel, now=core.services.clock())).windows
        assert day.used["requests"] == 1
        assert day.used["tokens"] == sum(r.amounts.tokens for r in ledger)
        # The one request the limit allows is spent: the next question is refused.
        await core.send(make_request("again"))
        assert "daily request limit is used up" in final_text(core)


async def test_channel_switches_and_the_tools_command(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        await core.send(make_request("tools disable list_models"))
        assert "Only admins" in final_text(core)
        await core.send(make_request("tools disable list_models", user=ADMIN))
        assert "`list_models` is now off" in final_text(core)
        await core.send(make_request("tools enable nosuch", user=ADMIN))
        assert "no tool or MCP server `nosuch`" in final_text(core)
        await core.send(make_request("tools"))
        assert "• `list_models`: off" in final_text(core)
        assert "• `generate_image`: on" in final_text(core)
        await core.send(make_request("hello"))
        offered = [t["function"]["name"] for t in core.gateway.chat_bodies()[-1]["tools"]]
        assert "list_models" not in offered and "generate_image" in offered
        await core.send(make_request("tools default list_models", user=ADMIN))
        await core.send(make_request("hello again"))
        offered = [t["function"]["name"] for t in core.gateway.chat_bodies()[-1]["tools"]]
        assert "list_models" in offered


async def test_a_model_refusing_tools_still_answers(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        core.gateway.refuse_tools.add("gpt-4o-mini")
        await core.send(make_request("hello"))
        text = final_text(core)
        assert text.startswith("You said: hello")
        assert "does not take tools" in text
        ledger, _ = await rows(core)
        assert [r.status for r in ledger] == ["ok"]


async def test_no_tools_when_rounds_are_zero(tmp_path: Path) -> None:
    async with core_at(tmp_path, tools=ToolsConfig(rounds=0)) as core:
        await core.send(make_request("hello"))
        assert "tools" not in core.gateway.chat_bodies()[-1]
        assert final_text(core) == "You said: hello"


async def test_a_responses_model_runs_the_same_loop(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        core.services.gateway.responses_models = ("gpt-5-pro*",)
        core.gateway.models["gpt-5-pro"] = "openai"
        await core.store.set_channel_settings(
            make_request().place.channel_key, ChannelSettings(model="gpt-5-pro")
        )
        core.gateway.turns.append(
            ModelTurn(text="One moment.", calls=(call("list_models", {"filter": "gpt-5-pro"}),))
        )
        await core.send(make_request("is gpt-5-pro there?"))
        assert [p for p in core.gateway.paths() if p != "/v1/models"] == ["/v1/responses"] * 2
        text = final_text(core)
        assert text.startswith("One moment.\n\nFrom the tools: 1 models matching 'gpt-5-pro'")
        second = core.gateway.chat_bodies()[1]["input"]
        assert [i.get("type", i.get("role")) for i in second[-3:]] == [
            "assistant",
            "function_call",
            "function_call_output",
        ]
        ledger, _ = await rows(core)
        assert [(r.status, r.charge.model) for r in ledger] == [("ok", "gpt-5-pro")] * 2
        assert all(r.amounts.tokens_in > 0 for r in ledger)


async def test_a_responses_failure_mid_stream_keeps_the_text_and_charges_it(
    tmp_path: Path,
) -> None:
    async with core_at(tmp_path) as core:
        core.gateway.models["gpt-5-codex"] = "openai"
        core.gateway.responses_only.add("gpt-5-codex")
        await core.store.set_channel_settings(
            make_request().place.channel_key, ChannelSettings(model="gpt-5-codex")
        )
        core.gateway.reply = "alpha beta gamma delta"
        core.gateway.quirks.error_after = 2
        await core.send(make_request("go"))
        text = final_text(core)
        assert text.startswith("alpha beta")
        assert "⚠️ Interrupted: The gateway had an internal error" in text
        assert core.gateway.paths() == ["/v1/chat/completions", "/v1/responses"]
        ledger, _ = await rows(core)
        assert [r.status for r in ledger] == ["interrupted"]
        assert ledger[0].amounts.tokens_out > 0


async def test_the_tools_offered_are_part_of_what_a_question_holds(tmp_path: Path) -> None:
    async with core_at(tmp_path) as core:
        core.gateway.turns.append(ModelTurn(text="hello"))
        await core.send(make_request("hi"))
        offered = core.gateway.chat_bodies()[0]["tools"]
        [row] = await core.store.ledger()
    # The descriptions travel with the prompt; a hold that left them out would let a
    # question past a token limit its prompt alone then overran.
    assert offered
    assert row.estimate.tokens_in >= estimate_tokens(json.dumps(offered))
