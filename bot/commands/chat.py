"""`ask` (and plain mentions): a streamed chat completion with the conversation as context."""

from __future__ import annotations

import base64

from bot.commands import Command
from bot.commands.models import explain_gateway_error
from bot.context import Context
from bot.conversation import build_messages, estimate_tokens, supports_vision
from bot.errors import UserFacingError
from bot.events import Turn
from bot.gateway.client import GatewayError, TokenUsage
from storage.base import Amounts


def _used(usage: TokenUsage) -> Amounts:
    return Amounts(requests=1, tokens_in=usage.prompt_tokens, tokens_out=usage.completion_tokens)


MAX_IMAGE_BYTES = 8 * 1024 * 1024


async def _inline_images(ctx: Context) -> tuple[str, ...]:
    """Attached images as data URLs: platform file URLs need the bot's token to fetch."""
    urls = []
    for attachment in ctx.req.attachments:
        if attachment.kind == "image":
            data = await ctx.download(attachment, MAX_IMAGE_BYTES)
            mime = attachment.mime or "image/png"
            urls.append(f"data:{mime};base64,{base64.b64encode(data).decode()}")
    return tuple(urls)


async def run_ask(ctx: Context) -> None:
    prompt = ctx.args.strip()
    if not prompt:
        raise UserFacingError("Ask me something, for example: `ask what does HTTP 429 mean?`")
    config = ctx.services.config
    settings = await ctx.settings()
    model = settings.model or config.default_model
    # No cap unless the channel or the operator sets one: answers run as long as the model
    # writes them.
    max_tokens = settings.max_tokens or config.max_reply_tokens
    history = await ctx.adapter.history(ctx.req)
    images = await _inline_images(ctx) if supports_vision(model) else ()
    turn = Turn("user", prompt, images)
    messages, prompt_tokens = build_messages(
        model, settings.system_prompt, history, turn, config.context_tokens
    )
    # A cap is held whole, so the limit is never passed; without one the hold is an estimate
    # and the real usage settled afterwards may pass the limit by the rest of this reply.
    tokens_out = max_tokens or config.reply_tokens_estimate
    estimate = Amounts(requests=1, tokens_in=prompt_tokens, tokens_out=tokens_out)
    async with ctx.metered(model, estimate) as meter, ctx.stream() as reply:
        stream = ctx.services.gateway.chat(
            model, messages, temperature=settings.temperature, max_tokens=max_tokens
        )
        try:
            async with stream:
                async for delta in stream:
                    reply.write(delta)
        except GatewayError as err:
            # Tokens already streamed were paid for upstream; charge them, not the cap.
            used = Amounts(1, prompt_tokens, estimate_tokens(reply.text)) if reply.text else None
            meter.failed("interrupted" if used else "error", used)
            await reply.interrupt(await explain_gateway_error(ctx.services.gateway, err))
            return
        except BaseException:
            meter.actual = Amounts(1, prompt_tokens, estimate_tokens(reply.text))
            raise
        if stream.usage is not None:
            meter.actual = _used(stream.usage)
        else:
            meter.actual = Amounts(1, prompt_tokens, estimate_tokens(reply.text))
        footer = None
        if stream.finish_reason == "length":
            limit = f"the {max_tokens:,}-token limit" if max_tokens else "the model's output limit"
            footer = f"_(reply stopped at {limit})_"
        await reply.finish(footer)


ASK = Command(
    name="ask",
    summary="Chat with the channel's model; the thread or reply chain is the context.",
    usage="ask <question>",
    run=run_ask,
)
