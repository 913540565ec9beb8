"""The Discord adapter: discord.py traffic in as Requests, answers out as messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from adapters.discord.commands import ModelsSource, build_tree, sync_if_changed
from adapters.discord.events import (
    PLATFORM,
    attachment_of,
    attachments_of,
    interaction_request,
    is_addressed,
    message_request,
    place_of,
    readable_text,
)
from adapters.discord.feedback import FeedbackButtons
from adapters.discord.history import conversation_of, recent_in
from adapters.discord.history import history as conversation_history
from adapters.discord.media import download, fit_upload
from adapters.discord.origin import INTERACTION_TTL, Origin
from adapters.discord.replies import NO_PINGS, UNKNOWN_INTERACTION, Poster
from adapters.discord.settings import DiscordSettings, invite_url
from adapters.discord.shards import ShardStates
from bot.adapter import Connection, Handler, Observer
from bot.commands import Command
from bot.events import (
    Attachment,
    Change,
    ChannelMessage,
    Limits,
    Place,
    Posted,
    Request,
    Said,
    Turn,
)
from bot.i18n import t

__all__ = ["DISCORD_LIMITS", "DiscordAdapter", "DiscordSettings"]

log = logging.getLogger(__name__)

# Discord allows about 5 message creates and 5 edits per 5 s in each channel, in separate
# buckets: two budgets per channel, each at most 5 writes in any 5 s. discord.py's own
# bucket handling (it sleeps when X-RateLimit-Remaining hits 0, retries 429s) is only the
# backstop. Threads share their parent's budgets (conservative: Discord counts them apart).
DISCORD_LIMITS = Limits(
    max_chars=2000,
    edit_interval=1.0,
    budget_per_second=1.0,
    budget_burst=5,
    budget_scope="channel",
    post_per_second=1.0,
    post_burst=5,
    post_scope="channel",
    # No delete budget: the core never posts a final text anew on Discord. An edit waits at
    # most one 5-s window here, and a new message would reply to the one it replaces.
)
# A RateLimited error instead of a silent sleep when discord.py would wait longer than this
# (30 s is the smallest value it accepts); the streamer then drops frames instead.
MAX_RATELIMIT_SLEEP = 30.0


@dataclass(frozen=True, slots=True)
class PostedRef:
    """Posted.native: the message object (for edits) and the request's reply state."""

    origin: Origin
    message: discord.Message


def _intents() -> discord.Intents:
    intents = discord.Intents.default()
    # Privileged: without it guild messages arrive with empty content (mentions and DMs
    # still carry theirs, replies to us do not).
    intents.message_content = True
    # Typing events from others are of no use and cost gateway traffic.
    intents.typing = False
    return intents


def _origin(req: Request) -> Origin:
    if not isinstance(req.native, Origin):
        raise TypeError("a request that did not come from the Discord adapter")
    return req.native


class DiscordAdapter:
    """One bot connection (optionally sharded) implementing bot.adapter.Adapter."""

    name = "discord"
    limits = DISCORD_LIMITS

    def __init__(
        self,
        settings: DiscordSettings,
        *,
        commands: Mapping[str, Command] | None = None,
        models: ModelsSource | None = None,
        interaction_ttl: float = INTERACTION_TTL,
        typing: bool = True,
        guild_ready_timeout: float = 2.0,
        limits: Limits = DISCORD_LIMITS,
        first_delivery: Callable[[str], Awaitable[bool]] | None = None,
        drain_timeout: float = 60.0,
        http_trace: aiohttp.TraceConfig | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        # Channel memory's intake: channel messages, edits and deletes go there, unanswered.
        self.observer = observer
        self.commands: Mapping[str, Command] = commands or {}
        self.models = models
        self.interaction_ttl = interaction_ttl
        self.typing = typing
        self.guild_ready_timeout = guild_ready_timeout
        # Tests and the benchmark scale time down with a faster fake; production keeps Discord's.
        self.limits = limits
        # Store.first_delivery: a resumed or re-sharded session must not answer twice.
        self.first_delivery = first_delivery
        self.poster = Poster()
        self.client: discord.Client | None = None
        self.invite_url: str | None = None
        self.synced_commands: bool | None = None
        self.ready = asyncio.Event()
        self._handle: Handler | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._accepting = False
        self.drain_timeout = drain_timeout
        self._session: aiohttp.ClientSession | None = None
        # Sees every REST call discord.py makes (adapters/api_calls.py counts them).
        self.http_trace = http_trace
        self.shards = ShardStates()
        self.feedback = FeedbackButtons(self._on_vote)

    # ------------------------------------------------------------------ connection

    def _make_client(self) -> discord.Client:
        # The bot never joins voice channels (voice *messages* are plain attachments), so
        # discord.py's start-up warnings about missing voice libraries are noise.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        options: dict[str, Any] = {
            "intents": _intents(),
            "allowed_mentions": NO_PINGS,
            "max_ratelimit_timeout": MAX_RATELIMIT_SLEEP,
            "chunk_guilds_at_startup": False,
            # How long READY waits for more GUILD_CREATEs before on_ready.
            "guild_ready_timeout": self.guild_ready_timeout,
        }
        if self.http_trace is not None:
            options["http_trace"] = self.http_trace
        count = self.settings.shard_count
        if count is None:
            return discord.Client(**options)
        if count == 0:
            return discord.AutoShardedClient(**options)
        if self.settings.shard_ids:
            options["shard_ids"] = list(self.settings.shard_ids)
        return discord.AutoShardedClient(shard_count=count, **options)

    @property
    def me_id(self) -> int:
        user = self.client.user if self.client is not None else None
        if user is None:
            raise RuntimeError("the Discord client is not logged in")
        return user.id

    async def run(self, handle: Handler) -> None:
        """Log in, sync commands if they changed, and serve until cancelled."""
        self._handle = handle
        self.settings.apply_endpoints()
        client = self._make_client()
        self.client = client
        tree = build_tree(client, self.commands, self._on_command, self.models)

        async def on_message(message: discord.Message) -> None:
            self._on_message(message)

        async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
            # Updates without content (an embed resolving, a pin) change nothing said.
            if "content" in payload.data:
                self._observe(payload.message, "edited")

        async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
            self._observe_delete(payload)

        async def on_ready() -> None:
            log.info("Discord gateway ready as %s in %d guilds", client.user, len(client.guilds))
            self.shards.ready(client)
            self.ready.set()

        client.event(on_message)
        client.event(on_raw_message_edit)
        client.event(on_raw_message_delete)
        client.event(on_ready)
        # Feedback buttons of answers sent before a restart still reach us.
        client.add_dynamic_items(self.feedback.item_class)
        self.shards.attach(client)
        async with client, aiohttp.ClientSession() as session:
            self._session, self._accepting = session, True
            try:
                await client.login(self.settings.token.reveal())
                app_id = client.application_id or self.me_id
                self.invite_url = invite_url(app_id)
                log.info("Discord invite URL (needed permissions included): %s", self.invite_url)
                self.synced_commands = await sync_if_changed(
                    tree, app_id, self.settings.state_dir, self.settings.command_guilds
                )
                await client.connect(reconnect=True)
            except discord.PrivilegedIntentsRequired:
                log.error(
                    "Discord refused the Message Content intent: enable it for this bot "
                    "under Developer Portal → Bot → Privileged Gateway Intents."
                )
                raise
            finally:
                # Take no new events, but keep the HTTP session open until the answers in
                # flight are delivered (the dispatcher's drain bounds how long they take).
                self._accepting = False
                if self._inflight:
                    await asyncio.wait(set(self._inflight), timeout=self.drain_timeout)

    async def connection(self) -> Connection:
        """Every shard this process runs has a READY (or resumed) gateway session."""
        return self.shards.connection(self.client)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if not self._accepting:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # ------------------------------------------------------------------ inbound

    def _observe(self, message: discord.Message, change: Change) -> None:
        """Hand a channel message (or its edit) to channel memory, if it watches there."""
        observer = self.observer
        if observer is None or message.author.id == self.me_id:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        place = place_of(message.channel, message.guild)
        if not observer.watching(place.channel_key):
            return
        files = tuple(a for a in attachments_of(message) if a.kind == "file")
        observer.observe(
            ChannelMessage(
                place,
                str(message.id),
                change,
                readable_text(message, self.me_id),
                message.author.display_name,
                message.created_at,
                message.jump_url,
                files,
                addressed=message.guild is None
                or any(m.id == self.me_id for m in message.mentions),
            )
        )

    def _observe_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        observer = self.observer
        if observer is None:
            return
        client = self.client
        channel = client.get_channel(payload.channel_id) if client is not None else None
        guild = getattr(channel, "guild", None)
        workspace = str(payload.guild_id) if payload.guild_id else "dm"
        place = (
            place_of(channel, guild)
            if channel is not None
            else Place(PLATFORM, str(payload.channel_id), None, workspace)
        )
        if observer.watching(place.channel_key):
            observer.observe(ChannelMessage(place, str(payload.message_id), "deleted"))

    def link(self, place: Place, message_id: str) -> str:
        """The message's jump URL (in a thread, the thread is the channel)."""
        guild = "@me" if place.workspace in ("", "dm") else place.workspace
        return f"https://discord.com/channels/{guild}/{place.thread or place.channel}/{message_id}"

    def _on_message(self, message: discord.Message) -> None:
        self._observe(message, "posted")
        if not is_addressed(
            message,
            self.me_id,
            allowed_bots=self.settings.allowed_bots,
            allow_all_bots=self.settings.allow_all_bots,
        ):
            return
        self._spawn(self._serve(message_request(message, self.me_id), message.channel))

    async def _on_command(
        self,
        interaction: discord.Interaction[Any],
        name: str,
        text: str,
        attachments: Sequence[discord.Attachment],
        target: discord.Message | None = None,
    ) -> None:
        command = self.commands.get(name)
        private = bool(command and command.private_for(text))
        try:
            # Discord's 3 s starts at the event; acknowledge before anything else.
            await interaction.response.defer(thinking=True, ephemeral=private)
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_INTERACTION:
                log.warning("/%s: interaction expired before it was acknowledged", name)
                return
            raise
        except discord.InteractionResponded:
            pass
        voice = False
        message = getattr(interaction, "data", {}) or {}
        if message.get("type") == 3:  # a message context menu: the target's flags matter
            voice = any(a.duration is not None for a in attachments)
        req = interaction_request(
            interaction,
            name,
            text,
            tuple(attachment_of(a, voice=voice) for a in attachments),
            deferred_ephemeral=private,
            interaction_ttl=self.interaction_ttl,
            target=target,
            me_id=self.me_id,
        )
        self._spawn(self._serve(req, None))

    async def _on_vote(self, interaction: discord.Interaction[Any], vote: str, key: str) -> None:
        """A click on a reply's 👍/👎: acknowledged privately, then the core records it."""
        try:
            await interaction.response.defer(thinking=True, ephemeral=True)
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_INTERACTION:
                log.warning("a feedback click expired before it was acknowledged")
                return
            raise
        except discord.InteractionResponded:
            pass
        req = interaction_request(
            interaction,
            "feedback",
            f"{vote} {key}",
            deferred_ephemeral=True,
            interaction_ttl=self.interaction_ttl,
            me_id=self.me_id,
        )
        self._spawn(self._serve(req, None))

    async def _serve(self, req: Request, typing_in: Any) -> None:
        handle = self._handle
        if handle is None:
            return
        try:
            if self.first_delivery is not None and not await self.first_delivery(req.event_id):
                log.info("discord: %s already handled; redelivery ignored", req.event_id)
                return
            async with self._typing(typing_in):
                await handle(req)
        except Exception:
            log.exception("discord: request %s failed outside the dispatcher", req.event_id)

    @asynccontextmanager
    async def _typing(self, channel: Any) -> AsyncIterator[None]:
        """Show "typing…" while a message-triggered request runs (best effort)."""
        if channel is None or not self.typing:
            yield
            return
        try:
            typing = channel.typing()
            await typing.__aenter__()
        except (discord.HTTPException, AttributeError) as exc:
            log.info("no typing indicator in %s: %s", getattr(channel, "id", "?"), exc)
            yield
            return
        try:
            yield
        finally:
            await typing.__aexit__(None, None, None)

    # ------------------------------------------------------------------ outbound

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        origin = _origin(req)
        message = await self.poster.send(origin, _content(text), ephemeral=ephemeral)
        if not ephemeral:
            origin.last_posted = message
        return Posted(req.place, str(message.id), native=PostedRef(origin, message))

    async def edit(self, posted: Posted, text: str) -> None:
        ref = posted.native
        if not isinstance(ref, PostedRef):
            raise TypeError("a Posted that did not come from the Discord adapter")
        await self.poster.edit(ref.origin, ref.message, _content(text))

    def feedback_needs_edit(self, posted: Posted) -> bool:
        return True

    async def ask_feedback(self, posted: Posted, text: str, key: str) -> None:
        """👍/👎 buttons under a finished reply: one edit that adds them to its last message."""
        ref = posted.native
        if not isinstance(ref, PostedRef):
            raise TypeError("a Posted that did not come from the Discord adapter")
        if ref.message.flags.ephemeral:
            return
        await self.poster.edit(ref.origin, ref.message, _content(text), self.feedback.view(key))

    async def finalize(self, posted: Posted) -> None:
        """Nothing to end: Discord has no native message streams; edits stop by themselves."""

    async def delete(self, posted: Posted) -> None:
        ref = posted.native
        if not isinstance(ref, PostedRef):
            raise TypeError("a Posted that did not come from the Discord adapter")
        await self.poster.delete(ref.origin, ref.message)
        if ref.origin.last_posted is ref.message:
            # Later parts must not reply to a message that is gone.
            ref.origin.last_posted = None

    async def upload(self, req: Request, data: bytes, filename: str, text: str = "") -> Posted:
        origin = _origin(req)
        limit = self._upload_limit(origin)
        fitted, name = await fit_upload(data, filename, limit)
        if name != filename:
            note = t("(re-encoded to fit this server's upload limit)")
            text = f"{text}\n{note}" if text else note
        message = await self.poster.send(origin, text[:2000], file=(fitted, name))
        origin.last_posted = message
        return Posted(req.place, str(message.id), native=PostedRef(origin, message))

    def _upload_limit(self, origin: Origin) -> int:
        if origin.interaction is not None:
            return int(origin.interaction.filesize_limit)
        guild = getattr(origin.channel, "guild", None)
        if guild is not None:
            return int(guild.filesize_limit)
        return int(discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES)

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes:
        native = attachment.native
        url = native.url if isinstance(native, discord.Attachment) else None
        if url is None:
            raise TypeError("an attachment that did not come from the Discord adapter")
        if self._session is None:
            raise RuntimeError("the Discord adapter is not running")
        return await download(self._session, url, attachment.size, max_bytes)

    async def history(self, req: Request) -> Sequence[Turn]:
        return await conversation_history(_origin(req), self.me_id)

    async def conversation(self, req: Request, limit: int) -> Sequence[Said]:
        """The thread or reply chain the request (or the message it targets) is in."""
        return await conversation_of(_origin(req), self.me_id, limit)

    async def recent(self, req: Request, limit: int) -> Sequence[Said]:
        """The channel's latest messages before the request."""
        return await recent_in(_origin(req), self.me_id, limit)


def _content(text: str) -> str:
    # Discord rejects empty content (50006) and anything past 2,000 characters (50035);
    # the streamer splits, this only guards.
    return text[:2000] if text.strip() else "…"
