"""Reading what people wrote in Slack (a thread, a channel's latest messages) as Said lines."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import translate
from adapters.slack.events import Identity, split_echo, strip_mention
from bot.events import Said

JSON = dict[str, Any]
# conversations.history pages hold up to 200 messages (Slack's own maximum per call).
PAGE = 200
# Message subtypes that are not something a person said (joins, topic changes, the
# placeholder at the top of an assistant thread).
_SKIPPED_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "group_join",
        "group_leave",
        "assistant_app_thread",
        "message_deleted",
        "tombstone",
    }
)
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


async def channel_messages(client: AsyncWebClient, channel: str, limit: int) -> list[JSON]:
    """The channel's newest `limit` messages (conversations.history), oldest first."""
    out: list[JSON] = []
    cursor: str | None = None
    try:
        while len(out) < limit:
            resp = await client.conversations_history(
                channel=channel, limit=min(PAGE, limit - len(out)), cursor=cursor
            )
            out.extend(resp.get("messages") or [])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                break
    except SlackApiError as err:
        raise translate(err, "conversations.history") from err
    out.reverse()
    return out[-limit:]


async def said_lines(
    messages: list[JSON], me: Identity, name_of: Callable[[str], Awaitable[str]]
) -> list[Said]:
    """Said lines for Slack messages, with people's names (users.info, cached by the caller)."""
    names: dict[str, str] = {}
    out: list[Said] = []
    for message in messages:
        if message.get("subtype") in _SKIPPED_SUBTYPES:
            continue
        own = message.get("user") == me.user_id or bool(
            me.bot_id and message.get("bot_id") == me.bot_id
        )
        text = strip_mention(str(message.get("text") or ""), me.user_id)
        if own:
            _, text = split_echo(text)
        author_id = str(message.get("user") or "")
        if author_id and author_id not in names and not own:
            names[author_id] = await name_of(author_id)
        text = _names_for_mentions(text, names)
        files = [str(f.get("name") or "") for f in message.get("files") or ()]
        if files:
            text = (text + " " if text else "") + " ".join(f"[file: {f}]" for f in files if f)
        if not text.strip():
            continue
        author = names.get(author_id) or str(message.get("username") or author_id or "someone")
        out.append(Said(author, text, str(message.get("ts") or ""), bot=own))
    return out


def _names_for_mentions(text: str, names: Mapping[str, str]) -> str:
    return _MENTION.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
