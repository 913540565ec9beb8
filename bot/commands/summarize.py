"""`summarize [N] [share]`: a thread, a reply chain or a channel's latest messages, summarized."""

from __future__ import annotations

from collections.abc import Sequence

from bot.adapter import ReadsChannels
from bot.commands import Command
from bot.commands.answer import Prompted, respond
from bot.commands.options import Options, parse_options
from bot.context import Context
from bot.errors import UserFacingError
from bot.events import Said
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


async def run_summarize(ctx: Context) -> None:
    options = parse_options(ctx.args, numbers=True)
    adapter = ctx.adapter
    if not isinstance(adapter, ReadsChannels):
        raise UserFacingError("Summaries are not available on this platform.")
    messages, where = await _messages(ctx, adapter, options)
    if not messages:
        raise UserFacingError(f"There is nothing to summarize in {where} yet.")
    transcript = fit(messages, ctx.services.config.context_tokens)
    if not transcript.kept:
        raise UserFacingError("The newest message alone is too long to summarize.")
    header = (
        f"**Summary of {transcript.kept} message{'s' if transcript.kept != 1 else ''}** in {where}"
    )
    if transcript.dropped:
        header += (
            f" (the {transcript.dropped} oldest did not fit in the model's context and were "
            "left out)"
        )
    system = SYSTEM.format(language=options.language_name(ctx))
    private = not options.share and not ctx.req.place.direct
    await respond(ctx, Prompted(system, transcript.text), private=private, header=header)


async def _messages(
    ctx: Context, adapter: ReadsChannels, options: Options
) -> tuple[Sequence[Said], str]:
    req = ctx.req
    if options.number is not None:
        if not 1 <= options.number <= MAX_MESSAGES:
            raise UserFacingError(f"Give a number of messages from 1 to {MAX_MESSAGES}.")
        return await adapter.recent(req, options.number), _channel(ctx)
    # Beside a channel (Slack's assistant threads), the channel is what the user means.
    if req.viewing is None:
        thread = await adapter.conversation(req, MAX_THREAD)
        if len(thread) > 1:
            return thread, "this thread"
    return await adapter.recent(req, DEFAULT_MESSAGES), _channel(ctx)


def _channel(ctx: Context) -> str:
    return "the channel you are looking at" if ctx.req.viewing else "this channel"


SUMMARIZE = Command(
    name="summarize",
    summary=(
        "Summarize this thread, or the channel's latest N messages: who said what, and "
        "the open questions. Only you see it unless you add `share`."
    ),
    usage="summarize [N] [share]",
    run=run_summarize,
    private=True,
    shareable=True,
)
