"""`channels` and `allowlist`: where the bot answers and which models a place may use."""

from __future__ import annotations

import re

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.governance.channels import ChannelLists, lists_for
from bot.governance.globs import check_glob, glob_matches, nearest
from bot.governance.models import describe
from bot.i18n import N_, t
from storage.base import RuleKind, RuleScope

CHANNELS_USAGE = "channels [allow|block|remove <channel…> | clear [allow|block]]"
ALLOWLIST_USAGE = "allowlist [workspace] [add|remove <model glob…> | clear]"
MAX_ENTRIES = 50
CHANNEL_KINDS: tuple[RuleKind, ...] = ("channel_allow", "channel_block")
# Slack <#C0123|name> and Discord <#123> channel mentions name a channel by id.
_MENTION = re.compile(r"^<#([A-Za-z0-9]+)(?:\|[^>]*)?>$")


def _entries(ctx: Context, words: list[str]) -> list[str]:
    found: list[str] = []
    for word in " ".join(words).replace(",", " ").split():
        mention = _MENTION.match(word)
        entry = ctx.req.place.channel if word.lower() == "here" else word
        entry = mention.group(1) if mention else entry
        if len(entry) > 100:
            raise UserFacingError(
                t("`{value}…` is too long to be a channel id or name.", value=entry[:40])
            )
        found.append(entry)
    if not found:
        raise UserFacingError(
            t(
                "Name at least one channel (an id, `#name` or `here`). Usage: `{usage}`",
                usage=CHANNELS_USAGE,
            )
        )
    if len(found) > MAX_ENTRIES:
        raise UserFacingError(t("At most {n} entries at once, please.", n=MAX_ENTRIES))
    return found


def _require_admin(ctx: Context, what: str) -> None:
    if not ctx.is_admin:
        raise UserFacingError(t("Only admins can change {what}; anyone can see it.", what=what))


def _require_workspace(ctx: Context) -> RuleScope:
    place = ctx.req.place
    if place.direct:
        raise UserFacingError(t("Run this in a channel of the workspace or server it is for."))
    return RuleScope(place.platform, place.workspace)


def _listed(entries: tuple[str, ...]) -> str:
    return ", ".join(f"`{e}`" for e in entries)


def _channels_view(ctx: Context, lists: ChannelLists, refused: str) -> str:
    policy = ctx.services.config.governance
    place = ctx.req.place
    source = {
        "workspace": t("set for this workspace"),
        "default": t("the service default"),
    }
    lines = [t("**Where I answer in this workspace**")]
    if lists.allow:
        only = t("• only in: {channels}", channels=_listed(lists.allow))
        lines.append(f"{only} ({source[lists.allow_source]})")
    else:
        lines.append(t("• allowed: every channel (no allow list)"))
    if lists.block:
        never = t("• never in: {channels}", channels=_listed(lists.block))
        lines.append(f"{never} ({source[lists.block_source]})")
    else:
        lines.append(t("• blocked: none"))
    dms = t("on") if policy.channels.dms else t("off")
    lines.append(t("• direct messages: {state} (CHATOPS_DMS)", state=dms))
    reply = policy.channels.blocked_reply
    hears = t("one short notice an hour") if reply == "notice" else t("nothing")
    lines.append(t("• a refused channel hears: {what} (CHATOPS_BLOCKED_REPLY)", what=hears))
    here = f"#{place.name} ({place.channel})" if place.name else place.channel
    state = {
        "": N_("I answer here"),
        "blocked": N_("I do not answer here: it is blocked"),
        "not_allowed": N_("I do not answer here: it is not on the allow list"),
        "dms_off": N_("direct messages are off"),
    }[refused]
    lines.append(t("This channel, {here}: {state}.", here=here, state=t(state)))
    return "\n".join(lines)


async def run_channels(ctx: Context) -> None:
    words = ctx.args.split()
    sub = words[0].lower() if words else "show"
    store, place = ctx.services.store, ctx.req.place
    if sub not in ("show", "list", "allow", "block", "remove", "clear"):
        raise UserFacingError(
            t(
                "`{command}` is not something I know. Usage: `{usage}`",
                command=f"channels {words[0]}",
                usage=CHANNELS_USAGE,
            )
        )
    if sub not in ("show", "list"):
        _require_admin(ctx, t("where the bot answers"))
        scope = _require_workspace(ctx)
        who = ctx.req.user.name
        if sub in ("allow", "block"):
            added: RuleKind = "channel_allow" if sub == "allow" else "channel_block"
            await store.add_access_rules(scope, added, _entries(ctx, words[1:]), who)
        elif sub == "remove":
            entries = _entries(ctx, words[1:])
            removed = 0
            for kind in CHANNEL_KINDS:
                removed += await store.remove_access_rules(scope, kind, entries)
            if not removed:
                raise UserFacingError(
                    t(
                        "None of {entries} is on this workspace's lists.",
                        entries=_listed(tuple(entries)),
                    )
                )
        else:
            which = words[1].lower() if len(words) > 1 else "both"
            if which not in ("allow", "block", "both"):
                raise UserFacingError(t("Usage: `{usage}`", usage=CHANNELS_USAGE))
            for kind in CHANNEL_KINDS:
                if which in ("both", kind.removeprefix("channel_")):
                    await store.remove_access_rules(scope, kind)
    # Read back from the store: what every replica now applies.
    rules = await store.access_rules(place.platform, place.workspace, place.channel)
    ctx.rules = rules
    policy = ctx.services.config.governance
    text = _channels_view(ctx, lists_for(policy.channels, rules), policy.verdict(place, rules))
    await ctx.reply(text, ephemeral=True)


async def _check_globs(ctx: Context, globs: list[str]) -> None:
    ids = [m.id for m in await ctx.services.gateway.models()]
    for glob in globs:
        problem = check_glob(glob)
        if problem:
            raise UserFacingError(f"`{glob[:60]}`: {problem}.")
        if not any(glob_matches(glob, m) for m in ids):
            close = nearest(glob.replace("*", "").replace("?", ""), ids)
            if close:
                raise UserFacingError(
                    t(
                        "`{glob}` matches no model the gateway offers. Nearest: {names}.",
                        glob=glob,
                        names=", ".join(f"`{c}`" for c in close),
                    )
                )
            raise UserFacingError(t("`{glob}` matches no model the gateway offers.", glob=glob))


async def run_allowlist(ctx: Context) -> None:
    words = ctx.args.split()
    workspace = bool(words) and words[0].lower() in ("workspace", "server", "guild")
    if workspace or (words and words[0].lower() in ("channel", "here")):
        words = words[1:]
    sub = words[0].lower() if words else "show"
    if sub not in ("show", "add", "remove", "clear"):
        raise UserFacingError(
            t(
                "`{command}` is not something I know. Usage: `{usage}`",
                command=f"allowlist {words[0]}",
                usage=ALLOWLIST_USAGE,
            )
        )
    store, place = ctx.services.store, ctx.req.place
    if sub != "show":
        _require_admin(ctx, t("which models may be used"))
        scope = _require_workspace(ctx)
        if not workspace:
            scope = RuleScope(place.platform, place.workspace, place.channel)
        globs = list(dict.fromkeys(words[1:]))
        if sub in ("add", "remove") and not globs:
            raise UserFacingError(
                t(
                    "Name at least one model or glob, like `gpt-4o*`. Usage: `{usage}`",
                    usage=ALLOWLIST_USAGE,
                )
            )
        if len(globs) > MAX_ENTRIES:
            raise UserFacingError(t("At most {n} entries at once, please.", n=MAX_ENTRIES))
        if sub == "add":
            await _check_globs(ctx, globs)
            await store.add_access_rules(scope, "model_allow", globs, ctx.req.user.name)
        elif sub == "remove":
            if not await store.remove_access_rules(scope, "model_allow", globs):
                raise UserFacingError(
                    t("None of {entries} is on that list.", entries=_listed(tuple(globs)))
                )
        else:
            await store.remove_access_rules(scope, "model_allow")
    rules = await store.access_rules(place.platform, place.workspace, place.channel)
    ctx.rules = rules
    policy = ctx.services.config.governance
    models = policy.model_list(rules)
    lines = [t("**Models this channel may use**: {models}.", models=describe(models))]
    own = rules.patterns("model_allow", channel=False)
    if models.source == "channel" and own:
        lines.append(
            t(
                "This workspace's own list (used where a channel sets none): {entries}.",
                entries=_listed(own),
            )
        )
    if policy.prices is not None:
        lines.append(
            t(
                "Spend is metered in {currency}: a model without a price in the price table "
                "cannot be used anywhere.",
                currency=policy.currency,
            )
        )
    current = (await ctx.settings()).model or ctx.services.config.default_model
    if policy.model_problem(current, rules):
        lines.append(
            t(
                "⚠️ This channel's model `{model}` may not be used under this list; pick one "
                "with `model <name>`.",
                model=current,
            )
        )
    await ctx.reply("\n".join(lines), ephemeral=True)


CHANNELS = Command(
    name="channels",
    summary=N_("Where the bot answers in this workspace (admins: allow, block, remove, clear)."),
    usage=CHANNELS_USAGE,
    run=run_channels,
    private=True,
)
ALLOWLIST = Command(
    name="allowlist",
    summary=N_("The models this channel may use (admins: add, remove or clear model globs)."),
    usage=ALLOWLIST_USAGE,
    run=run_allowlist,
    private=True,
)
