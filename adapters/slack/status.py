"""The "is thinking…" thread status (assistant.threads.setStatus), shown only where allowed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import AUTH_CODES, code_of
from bot.i18n import N_, t

log = logging.getLogger("adapters.slack.app")

STATUS_TEXT = N_("is thinking…")
# Shown in turn under the status while the bot works (assistant threads rotate them).
LOADING_MESSAGES = (
    N_("Reading the conversation…"),
    N_("Thinking it over…"),
    N_("Writing the answer…"),
)
# A status is a nicety: never hold a request up for long waiting on it.
STATUS_TIMEOUT = 2.0
# Errors after which the status is not tried again in this process.
_UNAVAILABLE = (
    frozenset({"missing_scope", "not_allowed_token_type", "unknown_method", "method_deprecated"})
    | AUTH_CODES
)


class ThreadStatus:
    """Shows a status in a thread while the core works on it.

    Slack clears the status when the app posts in the thread; when the work ends without a
    public post (an ephemeral answer, nothing), `done` clears it so it does not linger.
    """

    def __init__(self, client: Callable[[], Awaitable[AsyncWebClient]], *, enabled: bool) -> None:
        self._client = client
        self.available = enabled
        self._shown: set[tuple[str, str]] = set()

    async def working(self, channel: str, thread: str) -> None:
        # In the language of the caller's context (the adapter sets it for the request).
        loading = tuple(t(text) for text in LOADING_MESSAGES)
        if await self._set(channel, thread, t(STATUS_TEXT), loading):
            self._shown.add((channel, thread))

    def posted(self, channel: str, thread: str) -> None:
        """A public message went into the thread, which cleared the status."""
        self._shown.discard((channel, thread))

    async def done(self, channel: str, thread: str) -> None:
        if (channel, thread) in self._shown:
            self._shown.discard((channel, thread))
            await self._set(channel, thread, "")

    async def _set(
        self, channel: str, thread: str, status: str, loading: tuple[str, ...] = ()
    ) -> bool:
        if not self.available:
            return False
        client = await self._client()
        try:
            async with asyncio.timeout(STATUS_TIMEOUT):
                await client.assistant_threads_setStatus(
                    channel_id=channel,
                    thread_ts=thread,
                    status=status,
                    loading_messages=list(loading) or None,
                )
            return True
        except SlackApiError as err:
            code = code_of(err)
            if code in _UNAVAILABLE:
                log.info("slack: thread status unavailable (%s); not trying again", code)
                self.available = False
            else:
                log.debug("slack: no thread status in %s/%s: %s", channel, thread, code)
        except TimeoutError:
            log.debug("slack: setting the thread status timed out")
        return False
