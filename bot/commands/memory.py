"""`memory on|off|status|forget` (admins change it) and `search <question>` over the channel."""

from __future__ import annotations

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.i18n import N_, nt, t
from bot.knowledge.memory import ChannelMemory
from storage.base import Charge, MemoryHit

USAGE = "memory [status | on | off | forget]"
SEARCH_USAGE = "search <question>"
_SNIPPET = 280


def _memory(ctx: Context) -> ChannelMemory:
    memory = ctx.services.memory
    if memory is None:
        raise UserFacingError(t("Channel memory is not available in this service."))
    return memory


def _when(hit: MemoryHit) -> str:
    return hit.passage.posted_at.strftime("%Y-%m-%d %H:%M UTC")


async def run_memory(ctx: Context) -> None:
    memory = _memory(ctx)
    key = ctx.req.place.channel_key
    words = ctx.args.split()
    sub = words[0].lower() if words else "status"
    days = memory.config.retention_days
    if sub in ("status", "show"):
        status = await ctx.services.store.memory_status(key)
        state = t("on") if memory.watching(key) else t("off")
        since = f"{status.oldest:%Y-%m-%d}" if status.oldest else ""
        indexed = (
            nt("{n} message indexed", "{n} messages indexed", status.messages)
            + " "
            + nt("({n} passage)", "({n} passages)", status.passages)
        )
        if since:
            indexed += " " + t("since {date}", date=since)
        await ctx.reply(
            t(
                "Channel memory is **{state}** here: {indexed}, each kept {days} days. Search it "
                "with `{usage}`. Admins: `memory on`, `memory off`, `memory forget`.",
                state=state,
                indexed=indexed,
                days=days,
                usage=SEARCH_USAGE,
            )
        )
        return
    if sub not in ("on", "off", "forget", "enable", "disable"):
        raise UserFacingError(
            t(
                "`{command}` is not something I know. Usage: `{usage}`",
                command=f"memory {words[0]}",
                usage=USAGE,
            )
        )
    if not ctx.is_admin:
        raise UserFacingError(
            t("Only admins can change this channel's memory; anyone can see it with `memory`.")
        )
    if sub == "forget":
        removed = await memory.forget(key)
        await ctx.reply(
            nt(
                "Forgot this channel's memory: {n} passage removed.",
                "Forgot this channel's memory: {n} passages removed.",
                removed,
            )
        )
        return
    on = sub in ("on", "enable")
    await memory.switch(key, on)
    if on:
        await ctx.reply(
            t(
                "Channel memory is now **on**: from now on I index the messages and text files "
                "posted here, and my answers (kept {days} days). `{usage}` finds them; "
                "`memory off` stops indexing, `memory forget` erases the index.",
                days=days,
                usage=SEARCH_USAGE,
            )
        )
    else:
        await ctx.reply(
            t(
                "Channel memory is now **off**: nothing new is indexed. What was indexed stays "
                "until `memory forget`."
            )
        )


def format_hits(hits: list[MemoryHit]) -> str:
    """The passages as a numbered list, each with who said it, when, and a link to it."""
    lines = []
    for number, hit in enumerate(hits, start=1):
        p = hit.passage
        text = " ".join(p.text.split())
        if len(text) > _SNIPPET:
            text = text[: _SNIPPET - 1] + "…"
        where = f" ({p.source})" if p.source else ""
        said = f"{p.author or t('someone')}, {_when(hit)}"
        head = f"[{said}]({p.link})" if p.link else said
        lines.append(f"{number}. {head}{where}: {text}")
    return "\n".join(lines)


def memory_charge(ctx: Context) -> Charge:
    place, user = ctx.req.place, ctx.req.user
    model = ctx.services.config.knowledge.embedding_model
    return Charge(place.platform, place.channel_key, user.id, "search", model, user.name)


async def search_channel(ctx: Context, question: str) -> list[MemoryHit]:
    memory = _memory(ctx)
    key = ctx.req.place.channel_key
    if not memory.watching(key):
        raise UserFacingError(
            t(
                "Channel memory is off in this channel, so there is nothing to search; an "
                "admin can turn it on with `memory on`."
            )
        )
    return await memory.search(key, question, memory_charge(ctx))


async def run_search(ctx: Context) -> None:
    question = ctx.args.strip()
    if not question:
        await ctx.reply(t("Search this channel's memory: `{usage}`.", usage=SEARCH_USAGE))
        return
    hits = await search_channel(ctx, question)
    if hits:
        heading = t("**From this channel's memory** (“{question}”):", question=question)
        text = f"{heading}\n{format_hits(hits)}"
    else:
        text = t("Nothing in this channel's memory matches “{question}”.", question=question)
    # Through a streamed reply: paced by the platform's budgets, split past its length.
    async with ctx.stream() as reply:
        reply.write(text)
        await reply.finish()


MEMORY = Command(
    name="memory",
    summary=N_("Channel memory: status, or (admins) on, off, forget. Off until switched on."),
    usage=USAGE,
    run=run_memory,
)
SEARCH = Command(
    name="search",
    summary=N_("Search what was said in this channel (when its memory is on), with links."),
    usage=SEARCH_USAGE,
    run=run_search,
)
