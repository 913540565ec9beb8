"""Normalising Discord messages and interactions into the core's Request nouns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import discord

from adapters.discord.origin import Origin
from bot.events import Attachment, AttachmentKind, Place, Request, Said, User

PLATFORM = "discord"
# MessageFlags.IS_VOICE_MESSAGE (1 << 13): one audio/ogg attachment with duration and waveform.
VOICE_FLAG = 1 << 13
_USER_MENTION = re.compile(r"<@!?(\d+)>")


def place_of(channel: Any, guild: discord.Guild | None) -> Place:
    """Threads keep their parent's settings, quota and access rules (channel, name) but are
    their own thread."""
    workspace = str(guild.id) if guild is not None else "dm"
    direct = getattr(channel, "type", None) in (
        discord.ChannelType.private,
        discord.ChannelType.group,
    )
    if isinstance(channel, discord.Thread):
        parent = channel.parent_id or channel.id
        name = getattr(channel.parent, "name", None) or ""
        return Place(PLATFORM, str(parent), str(channel.id), workspace, name, direct)
    name = str(getattr(channel, "name", None) or "")
    return Place(PLATFORM, str(getattr(channel, "id", "0")), None, workspace, name, direct)


def user_of(
    author: discord.abc.User,
    *,
    permissions: discord.Permissions | None = None,
    locale: object = None,
) -> User:
    """Administrator or Manage Server in the guild makes a Discord admin. `locale`: the
    interaction's (the user's client language), else the server's preferred one."""
    is_admin = False
    if permissions is None and isinstance(author, discord.Member):
        try:
            permissions = author.resolved_permissions or author.guild_permissions
        except AttributeError:  # a member of a guild we have no cache for
            permissions = None
    if permissions is not None:
        is_admin = permissions.administrator or permissions.manage_guild
    return User(
        id=str(author.id),
        name=author.display_name,
        is_admin=is_admin,
        locale=str(locale) if locale else "",
    )


def _kind(mime: str, *, voice: bool) -> AttachmentKind:
    if voice or mime.startswith("audio/"):
        return "audio"
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("video/"):
        # Videos carry a sound track the transcriber can read (ffmpeg extracts it).
        return "audio"
    return "file"


def attachment_of(att: discord.Attachment, *, voice: bool = False) -> Attachment:
    mime = (att.content_type or "application/octet-stream").split(";")[0].strip()
    return Attachment(
        id=str(att.id),
        filename=att.filename,
        mime=mime,
        size=att.size,
        kind=_kind(mime, voice=voice),
        duration=att.duration,
        native=att,
    )


def is_voice_message(message: discord.Message) -> bool:
    return bool(message.flags.value & VOICE_FLAG)


def attachments_of(message: discord.Message) -> tuple[Attachment, ...]:
    voice = is_voice_message(message)
    return tuple(attachment_of(a, voice=voice) for a in message.attachments)


def readable_text(message: discord.Message, me_id: int) -> str:
    """The message text without our mention, other user mentions as @name."""
    names = {m.id: m.display_name for m in message.mentions}

    def swap(match: re.Match[str]) -> str:
        uid = int(match.group(1))
        if uid == me_id:
            return ""
        return "@" + names.get(uid, match.group(1))

    return re.sub(r"[ \t]{2,}", " ", _USER_MENTION.sub(swap, message.content)).strip()


def is_reply_to(message: discord.Message, user_id: int) -> bool:
    ref = message.reference
    if ref is None:
        return False
    resolved = ref.resolved
    return isinstance(resolved, discord.Message) and resolved.author.id == user_id


def is_addressed(
    message: discord.Message,
    me_id: int,
    *,
    allowed_bots: Iterable[int] = (),
    allow_all_bots: bool = False,
) -> bool:
    """Whether a message is for us: a DM, a mention, a reply to us, or a voice message."""
    author = message.author
    if author.id == me_id:
        return False
    if author.bot and not (allow_all_bots or author.id in set(allowed_bots)):
        return False
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return False
    if message.guild is None:
        return True
    if any(m.id == me_id for m in message.mentions) or is_reply_to(message, me_id):
        return True
    # Voice notes go to the core, whose channel setting (auto_transcribe) decides.
    return is_voice_message(message)


def message_request(message: discord.Message, me_id: int) -> Request:
    origin = Origin(channel=message.channel, author=message.author, message=message)
    guild = message.guild
    return Request(
        place=place_of(message.channel, guild),
        user=user_of(message.author, locale=guild.preferred_locale if guild else None),
        text=readable_text(message, me_id),
        command=None,
        attachments=attachments_of(message),
        event_id=f"discord:m{message.id}",
        conversational=(
            message.guild is None
            or any(m.id == me_id for m in message.mentions)
            or is_reply_to(message, me_id)
        ),
        native=origin,
    )


def interaction_request(
    interaction: discord.Interaction[Any],
    command: str,
    text: str,
    attachments: tuple[Attachment, ...] = (),
    *,
    deferred_ephemeral: bool = False,
    interaction_ttl: float | None = None,
    target: discord.Message | None = None,
    me_id: int = 0,
) -> Request:
    channel = interaction.channel
    if channel is None:
        raise ValueError("interaction without a channel")
    origin = Origin(
        channel=channel,  # type: ignore[arg-type]  # every interaction channel we accept is messageable
        author=interaction.user,
        interaction=interaction,
        deferred_ephemeral=deferred_ephemeral,
        target=target,
    )
    if interaction_ttl is not None:
        origin.interaction_ttl = interaction_ttl
    return Request(
        place=place_of(channel, interaction.guild),
        user=user_of(
            interaction.user,
            permissions=_member_permissions(interaction),
            locale=interaction.locale or interaction.guild_locale,
        ),
        text=text,
        command=command,
        attachments=attachments,
        event_id=f"discord:i{interaction.id}",
        target=said_of(target, me_id) if target is not None else None,
        native=origin,
    )


def said_of(message: discord.Message, me_id: int) -> Said:
    """A message as a Said line: its author's display name and its readable text."""
    text = readable_text(message, me_id)
    files = " ".join(f"[file: {a.filename}]" for a in message.attachments)
    return Said(
        author=message.author.display_name,
        text=f"{text} {files}".strip(),
        id=str(message.id),
        bot=message.author.id == me_id,
    )


def _member_permissions(interaction: discord.Interaction[Any]) -> discord.Permissions | None:
    user = interaction.user
    if isinstance(user, discord.Member):
        return user.resolved_permissions
    return None
