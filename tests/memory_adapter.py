"""An in-memory Adapter that records every post, edit and upload, for core and streaming tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.adapter import Connection, Handler
from bot.errors import PlatformRateLimited, TooLarge, UserFacingError
from bot.events import Attachment, Limits, Place, Posted, Request, Said, Turn, User

EventKind = Literal["reply", "edit", "upload", "delete", "rate_limited"]

# Small limits so rollover and budgets show up in tests without megabytes of text.
DEFAULT_LIMITS = Limits(max_chars=200, edit_interval=0.05, budget_per_second=50.0, budget_burst=10)


@dataclass(frozen=True, slots=True)
class Event:
    """One write the core handed to the adapter (or one 429 it was answered with)."""

    kind: EventKind
    at: float  # the adapter's clock (monotonic by default) when the call arrived
    place: Place
    message_id: str  # "" for a rejected (rate-limited) reply or upload
    text: str
    ephemeral: bool = False
    filename: str = ""
    data: bytes = field(default=b"", repr=False)
    # What the rejected call was, for kind == "rate_limited".
    attempted: str = ""


def make_request(
    text: str = "hello",
    *,
    channel: str = "C1",
    thread: str | None = None,
    workspace: str = "W1",
    platform: str = "memory",
    command: str | None = None,
    attachments: tuple[Attachment, ...] = (),
    user: User | None = None,
    event_id: str = "",
) -> Request:
    """A Request with sensible defaults, so tests state only what matters to them."""
    return Request(
        place=Place(platform=platform, channel=channel, thread=thread, workspace=workspace),
        user=user or User(id="U1", name="tester"),
        text=text,
        command=command,
        attachments=attachments,
        event_id=event_id,
    )


class MemoryAdapter:
    """Implements bot.adapter.Adapter without a network.

    `events` lists every call in arrival order; `history_of(id)` is the full text of one
    message over time; `messages` is the current text of each message not deleted.
    `inject_429` makes the next writes fail like a platform 429 would; `refuse_deletes`
    makes `delete` fail like a platform that forbids deleting would.
    """

    def __init__(
        self,
        *,
        name: str = "memory",
        limits: Limits = DEFAULT_LIMITS,
        requests: Iterable[Request] = (),
        files: Mapping[str, bytes] | None = None,
        turns: Sequence[Turn] = (),
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limits = limits
        self.requests: list[Request] = list(requests)
        self.files: dict[str, bytes] = dict(files or {})
        self.turns: list[Turn] = list(turns)
        # What `conversation` and `recent` read (summaries, translation, "this channel").
        self.thread_said: list[Said] = []
        self.channel_said: list[Said] = []
        # (message id, its text, the reply's key) for each ask_feedback, in call order.
        self.feedback_asked: list[tuple[str, str, str]] = []
        # For each ask_feedback: whether it carried a new text (the final edit itself).
        self.feedback_with_text: list[bool] = []
        # Simulated network round trip per write, for benchmarks; 0 keeps tests fast.
        self.latency = latency
        self.clock = clock
        self.events: list[Event] = []
        # (message id, its text when finalized), in call order.
        self.finalized: list[tuple[str, str]] = []
        self.ephemeral_ids: set[str] = set()
        # Messages posted with streamed=True (a streamed reply will finalize them).
        self.streamed_ids: set[str] = set()
        self.deleted: set[str] = set()
        self.refuse_deletes = False
        self._texts: dict[str, list[str]] = {}
        self._places: dict[str, Place] = {}
        self._ids = itertools.count(1)
        self._pending_429: list[float] = []
        self._changed = asyncio.Condition()
        # What connection() reports; tests flip it to stand for a platform going away.
        self.connected = True

    # --- knobs ---------------------------------------------------------------------------

    def inject_429(self, times: int = 1, retry_after: float = 0.05) -> None:
        """The next `times` writes (reply, edit, upload, delete) raise PlatformRateLimited."""
        self._pending_429.extend([retry_after] * times)

    def add_file(self, attachment_id: str, data: bytes) -> None:
        self.files[attachment_id] = data

    # --- views ---------------------------------------------------------------------------

    @property
    def messages(self) -> dict[str, str]:
        """Current text of every message not deleted, by id, in posting order."""
        return {mid: texts[-1] for mid, texts in self._texts.items() if mid not in self.deleted}

    def history_of(self, message_id: str) -> list[str]:
        """Every text the message showed, first post first."""
        return list(self._texts[message_id])

    def writes(
        self, kinds: tuple[EventKind, ...] = ("reply", "edit", "upload", "delete")
    ) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def messages_in(self, place: Place) -> list[str]:
        """Current texts of the messages posted to one place, in posting order."""
        return [
            texts[-1]
            for mid, texts in self._texts.items()
            if self._places[mid] == place and mid not in self.deleted
        ]

    @property
    def rate_limited(self) -> int:
        return sum(1 for e in self.events if e.kind == "rate_limited")

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait (bounded) until `predicate()` holds after some write."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    # --- the Adapter protocol -------------------------------------------------------------

    async def connection(self) -> Connection:
        return Connection(self.connected, "in memory" if self.connected else "disconnected")

    async def run(self, handle: Handler) -> None:
        """Handle every queued request concurrently, as a platform's event loop would."""

        async def one(req: Request) -> None:
            await handle(req)

        async with asyncio.TaskGroup() as tg:
            for req in self.requests:
                tg.create_task(one(req))

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        await self._arrive("reply", req.place, text)
        mid = self._new_message(req.place, text)
        if ephemeral:
            self.ephemeral_ids.add(mid)
        if streamed:
            self.streamed_ids.add(mid)
        await self._record(Event("reply", self.clock(), req.place, mid, text, ephemeral))
        return Posted(place=req.place, id=mid)

    async def edit(self, posted: Posted, text: str) -> None:
        if posted.id not in self._texts or posted.id in self.deleted:
            raise KeyError(f"edit of unknown message {posted.id!r}")
        if posted.id in self.ephemeral_ids:
            # Slack cannot edit ephemeral messages; editing one is a core defect.
            raise ValueError(f"edit of ephemeral message {posted.id!r}")
        await self._arrive("edit", posted.place, text, posted.id)
        self._texts[posted.id].append(text)
        await self._record(Event("edit", self.clock(), posted.place, posted.id, text))

    def feedback_needs_edit(self, posted: Posted) -> bool:
        return True

    async def ask_feedback(self, posted: Posted, text: str, key: str) -> None:
        """Buttons on a message, with its text (the core may give them with its final edit)."""
        changed = text != self._texts[posted.id][-1]
        if changed:
            await self.edit(posted, text)
        else:
            await self._arrive("edit", posted.place, text, posted.id)
        self.feedback_asked.append((posted.id, text, key))
        self.feedback_with_text.append(changed)

    async def finalize(self, posted: Posted) -> None:
        """Records which message was finalized and the text it had then (see `finalized`)."""
        self.finalized.append((posted.id, self._texts[posted.id][-1]))

    async def delete(self, posted: Posted) -> None:
        if posted.id not in self._texts or posted.id in self.deleted:
            raise KeyError(f"delete of unknown message {posted.id!r}")
        await self._arrive("delete", posted.place, "", posted.id)
        if self.refuse_deletes:
            raise UserFacingError("The platform refused to delete that message.")
        self.deleted.add(posted.id)
        await self._record(Event("delete", self.clock(), posted.place, posted.id, ""))

    async def upload(self, req: Request, data: bytes, filename: str, text: str = "") -> Posted:
        await self._arrive("upload", req.place, text)
        mid = self._new_message(req.place, text)
        await self._record(
            Event("upload", self.clock(), req.place, mid, text, filename=filename, data=data)
        )
        return Posted(place=req.place, id=mid)

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes:
        data = self.files[attachment.id]
        if len(data) > max_bytes:
            raise TooLarge(f"{attachment.filename} is larger than {max_bytes} bytes.")
        return data

    async def history(self, req: Request) -> Sequence[Turn]:
        return list(self.turns)

    async def conversation(self, req: Request, limit: int) -> Sequence[Said]:
        return self.thread_said[-limit:]

    async def recent(self, req: Request, limit: int) -> Sequence[Said]:
        return self.channel_said[-limit:]

    def link(self, place: Place, message_id: str) -> str:
        return f"https://memory.example/{place.channel}/{message_id}"

    # --- internals -----------------------------------------------------------------------

    async def _arrive(self, attempted: str, place: Place, text: str, message_id: str = "") -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._pending_429:
            retry_after = self._pending_429.pop(0)
            await self._record(
                Event("rate_limited", self.clock(), place, message_id, text, attempted=attempted)
            )
            raise PlatformRateLimited(retry_after)

    def _new_message(self, place: Place, text: str) -> str:
        mid = f"m{next(self._ids)}"
        self._texts[mid] = [text]
        self._places[mid] = place
        return mid

    async def _record(self, event: Event) -> None:
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()
