"""`summarize [N] [share]`: a thread, a reply chain or a channel's latest messages, summarized."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bot.adapter import ReadsChannels
from bot.commands import Command
from bot.commands.answer import Prompted, respond
from bot.commands.options import Options, parse_options
from bot.context import Context
from bot.errors import UserFacingError
from bot.events import Said
from bot.i18n import N_, nt, t
from bot.transcript import fit

# Without a number, and outside a thread: this many of the channel's latest messages.
DEFAULT_MESSAGES = 50
MAX_MESSAGES = 500
# A thread longer than this is read from its newest end (then trimmed to the budget).
MAX_THREAD = 1000

SYSTEM = (
    "You summarize a chat conversation for someone who was not there. Each line of the "
    "conversation is one message: [author] text. Write in {language}.\n"
    "First, a few short bullet points: what was discussed and decided, naming who said "
    "what. Then a section 'Open questions': what was asked or proposed and is still "
    "unanswered or undecided, with who raised it; say plainly if there are none. Use only "
    "what the messages say; do not invent anything."
)

# What was read: a thread (or reply chain), this channel, or the channel being looked at.
Where = Literal["thread", "channel", "viewed"]


async def run_summarize(ctx: Context) -> None:
    options = parse_options(ctx.args, numbers=True)
    adapter = ctx.adapter
    if not isinstance(adapter, ReadsChannels):
        raise UserFacingError(t("Summaries are not available on this platform."))
    messages, where = await _messages(ctx, adapter, options)
    if not messages:
        raise UserFacingError(_nothing(where))
    transcript = fit(messages, ctx.services.config.context_tokens)
    if not transcript.kept:
        raise UserFacingError(t("The newest message alone is too long to summarize."))
    header = _header(where, transcript.kept)
    if transcript.dropped:
        header += nt(
            " (the oldest message did not fit in the model's context and was left out)",
            " (the {n} oldest did not fit in the model's context and were left out)",
            transcript.dropped,
        )
    system = SYSTEM.format(language=options.language_for(ctx).name)
    private = not options.share and not ctx.req.place.direct
    await respond(ctx, Prompted(system, transcript.text), private=private, header=header)


async def _messages(
    ctx: Context, adapter: ReadsChannels, options: Options
) -> tuple[Sequence[Said], Where]:
    req = ctx.req
    channel: Where = "viewed" if req.viewing else "channel"
    if options.number is not None:
        if not 1 <= options.number <= MAX_MESSAGES:
            raise UserFacingError(
                t("Give a number of messages from 1 to {limit}.", limit=MAX_MESSAGES)
            )
        return await adapter.recent(req, options.number), channel
    # Beside a channel (Slack's assistant threads), the channel is what the user means.
    if req.viewing is None:
        thread = await adapter.conversation(req, MAX_THREAD)
        if len(thread) > 1:
            return thread, "thread"
    return await adapter.recent(req, DEFAULT_MESSAGES), channel


def _nothing(where: Where) -> str:
    if where == "thread":
        return t("There is nothing to summarize in this thread yet.")
    if where == "viewed":
        return t("There is nothing to summarize in the channel you are looking at yet.")
    return t("There is nothing to summarize in this channel yet.")


def _header(where: Where, kept: int) -> str:
    if where == "thread":
        return nt(
            "**Summary of {n} message** in this thread",
            "**Summary of {n} messages** in this thread",
            kept,
        )
    if where == "viewed":
        return nt(
            "**Summary of {n} message** in the channel you are looking at",
            "**Summary of {n} messages** in the channel you are looking at",
            kept,
        )
    return nt(
        "**Summary of {n} message** in this channel",
        "**Summary of {n} messages** in this channel",
        kept,
    )


SUMMARIZE = Command(
    name="summarize",
    summary=N_(
        "Summarize this thread, or the channel's latest N messages: who said what, and "
        "the open questions. Only you see it unless you add `share`."
    ),
    usage="summarize [N] [share]",
    run=run_summarize,
    private=True,
    shareable=True,
)
