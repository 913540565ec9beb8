"""One model answer to a command's own prompt: streamed in the open, or sent to the asker alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.commands.models import explain_gateway_error
from bot.context import Context
from bot.conversation import estimate_tokens
from bot.errors import UserFacingError
from bot.gateway.client import GatewayError
from bot.i18n import t
from bot.quota.meter import Meter
from bot.streaming.reply import StreamingReply
from bot.streaming.splitting import split_message
from storage.base import Amounts


@dataclass(frozen=True, slots=True)
class Prompted:
    """What to ask the channel's model: instructions and the material they apply to."""

    system: str
    user: str


async def respond(ctx: Context, prompted: Prompted, *, private: bool, header: str = "") -> None:
    """Ask the channel's model and deliver its answer, charged to the channel's quota.

    Public answers stream into the conversation like chat; private ones (which platforms
    cannot edit) are collected, then sent to the asker only, split where too long. `header`
    goes above the answer.
    """
    config = ctx.services.config
    settings = await ctx.settings()
    model = settings.model or config.default_model
    max_tokens = settings.max_tokens or config.max_reply_tokens
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": prompted.system},
        {"role": "user", "content": prompted.user},
    ]
    prompt_tokens = estimate_tokens(prompted.system) + estimate_tokens(prompted.user)
    estimate = Amounts(1, prompt_tokens, max_tokens or config.reply_tokens_estimate)
    async with ctx.metered(model, estimate) as meter:
        stream = ctx.services.gateway.chat(
            model, messages, temperature=settings.temperature, max_tokens=max_tokens
        )
        if not private:
            async with ctx.stream() as reply:
                reply.write(_join(header, ""))
                await _streamed(ctx, meter, stream, prompt_tokens, reply)
            return
        text = await _collected(ctx, meter, stream, prompt_tokens)
    # Settled first: the usage is known whether or not the platform takes the message.
    await _send_private(ctx, _join(header, text))


async def _collected(ctx: Context, meter: Meter, stream: Any, prompt_tokens: int) -> str:
    written: list[str] = []
    try:
        async with stream:
            async for delta in stream:
                written.append(delta)
    except GatewayError as err:
        text = "".join(written)
        meter.failed("error", Amounts(1, prompt_tokens, estimate_tokens(text)) if text else None)
        raise UserFacingError(await explain_gateway_error(ctx.services.gateway, err)) from err
    text = "".join(written)
    _settle(meter, stream, prompt_tokens, text)
    return text.strip() or t("(empty reply)")


async def _streamed(
    ctx: Context, meter: Meter, stream: Any, prompt_tokens: int, reply: StreamingReply
) -> None:
    written: list[str] = []
    try:
        async with stream:
            async for delta in stream:
                reply.write(delta)
                written.append(delta)
    except GatewayError as err:
        text = "".join(written)
        meter.failed(
            "interrupted" if text else "error",
            Amounts(1, prompt_tokens, estimate_tokens(text)) if text else None,
        )
        await reply.interrupt(await explain_gateway_error(ctx.services.gateway, err))
        return
    _settle(meter, stream, prompt_tokens, "".join(written))


def _settle(meter: Meter, stream: Any, prompt_tokens: int, text: str) -> None:
    usage = stream.usage
    if usage is not None:
        meter.actual = Amounts(1, usage.prompt_tokens, usage.completion_tokens)
    else:
        meter.actual = Amounts(1, prompt_tokens, estimate_tokens(text))


async def _send_private(ctx: Context, text: str) -> None:
    limits = ctx.adapter.limits
    for part in split_message(text, limits.max_chars, length=limits.length):
        await ctx.reply(part, ephemeral=True)


def _join(header: str, body: str) -> str:
    if not header:
        return body
    return f"{header}\n\n{body}" if body else f"{header}\n\n"
