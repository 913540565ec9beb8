"""Earlier turns of a Discord conversation: the reply chain, or the thread's messages."""

from __future__ import annotations

import logging

import discord

from adapters.discord.events import attachments_of, readable_text, said_of
from adapters.discord.origin import Origin
from bot.errors import UserFacingError
from bot.events import Said, Turn
from bot.i18n import t

log = logging.getLogger(__name__)

MAX_MESSAGES = 40
# A generous character cap; the core trims to the model's token budget afterwards.
MAX_CHARS = 48_000
# Our own error notices are not conversation.
_NOTICE_PREFIX = "⚠️"


def _images(message: discord.Message) -> tuple[str, ...]:
    return tuple(a.url for a in message.attachments if (a.content_type or "").startswith("image/"))


def _turn(message: discord.Message, me_id: int) -> Turn | None:
    if message.author.id == me_id:
        if not message.content or message.content.startswith(_NOTICE_PREFIX):
            return None
        return Turn("assistant", message.content)
    text = readable_text(message, me_id)
    images = _images(message)
    # Documents are fetched only if the question needs them (bot/knowledge/files.py).
    files = tuple(a for a in attachments_of(message) if a.kind == "file")
    if not text and not images and not files:
        return None
    return Turn("user", text, images, files)


async def _parent(message: discord.Message) -> discord.Message | None:
    ref = message.reference
    if ref is None or ref.message_id is None:
        return None
    if isinstance(ref.resolved, discord.Message):
        return ref.resolved
    if isinstance(ref.resolved, discord.DeletedReferencedMessage):
        return None
    if ref.cached_message is not None:
        return ref.cached_message
    fetch = getattr(message.channel, "fetch_message", None)
    if fetch is None:
        return None
    try:
        parent: discord.Message = await fetch(ref.message_id)
    except discord.HTTPException as exc:  # deleted (10008) or no access (50001)
        log.info("reply chain ends at %s: %s", ref.message_id, exc.code)
        return None
    return parent


async def reply_chain(message: discord.Message, limit: int = MAX_MESSAGES) -> list[discord.Message]:
    """The messages `message` replies to, oldest first (not including `message`)."""
    chain: list[discord.Message] = []
    current = message
    seen = {message.id}
    while len(chain) < limit:
        parent = await _parent(current)
        if parent is None or parent.id in seen:
            break
        seen.add(parent.id)
        chain.append(parent)
        current = parent
    chain.reverse()
    return chain


async def thread_messages(
    thread: discord.Thread, before: discord.Message | None, limit: int = MAX_MESSAGES
) -> list[discord.Message]:
    """The thread's latest messages before `before`, oldest first."""
    out = [m async for m in thread.history(limit=limit, before=before)]
    out.reverse()
    return out


def _merge(turns: list[Turn]) -> list[Turn]:
    """One turn per speaker change: a long answer rolled over into parts is one turn."""
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            last = merged[-1]
            merged[-1] = Turn(
                last.role,
                last.text + "\n" + turn.text,
                last.image_urls + turn.image_urls,
                last.attachments + turn.attachments,
            )
        else:
            merged.append(turn)
    return merged


def _trim(turns: list[Turn], max_chars: int) -> list[Turn]:
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        used += len(turn.text)
        if used > max_chars:
            break
        kept.append(turn)
    kept.reverse()
    return kept


async def history(origin: Origin, me_id: int, max_chars: int = MAX_CHARS) -> list[Turn]:
    """Earlier turns for a request, oldest first; the request's own message is excluded."""
    messages: list[discord.Message] = []
    try:
        if isinstance(origin.channel, discord.Thread):
            messages = await thread_messages(origin.channel, origin.message)
        elif origin.message is not None:
            messages = await reply_chain(origin.message)
    except discord.HTTPException as exc:
        # Missing Read Message History: answer without context rather than not at all.
        log.warning("could not read conversation history: %s %s", exc.status, exc.code)
        return []
    turns = [t for t in (_turn(m, me_id) for m in messages) if t is not None]
    return _trim(_merge(turns), max_chars)


async def conversation_of(origin: Origin, me_id: int, limit: int) -> list[Said]:
    """The thread or reply chain of the request's message (or the one a menu targets), oldest
    first, without the request's own message; empty when it is in neither."""
    about = origin.target or origin.message
    try:
        if isinstance(origin.channel, discord.Thread):
            # The target itself and what followed it are part of the thread too.
            messages = [m async for m in origin.channel.history(limit=limit)]
            messages.reverse()
        elif about is not None:
            messages = await reply_chain(about, limit)
            if origin.target is not None:
                messages.append(origin.target)
        else:
            return []
    except discord.HTTPException as exc:
        raise _unreadable(exc) from exc
    mine = origin.message.id if origin.message is not None else None
    lines = [said_of(m, me_id) for m in messages if m.id != mine]
    return [s for s in lines if s.text][-limit:]


async def recent_in(origin: Origin, me_id: int, limit: int) -> list[Said]:
    """The channel's latest `limit` messages before the request, oldest first."""
    channel = origin.channel
    history = getattr(channel, "history", None)
    if history is None:
        return []
    try:
        # A few more: "thinking…" placeholders of slash commands (this one's, others') may be
        # the newest messages, and they hold no text yet.
        messages = [m async for m in history(limit=limit + 5, before=origin.message)]
    except discord.HTTPException as exc:
        raise _unreadable(exc) from exc
    messages.reverse()
    lines = [said_of(m, me_id) for m in messages]
    return [s for s in lines if s.text][-limit:]


def _unreadable(exc: discord.HTTPException) -> UserFacingError:
    log.warning("could not read channel messages: %s %s", exc.status, exc.code)
    return UserFacingError(
        t(
            "I can't read this channel's messages. A server admin can give me View Channel and "
            "Read Message History here."
        )
    )
