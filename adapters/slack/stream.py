"""Slack's native streaming for AI apps (chat.startStream / appendStream / stopStream)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import SlackProblem, is_server_error, translate
from bot.errors import PlatformRateLimited
from bot.events import Task
from bot.streaming.budgets import Budgets, EditBudget

log = logging.getLogger("adapters.slack.app")

JSON = dict[str, Any]

# chat.startStream answers that mean this app has no native streaming in the workspace; it
# is remembered, and every later reply there is posted and edited instead.
UNAVAILABLE = frozenset(
    {
        "unknown_method",
        "method_deprecated",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
    }
)
# The stream ended without us (Slack's own timeout, or the user pressed stop): appends and
# stops are refused from then on, but chat.update still replaces the message's text.
ENDED = frozenset({"message_not_in_streaming_state", "stopped_by_user"})
# chat.startStream and chat.stopStream are Tier 2 (20+ a minute per workspace, each method its
# own limit), and every stream makes one call of each. A reply starts a stream only while
# this allowance has room; otherwise it is posted and edited (chat.update is Tier 3). Half
# of Slack's minute as burst leaves room for stops that come late and bunch up.
STREAMS_PER_SECOND = 20 / 62.5
STREAMS_BURST = 10
# chat.appendStream is Tier 4 (100+ a minute per workspace), counted apart from chat.update:
# appends to a live stream draw from this budget (100 per 62.5 s, the same margin as
# chat.update's), so natively streamed replies do not spend the workspace's Tier 3 updates.
APPENDS_PER_SECOND = 100 / 62.5
APPENDS_BURST = 100
# chat.stopStream 429s are waited out here (the core's budgets do not cover it), briefly.
STOP_ATTEMPTS = 3
STOP_MAX_WAIT = 10.0
_SERVER_ERROR_PAUSE = 1.0


@dataclass
class NativeStream:
    """One streamed message: `text` is the Markdown it shows; `live` until it is stopped."""

    channel: str
    ts: str
    text: str
    live: bool = True
    team: str = ""  # whose streams allowance it came from


class NativeStreams:
    """Starts, extends and stops native streams; knows where they are unavailable.

    Slack only appends to a stream, while the core hands over each message's whole text.
    A text that extends what was sent goes out as its new suffix (chat.appendStream); one
    that does not (a status line replaced, a note above the end) stops the stream and
    replaces the message with chat.update, which then carries every later edit.
    """

    def __init__(
        self,
        client: Callable[[], Awaitable[AsyncWebClient]],
        *,
        enabled: bool,
        budgets: Budgets | None = None,
    ) -> None:
        self._client = client
        self.enabled = enabled
        self.unavailable: set[str] = set()
        # Per workspace, and shared by replicas when they share a database (see Budgets).
        # (Not `budgets or ...`: an empty Budgets is falsy, having a length.)
        self._budgets = budgets if budgets is not None else Budgets()

    def _allowance(self, team: str) -> EditBudget:
        # Keyed like every budget scope, platform first ("slack:T123"): metrics label by it.
        return self._budgets.named(
            "streams", f"slack:{team}", STREAMS_PER_SECOND, STREAMS_BURST, app_wide=True
        )

    def appends(self, team: str) -> EditBudget:
        """The workspace's chat.appendStream budget (shared by replicas like the others)."""
        return self._budgets.named(
            "appends", f"slack:{team}", APPENDS_PER_SECOND, APPENDS_BURST, app_wide=True
        )

    async def start(
        self,
        *,
        channel: str,
        thread_ts: str,
        text: str,
        team: str,
        user: str,
        task: Task | None = None,
    ) -> NativeStream | None:
        """A stream in the thread showing `text` (or only `task`), or None when the reply
        should be posted."""
        if not self.enabled or team in self.unavailable:
            return None
        allowance = self._allowance(team)
        if not await allowance.try_take():
            return None
        args: JSON = {"channel": channel, "thread_ts": thread_ts}
        if text:
            args["markdown_text"] = text
        if task is not None:
            args["chunks"] = [task_chunk(task)]
            args["task_display_mode"] = "timeline"
        # Required outside DMs: who the streamed answer is for.
        if team:
            args["recipient_team_id"] = team
        if user:
            args["recipient_user_id"] = user
        try:
            resp = await self._api("chat.startStream", retry=False, **args)
        except PlatformRateLimited as limited:
            allowance.penalize(limited.retry_after)
            return None
        except SlackProblem as problem:
            if problem.code in UNAVAILABLE:
                log.info(
                    "slack: native streaming unavailable in %s (%s); editing messages instead",
                    team or "this workspace",
                    problem.code,
                )
                self.unavailable.add(team)
            return None
        ts = str(resp.get("ts") or "")
        return NativeStream(channel, ts, text, team=team) if ts else None

    async def show(self, stream: NativeStream, text: str) -> None:
        """Make the streamed message show `text`, its whole Markdown so far."""
        if stream.live and text.startswith(stream.text):
            suffix = text[len(stream.text) :]
            if not suffix:
                return
            try:
                # Not retried on a 5xx: Slack may have appended already, and a second
                # append would show the text twice. chat.update below is idempotent.
                await self._api(
                    "chat.appendStream",
                    retry=False,
                    channel=stream.channel,
                    ts=stream.ts,
                    markdown_text=suffix,
                )
            except SlackProblem as problem:
                if problem.code in ENDED:
                    stream.live = False
                else:
                    await self.stop(stream)
            else:
                stream.text = text
                return
        elif stream.live:
            await self.stop(stream)
        await self._api("chat.update", channel=stream.channel, ts=stream.ts, markdown_text=text)
        stream.text = text

    async def task(self, stream: NativeStream, task: Task) -> bool:
        """Show or update one task (a tool call) in a live stream; False when it has ended."""
        if not stream.live:
            return False
        try:
            await self._api(
                "chat.appendStream",
                retry=False,
                channel=stream.channel,
                ts=stream.ts,
                chunks=[task_chunk(task)],
            )
        except SlackProblem as problem:
            if problem.code in ENDED:
                stream.live = False
            else:
                log.warning("slack: task update refused in %s: %s", stream.ts, problem.code)
            return False
        return True

    async def stop(self, stream: NativeStream, blocks: list[JSON] | None = None) -> bool:
        """End the stream (once), with `blocks` under its text; Slack's own timeout ends it if
        this cannot. True when this call stopped it (the blocks are shown)."""
        if not stream.live:
            return False
        stream.live = False
        extra: JSON = {"blocks": blocks} if blocks else {}
        for attempt in range(1, STOP_ATTEMPTS + 1):
            try:
                await self._api("chat.stopStream", channel=stream.channel, ts=stream.ts, **extra)
                return True
            except PlatformRateLimited as limited:
                self._allowance(stream.team).penalize(limited.retry_after)
                if attempt == STOP_ATTEMPTS or limited.retry_after > STOP_MAX_WAIT:
                    break
                await asyncio.sleep(limited.retry_after)
            except SlackProblem as problem:
                if problem.code not in ENDED:
                    log.warning("slack: could not stop stream %s: %s", stream.ts, problem.code)
                return False
        log.warning("slack: stream %s not stopped (rate limited); Slack will end it", stream.ts)
        return False

    async def _api(self, method: str, *, retry: bool = True, **kwargs: Any) -> JSON:
        client = await self._client()
        for attempt in (1, 2):
            try:
                resp = await client.api_call(method, json=kwargs)
                return dict(resp.data) if isinstance(resp.data, dict) else {}
            except SlackApiError as err:
                if retry and attempt == 1 and is_server_error(err):
                    await asyncio.sleep(_SERVER_ERROR_PAUSE)
                    continue
                raise translate(err, method) from err
        raise AssertionError("unreachable")


def task_chunk(task: Task) -> JSON:
    """A `task_update` chunk (slack_sdk's TaskUpdateChunk shape) for one task."""
    chunk: JSON = {"type": "task_update", "id": task.id, "title": task.title, "status": task.status}
    if task.details:
        chunk["details"] = task.details
    return chunk
