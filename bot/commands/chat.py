"""`ask` (and plain mentions): a streamed chat completion with the conversation as context."""

from __future__ import annotations

import base64

from bot.adapter import ReadsChannels
from bot.commands import Command
from bot.context import Context
from bot.conversation import build_messages, supports_vision
from bot.errors import UserFacingError
from bot.events import Turn
from bot.i18n import N_, current, model_language, t
from bot.knowledge.files import file_budget, files_context
from bot.tools.loop import Chat, converse
from bot.tools.registry import tools_for
from bot.transcript import about_this_channel, fit

MAX_IMAGE_BYTES = 8 * 1024 * 1024
# Messages of the viewed channel read when a question is about it (trimmed to half the
# context budget afterwards).
CHANNEL_MESSAGES = 100
# A file sent without a word: what the model is asked about it.
DEFAULT_FILE_QUESTION = "Read the attached file and sum up what matters in it."


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
    if not prompt and any(a.kind == "file" for a in ctx.req.attachments):
        prompt = DEFAULT_FILE_QUESTION
    if not prompt:
        raise UserFacingError(t("Ask me something, for example: `ask what does HTTP 429 mean?`"))
    config = ctx.services.config
    settings = await ctx.settings()
    model = settings.model or config.default_model
    # No cap unless the channel or the operator sets one: answers run as long as the model
    # writes them.
    max_tokens = settings.max_tokens or config.max_reply_tokens
    history = await ctx.adapter.history(ctx.req)
    budget = file_budget(config.context_tokens, prompt, settings.system_prompt)
    files = await files_context(ctx, history, prompt, budget)
    images = await _inline_images(ctx) if supports_vision(model) else ()
    turn = Turn("user", prompt + files.text, images)
    system = _join(settings.system_prompt, _language_note(), await _viewed_channel(ctx, prompt))
    messages, prompt_tokens = build_messages(model, system, history, turn, config.context_tokens)
    # A cap is held whole, so the limit is never passed; without one the hold is an estimate
    # and the real usage settled afterwards may pass the limit by the rest of this reply.
    tokens_out = max_tokens or config.reply_tokens_estimate
    # One path with or without tools: with none offered, the loop is a single streamed round.
    chat = Chat(
        model,
        messages,
        prompt_tokens,
        max_tokens,
        settings.temperature,
        tokens_out,
        notes=files.notes,
    )
    await converse(ctx, chat, await tools_for(ctx))


def _language_note() -> str | None:
    """The model answers in its own words; where the bot speaks another language than
    English, it is asked to answer in that one."""
    if current() == "en":
        return None
    return (
        f"Answer in {model_language()}, unless the user asks for another language or writes "
        "the whole question in one."
    )


async def _viewed_channel(ctx: Context, prompt: str) -> str | None:
    """The latest messages of the channel the user looks at, when the question is about it."""
    adapter, req = ctx.adapter, ctx.req
    if req.viewing is None or not isinstance(adapter, ReadsChannels):
        return None
    if not about_this_channel(prompt):
        return None
    said = await adapter.recent(req, CHANNEL_MESSAGES)
    transcript = fit(said, ctx.services.config.context_tokens // 2)
    if not transcript.kept:
        return None
    return (
        "The user is looking at a channel and may ask about it. Its latest messages follow, "
        "oldest first, one per line as [author] text:\n" + transcript.text
    )


def _join(*parts: str | None) -> str | None:
    text = "\n\n".join(p for p in parts if p)
    return text or None


ASK = Command(
    name="ask",
    summary=N_("Chat with the channel's model; the thread or reply chain is the context."),
    usage="ask <question>",
    run=run_ask,
)
