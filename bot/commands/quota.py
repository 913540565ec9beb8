"""`quota`: the channel's usage against its limits; admins set limits or reset usage."""

from __future__ import annotations

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.i18n import N_, nt, t
from bot.quota.config import parse_limit, parse_metric, parse_window
from bot.quota.view import format_amount, format_quota, limit_name, month_key

SET_USAGE = "`quota set <requests|tokens|images|audio|cost> <day|month> <limit|unlimited|default>`"


async def run_quota(ctx: Context) -> None:
    words = ctx.args.split()
    sub = words[0].lower() if words else "show"
    if sub in ("show", "status"):
        store, channel = ctx.services.store, ctx.req.place.channel_key
        status = await store.quota_status(channel)
        votes = await store.votes_by_model(channel, month=month_key(status))
        currency = ctx.services.config.governance.currency
        view = format_quota(status, ctx.services.clock(), currency, votes)
        await ctx.reply(view, ephemeral=True)
    elif sub == "set":
        _require_admin(ctx)
        await _set(ctx, words[1:])
    elif sub == "reset":
        _require_admin(ctx)
        await _reset(ctx, words[1:])
    else:
        raise UserFacingError(
            t(
                "`{command}` is not something I know. Use `quota` to see usage, {usage} or "
                "`quota reset [limits]`.",
                command=f"quota {words[0]}",
                usage=SET_USAGE,
            )
        )


def _require_admin(ctx: Context) -> None:
    if not ctx.is_admin:
        raise UserFacingError(
            t("Only admins can change this channel's quota; anyone can see it with `quota`.")
        )


async def _set(ctx: Context, words: list[str]) -> None:
    if len(words) != 3:
        raise UserFacingError(
            t("Usage: {usage}, for example `quota set tokens day 200k`.", usage=SET_USAGE)
        )
    try:
        metric = parse_metric(words[0])
        window = parse_window(words[1])
        clear = words[2].lower() in ("default", "reset")
        value = None if clear else parse_limit(metric, words[2])
    except ValueError as e:
        problem = f"{str(e)[0].upper()}{str(e)[1:]}"
        raise UserFacingError(
            t("{problem}. Usage: {usage}.", problem=problem, usage=SET_USAGE)
        ) from None
    currency = ctx.services.config.governance.currency
    if metric == "cost" and not clear and value is not None and not currency:
        raise UserFacingError(
            t(
                "Spend limits need a price table, and this bot has none: an operator sets "
                "CHATOPS_PRICES."
            )
        )
    store, channel = ctx.services.store, ctx.req.place.channel_key
    name = limit_name(metric, window)
    if clear:
        await store.clear_limits(channel, metric, window)
        found = {(s.metric, s.window): s.value for s in await store.limits(channel)}
        default = found[(metric, window)]
        shown = t("none") if default is None else format_amount(metric, default, currency)
        await ctx.reply(
            t("This channel's {limit} is back to the default ({value}).", limit=name, value=shown)
        )
        return
    await store.set_limit(channel, metric, window, value)
    shown = t("unlimited") if value is None else format_amount(metric, value, currency)
    await ctx.reply(
        t(
            "This channel's {limit} is now {value} (set by {who}).",
            limit=name,
            value=shown,
            who=ctx.req.user.name,
        )
    )


async def _reset(ctx: Context, words: list[str]) -> None:
    store, channel = ctx.services.store, ctx.req.place.channel_key
    what = words[0].lower() if words else "usage"
    if len(words) > 1 or what not in ("usage", "limits"):
        raise UserFacingError(
            t(
                "Usage: `quota reset` (a fresh budget for today and this month) or "
                "`quota reset limits` (back to the default limits)."
            )
        )
    if what == "limits":
        dropped = await store.clear_limits(channel)
        await ctx.reply(
            nt(
                "This channel's limits are back to the defaults ({n} override removed).",
                "This channel's limits are back to the defaults ({n} overrides removed).",
                dropped,
            )
        )
        return
    await store.reset_usage(channel)
    await ctx.reply(
        t(
            "This channel's usage for today and this month was reset by {who}; the ledger "
            "keeps every request.",
            who=ctx.req.user.name,
        )
    )


QUOTA = Command(
    name="quota",
    summary=N_("This channel's usage, limits, resets and top users (admins: set limits, reset)."),
    usage="quota [set <metric> <day|month> <limit|unlimited|default> | reset [limits]]",
    run=run_quota,
    private=True,
)
