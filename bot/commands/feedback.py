"""`feedback up|down <reply>`: a 👍/👎 click on a reply, stored once per person and reply."""

from __future__ import annotations

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.i18n import N_, t

VOTES = {"up": 1, "down": -1}


async def run_feedback(ctx: Context) -> None:
    vote, _, key = ctx.args.strip().partition(" ")
    if vote not in VOTES or not key.strip().isdigit():
        raise UserFacingError(t("That feedback button is not one I know."))
    stored = await ctx.services.store.record_vote(
        int(key), ctx.req.user.id, VOTES[vote], channel=ctx.req.place.channel_key
    )
    if not stored:
        raise UserFacingError(t("I can't find that answer in this channel any more."))
    if vote == "up":
        await ctx.reply(t("Thanks! Glad it helped. 👍"), ephemeral=True)
    else:
        await ctx.reply(
            t("Thanks for telling me. 👎 Noted; asking again with more detail may help."),
            ephemeral=True,
        )


FEEDBACK = Command(
    name="feedback",
    summary=N_("A 👍/👎 on one of the bot's answers (from its buttons)."),
    usage="feedback up|down <reply>",
    run=run_feedback,
    private=True,
    hidden=True,
)
