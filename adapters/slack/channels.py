"""Channel names by id (conversations.info), cached: events carry only the channel's id."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import code_of

log = logging.getLogger(__name__)

# Renames are rare; an hour-old name is fine for matching allow and block lists.
NAME_TTL = 3600.0
# After a failure (rate limit, missing channels:read scope) try again soon, not per message.
FAILED_TTL = 60.0
MAX_CHANNELS = 4096


class ChannelNames:
    """One conversations.info call per channel per hour, at most; "" when Slack will not say."""

    def __init__(
        self,
        client: Callable[[], Awaitable[AsyncWebClient]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock
        self._names: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._warned: set[str] = set()

    def note(self, channel: str, name: str) -> None:
        """A name a payload told us (slash commands carry it)."""
        self._remember(channel, name, NAME_TTL)

    async def name(self, channel: str) -> str:
        cached = self._names.get(channel)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        client = await self._client()
        try:
            info = (await client.conversations_info(channel=channel)).get("channel") or {}
        except SlackApiError as err:
            code = code_of(err) or str(err)
            if code not in self._warned:
                # missing_scope: the app lacks channels:read/groups:read (see docs/slack.md);
                # lists can still name channels by id.
                self._warned.add(code)
                log.warning("slack: cannot read channel names (conversations.info: %s)", code)
            self._remember(channel, "", FAILED_TTL)
            return ""
        name = str(info.get("name") or "")
        self._remember(channel, name, NAME_TTL)
        return name

    def _remember(self, channel: str, name: str, ttl: float) -> None:
        self._names[channel] = (name, self._clock() + ttl)
        self._names.move_to_end(channel)
        while len(self._names) > MAX_CHANNELS:
            self._names.popitem(last=False)
