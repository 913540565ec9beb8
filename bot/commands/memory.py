"""`memory on|off|status|forget` (admins change it) and `search <question>` over the channel."""

from __future__ import annotations

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.knowledge.memory import ChannelMemory
from storage.base import Charge, MemoryHit

USAGE = "memory [status | on | off | forget]"
SEARCH_USAGE = "search <question>"
_SNIPPET = 280


def _memory(ctx: Context) -> ChannelMemory:
    memory = ctx.services.memory
    if memory is None:
        raise UserFacingError("Channel memory is not available in this service.")
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
        state = "on" if memory.watching(key) else "off"
        since = f" since {status.oldest:%Y-%m-%d}" if status.oldest else ""
        await ctx.reply(
            f"Channel memory is **{state}** here: {status.messages:,} messages indexed "
            f"({status.passages:,} passages){since}, each kept {days} days. "
            f"Search it with `{SEARCH_USAGE}`. Admins: `memory on`, `memory off`, `memory forget`."
        )
        return
    if sub not in ("on", "off", "forget", "enable", "disable"):
        raise UserFacingError(f"`memory {words[0]}` is not something I know. Usage: `{USAGE}`")
    if not ctx.is_admin:
        raise UserFacingError(
            "Only admins can change this channel's memory; anyone can see it with `memory`."
        )
    if sub == "forget":
        removed = await memory.forget(key)
        await ctx.reply(f"Forgot this channel's memory: {removed:,} passages removed.")
        return
    on = sub in ("on", "enable")
    await memory.switch(key, on)
    if on:
        await ctx.reply(
            "Channel memory is now **on**: from now on I index the messages and text files "
            f"posted here, and my answers (kept {days} days). `{SEARCH_USAGE}` finds them; "
            "`memory off` stops indexing, `memory forget` erases the index."
        )
    else:
        await ctx.reply(
            "Channel memory is now **off**: nothing new is indexed. What was indexed stays "
            "until `memory forget`."
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
        said = f"{p.author or 'someone'}, {_when(hit)}"
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
            "Channel memory is off in this channel, so there is nothing to search; "
            "an admin can turn it on with `memory on`."
        )
    return await memory.search(key, question, memory_charge(ctx))


async def run_search(ctx: Context) -> None:
    question = ctx.args.strip()
    if not question:
        await ctx.reply(f"Search this channel's memory: `{SEARCH_USAGE}`.")
        return
    hits = await search_channel(ctx, question)
    if hits:
        text = f"**From this channel's memory** (“{question}”):\n{format_hits(hits)}"
    else:
        text = f"Nothing in this channel's memory matches “{question}”."
    # Through a streamed reply: paced by the platform's budgets, split past its length.
    async with ctx.stream() as reply:
        reply.write(text)
        await reply.finish()


MEMORY = Command(
    name="memory",
    summary="Channel memory: status, or (admins) on, off, forget. Off until switched on.",
    usage=USAGE,
    run=run_memory,
)
SEARCH = Command(
    name="search",
    summary="Search what was said in this channel (when its memory is on), with links.",
    usage=SEARCH_USAGE,
    run=run_search,
)
