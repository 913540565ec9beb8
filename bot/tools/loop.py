"""The tool loop: stream a round, run the calls it asked for, send results back, until text."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from bot.commands.models import explain_gateway_error
from bot.context import Context
from bot.conversation import estimate_tokens
from bot.errors import UserFacingError
from bot.gateway.client import ChatStream, GatewayError, TokenUsage, ToolCall
from bot.i18n import nt, number, t
from bot.knowledge.memory import note_answer
from bot.quota.meter import Meter
from bot.quota.view import refusal_text
from bot.streaming.reply import StreamingReply
from bot.tools.progress import ToolProgress
from bot.tools.registry import ToolSet
from bot.tools.tool import Outcome, Tool, ToolError
from storage.base import Amounts, QuotaExceeded, ToolCallRecord

log = logging.getLogger(__name__)

# Longest tool result handed back to the model, in characters.
MAX_RESULT_CHARS = 8000


@dataclass(frozen=True, slots=True)
class Chat:
    """What one chat turn sends: the model, its messages and sampling settings."""

    model: str
    messages: list[dict[str, Any]]
    prompt_tokens: int
    max_tokens: int | None
    temperature: float | None = None
    # Completion tokens each round's reservation holds (the cap, or the configured estimate).
    tokens_out: int = 1024
    # Lines for the reply's footer about what went into the question (attached files used).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Result:
    """One call's outcome: what the model reads, and how it ended for the ledger."""

    text: str
    outcome: Outcome
    detail: str = ""


async def converse(ctx: Context, chat: Chat, tools: ToolSet) -> None:
    """Answer in one streamed reply, running tools for the model between rounds.

    Every round is one gateway call, reserved and settled on its own (the first before the
    reply appears, so a quota refusal is a plain refusal); later rounds are follow-ups, so
    the question counts as one request. After CHATOPS_TOOL_ROUNDS
    rounds the model is asked to answer without calling more tools.
    """
    rounds = ctx.services.config.tools.rounds
    messages = list(chat.messages)
    offered = tools.specs() if tools else []
    # The tools' descriptions go with every round's prompt and are billed as prompt tokens,
    # so every round's hold (and the fallback when the gateway reports no usage) counts them.
    prompt_tokens = chat.prompt_tokens + (estimate_tokens(json.dumps(offered)) if offered else 0)
    cap = chat.tokens_out
    async with AsyncExitStack() as first:
        meter = await first.enter_async_context(
            ctx.metered(chat.model, Amounts(1, prompt_tokens, cap))
        )
        async with ctx.stream() as reply:
            progress = ToolProgress(ctx, reply)
            for number in range(rounds + 1):
                if number:
                    try:
                        # Later rounds answer the same question: tokens, not another request.
                        meter = await first.enter_async_context(
                            ctx.metered(chat.model, Amounts(1, prompt_tokens, cap), follow_up=True)
                        )
                    except QuotaExceeded as refused:
                        await reply.interrupt(
                            refusal_text(refused, ctx.services.config.governance.currency)
                        )
                        return
                choice = "none" if number == rounds else None
                done = await _round(
                    ctx, reply, meter, chat, messages, prompt_tokens, offered, choice
                )
                # Each round is settled as soon as it ends, not when the reply does.
                await first.aclose()
                if done is None:
                    return
                stream, said = done
                calls = stream.tool_calls
                if not calls or not tools:
                    # People rate the answer; its key is the ledger row of this last round.
                    footer = _footer(ctx, chat, stream, progress, tools)
                    posted = await reply.finish(footer, feedback=str(meter.ledger_id))
                    services = ctx.services
                    note_answer(services.memory, ctx.adapter, posted, reply.text, services.clock())
                    return
                if number == rounds:
                    note = nt(
                        "_(stopped after {n} round of tool calls)_",
                        "_(stopped after {n} rounds of tool calls)_",
                        rounds,
                    )
                    await reply.finish(_join(note, progress.footer()))
                    return
                messages.append(_assistant(said, calls))
                results = await run_calls(ctx, tools, calls, progress, meter.ledger_id)
                for call, result in zip(calls, results, strict=True):
                    messages.append(
                        {"role": "tool", "tool_call_id": call.id, "content": result.text}
                    )
                    prompt_tokens += estimate_tokens(result.text) + estimate_tokens(call.arguments)
                prompt_tokens += estimate_tokens(said + _round_text(stream))


async def _round(
    ctx: Context,
    reply: StreamingReply,
    meter: Meter,
    chat: Chat,
    messages: list[dict[str, Any]],
    prompt_tokens: int,
    tools: list[dict[str, Any]],
    tool_choice: str | None,
) -> tuple[ChatStream, str] | None:
    """Stream one model turn into the reply: the stream and the text it wrote, or None when
    it failed (the reply then says why)."""
    gateway = ctx.services.gateway
    stream = gateway.chat(
        chat.model,
        messages,
        temperature=chat.temperature,
        max_tokens=chat.max_tokens,
        tools=tools,
        tool_choice=tool_choice if tools else None,
    )
    written: list[str] = []
    # Text after a tool round starts a paragraph of its own.
    gap = "\n\n" if reply.text and not reply.text.endswith("\n") else ""
    try:
        async with stream:
            async for delta in stream:
                if gap:
                    reply.write(gap)
                    gap = ""
                reply.write(delta)
                written.append(delta)
    except GatewayError as err:
        text = "".join(written)
        # Tokens already streamed were paid for upstream; charge them, not the cap.
        used = Amounts(1, prompt_tokens, estimate_tokens(text)) if text else None
        meter.failed("interrupted" if used else "error", used)
        await reply.interrupt(await explain_gateway_error(gateway, err))
        return None
    except BaseException:
        meter.actual = Amounts(1, prompt_tokens, estimate_tokens("".join(written)))
        raise
    said = "".join(written)
    if stream.usage is not None:
        meter.actual = _used(stream.usage)
    else:
        out = said + "".join(c.arguments for c in stream.tool_calls)
        meter.actual = Amounts(1, prompt_tokens, estimate_tokens(out))
    return stream, said


def _used(usage: TokenUsage) -> Amounts:
    return Amounts(requests=1, tokens_in=usage.prompt_tokens, tokens_out=usage.completion_tokens)


def _round_text(stream: ChatStream) -> str:
    return "".join(c.name + c.arguments for c in stream.tool_calls)


def _assistant(said: str, calls: list[ToolCall]) -> dict[str, Any]:
    """The model's turn as history for the next round (its calls, with arguments that parse)."""
    return {
        "role": "assistant",
        "content": said or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                # Invalid JSON would make some providers refuse the whole next request.
                "function": {"name": call.name, "arguments": _json_or_empty(call.arguments)},
            }
            for call in calls
        ],
    }


def _json_or_empty(arguments: str) -> str:
    try:
        json.loads(arguments or "{}")
    except ValueError:
        return "{}"
    return arguments or "{}"


def _footer(
    ctx: Context, chat: Chat, stream: ChatStream, progress: ToolProgress, tools: ToolSet
) -> str | None:
    lines = [f"_{note}_" for note in chat.notes]
    if stream.finish_reason == "length" and chat.max_tokens:
        lines.append(t("_(reply stopped at the {n}-token limit)_", n=number(chat.max_tokens)))
    elif stream.finish_reason == "length":
        lines.append(t("_(reply stopped at the model's output limit)_"))
    if stream.tools_dropped and progress.used == [] and tools:
        lines.append(
            t("_(`{model}` does not take tools; answered without them)_", model=chat.model)
        )
    used = progress.footer()
    if used:
        lines.append(used)
    lines += [f"_⚠️ {note}_" for note in tools.notes]
    return "\n".join(lines) or None


def _join(*lines: str | None) -> str:
    return "\n".join(line for line in lines if line)


async def run_calls(
    ctx: Context,
    tools: ToolSet,
    calls: list[ToolCall],
    progress: ToolProgress,
    ledger_id: int = 0,
) -> list[Result]:
    """Run the calls of one round, in parallel, each bounded by its timeout; never raises
    for a tool's failure (it becomes the result the model reads)."""
    async with asyncio.TaskGroup() as group:
        running = [
            group.create_task(_run_one(ctx, tools, call, progress, ledger_id)) for call in calls
        ]
    results = [task.result() for task in running]
    for call, result in zip(calls, results, strict=True):
        tool = tools.get(call.name)
        progress.note(tool.title if tool else call.name, ok=result.outcome == "ok")
    return results


async def _run_one(
    ctx: Context, tools: ToolSet, call: ToolCall, progress: ToolProgress, ledger_id: int
) -> Result:
    tool = tools.get(call.name)
    title = tool.title if tool is not None else call.name
    started = time.monotonic()
    if tool is None:
        known = ", ".join(tools.names())
        result = Result(
            f"Error: there is no tool named {call.name!r}. Available tools: {known}.",
            "unknown",
            t("no such tool"),
        )
    else:
        arguments, problem = _arguments(tool, call.arguments)
        if problem:
            result = Result(
                f"Error: {problem} Call {tool.name} again with corrected arguments.",
                "invalid",
                problem,
            )
        else:
            await progress.started(call.id, title, tool.doing)
            result = await _invoke(ctx, tool, arguments)
    ok = result.outcome == "ok"
    if tool is None or result.outcome == "invalid":
        # Shown as a task too, so a refused call is visible rather than silent.
        await progress.started(call.id, title, f"{title} ")
    await progress.finished(call.id, title, ok=ok, details=result.detail)
    record = ToolCallRecord(
        channel=ctx.req.place.channel_key,
        user=ctx.req.user.id,
        tool=title,
        outcome=result.outcome,
        duration_ms=round((time.monotonic() - started) * 1000),
        ledger_id=ledger_id or None,
        detail=result.detail,
    )
    try:
        await ctx.services.store.record_tool_call(record)
    except Exception:
        log.warning("could not record a call of %s", title, exc_info=True)
    return result


def _arguments(tool: Tool, raw: str) -> tuple[dict[str, Any], str]:
    """The call's arguments checked against the tool's schema, or what is wrong with them."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as e:
        return {}, f"the arguments are not valid JSON ({e.msg} at character {e.pos})."
    if not isinstance(value, dict):
        return {}, "the arguments must be a JSON object."
    problems = tool.problems(value)
    if problems:
        return {}, "the arguments do not match the schema: " + "; ".join(problems) + "."
    return value, ""


async def _invoke(ctx: Context, tool: Tool, arguments: dict[str, Any]) -> Result:
    limit = tool.timeout or ctx.services.config.tools.timeout
    try:
        async with asyncio.timeout(limit):
            text = await tool.run(ctx, arguments)
    except TimeoutError:
        return Result(
            f"Error: {tool.title} did not finish within {limit:g} seconds and was stopped.",
            "timeout",
            t("no answer within {seconds} s", seconds=f"{limit:g}"),
        )
    except ToolError as e:
        return Result(f"Error: {e.message}", e.outcome, e.message)
    except QuotaExceeded as e:
        text = refusal_text(e, ctx.services.config.governance.currency)
        return Result(f"Error: refused by the channel's quota: {text}", "refused", text)
    except GatewayError as e:
        text = e.user_message()
        return Result(f"Error: {text}", "error", text)
    except UserFacingError as e:
        return Result(f"Error: {e.message}", "error", e.message)
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("tool %s failed (ref %s)", tool.title, ref)
        text = t("{tool} failed unexpectedly (ref {ref})", tool=tool.title, ref=ref)
        return Result(f"Error: {tool.title} failed unexpectedly (ref {ref}).", "error", text)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + "… (cut)"
    return Result(text or "(no output)", "ok")
