"""Thread history as chat turns: conversations.replies, cached and kept current from events."""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import translate
from adapters.slack.events import Identity, attachment, split_echo, strip_mention
from bot.events import Attachment, Role, Turn

log = logging.getLogger("adapters.slack.app")

JSON = dict[str, Any]
ImageFetcher = Callable[[Attachment, int], Awaitable[bytes]]

# Vision input is sent inline (Slack file URLs need the bot token), so keep it small.
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_IMAGES = 4


@dataclass
class _Thread:
    fetched_at: float
    messages: dict[str, JSON] = field(default_factory=dict)


def _ts_key(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return 0.0


class ThreadHistory:
    """Earlier messages of a thread, fetched once and then updated from what the bot sees."""

    def __init__(
        self,
        client: Callable[[], Awaitable[AsyncWebClient]],
        fetch_image: ImageFetcher,
        *,
        ttl: float = 600.0,
        max_threads: int = 512,
    ) -> None:
        self._client = client
        self._fetch_image = fetch_image
        self._ttl = ttl
        self._max = max_threads
        self._threads: OrderedDict[tuple[str, str], _Thread] = OrderedDict()
        self._images: OrderedDict[str, str] = OrderedDict()
        self.fetches = 0

    def knows(self, channel: str, thread: str) -> bool:
        return (channel, thread) in self._threads

    def note(self, channel: str, thread: str, message: Mapping[str, Any]) -> None:
        """Record a message the bot saw or sent, if that thread is cached."""
        entry = self._threads.get((channel, thread))
        if entry is not None and message.get("ts"):
            entry.messages[str(message["ts"])] = dict(message)

    def drop(self, channel: str, thread: str, ts: str) -> None:
        """Remove a message the bot deleted, if that thread is cached."""
        entry = self._threads.get((channel, thread))
        if entry is not None:
            entry.messages.pop(ts, None)

    def forget(self, channel: str, thread: str) -> None:
        self._threads.pop((channel, thread), None)

    async def messages(self, channel: str, thread: str) -> list[JSON]:
        """The thread's messages, oldest first (cached)."""
        key = (channel, thread)
        entry = self._threads.get(key)
        if entry is None or time.monotonic() - entry.fetched_at > self._ttl:
            entry = _Thread(time.monotonic())
            for msg in await self._fetch(channel, thread):
                entry.messages[str(msg.get("ts", ""))] = msg
            self._threads[key] = entry
            while len(self._threads) > self._max:
                self._threads.popitem(last=False)
        self._threads.move_to_end(key)
        return sorted(entry.messages.values(), key=lambda m: _ts_key(str(m.get("ts", ""))))

    async def turns(
        self, channel: str, thread: str, me: Identity, before: str | None
    ) -> list[Turn]:
        """Turns of the thread strictly before message `before` (all when None)."""
        msgs = await self.messages(channel, thread)
        if before:
            msgs = [m for m in msgs if _ts_key(str(m.get("ts", ""))) < _ts_key(before)]
        turns: list[Turn] = []
        images_left = MAX_IMAGES
        # Newest images matter most: walk backwards to spend the image allowance on them.
        for msg in reversed(msgs):
            own = msg.get("user") == me.user_id or (me.bot_id and msg.get("bot_id") == me.bot_id)
            text = strip_mention(str(msg.get("text", "")), me.user_id)
            urls: list[str] = []
            files: list[Attachment] = []
            if not own:
                for file in msg.get("files") or ():
                    att = attachment(file)
                    if att is not None and att.kind == "file":
                        files.append(att)  # documents are fetched only if a question needs them
                    if att is None or att.kind != "image" or images_left <= 0:
                        continue
                    if url := await self._image_url(att):
                        urls.append(url)
                        images_left -= 1
            asked, text = split_echo(text) if own else (None, text)
            if text or urls or files:
                role: Role = "assistant" if own else "user"
                turns.append(Turn(role, text, tuple(urls), tuple(files)))
            if asked:
                # A slash command's answer quotes the question: it was the user's turn.
                turns.append(Turn("user", asked))
        turns.reverse()
        return turns

    async def _fetch(self, channel: str, thread: str) -> list[JSON]:
        self.fetches += 1
        client = await self._client()
        out: list[JSON] = []
        cursor: str | None = None
        try:
            for _ in range(10):  # 10 pages of 200 is more context than any model budget
                # With metadata: an assistant thread keeps its context on the greeting's.
                resp = await client.conversations_replies(
                    channel=channel,
                    ts=thread,
                    limit=200,
                    cursor=cursor,
                    include_all_metadata=True,
                )
                out.extend(resp.get("messages") or [])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
                if not resp.get("has_more") or not cursor:
                    break
        except SlackApiError as err:
            if (getattr(err.response, "data", None) or {}).get("error") == "thread_not_found":
                return []
            raise translate(err, "conversations.replies") from err
        return out

    async def _image_url(self, att: Attachment) -> str | None:
        if att.id in self._images:
            return self._images[att.id]
        try:
            data = await self._fetch_image(att, MAX_IMAGE_BYTES)
        except Exception as exc:  # context is best effort: skip an image we cannot fetch
            log.info("skipping thread image %s: %s", att.id, exc)
            return None
        url = f"data:{att.mime};base64,{base64.b64encode(data).decode()}"
        self._images[att.id] = url
        while len(self._images) > 64:
            self._images.popitem(last=False)
        return url
