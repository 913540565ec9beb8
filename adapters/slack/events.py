"""Slack payloads (events, slash commands, shortcuts) normalized into the core's Request."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.events import Attachment, AttachmentKind, Change, Place, Request, Said, User

PLATFORM = "slack"
# Core commands with a slash command each; "/chatops <command> …" reaches all of them too.
SLASH_COMMANDS = (
    "ask",
    "image",
    "transcribe",
    "summarize",
    "translate",
    "models",
    "model",
    "quota",
    "help",
    "settings",
)
UMBRELLA_COMMAND = "chatops"
TRANSCRIBE_SHORTCUT = "transcribe"
# Message shortcuts by callback id, each the core command it runs on that message.
SHORTCUTS = ("transcribe", "summarize", "translate")

# Message subtypes that are a person saying something; edits, joins, deletions are not.
_SPOKEN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "bot_message"})
# Slack's own recorded clips; their mime type is sometimes video/* even for audio-only clips.
_CLIP_SUBTYPES = frozenset({"slack_audio", "slack_video"})

MessageKind = Literal["dm", "thread", "clip"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the bot is in this workspace (from auth.test)."""

    user_id: str
    bot_id: str
    team_id: str
    # The workspace's address ("https://acme.slack.com/"), for links to messages.
    url: str = ""


@dataclass(frozen=True, slots=True)
class Origin:
    """What the adapter needs later about where a request came from (Request.native)."""

    ts: str | None = None  # the triggering message, absent for slash commands
    response_url: str | None = None  # slash commands and shortcuts: works without membership
    echo: str = ""  # slash commands: the invocation, quoted above the first public answer


_ECHO = re.compile(r"^<@(?P<user>[A-Z0-9]+)>: `(?P<invocation>[^`\n]*)`\n")


def echo_line(user_id: str, invocation: str) -> str:
    """The line quoting a slash command above its public answer (Slack shows no one the call)."""
    safe = invocation[:300].replace("`", "'")
    safe = safe.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<@{user_id}>: `{safe}`\n"


def split_echo(text: str) -> tuple[str | None, str]:
    """(the slash command's arguments, the answer) for a message that starts with an echo line."""
    match = _ECHO.match(text)
    if match is None:
        return None, text
    invocation = match.group("invocation")
    invocation = invocation.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    _, _, args = invocation.partition(" ")
    return args.strip(), text[match.end() :]


def strip_mention(text: str, bot_user_id: str) -> str:
    """Text without the bot's mention(s), whitespace tidied."""
    text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def attachment(file: Mapping[str, Any]) -> Attachment | None:
    """An Attachment for a Slack file object; None for files we cannot fetch."""
    url = file.get("url_private_download") or file.get("url_private")
    if not url or file.get("mode") in ("tombstone", "hidden_by_limit", "external"):
        return None
    mime = str(file.get("mimetype") or "application/octet-stream")
    subtype = file.get("subtype")
    kind: AttachmentKind = "file"
    if subtype in _CLIP_SUBTYPES or mime.startswith("audio/"):
        kind = "audio"
    elif mime.startswith("image/"):
        kind = "image"
    duration_ms = file.get("duration_ms")
    return Attachment(
        id=str(file.get("id", "")),
        filename=str(file.get("name") or file.get("title") or "file"),
        mime=mime,
        size=int(file.get("size") or 0),
        kind=kind,
        duration=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
        native=str(url),
    )


def attachments(files: Sequence[Mapping[str, Any]] | None) -> tuple[Attachment, ...]:
    found = (attachment(f) for f in files or ())
    return tuple(a for a in found if a is not None)


def permalink(workspace_url: str, channel: str, ts: str, thread_ts: str | None = None) -> str:
    """A message's permalink, built as Slack builds them (no chat.getPermalink call per message)."""
    if not workspace_url or not ts:
        return ""
    link = f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


def observed_change(
    event: Mapping[str, Any], me: Identity
) -> tuple[Change, Mapping[str, Any]] | None:
    """What a `message` event does to channel memory: a message posted, edited (its new
    version) or deleted, with the message it is about; None for our own and for other events."""
    subtype = event.get("subtype")
    if subtype == "message_deleted":
        previous: Mapping[str, Any] = event.get("previous_message") or {}
        ts = event.get("deleted_ts") or previous.get("ts")
        return ("deleted", {**previous, "ts": ts}) if ts else None
    if subtype == "message_changed":
        change: Change = "edited"
        message: Mapping[str, Any] = event.get("message") or {}
    elif subtype in _SPOKEN_SUBTYPES:
        change, message = "posted", event
    else:
        return None
    own = message.get("user") == me.user_id or (me.bot_id and message.get("bot_id") == me.bot_id)
    return None if own or not message.get("ts") else (change, message)


def classify_message(
    event: Mapping[str, Any], me: Identity, *, allow_bots: bool
) -> MessageKind | None:
    """Whether a `message` event is for us: a DM, a thread reply, a bare audio clip, or not.

    Mentions arrive twice (app_mention and message); only the app_mention is used. A clip
    recorded in Slack with no text goes to the core, whose auto-transcribe setting decides.
    """
    subtype = event.get("subtype")
    if subtype not in _SPOKEN_SUBTYPES:
        return None
    if event.get("user") == me.user_id or (me.bot_id and event.get("bot_id") == me.bot_id):
        return None
    if (event.get("bot_id") or subtype == "bot_message") and not allow_bots:
        return None
    if event.get("channel_type") == "im":
        return "dm"
    if f"<@{me.user_id}" in str(event.get("text", "")):
        return None
    thread_ts = event.get("thread_ts")
    if thread_ts and thread_ts != event.get("ts"):
        return "thread"
    return "clip" if is_bare_clip(event) else None


def is_bare_clip(event: Mapping[str, Any]) -> bool:
    """An audio clip recorded in Slack, sent without any text."""
    files: Sequence[Mapping[str, Any]] = event.get("files") or ()
    text = str(event.get("text") or "").strip()
    return not text and any(f.get("subtype") == "slack_audio" for f in files)


def is_from_other_bot(event: Mapping[str, Any], me: Identity) -> bool:
    return bool(event.get("bot_id")) and event.get("bot_id") != me.bot_id


# What slash payloads say instead of a name for DMs and some private channels.
_UNNAMED = frozenset({"directmessage", "privategroup", "mpdm"})


def is_direct(channel: str, channel_type: object = None, name: object = None) -> bool:
    """A DM with the bot: Slack DM channel ids start with D."""
    return channel_type == "im" or name == "directmessage" or channel.startswith("D")


def channel_name(name: object) -> str:
    """A channel's name from a payload, or "" when the payload does not say it."""
    text = str(name or "")
    return "" if text in _UNNAMED else text


def event_request(
    event: Mapping[str, Any], user: User, me: Identity, *, event_id: str, conversational: bool
) -> Request:
    """A Request for an app_mention or message event; answers go into the thread."""
    ts = str(event.get("ts", ""))
    thread = str(event.get("thread_ts") or ts) or None
    channel = str(event.get("channel", ""))
    direct = is_direct(channel, event.get("channel_type"))
    return Request(
        # The name is not in events; the adapter looks it up (conversations.info, cached).
        place=Place(PLATFORM, channel, thread, me.team_id, direct=direct),
        user=user,
        text=strip_mention(str(event.get("text", "")), me.user_id),
        attachments=attachments(event.get("files")),
        event_id=event_id,
        conversational=conversational,
        native=Origin(ts=ts),
    )


def slash_command(command: str, text: str) -> tuple[str, str]:
    """(core command, its arguments) for "/ask hi" or "/chatops ask hi"."""
    name = command.strip().lstrip("/").lower()
    if name == UMBRELLA_COMMAND:
        first, _, rest = text.strip().partition(" ")
        return (first.lower() or "help"), rest.strip()
    return name, text.strip()


def slash_request(payload: Mapping[str, Any], user: User, team_id: str) -> Request:
    """A Request for a slash command; answers start a new message in the channel."""
    name, args = slash_command(str(payload.get("command", "")), str(payload.get("text", "")))
    invocation = f"{payload.get('command', '')} {payload.get('text', '')}".strip()
    channel, said = str(payload.get("channel_id", "")), payload.get("channel_name")
    return Request(
        place=Place(
            PLATFORM,
            channel,
            None,
            team_id,
            name=channel_name(said),
            direct=is_direct(channel, name=said),
        ),
        user=user,
        text=args,
        command=name,
        event_id=f"slash:{payload.get('trigger_id', '')}",
        native=Origin(
            response_url=str(payload.get("response_url") or "") or None,
            echo=invocation,
        ),
    )


def shortcut_request(
    payload: Mapping[str, Any], user: User, team_id: str, *, author: str = ""
) -> Request:
    """A Request for a message shortcut (its callback id is the command): the message is the
    target, its thread the conversation, and private answers go to the response URL."""
    message: Mapping[str, Any] = payload.get("message") or {}
    channel: Mapping[str, Any] = payload.get("channel") or {}
    command = str(payload.get("callback_id") or TRANSCRIBE_SHORTCUT)
    ts = str(message.get("ts") or payload.get("message_ts") or "")
    found = attachments(message.get("files"))
    if command == TRANSCRIBE_SHORTCUT:
        found = tuple(a for a in found if a.kind == "audio")
    channel_id, name = str(channel.get("id", "")), channel.get("name")
    return Request(
        place=Place(
            PLATFORM,
            channel_id,
            str(message.get("thread_ts") or ts),
            team_id,
            name=channel_name(name),
            direct=is_direct(channel_id, name=name),
        ),
        user=user,
        text="",
        command=command,
        attachments=found,
        event_id=f"shortcut:{payload.get('trigger_id', '')}",
        target=Said(author, str(message.get("text") or ""), ts),
        native=Origin(ts=ts, response_url=str(payload.get("response_url") or "") or None),
    )


def team_of(body: Mapping[str, Any]) -> str:
    """The workspace id of any Slack payload shape."""
    team = body.get("team_id") or body.get("team")
    if isinstance(team, Mapping):
        return str(team.get("id", ""))
    return str(team or "")


def user_from_info(user_id: str, info: Mapping[str, Any]) -> User:
    """A User from a users.info `user` object: workspace admins and owners are admins."""
    profile: Mapping[str, Any] = info.get("profile") or {}
    name = (
        profile.get("display_name")
        or profile.get("real_name")
        or info.get("real_name")
        or info.get("name")
        or user_id
    )
    admin = any(bool(info.get(k)) for k in ("is_admin", "is_owner", "is_primary_owner"))
    return User(id=user_id, name=str(name), is_admin=admin, locale=str(info.get("locale") or ""))
