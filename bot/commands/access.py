"""`channels` and `allowlist`: where the bot answers and which models a place may use."""

from __future__ import annotations

import re

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.governance.channels import ChannelLists, lists_for
from bot.governance.globs import check_glob, glob_matches, nearest
from bot.governance.models import describe
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
            raise UserFacingError(f"`{entry[:40]}…` is too long to be a channel id or name.")
        found.append(entry)
    if not found:
        raise UserFacingError(
            f"Name at least one channel (an id, `#name` or `here`). Usage: `{CHANNELS_USAGE}`"
        )
    if len(found) > MAX_ENTRIES:
        raise UserFacingError(f"At most {MAX_ENTRIES} entries at once, please.")
    return found


def _require_admin(ctx: Context, what: str) -> None:
    if not ctx.is_admin:
        raise UserFacingError(f"Only admins can change {what}; anyone can see it.")


def _require_workspace(ctx: Context) -> RuleScope:
    place = ctx.req.place
    if place.direct:
        raise UserFacingError("Run this in a channel of the workspace or server it is for.")
    return RuleScope(place.platform, place.workspace)


def _listed(entries: tuple[str, ...]) -> str:
    return ", ".join(f"`{e}`" for e in entries)


def _channels_view(ctx: Context, lists: ChannelLists, refused: str) -> str:
    policy = ctx.services.config.governance
    place = ctx.req.place
    source = {
        "workspace": "set for this workspace",
        "default": "the service default",
    }
    lines = ["**Where I answer in this workspace**"]
    if lists.allow:
        lines.append(f"• only in: {_listed(lists.allow)} ({source[lists.allow_source]})")
    else:
        lines.append("• allowed: every channel (no allow list)")
    if lists.block:
        lines.append(f"• never in: {_listed(lists.block)} ({source[lists.block_source]})")
    else:
        lines.append("• blocked: none")
    lines.append(f"• direct messages: {'on' if policy.channels.dms else 'off'} (CHATOPS_DMS)")
    reply = policy.channels.blocked_reply
    lines.append(
        "• a refused channel hears: "
        + ("one short notice an hour" if reply == "notice" else "nothing")
        + " (CHATOPS_BLOCKED_REPLY)"
    )
    here = f"#{place.name} ({place.channel})" if place.name else place.channel
    state = {
        "": "I answer here",
        "blocked": "I do not answer here: it is blocked",
        "not_allowed": "I do not answer here: it is not on the allow list",
        "dms_off": "direct messages are off",
    }[refused]
    lines.append(f"This channel, {here}: {state}.")
    return "\n".join(lines)


async def run_channels(ctx: Context) -> None:
    words = ctx.args.split()
    sub = words[0].lower() if words else "show"
    store, place = ctx.services.store, ctx.req.place
    if sub not in ("show", "list", "allow", "block", "remove", "clear"):
        raise UserFacingError(
            f"`channels {words[0]}` is not something I know. Usage: `{CHANNELS_USAGE}`"
        )
    if sub not in ("show", "list"):
        _require_admin(ctx, "where the bot answers")
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
                    f"None of {_listed(tuple(entries))} is on this workspace's lists."
                )
        else:
            which = words[1].lower() if len(words) > 1 else "both"
            if which not in ("allow", "block", "both"):
                raise UserFacingError(f"Usage: `{CHANNELS_USAGE}`")
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
            hint = f" Nearest: {', '.join(f'`{c}`' for c in close)}." if close else ""
            raise UserFacingError(f"`{glob}` matches no model the gateway offers.{hint}")


async def run_allowlist(ctx: Context) -> None:
    words = ctx.args.split()
    workspace = bool(words) and words[0].lower() in ("workspace", "server", "guild")
    if workspace or (words and words[0].lower() in ("channel", "here")):
        words = words[1:]
    sub = words[0].lower() if words else "show"
    if sub not in ("show", "add", "remove", "clear"):
        raise UserFacingError(
            f"`allowlist {words[0]}` is not something I know. Usage: `{ALLOWLIST_USAGE}`"
        )
    store, place = ctx.services.store, ctx.req.place
    if sub != "show":
        _require_admin(ctx, "which models may be used")
        scope = _require_workspace(ctx)
        if not workspace:
            scope = RuleScope(place.platform, place.workspace, place.channel)
        globs = list(dict.fromkeys(words[1:]))
        if sub in ("add", "remove") and not globs:
            raise UserFacingError(
                f"Name at least one model or glob, like `gpt-4o*`. Usage: `{ALLOWLIST_USAGE}`"
            )
        if len(globs) > MAX_ENTRIES:
            raise UserFacingError(f"At most {MAX_ENTRIES} entries at once, please.")
        if sub == "add":
            await _check_globs(ctx, globs)
            await store.add_access_rules(scope, "model_allow", globs, ctx.req.user.name)
        elif sub == "remove":
            if not await store.remove_access_rules(scope, "model_allow", globs):
                raise UserFacingError(f"None of {_listed(tuple(globs))} is on that list.")
        else:
            await store.remove_access_rules(scope, "model_allow")
    rules = await store.access_rules(place.platform, place.workspace, place.channel)
    ctx.rules = rules
    policy = ctx.services.config.governance
    models = policy.model_list(rules)
    lines = [f"**Models this channel may use**: {describe(models)}."]
    own = rules.patterns("model_allow", channel=False)
    if models.source == "channel" and own:
        lines.append(f"This workspace's own list (used where a channel sets none): {_listed(own)}.")
    if policy.prices is not None:
        lines.append(
            f"Spend is metered in {policy.currency}: a model without a price in the price "
            "table cannot be used anywhere."
        )
    current = (await ctx.settings()).model or ctx.services.config.default_model
    if policy.model_problem(current, rules):
        lines.append(
            f"⚠️ This channel's model `{current}` may not be used under this list; pick one "
            "with `model <name>`."
        )
    await ctx.reply("\n".join(lines), ephemeral=True)


CHANNELS = Command(
    name="channels",
    summary="Where the bot answers in this workspace (admins: allow, block, remove, clear).",
    usage=CHANNELS_USAGE,
    run=run_channels,
    private=True,
)
ALLOWLIST = Command(
    name="allowlist",
    summary="The models this channel may use (admins: add, remove or clear model globs).",
    usage=ALLOWLIST_USAGE,
    run=run_allowlist,
    private=True,
)
