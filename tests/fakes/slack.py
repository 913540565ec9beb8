"""A fake Slack on 127.0.0.1: Web API, Socket Mode websocket, file host, realistic rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from tests.fakes.loopback import serve_on_loopback

TEAM = "T0FAKE"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
APP_ID = "AFAKE"

# Slack's documented tiers: chat.update is Tier 3 (~50/min per workspace), chat.postMessage
# about 1/s per channel; both tolerate short bursts.
UPDATE_PER_SECOND = 50 / 60
UPDATE_BURST = 50.0
POST_PER_SECOND = 1.0
POST_BURST = 3.0
# chat.startStream and chat.stopStream are Tier 2 (20+ a minute), chat.appendStream Tier 4
# (100+ a minute), each per method per workspace.
STREAM_PER_SECOND = 20 / 60
STREAM_BURST = 20.0
APPEND_PER_SECOND = 100 / 60
APPEND_BURST = 100.0
# chat.delete: Tier 3, its own limit per workspace.
DELETE_PER_SECOND = 50 / 60
DELETE_BURST = 50.0
# conversations.replies: Tier 3 for internal apps.
REPLIES_PER_SECOND = 50 / 60
REPLIES_BURST = 50.0
# conversations.history: Tier 3 too, its own allowance.
HISTORY_PER_SECOND = 50 / 60
HISTORY_BURST = 50.0
# The one-to-one channel between the bot and user U1 (where assistant threads live).
DM = "D1"

LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Slack</title></head><body>"
    "<h1>Sign in to your workspace</h1></body></html>"
)

JSON = dict[str, Any]


def signed_headers(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with an Events API / slash command / interactivity request."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Bucket:
    """A token bucket the way a server enforces it: refuse when empty, say when to return."""

    rate: float
    burst: float
    level: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0.0 when allowed, else the seconds until one token is available."""
        now = time.monotonic()
        if self.level < 0:
            self.level = self.burst
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate


@dataclass(frozen=True, slots=True)
class Write:
    """One visible change: a post, an update or an ephemeral, with the server's clock."""

    at: float
    method: str
    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    user: str = ""


@dataclass
class FakeFile:
    id: str
    name: str
    mimetype: str
    data: bytes
    subtype: str | None = None
    # Slack's declared size, which a test may set to lie.
    size: int | None = None


class FakeSlack:
    """`async with FakeSlack() as slack:`; point slack_sdk at `slack.api_url`.

    Knobs: `errors[method] = "not_in_channel"` makes a method fail; `server_errors[method] = n`
    answers the next n calls with HTTP 503; `files_read = False` serves the login page the way
    Slack does without the files:read scope; `update_rate/update_burst/post_rate/post_burst`;
    `streaming = False` makes chat.startStream/appendStream/stopStream answer
    `streaming_error` (default `unknown_method`), as for an app or workspace without them;
    `append_rate/append_burst` for chat.appendStream, `stream_rate/stream_burst` for
    start/stop, `delete_rate/delete_burst` for chat.delete. Streamed messages keep their
    Markdown in `text` and say `streaming` until stopped; a stopped stream refuses appends.
    `hold_connections()` keeps Socket Mode clients waiting in apps.connections.open (with
    `drop_connections()`: Slack unreachable) until `release_connections()`.
    Records: `writes` (a chat.delete is a write with empty text), `calls`, `rate_limited`
    (429s served per method), `acks`, `uploads`,
    `statuses`, `responses` (response_url posts), `downloads` (authorized file GETs),
    `suggested` (assistant.threads.setSuggestedPrompts) and `titles` (…setTitle).
    `status_supported = False` refuses every assistant.threads.* method (no assistant:write).
    Assistant threads: `start_assistant_thread()` makes one the way Slack does (a placeholder
    root in the DM, then `assistant_thread_started`); `assistant_event()` builds that event
    or `assistant_thread_context_changed`.
    """

    def __init__(
        self,
        *,
        update_rate: float = UPDATE_PER_SECOND,
        update_burst: float = UPDATE_BURST,
        post_rate: float = POST_PER_SECOND,
        post_burst: float = POST_BURST,
        latency: float = 0.0,
        replies_rate: float = REPLIES_PER_SECOND,
        replies_burst: float = REPLIES_BURST,
        append_rate: float = APPEND_PER_SECOND,
        append_burst: float = APPEND_BURST,
        stream_rate: float = STREAM_PER_SECOND,
        stream_burst: float = STREAM_BURST,
        delete_rate: float = DELETE_PER_SECOND,
        delete_burst: float = DELETE_BURST,
    ) -> None:
        self.bot_token = "xoxb-fake-bot-token"
        self.app_token = "xapp-fake-app-token"
        self.signing_secret = "fake-signing-secret"
        self.update_rate, self.update_burst = update_rate, update_burst
        self.post_rate, self.post_burst = post_rate, post_burst
        self.latency = latency
        self.replies_rate, self.replies_burst = replies_rate, replies_burst
        self.append_rate, self.append_burst = append_rate, append_burst
        self.stream_rate, self.stream_burst = stream_rate, stream_burst
        self.delete_rate, self.delete_burst = delete_rate, delete_burst
        self.streaming = True
        self.streaming_error = "unknown_method"
        self.errors: dict[str, str] = {}
        self.server_errors: dict[str, int] = {}
        self.files_read = True
        self.status_supported = True
        self.users: dict[str, JSON] = {
            "U1": {"id": "U1", "name": "ada", "real_name": "Ada L", "is_admin": False},
            "UADMIN": {"id": "UADMIN", "name": "root", "real_name": "Root", "is_admin": True},
            "UOTHERBOT": {"id": "UOTHERBOT", "name": "otherbot", "is_bot": True},
        }
        self.archived: set[str] = set()
        # Channel names by id (conversations.info, slash payloads); unnamed: the id lowercased.
        self.channel_names: dict[str, str] = {}
        self.channel_info_calls = 0
        self.not_member: set[str] = set()
        self.messages: dict[str, dict[str, JSON]] = defaultdict(dict)
        self.files: dict[str, FakeFile] = {}
        self.writes: list[Write] = []
        self.calls: list[tuple[float, str, JSON]] = []
        self.rate_limited: dict[str, int] = defaultdict(int)
        self.acks: dict[str, tuple[float, JSON | None]] = {}
        self.sent_at: dict[str, float] = {}
        self.uploads: dict[str, bytes] = {}
        self.statuses: list[JSON] = []
        self.suggested: list[JSON] = []
        self.titles: list[JSON] = []
        self.responses: list[tuple[str, JSON]] = []
        self.downloads: list[str] = []
        self.user_info_calls = 0
        self._update_buckets: dict[str, Bucket] = {}
        self._post_buckets: dict[str, Bucket] = {}
        self._replies_buckets: dict[str, Bucket] = {}
        self._history_buckets: dict[str, Bucket] = {}
        self._stream_buckets: dict[str, Bucket] = {}
        self._delete_buckets: dict[str, Bucket] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._acked: dict[str, asyncio.Event] = {}
        self._connected = asyncio.Event()
        self._connections_open = asyncio.Event()
        self._connections_open.set()
        self._activity = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._connections_open.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.root}/api/"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for SlackSettings.from_env pointing at this fake (Socket Mode)."""
        return {
            "SLACK_BOT_TOKEN": self.bot_token,
            "SLACK_APP_TOKEN": self.app_token,
            "SLACK_API_URL": self.api_url,
            **extra,
        }

    # --- state helpers for tests -----------------------------------------------------------

    def refill(self) -> None:
        """Every rate limit back to full, as if a quiet minute had passed."""
        for buckets in (
            self._update_buckets,
            self._post_buckets,
            self._replies_buckets,
            self._history_buckets,
            self._stream_buckets,
            self._delete_buckets,
        ):
            buckets.clear()

    def new_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ids):06d}"

    def add_file(
        self,
        name: str,
        mimetype: str,
        data: bytes,
        *,
        subtype: str | None = None,
        size: int | None = None,
        host: str | None = None,
    ) -> JSON:
        """Store a file and return its Slack file object (as events carry it)."""
        fid = f"F{next(self._ids):06d}"
        self.files[fid] = FakeFile(fid, name, mimetype, data, subtype, size)
        root = f"http://{host}:{self.port}" if host else self.root
        obj: JSON = {
            "id": fid,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "size": len(data) if size is None else size,
            "url_private": f"{root}/files-pri/{TEAM}-{fid}/{name}",
            "url_private_download": f"{root}/files-pri/{TEAM}-{fid}/download/{name}",
        }
        if subtype:
            obj["subtype"] = subtype
        if mimetype.startswith(("audio/", "video/")):
            obj["duration_ms"] = 1500
        return obj

    def user_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        files: list[JSON] | None = None,
        bot_id: str | None = None,
        channel_type: str = "channel",
    ) -> JSON:
        """Store a message as if a person sent it; returns the message event."""
        ts = self.new_ts()
        msg: JSON = {"type": "message", "user": user, "text": text, "ts": ts}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        if files:
            msg["files"] = files
            msg["subtype"] = "file_share"
        if bot_id:
            msg["bot_id"] = bot_id
            msg["subtype"] = "bot_message"
        self.messages[channel][ts] = msg
        return {**msg, "channel": channel, "event_ts": ts, "channel_type": channel_type}

    def start_assistant_thread(
        self, *, user: str = "U1", viewing: str | None = "C1", channel: str = DM
    ) -> tuple[str, JSON]:
        """A new assistant thread (its placeholder root stored): (thread_ts, the started event)."""
        ts = self.new_ts()
        self.messages[channel][ts] = {
            "type": "message",
            "subtype": "assistant_app_thread",
            "user": BOT_USER,
            "text": "New chat",
            "ts": ts,
            "thread_ts": ts,
        }
        return ts, self.assistant_event(
            "assistant_thread_started", ts, user=user, viewing=viewing, channel=channel
        )

    def assistant_event(
        self,
        kind: str,
        thread_ts: str,
        *,
        user: str = "U1",
        viewing: str | None = "C1",
        channel: str = DM,
    ) -> JSON:
        context: JSON = {"channel_id": viewing, "team_id": TEAM, "enterprise_id": None}
        return {
            "type": kind,
            "assistant_thread": {
                "user_id": user,
                "context": context if viewing else {},
                "channel_id": channel,
                "thread_ts": thread_ts,
            },
            "event_ts": self.new_ts(),
        }

    def edit_message(self, channel: str, ts: str, text: str) -> JSON:
        """A person edits their message; returns the `message_changed` event Slack sends."""
        msg = self.messages[channel][ts]
        previous = dict(msg)
        msg["text"] = text
        msg["edited"] = {"user": msg.get("user", ""), "ts": self.new_ts()}
        return {
            "type": "message",
            "subtype": "message_changed",
            "channel": channel,
            "hidden": True,
            "message": dict(msg),
            "previous_message": previous,
            "event_ts": msg["edited"]["ts"],
            "ts": msg["edited"]["ts"],
            "channel_type": "channel",
        }

    def delete_message(self, channel: str, ts: str) -> JSON:
        """A person deletes their message; returns the `message_deleted` event Slack sends."""
        previous = self.messages[channel].pop(ts)
        stamp = self.new_ts()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "channel": channel,
            "hidden": True,
            "deleted_ts": ts,
            "previous_message": previous,
            "event_ts": stamp,
            "ts": stamp,
            "channel_type": "channel",
        }

    def channel_name(self, channel: str) -> str:
        return self.channel_names.get(channel, channel.lower())

    def thread(self, channel: str, thread_ts: str) -> list[JSON]:
        msgs = [
            m
            for m in self.messages[channel].values()
            if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts
        ]
        return sorted(msgs, key=lambda m: float(m["ts"]))

    def bot_messages(self, channel: str | None = None) -> list[JSON]:
        chans = [channel] if channel else list(self.messages)
        return [
            m
            for c in chans
            for m in sorted(self.messages[c].values(), key=lambda m: float(m["ts"]))
            if m.get("user") == BOT_USER
        ]

    def event_callback(self, event: JSON, *, event_id: str | None = None) -> JSON:
        return {
            "token": "verification-token",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
        }

    def slash_payload(
        self, command: str, text: str, *, channel: str = "C1", user: str = "U1"
    ) -> JSON:
        rid = f"R{next(self._ids):06d}"
        return {
            "token": "verification-token",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "directmessage"
            if channel.startswith("D")
            else self.channel_name(channel),
            "user_id": user,
            "user_name": self.users.get(user, {}).get("name", user),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.root}/respond/{rid}",
            "trigger_id": f"{next(self._ids)}.trigger",
        }

    def shortcut_payload(
        self, callback_id: str, channel: str, message: JSON, *, user: str = "U1"
    ) -> JSON:
        rid = f"R{next(self._ids):06d}"
        return {
            "type": "message_action",
            "token": "verification-token",
            "action_ts": self.new_ts(),
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "name": self.users.get(user, {}).get("name", user)},
            "channel": {"id": channel, "name": self.channel_name(channel)},
            "callback_id": callback_id,
            "trigger_id": f"{next(self._ids)}.trigger",
            "message_ts": message["ts"],
            "message": {k: v for k, v in message.items() if k not in ("channel", "event_ts")},
            "response_url": f"{self.root}/respond/{rid}",
        }

    def feedback_payload(
        self, channel: str, message: JSON, *, positive: bool, user: str = "U1"
    ) -> JSON:
        """A click on a message's feedback buttons (its context_actions block), as Slack sends
        it: the clicked button's value, the message, a response URL."""
        element = next(
            e
            for b in message.get("blocks") or ()
            if b.get("type") == "context_actions"
            for e in b["elements"]
            if e.get("type") == "feedback_buttons"
        )
        button = element["positive_button" if positive else "negative_button"]
        rid = f"R{next(self._ids):06d}"
        return {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "name": self.users.get(user, {}).get("name", user)},
            "api_app_id": APP_ID,
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
            "trigger_id": f"{next(self._ids)}.trigger",
            "channel": {"id": channel, "name": channel.lower()},
            "message": message,
            "response_url": f"{self.root}/respond/{rid}",
            "actions": [
                {
                    "type": "feedback_buttons",
                    "action_id": element["action_id"],
                    "block_id": "fb",
                    "value": button["value"],
                    "action_ts": self.new_ts(),
                }
            ],
        }

    # --- Socket Mode -----------------------------------------------------------------------

    async def wait_until(self, check: Callable[[], bool], within: float = 10.0) -> None:
        """Wait (bounded) until `check()` holds, re-checking after every recorded change."""
        async with asyncio.timeout(within):
            while not check():
                self._activity.clear()
                await self._activity.wait()

    async def wait_connected(self, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            await self._connected.wait()

    def hold_connections(self) -> None:
        """apps.connections.open answers only after release_connections()."""
        self._connections_open.clear()

    def release_connections(self) -> None:
        self._connections_open.set()

    async def drop_connections(self) -> None:
        """Close every Socket Mode connection the way Slack does when it rotates them."""
        self._connected.clear()
        for ws in list(self._sockets):
            await ws.close(message=b"refresh_requested")

    @property
    def connections(self) -> int:
        """Socket Mode connections open now (one per replica when several run)."""
        return len(self._sockets)

    async def send(self, kind: str, payload: JSON, *, retry_attempt: int = 0, to: int = -1) -> str:
        """Send an envelope over connection `to` (Slack spreads events over an app's
        connections; the newest by default); returns its envelope_id (see `wait_ack`)."""
        await self.wait_connected()
        eid = f"env-{next(self._ids)}"
        self._acked[eid] = asyncio.Event()
        envelope = {
            "envelope_id": eid,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
            "payload": payload,
        }
        self.sent_at[eid] = time.monotonic()
        await self._sockets[to].send_str(json.dumps(envelope))
        return eid

    async def wait_ack(self, envelope_id: str, within: float = 5.0) -> float:
        """Seconds from sending the envelope to its ack."""
        async with asyncio.timeout(within):
            await self._acked[envelope_id].wait()
        return self.acks[envelope_id][0] - self.sent_at[envelope_id]

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._connected.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                eid = data.get("envelope_id")
                if eid in self._acked:
                    self.acks[eid] = (time.monotonic(), data.get("payload"))
                    self._acked[eid].set()
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._connected.clear()
        return ws

    # --- Web API ---------------------------------------------------------------------------

    async def _args(self, request: web.Request) -> JSON:
        args: JSON = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        self.calls.append((time.monotonic(), method, args))
        if self.latency:
            await asyncio.sleep(self.latency)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = token or str(args.get("token", ""))
        want = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != want:
            return _fail("not_authed" if not token else "invalid_auth")
        if remaining := self.server_errors.get(method):
            self.server_errors[method] = remaining - 1
            return web.Response(
                status=503, text="<html>Service Unavailable</html>", content_type="text/html"
            )
        if method == "apps.connections.open":
            await self._connections_open.wait()
        if method in self.errors:
            extra = (
                {"needed": "chat:write", "provided": "commands"}
                if self.errors[method] == "missing_scope"
                else {}
            )
            return _fail(self.errors[method], **extra)
        handler: Callable[[JSON], web.Response] | None = getattr(
            self, "_m_" + method.replace(".", "_"), None
        )
        if handler is None:
            return _fail("unknown_method")
        try:
            return handler(args)
        finally:
            self._activity.set()

    def _limited(
        self, method: str, buckets: dict[str, Bucket], key: str, rate: float, burst: float
    ) -> web.Response | None:
        bucket = buckets.setdefault(key, Bucket(rate, burst))
        wait = bucket.take()
        if wait <= 0:
            return None
        self.rate_limited[method] += 1
        return web.json_response(
            {"ok": False, "error": "ratelimited"},
            status=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def _channel_error(self, channel: str) -> web.Response | None:
        if not channel:
            return _fail("channel_not_found")
        if channel in self.archived:
            return _fail("is_archived")
        if channel in self.not_member:
            return _fail("not_in_channel")
        return None

    def _m_auth_test(self, args: JSON) -> web.Response:
        return _ok(
            url=f"{self.root}/",
            team="Fake",
            user="chatops",
            team_id=TEAM,
            user_id=BOT_USER,
            bot_id=BOT_ID,
        )

    def _m_apps_connections_open(self, args: JSON) -> web.Response:
        return _ok(url=f"ws://127.0.0.1:{self.port}/socket")

    def _m_chat_postMessage(self, args: JSON) -> web.Response:
        channel = str(args.get("channel", ""))
        if err := self._channel_error(channel):
            return err
        if limited := self._limited(
            "chat.postMessage", self._post_buckets, channel, self.post_rate, self.post_burst
        ):
            return limited
        ts = self.new_ts()
        msg: JSON = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": args.get("text", ""),
            "ts": ts,
        }
        if args.get("thread_ts"):
            msg["thread_ts"] = str(args["thread_ts"])
        if args.get("blocks"):
            msg["blocks"] = _json_arg(args["blocks"])
        if args.get("metadata"):
            msg["metadata"] = _json_arg(args["metadata"])
        self.messages[channel][ts] = msg
        self.writes.append(
            Write(
                time.monotonic(), "chat.postMessage", channel, ts, msg["text"], msg.get("thread_ts")
            )
        )
        return _ok(channel=channel, ts=ts, message=msg)

    def _m_chat_update(self, args: JSON) -> web.Response:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if err := self._channel_error(channel):
            return err
        if limited := self._limited(
            "chat.update", self._update_buckets, TEAM, self.update_rate, self.update_burst
        ):
            return limited
        msg = self.messages[channel].get(ts)
        if msg is None:
            return _fail("message_not_found")
        if msg.get("user") != BOT_USER:
            return _fail("cant_update_message")
        # markdown_text (standard Markdown) instead of text (mrkdwn); stored as given.
        msg["text"] = args.get("markdown_text") or args.get("text", "")
        if args.get("metadata"):
            msg["metadata"] = _json_arg(args["metadata"])
        if args.get("blocks"):
            msg["blocks"] = _json_arg(args["blocks"])
        self.writes.append(
            Write(time.monotonic(), "chat.update", channel, ts, msg["text"], msg.get("thread_ts"))
        )
        return _ok(channel=channel, ts=ts, text=msg["text"])

    def _m_chat_delete(self, args: JSON) -> web.Response:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if err := self._channel_error(channel):
            return err
        if limited := self._limited(
            "chat.delete", self._delete_buckets, TEAM, self.delete_rate, self.delete_burst
        ):
            return limited
        msg = self.messages[channel].get(ts)
        if msg is None:
            return _fail("message_not_found")
        # A bot token may delete only what that bot posted.
        if msg.get("user") != BOT_USER:
            return _fail("cant_delete_message")
        del self.messages[channel][ts]
        self.writes.append(
            Write(time.monotonic(), "chat.delete", channel, ts, "", msg.get("thread_ts"))
        )
        return _ok(channel=channel, ts=ts)

    # Native streams (chat.startStream / appendStream / stopStream) --------------------------

    def _stream_limited(self, method: str) -> web.Response | None:
        if method == "chat.appendStream":
            rate, burst = self.append_rate, self.append_burst
        else:
            rate, burst = self.stream_rate, self.stream_burst
        # Slack limits each method separately per workspace.
        return self._limited(method, self._stream_buckets, method, rate, burst)

    def _streamed(self, method: str, args: JSON) -> tuple[str, JSON] | web.Response:
        """The live stream an append/stop names, or the error Slack answers."""
        if not self.streaming:
            return _fail(self.streaming_error)
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if err := self._channel_error(channel):
            return err
        if limited := self._stream_limited(method):
            return limited
        msg = self.messages[channel].get(ts)
        if msg is None:
            return _fail("message_not_found")
        if msg.get("user") != BOT_USER:
            return _fail("message_not_owned_by_app")
        if not msg.get("streaming"):
            return _fail("message_not_in_streaming_state")
        return channel, msg

    def _m_chat_startStream(self, args: JSON) -> web.Response:
        if not self.streaming:
            return _fail(self.streaming_error)
        channel, thread_ts = str(args.get("channel", "")), str(args.get("thread_ts", ""))
        if err := self._channel_error(channel):
            return err
        if limited := self._stream_limited("chat.startStream"):
            return limited
        if not thread_ts:
            return _fail("invalid_arguments")
        # Outside DMs Slack needs to know whom the streamed answer is for.
        if not channel.startswith("D"):
            if not args.get("recipient_team_id"):
                return _fail("missing_recipient_team_id")
            if not args.get("recipient_user_id"):
                return _fail("missing_recipient_user_id")
        if not args.get("markdown_text") and not args.get("chunks"):
            return _fail("markdown_text_or_chunks_required")
        ts = self.new_ts()
        msg: JSON = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": str(args.get("markdown_text") or ""),
            "ts": ts,
            "thread_ts": thread_ts,
            "streaming": True,
            "tasks": {},
        }
        if bad := _apply_chunks(msg, args.get("chunks")):
            return bad
        self.messages[channel][ts] = msg
        self.writes.append(
            Write(time.monotonic(), "chat.startStream", channel, ts, msg["text"], thread_ts)
        )
        return _ok(channel=channel, ts=ts)

    def _m_chat_appendStream(self, args: JSON) -> web.Response:
        found = self._streamed("chat.appendStream", args)
        if isinstance(found, web.Response):
            return found
        channel, msg = found
        if not args.get("markdown_text") and not args.get("chunks"):
            return _fail("markdown_text_or_chunks_required")
        msg["text"] += str(args.get("markdown_text") or "")
        if bad := _apply_chunks(msg, args.get("chunks")):
            return bad
        self.writes.append(
            Write(
                time.monotonic(),
                "chat.appendStream",
                channel,
                msg["ts"],
                msg["text"],
                msg["thread_ts"],
            )
        )
        return _ok(channel=channel, ts=msg["ts"])

    def _m_chat_stopStream(self, args: JSON) -> web.Response:
        found = self._streamed("chat.stopStream", args)
        if isinstance(found, web.Response):
            return found
        channel, msg = found
        msg["text"] += str(args.get("markdown_text") or "")
        msg["streaming"] = False
        if args.get("blocks"):
            msg["blocks"] = _json_arg(args["blocks"])
        self.writes.append(
            Write(
                time.monotonic(),
                "chat.stopStream",
                channel,
                msg["ts"],
                msg["text"],
                msg["thread_ts"],
            )
        )
        return _ok(channel=channel, ts=msg["ts"])

    def _m_chat_postEphemeral(self, args: JSON) -> web.Response:
        channel = str(args.get("channel", ""))
        if err := self._channel_error(channel):
            return err
        ts = self.new_ts()
        self.writes.append(
            Write(
                time.monotonic(),
                "chat.postEphemeral",
                channel,
                ts,
                str(args.get("text", "")),
                args.get("thread_ts"),
                str(args.get("user", "")),
            )
        )
        return _ok(message_ts=ts)

    def _m_conversations_replies(self, args: JSON) -> web.Response:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if channel in self.not_member:
            return _fail("not_in_channel")
        if limited := self._limited(
            "conversations.replies",
            self._replies_buckets,
            TEAM,
            self.replies_rate,
            self.replies_burst,
        ):
            return limited
        msgs = self.thread(channel, ts)
        if not msgs:
            return _fail("thread_not_found")
        return _ok(messages=msgs, has_more=False)

    def _m_conversations_history(self, args: JSON) -> web.Response:
        channel = str(args.get("channel", ""))
        if err := self._channel_error(channel):
            return err
        if limited := self._limited(
            "conversations.history",
            self._history_buckets,
            TEAM,
            self.replies_rate,
            self.replies_burst,
        ):
            return limited
        # Top-level messages (and thread broadcasts), newest first, paged by a cursor.
        top = [
            m
            for m in self.messages[channel].values()
            if not m.get("thread_ts") or m["thread_ts"] == m["ts"]
        ]
        top.sort(key=lambda m: float(m["ts"]), reverse=True)
        start = int(str(args.get("cursor") or "0"))
        limit = int(str(args.get("limit") or "100"))
        page = top[start : start + limit]
        more = start + limit < len(top)
        meta = {"next_cursor": str(start + limit) if more else ""}
        return _ok(messages=page, has_more=more, response_metadata=meta)

    def _m_conversations_info(self, args: JSON) -> web.Response:
        self.channel_info_calls += 1
        channel = str(args.get("channel", ""))
        if not channel:
            return _fail("channel_not_found")
        if channel.startswith("D"):
            return _ok(channel={"id": channel, "is_im": True, "user": "U1"})
        return _ok(channel={"id": channel, "name": self.channel_name(channel), "is_channel": True})

    def _m_users_info(self, args: JSON) -> web.Response:
        self.user_info_calls += 1
        user = self.users.get(str(args.get("user", "")))
        if user is None:
            return _fail("user_not_found")
        shown = {k: v for k, v in user.items() if k != "locale"}
        # Slack adds the locale only when asked for it.
        if str(args.get("include_locale", "")).lower() in ("true", "1"):
            shown["locale"] = user.get("locale", "en-US")
        return _ok(
            user={
                **shown,
                "profile": {
                    "display_name": user.get("name", ""),
                    "real_name": user.get("real_name", ""),
                },
            }
        )

    def _m_files_getUploadURLExternal(self, args: JSON) -> web.Response:
        fid = f"F{next(self._ids):06d}"
        name = str(args.get("filename", "file"))
        self.files[fid] = FakeFile(
            fid, name, "application/octet-stream", b"", size=int(args.get("length", 0))
        )
        return _ok(upload_url=f"{self.root}/upload/{fid}", file_id=fid)

    def _m_files_completeUploadExternal(self, args: JSON) -> web.Response:
        files = json.loads(str(args.get("files", "[]")))
        channel = str(args.get("channel_id", ""))
        if err := self._channel_error(channel):
            return err
        out = []
        for f in files:
            fake = self.files.get(f["id"])
            if fake is None or f["id"] not in self.uploads:
                return _fail("file_not_found")
            out.append({"id": fake.id, "title": f.get("title", fake.name), "name": fake.name})
        ts = self.new_ts()
        msg: JSON = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": args.get("initial_comment", ""),
            "ts": ts,
            "files": out,
        }
        if args.get("thread_ts"):
            msg["thread_ts"] = str(args["thread_ts"])
        self.messages[channel][ts] = msg
        self.writes.append(
            Write(
                time.monotonic(),
                "files.completeUploadExternal",
                channel,
                ts,
                msg["text"],
                msg.get("thread_ts"),
            )
        )
        return _ok(files=out)

    def _m_assistant_threads_setStatus(self, args: JSON) -> web.Response:
        if not self.status_supported:
            return _fail("missing_scope", needed="assistant:write")
        if "loading_messages" in args:
            args = {**args, "loading_messages": _json_arg(args["loading_messages"])}
        self.statuses.append(args)
        return _ok()

    def _m_assistant_threads_setSuggestedPrompts(self, args: JSON) -> web.Response:
        if not self.status_supported:
            return _fail("missing_scope", needed="assistant:write")
        prompts = _json_arg(args.get("prompts"))
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return _fail("invalid_arguments")
        if not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            return _fail("invalid_arguments")
        self.suggested.append({**args, "prompts": prompts})
        return _ok()

    def _m_assistant_threads_setTitle(self, args: JSON) -> web.Response:
        if not self.status_supported:
            return _fail("missing_scope", needed="assistant:write")
        if not args.get("title") or not args.get("thread_ts"):
            return _fail("invalid_arguments")
        self.titles.append(args)
        return _ok()

    # --- non-API endpoints -----------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        fid = request.match_info["file_id"]
        if fid not in self.files:
            return web.Response(status=404, text="not found")
        self.uploads[fid] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[fid])}", content_type="text/plain")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["team_file"].split("-", 1)[-1]
        auth = request.headers.get("Authorization", "")
        fake = self.files.get(fid)
        if fake is None:
            return web.Response(status=404, text="not found")
        # Slack answers 200 with its sign-in page, not 401/403, without a usable token.
        if auth != f"Bearer {self.bot_token}" or not self.files_read:
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        self.downloads.append(fid)
        return web.Response(body=fake.data, content_type=fake.mimetype)

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["id"], await request.json()))
        self._activity.set()
        return web.Response(text="ok")


def _json_arg(value: Any) -> Any:
    """slack_sdk sends lists and objects as JSON bodies, or as JSON strings in forms."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _ok(**data: Any) -> web.Response:
    return web.json_response({"ok": True, **data})


def _apply_chunks(msg: JSON, chunks: Any) -> web.Response | None:
    """Markdown chunks extend the text; task_update chunks set a task's latest state (and
    every update is kept in `task_log`, to see what was shown while it ran)."""
    if chunks is None:
        return None
    if not isinstance(chunks, list):
        return _fail("invalid_chunks")
    for chunk in chunks:
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind == "markdown_text":
            msg["text"] += str(chunk.get("text", ""))
        elif kind == "task_update":
            if not chunk.get("id") or not chunk.get("title"):
                return _fail("invalid_chunks")
            if chunk.get("status") not in ("pending", "in_progress", "complete", "error"):
                return _fail("invalid_chunks")
            state = {k: chunk[k] for k in ("title", "status", "details") if k in chunk}
            msg["tasks"][str(chunk["id"])] = state
            msg.setdefault("task_log", []).append({"id": chunk["id"], **state})
        else:
            return _fail("invalid_chunks")
    return None


def _fail(error: str, **data: Any) -> web.Response:
    return web.json_response({"ok": False, "error": error, **data})


class SeenOnce:
    """An in-memory de-duplication callable with the Store.first_delivery contract."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def __call__(self, event_id: str) -> bool:
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        return True


class Runnable(Protocol):
    ready: asyncio.Event

    async def run(self, handle: Callable[[Any], Awaitable[None]]) -> None: ...


@asynccontextmanager
async def running(
    adapter: Runnable, handle: Callable[[Any], Awaitable[None]]
) -> AsyncIterator[asyncio.Task[None]]:
    """Run an adapter in a task until the block ends; fails fast if it cannot start."""
    task = asyncio.create_task(adapter.run(handle))
    ready = asyncio.create_task(adapter.ready.wait())
    async with asyncio.timeout(10):
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await task
