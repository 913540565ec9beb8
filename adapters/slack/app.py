"""The Slack adapter: slack-bolt's async app (Socket Mode or Events API) behind the Adapter API."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncAssistant
from slack_bolt.context.save_thread_context.async_save_thread_context import (
    AsyncSaveThreadContext,
)
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import (
    AsyncSetSuggestedPrompts,
)
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import files as slack_files
from adapters.slack.assistant import (
    GREETING,
    PROMPTS_TITLE,
    ThreadContexts,
    default_prompts,
    is_first_question,
    metadata,
    title_of,
)
from adapters.slack.channels import ChannelNames
from adapters.slack.errors import SlackProblem, code_of, is_server_error, translate
from adapters.slack.events import (
    PLATFORM,
    SHORTCUTS,
    SLASH_COMMANDS,
    TRANSCRIBE_SHORTCUT,
    UMBRELLA_COMMAND,
    Identity,
    Origin,
    attachments,
    classify_message,
    echo_line,
    event_request,
    is_bare_clip,
    is_from_other_bot,
    observed_change,
    permalink,
    shortcut_request,
    slash_request,
    strip_mention,
    team_of,
    user_from_info,
)
from adapters.slack.feedback import FEEDBACK_ACTION, feedback_block, text_blocks, vote_request
from adapters.slack.history import ThreadHistory
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.reading import channel_messages, said_lines
from adapters.slack.settings import SlackSettings
from adapters.slack.status import ThreadStatus
from adapters.slack.stream import NativeStream, NativeStreams
from adapters.slack.transport import serve_http, serve_socket
from bot.adapter import Connection, Handler, Observer
from bot.errors import PlatformRateLimited, UserFacingError
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
    User,
)
from bot.i18n import LanguageDefaults, resolve, speaking, t
from bot.streaming.budgets import Budgets, EditBudget
from bot.streaming.writes import FINAL_DEADLINE, required, send

log = logging.getLogger("adapters.slack.app")

Dedupe = Callable[[str], Awaitable[bool]]
JSON = dict[str, Any]


def mrkdwn_length(text: str) -> int:
    """Length as Slack counts it: after conversion (escaping grows, link syntax shrinks)."""
    return len(to_mrkdwn(text))


# chat.update is Tier 3 (~50/min) per workspace, shared by every reply streaming there. The
# core's budget allows `burst` writes per burst/rate seconds: 50 per 62.5 s stays inside Slack's
# allowance however Slack counts the minute, and still lets 50 replies finish at once.
# chat.postMessage is ~1/s per channel with short bursts. chat.delete is Tier 3 per workspace
# too, but its own method: a final text whose chat.update would wait on a drained budget is
# posted anew and its placeholder deleted. Slack cuts text at 40k characters but renders
# past ~4k poorly; the margin leaves room for a slash command's quoted invocation.
LIMITS = Limits(
    max_chars=3500,
    edit_interval=1.0,
    budget_per_second=0.8,
    budget_burst=50,
    budget_scope="workspace",
    post_per_second=0.9,
    post_burst=2,
    post_scope="channel",
    delete_per_second=0.8,
    delete_burst=50,
    delete_scope="workspace",
    length=mrkdwn_length,
    app_wide=True,
)
_SERVER_ERROR_PAUSE = 1.0
# Longest conversations.replies 429 worth waiting out before answering without context.
HISTORY_MAX_WAIT = 10.0
# Longer than the dispatcher's default drain (20 s grace + 10 s to finalize).
SHUTDOWN_WAIT = 45.0
# Assistant-thread niceties (a title, the context on the greeting) wait this long for their
# budget at most: they must never hold up an answer.
NICETY_WAIT = 5.0


def _read_limited() -> str:
    return t(
        "Slack is limiting how fast I can read messages right now; please try again in a minute."
    )


class _QuietTokenNotice(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN itself and warns it is unused when given a client; it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_bolt_log = logging.getLogger("adapters.slack.app.bolt")
_bolt_log.addFilter(_QuietTokenNotice())


@dataclass(frozen=True, slots=True)
class _Sent:
    """Posted.native: what edits must repeat (the slash-command echo) or cannot do."""

    header: str = ""
    ephemeral: bool = False
    # Set when the message is a native stream (its edits append, or replace once stopped).
    stream: NativeStream | None = None


class SlackAdapter:
    """Implements bot.adapter.Adapter for one Slack workspace installation."""

    name = "slack"
    limits = LIMITS

    def __init__(
        self,
        settings: SlackSettings,
        dedupe: Dedupe,
        budgets: Budgets | None = None,
        *,
        trace: aiohttp.TraceConfig | None = None,
        observer: Observer | None = None,
        languages: LanguageDefaults | None = None,
    ) -> None:
        self.settings = settings
        # CHATOPS_LANGUAGE, for what the adapter says on its own (greetings, its status line);
        # the core picks each request's language itself.
        self._languages = languages or LanguageDefaults()
        self._dedupe = dedupe
        # The core's shared budgets: the adapter's own notices are paced with everything else.
        self._budgets = budgets or Budgets()
        # Sees every Web API call (adapters/api_calls.py counts them by method and status).
        self._trace = trace
        # Channel memory's intake: channel messages, edits and deletes go there, unanswered.
        self.observer = observer
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._me: Identity | None = None
        self._users: OrderedDict[str, User] = OrderedDict()
        self._active: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._anchors: OrderedDict[str, str] = OrderedDict()
        # Per request: the native stream its tasks show in (opened by a task before the reply
        # had text, then adopted by the reply's first streamed post; or the reply's own).
        self._task_streams: OrderedDict[str, NativeStream] = OrderedDict()
        # Held while a request's stream is being opened, so a task and the reply's first
        # post (which run concurrently) never open two streams for one request.
        self._opening: OrderedDict[str, asyncio.Lock] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.status = ThreadStatus(self._client, enabled=settings.assistant_status)
        self.history_cache = ThreadHistory(self._client, self._download_for_history)
        # The service's budgets: replicas on PostgreSQL share the streams allowance too.
        self.streams = NativeStreams(self._client, enabled=settings.native_stream, budgets=budgets)
        self.contexts = ThreadContexts(
            self.history_cache.messages, self._update_greeting, self._bot_user_id
        )
        self.channel_names = ChannelNames(self._client)
        # Set once events can arrive; `http_port` is the bound port in HTTP mode.
        self.ready = asyncio.Event()
        self.http_port: int | None = None
        # What connection() reads: the Socket Mode client, or whether the listener is up.
        self._socket: AsyncBaseSocketModeClient | None = None
        self._listening = False

    # --- connection ----------------------------------------------------------------------

    async def _client(self) -> AsyncWebClient:
        if self._web is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                trace_configs=[self._trace] if self._trace is not None else None,
            )
            self._web = AsyncWebClient(
                token=self.settings.bot_token.reveal(),
                base_url=self.settings.api_url,
                session=self._session,
                # Only connection resets are retried by the SDK; 429s must reach the streamer
                # (which owns the shared budget) instead of being slept on inside a call.
                retry_handlers=[AsyncConnectionErrorRetryHandler()],
            )
        return self._web

    async def identity(self) -> Identity:
        """The bot's user id, bot id and workspace (auth.test, once)."""
        if self._me is None:
            client = await self._client()
            try:
                resp = await client.auth_test()
            except SlackApiError as err:
                raise translate(err, "auth.test") from err
            self._me = Identity(
                user_id=str(resp.get("user_id", "")),
                bot_id=str(resp.get("bot_id", "")),
                team_id=str(resp.get("team_id", "")),
                url=str(resp.get("url", "")),
            )
        return self._me

    async def run(self, handle: Handler) -> None:
        """Receive events until cancelled (Socket Mode, or the Events API over HTTP)."""
        me = await self.identity()
        log.info(
            "slack: connected as %s in %s (%s mode)", me.user_id, me.team_id, self.settings.mode
        )
        app = self._build_app(handle)
        try:
            if self.settings.mode == "http":
                settings = self.settings
                await serve_http(
                    app,
                    settings.http_host,
                    settings.http_port or 0,
                    settings.http_path,
                    self._bound,
                )
            else:
                await serve_socket(
                    app, self.settings.app_token, await self._client(), self._connected
                )
        finally:
            self._socket, self._listening = None, False
            # No new events now; replies in flight still need the Web API while the
            # dispatcher drains them, so the session closes only after they end (bounded).
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_WAIT)
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=5)
            await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._web = None

    def _bound(self, port: int) -> None:
        self.http_port = port
        self._listening = True
        self.ready.set()

    def _connected(self, socket: AsyncBaseSocketModeClient) -> None:
        self._socket = socket
        self.ready.set()

    async def connection(self) -> Connection:
        """Socket Mode: the websocket is live; HTTP mode: the Events API listener is up."""
        if self.settings.mode == "http":
            if self._listening:
                return Connection(True, f"Events API listener up on port {self.http_port}")
            return Connection(False, "Events API listener not started")
        if self._socket is None:
            return Connection(False, "Socket Mode connecting")
        if await self._socket.is_connected():
            return Connection(True, "Socket Mode connected")
        # The SDK reconnects by itself; until then no event can arrive.
        return Connection(False, "Socket Mode connection lost; reconnecting")

    # --- inbound ---------------------------------------------------------------------------

    def _build_app(self, handle: Handler) -> AsyncApp:
        http = self.settings.mode == "http"
        app = AsyncApp(
            client=self._web,
            # Explicit values: bolt would otherwise read SLACK_* variables itself.
            signing_secret=self.settings.signing_secret.reveal(),
            request_verification_enabled=http,
            ignoring_self_events_enabled=True,
            logger=_bolt_log,
        )

        # Before the listeners below: it takes the AI-app thread events and the user messages
        # in DM threads (plain DMs, mentions and channel threads still reach the listeners).
        app.assistant(self._assistant(handle))

        @app.event("app_mention")
        async def on_mention(body: JSON, event: JSON) -> None:
            self._spawn(self._mention(body, event, handle))

        @app.event("message")
        async def on_message(body: JSON, event: JSON) -> None:
            self._spawn(self._message(body, event, handle))

        names = "|".join((*SLASH_COMMANDS, UMBRELLA_COMMAND))

        @app.command(re.compile(rf"^/({names})$"))
        async def on_command(ack: AsyncAck, body: JSON) -> None:
            # Acknowledged before anything else: Slack shows an error after 3 s.
            await ack()
            self._spawn(self._slash(body, handle))

        @app.action(FEEDBACK_ACTION)
        async def on_feedback(ack: AsyncAck, body: JSON) -> None:
            await ack()
            self._spawn(self._vote(body, handle))

        @app.shortcut(re.compile(rf"^({'|'.join(SHORTCUTS)})$"))
        async def on_shortcut(ack: AsyncAck, body: JSON) -> None:
            await ack()
            self._spawn(self._shortcut(body, handle))

        return app

    def _assistant(self, handle: Handler) -> AsyncAssistant:
        assistant = AsyncAssistant(thread_context_store=self.contexts, logger=_bolt_log)

        @assistant.thread_started
        async def started(
            body: JSON, event: JSON, set_suggested_prompts: AsyncSetSuggestedPrompts
        ) -> None:
            self._spawn(self._thread_started(body, event, set_suggested_prompts))

        @assistant.thread_context_changed
        async def context_changed(event: JSON, save_thread_context: AsyncSaveThreadContext) -> None:
            context = (event.get("assistant_thread") or {}).get("context") or {}
            self._spawn(self._context_changed(save_thread_context, context))

        @assistant.user_message
        async def user_message(body: JSON, event: JSON, set_title: AsyncSetTitle) -> None:
            # Also every thread reply in a DM of a workspace without AI-app threads: the same
            # path as any DM, plus a title where the thread turns out to be an assistant's.
            self._spawn(self._message(body, event, handle, set_title=set_title))

        return assistant

    async def drained(self) -> None:
        """Wait until every event received so far has been fully handled."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("slack: handling an event failed", exc_info=exc)

    async def _first(self, event_id: str) -> bool:
        if not event_id:
            return True
        if await self._dedupe(event_id):
            return True
        log.info("slack: ignoring redelivered event %s", event_id)
        return False

    async def _mention(self, body: JSON, event: JSON, handle: Handler) -> None:
        me = await self.identity()
        if is_from_other_bot(event, me) and not self.settings.allow_bots:
            return
        self._remember_inbound(event)
        if not await self._first(str(body.get("event_id", ""))):
            return
        user = await self.user(str(event.get("user", "")))
        req = event_request(event, user, me, event_id=str(body["event_id"]), conversational=True)
        await self._handle(req, handle)

    async def _message(
        self, body: JSON, event: JSON, handle: Handler, *, set_title: AsyncSetTitle | None = None
    ) -> None:
        me = await self.identity()
        self._remember_inbound(event)
        await self._observe(event, me)
        if event.get("subtype") in ("message_changed", "message_deleted"):
            changed: JSON = event.get("message") or event.get("previous_message") or {}
            # Our own streamed edits come back as message_changed; the cache has them already.
            own = changed.get("user") == me.user_id or changed.get("bot_id") == me.bot_id
            if changed.get("thread_ts") and not own:
                self.history_cache.forget(str(event.get("channel", "")), str(changed["thread_ts"]))
            return
        kind = classify_message(event, me, allow_bots=self.settings.allow_bots)
        if kind is None:
            return
        channel, thread = str(event.get("channel", "")), str(event.get("thread_ts") or "")
        in_our_thread = kind == "thread" and await self._bot_in_thread(channel, thread, me)
        if kind == "thread" and not in_our_thread and not is_bare_clip(event):
            return
        if not await self._first(str(body.get("event_id", ""))):
            return
        user = await self.user(str(event.get("user", "")))
        req = event_request(
            event,
            user,
            me,
            event_id=str(body["event_id"]),
            conversational=kind == "dm" or in_our_thread,
        )
        if set_title is not None and req.place.thread:
            req = await self._in_assistant_thread(req, str(event.get("ts", "")), set_title)
        await self._handle(req, handle)

    async def _observe(self, event: JSON, me: Identity) -> None:
        """Hand a channel's message, edit or delete to channel memory (if it watches there)."""
        channel = str(event.get("channel", ""))
        observer = self.observer
        if observer is None or not observer.watching(f"{PLATFORM}:{channel}"):
            return
        found = observed_change(event, me)
        if found is None:
            return
        change, message = found
        ts = str(message["ts"])
        thread = str(message.get("thread_ts") or "") or None
        place = Place(PLATFORM, channel, thread, me.team_id)
        if change == "deleted":
            observer.observe(ChannelMessage(place, ts, "deleted"))
            return
        author = await self.user(str(message.get("user", ""))) if message.get("user") else None
        observer.observe(
            ChannelMessage(
                place,
                ts,
                change,
                strip_mention(str(message.get("text", "")), me.user_id),
                author.name if author else str(message.get("username") or "a bot"),
                datetime.fromtimestamp(float(ts), UTC),
                permalink(me.url, channel, ts, thread),
                attachments(message.get("files")),
                addressed=f"<@{me.user_id}" in str(message.get("text", ""))
                or event.get("channel_type") == "im",
            )
        )

    def link(self, place: Place, message_id: str) -> str:
        me = self._me
        return permalink(me.url, place.channel, message_id, place.thread) if me else ""

    async def _slash(self, body: JSON, handle: Handler) -> None:
        req = slash_request(body, await self.user(str(body.get("user_id", ""))), team_of(body))
        if await self._first(req.event_id):
            await self._handle(req, handle)

    async def _shortcut(self, body: JSON, handle: Handler) -> None:
        user: JSON = body.get("user") or {}
        author_id = str((body.get("message") or {}).get("user") or "")
        author = (await self.user(author_id)).name if author_id else ""
        asker = await self.user(str(user.get("id", "")))
        req = shortcut_request(body, asker, team_of(body), author=author)
        if not await self._first(req.event_id):
            return
        if req.command == TRANSCRIBE_SHORTCUT and not req.attachments:
            with speaking(self._language(req.place.workspace, req.user)):
                note = t("That message has no audio clip to transcribe.")
            try:
                await send(self, self._budgets, req, note, ephemeral=True)
            except (UserFacingError, PlatformRateLimited) as exc:
                log.warning("slack: could not answer a shortcut without audio: %s", exc)
            return
        await self._handle(req, handle)

    # --- AI-app (assistant) threads ------------------------------------------------------

    async def _thread_started(
        self, body: JSON, event: JSON, set_prompts: AsyncSetSuggestedPrompts
    ) -> None:
        """Greet (the greeting keeps the thread's context) and suggest prompts."""
        if not await self._first(str(body.get("event_id", ""))):
            return
        thread: JSON = event.get("assistant_thread") or {}
        channel, ts = str(thread.get("channel_id", "")), str(thread.get("thread_ts", ""))
        context: JSON = thread.get("context") or {}
        team = team_of(body)
        starter = await self.user(str(thread.get("user_id", "")))
        with speaking(self._language(team, starter)):
            await self._greet(set_prompts, channel, ts, team, context)

    def _language(self, workspace: str, user: User) -> str:
        """The language for what the adapter says by itself: the workspace's, else the person's."""
        return resolve(None, self._languages, workspace, user.locale)

    async def _greet(
        self,
        set_prompts: AsyncSetSuggestedPrompts,
        channel: str,
        ts: str,
        team: str,
        context: JSON,
    ) -> None:
        self.contexts.remember(channel, ts, context)
        place = Place("slack", channel, ts, team)
        posts = self._budgets.for_posts(LIMITS, place)
        deadline = asyncio.get_running_loop().time() + FINAL_DEADLINE
        try:
            await required(
                lambda: self._call(
                    "chat.postMessage",
                    channel=channel,
                    thread_ts=ts,
                    text=t(GREETING),
                    metadata=metadata(context),
                ),
                posts,
                deadline,
            )
        except Exception as exc:
            # The prompts below still help; the context stays in this process only.
            log.warning("slack: could not greet in assistant thread %s: %s", ts, exc)
        prompts = self.settings.prompts_for(team) or default_prompts()
        try:
            async with asyncio.timeout(NICETY_WAIT):
                await set_prompts(
                    [{"title": p.title, "message": p.message} for p in prompts],
                    title=t(PROMPTS_TITLE),
                )
        except (SlackApiError, TimeoutError) as exc:
            log.warning("slack: could not suggest prompts in %s: %s", ts, exc)

    async def _context_changed(self, save: AsyncSaveThreadContext, context: JSON) -> None:
        try:
            await save(context)
        except Exception as exc:
            # Remembered in this process already; only the copy on the greeting is missing.
            log.warning("slack: could not keep an assistant thread's context: %s", exc)

    async def _update_greeting(self, channel: str, greeting: JSON, meta: JSON) -> None:
        """The greeting with new metadata: an edit, through the workspace's edit budget."""
        place = Place("slack", channel, str(greeting.get("thread_ts") or ""), self._team())
        edits = self._budgets.for_place(LIMITS, place)
        deadline = asyncio.get_running_loop().time() + NICETY_WAIT
        await required(
            lambda: self._call(
                "chat.update",
                channel=channel,
                ts=str(greeting.get("ts", "")),
                text=str(greeting.get("text") or t(GREETING)),
                metadata=meta,
            ),
            edits,
            deadline,
        )
        greeting["metadata"] = meta

    def _team(self) -> str:
        return self._me.team_id if self._me is not None else ""

    async def _bot_user_id(self) -> str:
        return (await self.identity()).user_id

    async def _in_assistant_thread(
        self, req: Request, ts: str, set_title: AsyncSetTitle
    ) -> Request:
        """A DM thread message: the channel the user looks at, and a title for a first question."""
        channel, thread = req.place.channel, req.place.thread or ""
        try:
            context = await self.contexts.find(channel_id=channel, thread_ts=thread)
            messages = await self.history_cache.messages(channel, thread)
        except (UserFacingError, PlatformRateLimited) as exc:
            log.info("slack: assistant thread %s without its context: %s", thread, exc)
            return req
        if context is not None:
            viewing = Place(
                "slack", context.channel_id, None, context.team_id or req.place.workspace
            )
            req = replace(req, viewing=viewing)
        me = await self.identity()
        # An assistant thread starts with Slack's placeholder (or the bot); a plain DM thread
        # starts with a person.
        root: JSON = messages[0] if messages else {}
        assistant = root.get("subtype") == "assistant_app_thread" or root.get("user") == me.user_id
        if assistant and req.text.strip() and is_first_question(messages, me.user_id, ts):
            try:
                async with asyncio.timeout(NICETY_WAIT):
                    await set_title(title_of(req.text))
            except (SlackApiError, TimeoutError) as exc:
                log.info("slack: could not title assistant thread %s: %s", thread, exc)
        return req

    # --- reading channels (summaries, "this channel") -------------------------------------

    async def conversation(self, req: Request, limit: int) -> Sequence[Said]:
        """The thread the request (or the message it targets) is in, without the request."""
        place = req.place
        origin = req.native if isinstance(req.native, Origin) else Origin()
        if not place.thread:
            return []
        messages = await self._read(
            lambda: self.history_cache.messages(place.channel, place.thread or "")
        )
        own = origin.ts if req.target is None else None
        messages = [m for m in messages if m.get("ts") != own]
        if len(messages) == 1 and req.target is None and not req.place.direct:
            return []  # a mention that starts its own thread: no conversation yet
        return (await said_lines(messages, await self.identity(), self._name))[-limit:]

    async def recent(self, req: Request, limit: int) -> Sequence[Said]:
        """The newest messages of the channel the request is about (the viewed one, if any)."""
        place = req.viewing or req.place
        origin = req.native if isinstance(req.native, Origin) else Origin()
        client = await self._client()
        messages = await self._read(lambda: channel_messages(client, place.channel, limit + 1))
        messages = [m for m in messages if m.get("ts") != origin.ts][-limit:]
        return await said_lines(messages, await self.identity(), self._name)

    async def _read(self, fetch: Callable[[], Awaitable[list[JSON]]]) -> list[JSON]:
        """A read that waits out one short 429 (reads are Tier 3 per workspace)."""
        try:
            return await fetch()
        except PlatformRateLimited as limited:
            if limited.retry_after > HISTORY_MAX_WAIT:
                raise UserFacingError(_read_limited()) from limited
            await asyncio.sleep(limited.retry_after)
        try:
            return await fetch()
        except PlatformRateLimited as limited:
            raise UserFacingError(_read_limited()) from limited

    async def _name(self, user_id: str) -> str:
        return (await self.user(user_id)).name

    async def _vote(self, body: JSON, handle: Handler) -> None:
        user: JSON = body.get("user") or {}
        req = vote_request(body, await self.user(str(user.get("id", ""))), team_of(body))
        if req is None:
            log.warning("slack: a feedback click without a vote we know; ignored")
            return
        if await self._first(req.event_id):
            await handle(req)

    async def _handle(self, req: Request, handle: Handler) -> None:
        if not req.place.name and not req.place.direct:
            # Channel allow/block lists may name channels; events carry only the id.
            name = await self.channel_names.name(req.place.channel)
            req = replace(req, place=replace(req.place, name=name))
        elif req.place.name:
            self.channel_names.note(req.place.channel, req.place.name)
        channel, thread = req.place.channel, req.place.thread
        # Set before the core starts, so it cannot land after (and outlive) the first reply.
        if thread:
            with speaking(self._language(req.place.workspace, req.user)):
                await self.status.working(channel, thread)
        try:
            await handle(req)
        finally:
            if thread:
                await self.status.done(channel, thread)

    def _remember_inbound(self, event: JSON) -> None:
        thread = event.get("thread_ts") or event.get("ts")
        if thread:
            self.history_cache.note(str(event.get("channel", "")), str(thread), event)

    async def _bot_in_thread(self, channel: str, thread: str, me: Identity) -> bool:
        """True when the bot has answered in this thread (so no fresh mention is needed)."""
        if (channel, thread) in self._active:
            return True
        try:
            msgs = await self.history_cache.messages(channel, thread)
        except (UserFacingError, PlatformRateLimited) as exc:
            log.warning("slack: cannot tell whether the bot is in thread %s: %s", thread, exc)
            return False
        if any(m.get("user") == me.user_id for m in msgs):
            self._mark_active(channel, thread)
            return True
        return False

    def _mark_active(self, channel: str, thread: str) -> None:
        self._active[(channel, thread)] = None
        self._active.move_to_end((channel, thread))
        while len(self._active) > 4096:
            self._active.popitem(last=False)

    async def user(self, user_id: str) -> User:
        """The user with name and admin flag (users.info, cached)."""
        if cached := self._users.get(user_id):
            return cached
        client = await self._client()
        try:
            # The locale: the language answers and translations default to for this person.
            info = (await client.users_info(user=user_id, include_locale=True)).get("user") or {}
        except SlackApiError as err:
            log.warning("slack users.info %s failed: %s", user_id, code_of(err) or err)
            return User(id=user_id, name=user_id)
        user = user_from_info(user_id, info)
        self._users[user_id] = user
        while len(self._users) > 2048:
            self._users.popitem(last=False)
        return user

    # --- outbound --------------------------------------------------------------------------

    async def _call(self, method: str, **kwargs: Any) -> JSON:
        """One Web API call; a 5xx is retried once, then becomes a sentence for the user."""
        client = await self._client()
        for attempt in (1, 2):
            try:
                resp = await client.api_call(method, json=kwargs)
                return dict(resp.data) if isinstance(resp.data, dict) else {}
            except SlackApiError as err:
                if attempt == 1 and is_server_error(err):
                    await asyncio.sleep(_SERVER_ERROR_PAUSE)
                    continue
                raise translate(err, method) from err
        raise AssertionError("unreachable")

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        origin = req.native if isinstance(req.native, Origin) else Origin()
        if ephemeral:
            return await self._ephemeral(req, origin, text)
        channel = req.place.channel
        thread = req.place.thread or self._anchors.get(req.event_id)
        header = ""
        if thread is None and origin.echo:
            # A slash command's invocation is invisible to the channel: quote it above the answer.
            header = echo_line(req.user.id, origin.echo)
        stream = None
        # Only for streamed replies: they get finalize(), where the stream is stopped.
        if streamed and thread and not header:
            key = self._task_key(req, thread)
            async with self._opening_lock(key):
                opened = self._task_streams.get(key)
                if opened is not None and opened.live and not opened.text:
                    # Tasks opened this stream before the reply had text: the reply takes it.
                    await self.streams.show(opened, text)
                    stream = opened
                else:
                    # Markdown as the model wrote it: streams take standard Markdown.
                    stream = await self.streams.start(
                        channel=channel,
                        thread_ts=thread,
                        text=text,
                        team=req.place.workspace,
                        user=req.user.id,
                    )
                    if stream is not None:
                        self._remember_task_stream(key, stream)
        if stream is not None:
            ts = stream.ts
        else:
            kwargs: JSON = {"channel": channel, "text": header + to_mrkdwn(text)}
            kwargs |= {"unfurl_links": False, "unfurl_media": False}
            if thread:
                kwargs["thread_ts"] = thread
            resp = await self._call("chat.postMessage", **kwargs)
            ts = str(resp.get("ts", ""))
        if thread is None and req.event_id:
            # Rollover messages and uploads for this request go under its first answer.
            self._anchors[req.event_id] = ts
            while len(self._anchors) > 1024:
                self._anchors.popitem(last=False)
        root = thread or ts
        self.status.posted(channel, root)
        self._mark_active(channel, root)
        me = await self.identity()
        self.history_cache.note(
            channel, root, {"ts": ts, "user": me.user_id, "text": header + text}
        )
        sent = _Sent(header=header, stream=stream)
        return Posted(place=replace(req.place, thread=root), id=ts, native=sent)

    async def _ephemeral(self, req: Request, origin: Origin, text: str) -> Posted:
        body = to_mrkdwn(text)
        if origin.response_url:
            # Works in channels the bot is not in, where chat.postEphemeral would fail.
            await self._respond(origin.response_url, body)
            return Posted(place=req.place, id="", native=_Sent(ephemeral=True))
        kwargs: JSON = {"channel": req.place.channel, "user": req.user.id, "text": body}
        if req.place.thread:
            kwargs["thread_ts"] = req.place.thread
        resp = await self._call("chat.postEphemeral", **kwargs)
        return Posted(
            place=req.place, id=str(resp.get("message_ts", "")), native=_Sent(ephemeral=True)
        )

    async def _respond(self, url: str, text: str) -> None:
        await self._client()
        assert self._session is not None
        payload = {"response_type": "ephemeral", "text": text, "replace_original": False}
        async with self._session.post(url, json=payload) as resp:
            if resp.status >= 400:
                log.warning("slack response_url answered HTTP %s", resp.status)
                raise UserFacingError(t("Slack did not accept the reply; please try again."))

    async def edit(self, posted: Posted, text: str) -> None:
        sent = posted.native if isinstance(posted.native, _Sent) else _Sent()
        if sent.ephemeral or not posted.id:
            log.debug("slack: ephemeral messages cannot be edited; dropping an edit")
            return
        if sent.stream is not None:
            await self.streams.show(sent.stream, text)
        else:
            await self._call(
                "chat.update",
                channel=posted.place.channel,
                ts=posted.id,
                text=sent.header + to_mrkdwn(text),
            )
        if posted.place.thread:
            me = await self.identity()
            self.history_cache.note(
                posted.place.channel,
                posted.place.thread,
                {"ts": posted.id, "user": me.user_id, "text": sent.header + text},
            )

    def append_budget(self, posted: Posted) -> EditBudget | None:
        """Appends to a live native stream are chat.appendStream (Tier 4), apart from
        chat.update (AppendsApart); any other edit is a chat.update."""
        sent = posted.native if isinstance(posted.native, _Sent) else _Sent()
        if sent.stream is None or not sent.stream.live:
            return None
        return self.streams.appends(sent.stream.team)

    async def show_task(self, req: Request, task: Task) -> bool:
        """A tool call as a `task_update` chunk of the request's native stream (opening one
        in the thread if the reply has none yet); False where native streams cannot be used."""
        origin = req.native if isinstance(req.native, Origin) else Origin()
        thread = req.place.thread or self._anchors.get(req.event_id)
        if not thread or (origin.echo and not req.place.thread):
            return False
        key = self._task_key(req, thread)
        async with self._opening_lock(key):
            stream = self._task_streams.get(key)
            if stream is None:
                stream = await self.streams.start(
                    channel=req.place.channel,
                    thread_ts=thread,
                    text="",
                    team=req.place.workspace,
                    user=req.user.id,
                    task=task,
                )
                if stream is None:
                    return False
                self._remember_task_stream(key, stream)
                return True
        return await self.streams.task(stream, task)

    def _task_key(self, req: Request, thread: str) -> str:
        return req.event_id or f"{req.place.channel}:{thread}"

    def _opening_lock(self, key: str) -> asyncio.Lock:
        lock = self._opening.get(key)
        if lock is None:
            lock = self._opening[key] = asyncio.Lock()
            while len(self._opening) > 1024:
                self._opening.popitem(last=False)
        return lock

    def _remember_task_stream(self, key: str, stream: NativeStream) -> None:
        self._task_streams[key] = stream
        while len(self._task_streams) > 1024:
            self._task_streams.popitem(last=False)

    async def finalize(self, posted: Posted) -> None:
        """A streamed message's text is final: stop its native stream (if it has one)."""
        sent = posted.native if isinstance(posted.native, _Sent) else _Sent()
        if sent.stream is not None:
            await self.streams.stop(sent.stream)

    def feedback_needs_edit(self, posted: Posted) -> bool:
        """A live native stream takes the buttons with its chat.stopStream; others need an
        edit (chat.update)."""
        sent = posted.native if isinstance(posted.native, _Sent) else _Sent()
        return sent.stream is None or not sent.stream.live

    async def ask_feedback(self, posted: Posted, text: str, key: str) -> None:
        """Feedback buttons under a finished reply: given to chat.stopStream when its native
        stream is still open, else a chat.update that adds them."""
        sent = posted.native if isinstance(posted.native, _Sent) else _Sent()
        if sent.ephemeral or not posted.id:
            return
        buttons = feedback_block(key)
        stream = sent.stream
        if stream is not None and stream.live:
            if not await self.streams.stop(stream, [buttons]):
                log.info("slack: stream %s ended without its feedback buttons", posted.id)
            return
        if stream is not None:
            # A stream's text is standard Markdown, shown as such.
            stream.text = text
            blocks = [{"type": "markdown", "text": text}, buttons]
            fallback = text
        else:
            shown = sent.header + to_mrkdwn(text)
            blocks = [*text_blocks(shown, text), buttons]
            fallback = shown
        await self._call(
            "chat.update", channel=posted.place.channel, ts=posted.id, text=fallback, blocks=blocks
        )

    async def delete(self, posted: Posted) -> None:
        """Delete a message the core posted anew (chat.delete; the bot may delete its own)."""
        sent = posted.native if isinstance(posted.native, _Sent) else _Sent()
        if sent.ephemeral or not posted.id:
            log.debug("slack: ephemeral messages cannot be deleted; nothing to do")
            return
        if sent.stream is not None:
            # A deleted message's stream is gone with it: nothing to stop later.
            sent.stream.live = False
        channel, thread = posted.place.channel, posted.place.thread
        try:
            await self._call("chat.delete", channel=channel, ts=posted.id)
        except SlackProblem as problem:
            if problem.code != "message_not_found":
                raise
        if thread:
            # Its placeholder text must not come back as a turn of the conversation.
            self.history_cache.drop(channel, thread, posted.id)

    async def upload(self, req: Request, data: bytes, filename: str, text: str = "") -> Posted:
        thread = req.place.thread or self._anchors.get(req.event_id)
        origin = req.native if isinstance(req.native, Origin) else Origin()
        comment = to_mrkdwn(text)
        if thread is None and origin.echo:
            comment = echo_line(req.user.id, origin.echo) + comment
        try:
            file_id = await slack_files.upload(
                await self._client(),
                channel=req.place.channel,
                thread_ts=thread,
                data=data,
                filename=filename,
                comment=comment,
            )
        except SlackRequestError as err:
            log.warning("slack upload to the upload URL failed: %s", err)
            raise UserFacingError(
                t("Slack did not accept the file upload; please try again.")
            ) from err
        return Posted(place=replace(req.place, thread=thread), id=file_id)

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes:
        await self._client()
        assert self._session is not None
        return await slack_files.download(
            self._session,
            attachment,
            max_bytes,
            token=self.settings.bot_token,
            allowed_hosts=self.settings.file_hosts,
        )

    async def _download_for_history(self, attachment: Attachment, max_bytes: int) -> bytes:
        return await self.download(attachment, max_bytes)

    async def history(self, req: Request) -> Sequence[Turn]:
        """Earlier turns of the request's thread; context is best effort, never a failure."""
        origin = req.native if isinstance(req.native, Origin) else Origin()
        place = req.place
        # A message that starts its own thread has nothing before it: no API call needed.
        if not place.thread or origin.ts == place.thread:
            return ()
        me = await self.identity()
        for attempt in (1, 2):
            try:
                return await self.history_cache.turns(place.channel, place.thread, me, origin.ts)
            except PlatformRateLimited as limited:
                # conversations.replies is Tier 3 per workspace; wait once if it is short.
                if attempt == 2 or limited.retry_after > HISTORY_MAX_WAIT:
                    break
                await asyncio.sleep(limited.retry_after)
            except UserFacingError as problem:
                log.warning("slack: answering without thread context: %s", problem.message)
                return ()
        log.warning("slack: answering without thread context: conversations.replies is limited")
        return ()
