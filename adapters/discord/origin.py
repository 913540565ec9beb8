"""Where a Discord request came from and the reply state that follows it (Request.native)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import discord

# Discord lets an interaction token be used for 15 minutes; stop a little early so a
# follow-up in flight does not land on an expired token.
INTERACTION_TTL = 14.5 * 60.0


@dataclass(slots=True, eq=False)
class Origin:
    """The message or interaction a request came from, and what we have posted for it."""

    channel: discord.abc.Messageable
    author: discord.User | discord.Member
    message: discord.Message | None = None
    interaction: discord.Interaction[Any] | None = None
    # The message a context menu was used on (summarize, translate).
    target: discord.Message | None = None
    # How the interaction was deferred: its first follow-up replaces the "thinking" message
    # and Discord gives that follow-up the defer's visibility, whatever flags it carries.
    deferred_ephemeral: bool = False
    original_used: bool = False
    received_at: float = field(default_factory=time.monotonic)
    interaction_ttl: float = INTERACTION_TTL
    # The last message we posted for this request: later parts reply to it, so the reply
    # chain of a long, rolled-over answer stays one conversation.
    last_posted: discord.Message | None = None
    # A permission problem was already explained to the user (explain once, not per part).
    explained: bool = False

    def channel_partial(self, message_id: int) -> discord.PartialMessage:
        """A handle for editing one of our messages by id in the origin channel."""
        get = getattr(self.channel, "get_partial_message", None)
        if get is None:
            raise TypeError(f"channel {self.channel!r} cannot address messages by id")
        partial: discord.PartialMessage = get(message_id)
        return partial

    def interaction_alive(self) -> bool:
        return (
            self.interaction is not None
            and time.monotonic() - self.received_at < self.interaction_ttl
        )
