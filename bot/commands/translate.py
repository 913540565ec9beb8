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
from bot.i18n import N_, number, shown_name, t

SYSTEM = (
    "Translate the user's message into {language}. Keep its meaning, tone and formatting; "
    "leave names, code, links and mentions as they are. Answer with the translation only."
)


async def run_translate(ctx: Context) -> None:
    options = parse_options(ctx.args, languages=True)
    source = await _source(ctx, options.rest)
    budget = ctx.services.config.context_tokens
    tokens = estimate_tokens(source.text)
    if tokens > budget:
        raise UserFacingError(
            t(
                "That message is too long to translate at once (about {tokens} tokens; the "
                "limit is {limit}).",
                tokens=number(tokens),
                limit=number(budget),
            )
        )
    language = options.language_for(ctx, personal=True)
    if source.author:
        header = t(
            "**Translation into {language}** of {author}'s message",
            language=shown_name(language),
            author=source.author,
        )
    else:
        header = t("**Translation into {language}**", language=shown_name(language))
    private = not options.share and not ctx.req.place.direct
    system = SYSTEM.format(language=language.name)
    await respond(ctx, Prompted(system, source.text), private=private, header=header)


async def _source(ctx: Context, text: str) -> Said:
    """The text given, else the message the shortcut targets, else the one just before."""
    if text:
        return Said("", text)
    req = ctx.req
    if req.target is not None and req.target.text.strip():
        return req.target
    if req.target is not None:
        raise UserFacingError(t("That message has no text to translate."))
    adapter = ctx.adapter
    if isinstance(adapter, ReadsChannels):
        earlier = await adapter.conversation(req, 1) or await adapter.recent(req, 1)
        if earlier and earlier[-1].text.strip():
            return earlier[-1]
    raise UserFacingError(
        t("Tell me what to translate: `translate [language] <text>`, or use it on a message.")
    )


TRANSLATE = Command(
    name="translate",
    summary=N_(
        "Translate a message (the one you use it on, or the one before) or your text into "
        "your language or the one you name. Only you see it unless you add `share`."
    ),
    usage="translate [language] [share] [text]",
    run=run_translate,
    private=True,
    shareable=True,
)
