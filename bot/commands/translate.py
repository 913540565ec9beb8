"""`translate [language] [share] [text]`: a message (or the text given) in another language."""

from __future__ import annotations

from bot.adapter import ReadsChannels
from bot.commands import Command
from bot.commands.answer import Prompted, respond
from bot.commands.options import parse_options
from bot.context import Context
from bot.conversation import estimate_tokens
from bot.errors import UserFacingError
from bot.events import Said

SYSTEM = (
    "Translate the user's message into {language}. Keep its meaning, tone and formatting; "
    "leave names, code, links and mentions as they are. Answer with the translation only."
)


async def run_translate(ctx: Context) -> None:
    options = parse_options(ctx.args, languages=True)
    source = await _source(ctx, options.rest)
    budget = ctx.services.config.context_tokens
    if estimate_tokens(source.text) > budget:
        raise UserFacingError(
            f"That message is too long to translate at once (about "
            f"{estimate_tokens(source.text):,} tokens; the limit is {budget:,})."
        )
    language = options.language_name(ctx)
    header = f"**Translation into {language}**" + (
        f" of {source.author}'s message" if source.author else ""
    )
    private = not options.share and not ctx.req.place.direct
    system = SYSTEM.format(language=language)
    await respond(ctx, Prompted(system, source.text), private=private, header=header)


async def _source(ctx: Context, text: str) -> Said:
    """The text given, else the message the shortcut targets, else the one just before."""
    if text:
        return Said("", text)
    req = ctx.req
    if req.target is not None and req.target.text.strip():
        return req.target
    if req.target is not None:
        raise UserFacingError("That message has no text to translate.")
    adapter = ctx.adapter
    if isinstance(adapter, ReadsChannels):
        earlier = await adapter.conversation(req, 1) or await adapter.recent(req, 1)
        if earlier and earlier[-1].text.strip():
            return earlier[-1]
    raise UserFacingError(
        "Tell me what to translate: `translate [language] <text>`, or use it on a message."
    )


TRANSLATE = Command(
    name="translate",
    summary=(
        "Translate a message (the one you use it on, or the one before) or your text into "
        "your language or the one you name. Only you see it unless you add `share`."
    ),
    usage="translate [language] [share] [text]",
    run=run_translate,
    private=True,
    shareable=True,
)
