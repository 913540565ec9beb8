"""The contract every platform adapter fulfils, as a Protocol the core depends on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.events import (
    Attachment,
    ChannelMessage,
    Limits,
    Place,
    Posted,
    Request,
    Said,
    Task,
    Turn,
)

if TYPE_CHECKING:
    from bot.streaming.budgets import EditBudget

Handler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Connection:
    """An adapter's link to its platform, as /readyz shows it."""

    up: bool
    # For a human reading /readyz: "Socket Mode connected", "1/2 shards READY".
    detail: str


class Adapter(Protocol):
    """A chat platform as the core sees it.

    `reply`, `edit` and `upload` raise `PlatformRateLimited` on a platform 429 so the
    caller can wait and retry; `download` raises `TooLarge` past `max_bytes`.
    `reply(..., streamed=True)` starts a message that a streamed reply will edit; `finalize`
    is called once for each such message after its final text (also when the reply was
    interrupted or cut short): it will not change again. Platforms with native message
    streams use them for these messages and end them in `finalize`; others ignore `streamed`
    and do nothing in `finalize`. Other messages are final as posted, never finalized.
    `delete` removes a message the core has posted anew (a placeholder whose final text went
    out as a new message because its edit would have waited); a streamed message it removes
    gets no `finalize`. The core deletes only where `limits.delete_per_second` is set.
    `connection` says whether events can reach the bot now (cheap; /readyz polls it).
    """

    name: str
    limits: Limits

    async def run(self, handle: Handler) -> None: ...

    async def connection(self) -> Connection: ...

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted: ...

    async def edit(self, posted: Posted, text: str) -> None: ...

    async def finalize(self, posted: Posted) -> None: ...

    async def delete(self, posted: Posted) -> None: ...

    async def upload(self, req: Request, data: bytes, filename: str, text: str = "") -> Posted: ...

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes: ...

    async def history(self, req: Request) -> Sequence[Turn]: ...


@runtime_checkable
class AppendsApart(Protocol):
    """An adapter whose streamed messages take appended text under a limit of their own
    (Slack's native streams: chat.appendStream is Tier 4, counted apart from chat.update).

    `append_budget(posted)` is the budget an edit of `posted` that only adds text at its end
    draws from, or None when such an edit would be an ordinary one (the place's budget).
    """

    def append_budget(self, posted: Posted) -> EditBudget | None: ...


@runtime_checkable
class ShowsTasks(Protocol):
    """An adapter that can show a streamed reply's tasks natively (Slack's task chunks).

    `show_task` returns False when it cannot for this request (no native stream there);
    the caller then shows a status line through the reply instead. The caller spends one
    token of the place's write budget per call.
    """

    async def show_task(self, req: Request, task: Task) -> bool: ...


@runtime_checkable
class ReadsChannels(Protocol):
    """An adapter that can read what people wrote, with who wrote it (summaries, "this channel").

    Both return at most the newest `limit` messages, oldest first, and raise
    `UserFacingError` saying why when the platform will not let the bot read them.
    `conversation`: the thread or reply chain the request is in, or the one the message it
    targets (`req.target`) is in; empty when there is none. `recent`: the newest messages of
    the channel the request is about, `req.viewing` when set, else its own.
    """

    async def conversation(self, req: Request, limit: int) -> Sequence[Said]: ...

    async def recent(self, req: Request, limit: int) -> Sequence[Said]: ...


@runtime_checkable
class ShowsFeedback(Protocol):
    """An adapter that can put 👍/👎 buttons on the last message of a finished reply.

    `key` names the reply (the ledger row of its final model request); a click comes back as
    a request for the `feedback` command with "up <key>" or "down <key>". `text` is what the
    message shows. `ask_feedback` is called once, before that message's `finalize`.
    `feedback_needs_edit` says whether that costs an edit of the message (the caller then
    spends a spare token of the place's edit budget first, and skips the buttons when none
    comes soon) or comes free with something the adapter does anyway (ending a stream).
    """

    def feedback_needs_edit(self, posted: Posted) -> bool: ...

    async def ask_feedback(self, posted: Posted, text: str, key: str) -> None: ...


class Observer(Protocol):
    """Channel memory's intake: what is posted, edited and deleted in the channels it watches.

    `watching` is a cheap in-memory check adapters make before building anything; `observe`
    never waits (it queues the message for indexing off the answer path).
    """

    def watching(self, channel_key: str) -> bool: ...

    def observe(self, message: ChannelMessage) -> None: ...


@runtime_checkable
class Observed(Protocol):
    """An adapter that hands channel messages (not only requests) to an Observer."""

    observer: Observer | None


@runtime_checkable
class LinksMessages(Protocol):
    """An adapter that can name a link to one of its messages (Slack permalink, Discord jump
    URL), for search results that point back at what was said."""

    def link(self, place: Place, message_id: str) -> str: ...
