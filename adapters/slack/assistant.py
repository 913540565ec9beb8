"""Slack's AI-app threads: suggested prompts, titles and the channel the user is looking at."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import (
    AsyncAssistantThreadContextStore,
)

from adapters.slack.settings import Prompt
from bot.i18n import N_, t

log = logging.getLogger("adapters.slack.app")

JSON = dict[str, Any]
# Where Slack apps keep an assistant thread's context: the metadata of their first message in
# it (what bolt's own default store reads and writes).
CONTEXT_EVENT = "assistant_thread_context"
# Thread titles are one short line in Slack's history list.
TITLE_CHARS = 60
GREETING = N_("Hi! Ask me anything, or pick one of the suggestions below.")
PROMPTS_TITLE = N_("Try one of these:")
# What a new assistant thread suggests, drawn from the commands people use most there
# (catalog ids: default_prompts() gives them in the reader's language).
DEFAULT_PROMPTS = (
    Prompt(N_("Summarize this channel"), "summarize"),
    Prompt(N_("What is this channel about?"), N_("What is being discussed in this channel?")),
    Prompt(N_("Draw a picture"), N_("image a lighthouse at dawn, watercolor")),
    Prompt(N_("What can you do?"), "help"),
)


def default_prompts() -> tuple[Prompt, ...]:
    """The default prompts in the current language (commands keep their names)."""
    return tuple(Prompt(t(p.title), t(p.message)) for p in DEFAULT_PROMPTS)


Messages = Callable[[str, str], Awaitable[list[JSON]]]
# (channel, greeting message, new metadata): rewrites the greeting's metadata.
Update = Callable[[str, JSON, JSON], Awaitable[None]]


def title_of(question: str) -> str:
    """A thread title from the first question: its first line, cut at a word near the limit."""
    line = " ".join(question.strip().splitlines()[0].split()) if question.strip() else ""
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[: TITLE_CHARS - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > TITLE_CHARS // 2 else cut).rstrip(" ,.;:") + "…"


def metadata(context: Mapping[str, Any]) -> JSON:
    return {"event_type": CONTEXT_EVENT, "event_payload": dict(context)}


class ThreadContexts(AsyncAssistantThreadContextStore):
    """The channel the user looks at beside each assistant thread.

    Kept here, and on the metadata of the bot's greeting in the thread (Slack's convention),
    so another replica, or this one after a restart, finds it in the thread history it
    fetches for context anyway.
    """

    def __init__(
        self, messages: Messages, update: Update, bot_user: Callable[[], Awaitable[str]]
    ) -> None:
        self._messages = messages
        self._update = update
        self._bot_user = bot_user
        self._known: OrderedDict[tuple[str, str], JSON] = OrderedDict()

    def remember(self, channel_id: str, thread_ts: str, context: Mapping[str, Any]) -> None:
        self._known[(channel_id, thread_ts)] = dict(context)
        self._known.move_to_end((channel_id, thread_ts))
        while len(self._known) > 4096:
            self._known.popitem(last=False)

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        self.remember(channel_id, thread_ts, context)
        greeting = await self._greeting(channel_id, thread_ts)
        if greeting is None:
            log.info("slack: no greeting in assistant thread %s to keep its context on", thread_ts)
            return
        await self._update(channel_id, greeting, metadata(context))

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        known = self._known.get((channel_id, thread_ts))
        if known is None:
            greeting = await self._greeting(channel_id, thread_ts)
            payload = ((greeting or {}).get("metadata") or {}).get("event_payload")
            if not isinstance(payload, dict):
                return None
            known = payload
            self.remember(channel_id, thread_ts, known)
        if not known.get("channel_id"):
            return None
        return AssistantThreadContext(known)

    async def _greeting(self, channel_id: str, thread_ts: str) -> JSON | None:
        """The bot's first message in the thread that carries (or can carry) the context."""
        me = await self._bot_user()
        for message in await self._messages(channel_id, thread_ts):
            if message.get("user") == me and message.get("subtype") is None:
                meta = message.get("metadata") or {}
                if meta.get("event_type") in (None, CONTEXT_EVENT):
                    return message
        return None


def is_first_question(messages: list[JSON], me: str, ts: str) -> bool:
    """No one but the bot wrote in the thread before message `ts`."""
    for message in messages:
        author = message.get("user")
        if message.get("ts") == ts or message.get("subtype") or message.get("bot_id"):
            continue
        if author and author != me and _ts(message.get("ts")) < _ts(ts):
            return False
    return True


def _ts(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
