"""Normalized, platform-neutral nouns that adapters hand to the core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

AttachmentKind = Literal["file", "image", "audio"]
TaskStatus = Literal["pending", "in_progress", "complete", "error"]
Role = Literal["user", "assistant"]
Scope = Literal["platform", "workspace", "channel"]
Change = Literal["posted", "edited", "deleted"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a request came from and where its answer goes."""

    platform: str
    channel: str
    thread: str | None = None
    # Slack workspace / Discord guild: the scope of some platform rate limits.
    workspace: str = ""
    # The channel's name as people see it (without '#'), when the platform says; channel
    # allow/block lists may name channels. Not part of identity: names change.
    name: str = field(default="", compare=False)
    # A direct message with the bot (DMs can be switched off); only the asker sees what is
    # said there, so private output (summaries, translations) may go in the conversation.
    direct: bool = field(default=False, compare=False)

    @property
    def channel_key(self) -> str:
        """The key channel settings and quota are stored under."""
        return f"{self.platform}:{self.channel}"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    is_admin: bool = False
    # The language the platform says this person reads ("zh-CN", "en-US"): Slack's user
    # locale, Discord's interaction locale (else the server's). "" when unknown.
    locale: str = ""


@dataclass(frozen=True, slots=True)
class Attachment:
    id: str
    filename: str
    mime: str
    size: int
    kind: AttachmentKind
    # Seconds the platform claims (Discord voice messages carry it); never trusted for billing.
    duration: float | None = None
    native: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of a conversation, as context for chat."""

    role: Role
    text: str
    image_urls: tuple[str, ...] = ()
    # Files posted with it (documents the question may be about), fetched only when needed.
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Said:
    """One message of a channel or thread as text, with who wrote it (summaries, translation)."""

    author: str
    text: str
    # The platform's message id, when known.
    id: str = ""
    # Written by this bot.
    bot: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    place: Place
    user: User
    text: str
    # Set for slash commands; None for mentions and plain messages.
    command: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # A stable id for de-duplicating platform redeliveries.
    event_id: str = ""
    # Said to the bot as a turn of conversation (a DM, a mention, a reply to the bot, a
    # follow-up in a thread it answers in), as opposed to a voice note merely posted in a
    # channel: such a voice note is answered as if it had been typed.
    conversational: bool = False
    # The channel the user is looking at while talking to the bot beside it (Slack's
    # assistant threads); "this channel" means that one.
    viewing: Place | None = None
    # The message a shortcut or context menu was used on (summarize, translate).
    target: Said | None = None
    native: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Posted:
    """A handle to a message we sent, for later edits."""

    place: Place
    id: str
    native: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Limits:
    """What an adapter tells the core about its platform's message and rate limits."""

    max_chars: int
    # Minimum seconds between two edits of one message.
    edit_interval: float
    # Shared write budget (token bucket) and the scope it is shared across.
    budget_per_second: float
    budget_burst: int
    budget_scope: Scope = "channel"
    # Creating messages often has its own limit (Slack chat.postMessage ~1/s per channel,
    # Discord 5 creates per 5 s per channel). None: posts draw from the budget above.
    post_per_second: float | None = None
    post_burst: int = 1
    post_scope: Scope = "channel"
    # Deleting a message (a placeholder an answer was posted anew in place of), when the
    # platform limits that apart from posts and edits (Slack's chat.delete is its own Tier 3
    # method). None: the core never deletes, and a final text always waits for its edit.
    delete_per_second: float | None = None
    delete_burst: int = 1
    delete_scope: Scope = "channel"
    # How the platform counts max_chars (Discord counts characters; a platform that counts
    # UTF-16 units or bytes passes its own measure).
    length: Callable[[str], int] = field(default=len, repr=False, compare=False)
    # The platform counts these budgets per app, over every process of it (Slack's per
    # workspace and per channel limits): replicas on PostgreSQL share them. False: each
    # process has its own (Discord's are per channel, and a channel's guild is on one shard).
    app_wide: bool = False

    def budget_key(self, place: Place) -> str:
        return _scope_key(self.budget_scope, place)

    def post_budget_key(self, place: Place) -> str:
        return _scope_key(self.post_scope, place)

    def delete_budget_key(self, place: Place) -> str:
        return _scope_key(self.delete_scope, place)


def _scope_key(scope: Scope, place: Place) -> str:
    if scope == "platform":
        return place.platform
    if scope == "workspace":
        return f"{place.platform}:{place.workspace}"
    return place.channel_key


@dataclass(frozen=True, slots=True)
class Task:
    """One piece of work shown in a reply while it runs (a tool call), by a stable id."""

    id: str
    title: str
    status: TaskStatus
    # A short line under the title: what went wrong, or what came out.
    details: str = ""


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message seen in a channel, for channel memory: posted, edited (its new text) or deleted.

    Not a request: nothing answers it. `id` is the platform's message id; `link` points at it.
    """

    place: Place
    id: str
    change: Change
    text: str = ""
    author: str = ""
    at: datetime | None = None
    link: str = ""
    attachments: tuple[Attachment, ...] = ()
    # It mentions the bot (or is a DM to it): a command to the bot there is not conversation.
    addressed: bool = False
