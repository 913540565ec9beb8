"""Channel memory: what is said in opted-in channels, indexed off the answer path, and searched."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapter import Adapter, LinksMessages, Observer
from bot.events import ChannelMessage, Posted
from bot.gateway.client import Gateway
from bot.knowledge.chunks import chunk
from bot.knowledge.config import KnowledgeConfig
from bot.knowledge.embed import embed
from bot.knowledge.extract import Document, Section, extract
from bot.knowledge.files import EXTRACT_SECONDS
from storage.base import Charge, MemoryHit, Passage, QuotaExceeded, Store

log = logging.getLogger(__name__)

# Below this cosine a passage is not worth showing (unrelated text still scores a little).
MIN_SCORE = 0.2
SEARCH_RESULTS = 5
# Messages wait this long so a burst (and a post followed by its edits) is embedded at once.
FLUSH_DELAY = 0.3
# Other replicas may switch memory on or off: the set of watched channels is re-read this often.
REFRESH_SECONDS = 60.0
PRUNE_SECONDS = 3600.0
# Past this many queued messages the oldest are dropped (logged) rather than memory growing.
MAX_PENDING = 10_000
# Passages of another embedding model embedded again per search (a model change re-embeds).
REEMBED_BATCH = 2000
BOT_AUTHOR = "chatops (bot)"
# Commands said to the bot that are not conversation: kept out of memory (questions stay in).
CONTROL_WORDS = frozenset(
    {
        "search",
        "memory",
        "help",
        "quota",
        "settings",
        "tools",
        "models",
        "model",
        "persona",
        "temperature",
        "maxtokens",
        "autotranscribe",
    }
)
MEMORY_USER = "memory"


@dataclass(frozen=True, slots=True)
class _Queued:
    adapter: Adapter
    message: ChannelMessage


class _Intake:
    """The Observer one adapter is given: its messages, tied to it for file downloads."""

    def __init__(self, memory: ChannelMemory, adapter: Adapter) -> None:
        self._memory = memory
        self._adapter = adapter

    def watching(self, channel_key: str) -> bool:
        return self._memory.watching(channel_key)

    def observe(self, message: ChannelMessage) -> None:
        self._memory.enqueue(self._adapter, message)


class ChannelMemory:
    """Indexes messages of channels whose memory is on (one worker task, batched embeddings
    charged to each channel) and answers searches within one channel."""

    def __init__(
        self,
        store: Store,
        gateway: Gateway,
        config: KnowledgeConfig,
        *,
        clock: Callable[[], datetime],
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self.config = config
        self._clock = clock
        self._flush_delay = flush_delay
        self._enabled: set[str] = set()
        self._pending: OrderedDict[tuple[str, str], _Queued] = OrderedDict()
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._worker: asyncio.Task[None] | None = None
        self._pruned = -math.inf

    async def start(self) -> None:
        self._enabled = await self._store.memory_channels()
        self._worker = asyncio.create_task(self._run(), name="channel-memory")

    async def close(self, grace: float = 5.0) -> None:
        """Index what is queued (bounded by `grace`), then stop."""
        if self._pending:
            try:
                async with asyncio.timeout(grace):
                    await self.idle()
            except TimeoutError:
                log.warning("channel memory: %d messages left unindexed", len(self._pending))
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    # --- intake -------------------------------------------------------------------------

    def watching(self, channel_key: str) -> bool:
        return channel_key in self._enabled

    def intake(self, adapter: Adapter) -> Observer:
        return _Intake(self, adapter)

    def enqueue(self, adapter: Adapter, message: ChannelMessage) -> None:
        key = message.place.channel_key
        if key not in self._enabled:
            return
        words = message.text.split(maxsplit=1)
        if message.addressed and words and words[0].lower().lstrip("/") in CONTROL_WORDS:
            return
        if len(self._pending) >= MAX_PENDING:
            dropped, _ = self._pending.popitem(last=False)
            log.warning("channel memory: queue full; message %s not indexed", dropped[1])
        # The latest change of a message wins (an edit replaces a post still queued).
        self._pending[(key, message.id)] = _Queued(adapter, message)
        self._pending.move_to_end((key, message.id))
        self._settled.clear()
        self._wake.set()

    async def idle(self) -> None:
        """Return once everything queued so far is indexed (bound it with asyncio.timeout)."""
        await self._settled.wait()

    # --- switches -----------------------------------------------------------------------

    async def switch(self, channel_key: str, enabled: bool) -> None:
        await self._store.set_memory(channel_key, enabled)
        if enabled:
            self._enabled.add(channel_key)
        else:
            self._enabled.discard(channel_key)
            for key in [k for k in self._pending if k[0] == channel_key]:
                del self._pending[key]

    async def forget(self, channel_key: str) -> int:
        for key in [k for k in self._pending if k[0] == channel_key]:
            del self._pending[key]
        return await self._store.forget_memory(channel_key)

    # --- search -------------------------------------------------------------------------

    async def search(
        self, channel_key: str, question: str, charge: Charge, k: int = SEARCH_RESULTS
    ) -> list[MemoryHit]:
        """The passages of this channel nearest the question (never another channel's)."""
        model = self.config.embedding_model
        await self._reembed(channel_key, charge)
        [query] = await embed(self._store, self._gateway, model, [question], charge)
        hits = await self._store.search_memory(channel_key, model, query, k)
        return [hit for hit in hits if hit.score >= MIN_SCORE]

    async def _reembed(self, channel_key: str, charge: Charge) -> None:
        """Passages another model embedded are embedded again, never searched side by side."""
        model = self.config.embedding_model
        stale = await self._store.stale_passages(channel_key, model, REEMBED_BATCH)
        if not stale:
            return
        log.info("channel memory: re-embedding %d passages with %s", len(stale), model)
        vectors = await embed(self._store, self._gateway, model, [p.text for p in stale], charge)
        await self._store.revector(model, {p.id: v for p, v in zip(stale, vectors, strict=True)})

    # --- the worker ---------------------------------------------------------------------

    async def _run(self) -> None:
        refreshed = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(REFRESH_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                pass
            try:
                if time.monotonic() - refreshed >= REFRESH_SECONDS:
                    refreshed = time.monotonic()
                    self._enabled = await self._store.memory_channels()
                await self.prune()
                if self._wake.is_set():
                    await asyncio.sleep(self._flush_delay)
                    self._wake.clear()
                    batch = list(self._pending.values())
                    self._pending.clear()
                    await self._index(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("channel memory: indexing failed")
            finally:
                if not self._pending:
                    self._settled.set()

    async def prune(self, *, now: bool = False) -> int:
        """Remove passages older than the retention (hourly unless `now`); returns how many."""
        if not now and time.monotonic() - self._pruned < PRUNE_SECONDS:
            return 0
        self._pruned = time.monotonic()
        before = self._clock() - timedelta(days=self.config.retention_days)
        removed = await self._store.prune_memory(before)
        if removed:
            log.info("channel memory: pruned %d passages older than %s", removed, before)
        return removed

    async def _index(self, batch: Sequence[_Queued]) -> None:
        channels: dict[str, list[_Queued]] = {}
        for queued in batch:
            channels.setdefault(queued.message.place.channel_key, []).append(queued)
        for channel_key, queue in channels.items():
            try:
                await self._index_channel(channel_key, queue)
            except QuotaExceeded as refused:
                log.warning(
                    "channel memory: %s over its quota (%s); not indexed", channel_key, refused
                )
            except Exception as failed:
                log.warning("channel memory: indexing %s failed: %s", channel_key, failed)

    async def _index_channel(self, channel_key: str, queue: Sequence[_Queued]) -> None:
        store = self._store
        wanted: list[tuple[ChannelMessage, list[Passage]]] = []
        for queued in queue:
            message = queued.message
            passages = [] if message.change == "deleted" else await self._passages(queued)
            if passages:
                wanted.append((message, passages))
            else:
                await store.forget_message(channel_key, message.id)
        if not wanted:
            return
        model = self.config.embedding_model
        place = wanted[0][0].place
        # Indexing is nobody's request: its tokens count, the channel's requests do not.
        charge = Charge(
            place.platform,
            channel_key,
            MEMORY_USER,
            "memory",
            model,
            "channel memory",
            follow_up=True,
        )
        texts = [p.text for _, passages in wanted for p in passages]
        vectors = iter(await embed(store, self._gateway, model, texts, charge))
        for message, passages in wanted:
            mine = [next(vectors) for _ in passages]
            await store.index_message(channel_key, message.id, passages, model, mine)

    async def _passages(self, queued: _Queued) -> list[Passage]:
        message = queued.message
        key = message.place.channel_key
        at = message.at or self._clock()
        passages: list[Passage] = []

        def add(text: str, source: str = "") -> None:
            passages.append(
                Passage(
                    key, message.id, len(passages), text, message.author, at, message.link, source
                )
            )

        if message.text.strip():
            for piece in chunk(Document("", "text", (Section(message.text),))):
                add(piece.text)
        for attachment in message.attachments:
            if attachment.kind != "file" or attachment.size > self.config.file_max_bytes:
                continue
            try:
                data = await queued.adapter.download(attachment, self.config.file_max_bytes)
                async with asyncio.timeout(EXTRACT_SECONDS):
                    document = await asyncio.to_thread(
                        extract, data, attachment.filename, attachment.mime
                    )
            except Exception as skipped:  # an unreadable file leaves the message's text indexed
                log.info("channel memory: %s not indexed: %s", attachment.filename, skipped)
                continue
            for piece in chunk(document):
                add(piece.text, f"{attachment.filename}, {piece.position}")
        return passages


def note_answer(
    memory: ChannelMemory | None,
    adapter: Adapter,
    answered: Sequence[Posted],
    text: str,
    at: datetime,
) -> None:
    """The bot's own answer joins the channel's memory (when it is on there)."""
    if memory is None or not answered or not text.strip():
        return
    first = answered[0]
    if not memory.watching(first.place.channel_key):
        return
    link = adapter.link(first.place, first.id) if isinstance(adapter, LinksMessages) else ""
    memory.enqueue(
        adapter,
        ChannelMessage(first.place, first.id, "posted", text, BOT_AUTHOR, at, link),
    )
