"""A fake Discord on 127.0.0.1: REST, gateway websocket, CDN and per-channel rate limits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import serve_on_loopback

BOT_ID = 100000000000000001
APP_ID = BOT_ID
GUILD_ID = 200000000000000001
# A second guild (FakeDiscord(second_guild=True)) on the other shard of two: a guild's shard
# is (guild_id >> 22) % shard_count, so this one is on shard 1 and GUILD_ID on shard 0.
GUILD2_ID = 200000000004194305
CHANNEL2_ID = 300000000000000002
CHANNEL_ID = 300000000000000001
THREAD_ID = 300000000000000009
OWNER_ID = 400000000000000001
MEMBER_ID = 400000000000000002
OTHER_BOT_ID = 400000000000000003
EVERYONE_ROLE = GUILD_ID
ADMIN_ROLE = 500000000000000001
TOKEN = "fake-discord-token"
VOICE_FLAG = 1 << 13
EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """discord.py parses a body as JSON only when Content-Type is exactly application/json."""
    response = web.Response(status=status, body=json.dumps(payload).encode(), headers=headers or {})
    response.headers["Content-Type"] = "application/json"
    return response


def user_payload(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(uid),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    author: dict[str, Any]
    content: str
    flags: int = 0
    attachments: list[dict[str, Any]] = field(default_factory=list)
    reference: int | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    # (monotonic time, content) for the create and every edit: the visible history.
    versions: list[tuple[float, str]] = field(default_factory=list)
    # Uploaded files: (filename, bytes).
    files: list[tuple[str, bytes]] = field(default_factory=list)
    interaction_id: int | None = None
    webhook_id: int | None = None
    deleted: bool = False
    # Action rows of buttons, as the last create or edit gave them.
    components: list[dict[str, Any]] = field(default_factory=list)

    @property
    def edits(self) -> int:
        return max(len(self.versions) - 1, 0)


@dataclass
class FakeInteraction:
    id: int
    token: str
    name: str
    channel_id: int
    user_id: int
    injected_at: float
    payload: dict[str, Any]
    callback_type: int | None = None
    callback_flags: int = 0
    callback_data: dict[str, Any] = field(default_factory=dict)
    callback_at: float | None = None
    original_id: int | None = None
    followups: list[int] = field(default_factory=list)


@dataclass
class Window:
    """One Discord-style fixed window: `limit` requests from the first until it resets."""

    limit: int
    seconds: float
    started: float = 0.0
    used: int = 0


class FakeDiscord:
    """`async with FakeDiscord() as fd:` serves REST under fd.api_base, the gateway at
    fd.gateway_url and attachments under fd.cdn_base, all on one loopback port."""

    def __init__(
        self,
        *,
        create_limit: int = 5,
        edit_limit: int = 5,
        window: float = 5.0,
        enforce_limits: bool = True,
        filesize_limit: int = 10 * 1024 * 1024,
        heartbeat_interval_ms: int = 41250,
        second_guild: bool = False,
    ) -> None:
        self.second_guild = second_guild
        self.create_limit = create_limit
        self.edit_limit = edit_limit
        self.window = window
        self.enforce_limits = enforce_limits
        self.filesize_limit = filesize_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.token = TOKEN
        self._ids = itertools.count(700000000000000001)
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.command_syncs: list[list[dict[str, Any]]] = []
        self.guild_command_syncs: list[tuple[int, list[dict[str, Any]]]] = []
        self.identifies: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.served_429 = 0
        self.typing: list[tuple[float, int]] = []
        # (monotonic, method, path, status) for every REST call.
        self.calls: list[tuple[float, str, str, int]] = []
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.dm_channels: dict[int, int] = {}
        # Forced failures: (method, path prefix) → (status, code, message).
        self.failures: dict[tuple[str, str], tuple[int, int, str]] = {}
        self.ready = asyncio.Event()
        # Cleared by hold_ready(): IDENTIFY (or RESUME) gets no READY until release_ready().
        # resumable: RESUME is answered with RESUMED instead of "invalid session".
        self.resumable = False
        self._ready_allowed = asyncio.Event()
        self._ready_allowed.set()
        self._windows: dict[tuple[str, int | str], Window] = {}
        self._sockets: list[web.WebSocketResponse] = []
        # [shard_id, shard_count] each socket identified with (absent: unsharded).
        self._shards: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self._seq = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.channels: dict[int, dict[str, Any]] = {}
        self.users = {
            BOT_ID: user_payload(BOT_ID, "chatops", bot=True),
            OWNER_ID: user_payload(OWNER_ID, "owner"),
            MEMBER_ID: user_payload(MEMBER_ID, "member"),
            OTHER_BOT_ID: user_payload(OTHER_BOT_ID, "otherbot", bot=True),
        }
        self.roles: dict[int, list[int]] = {
            MEMBER_ID: [],
            OWNER_ID: [],
            OTHER_BOT_ID: [],
            BOT_ID: [],
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{tail:.*}", self._cdn)
        self._runner, self.port = await serve_on_loopback(app)
        self.channels = {
            CHANNEL_ID: self._text_channel(CHANNEL_ID, "general"),
            THREAD_ID: self._thread(THREAD_ID, CHANNEL_ID, "a thread"),
        }
        if self.second_guild:
            self.channels[CHANNEL2_ID] = self._text_channel(CHANNEL2_ID, "other", GUILD2_ID)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._ready_allowed.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def cdn_base(self) -> str:
        return f"{self.base}/attachments"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DISCORD_BOT_TOKEN": self.token,
            "DISCORD_API_BASE": self.api_base,
            "DISCORD_GATEWAY_URL": self.gateway_url,
            **extra,
        }

    def next_id(self) -> int:
        return next(self._ids)

    # ------------------------------------------------------------------ payloads

    @property
    def guild_ids(self) -> list[int]:
        return [GUILD_ID, GUILD2_ID] if self.second_guild else [GUILD_ID]

    def _text_channel(self, cid: int, name: str, guild: int = GUILD_ID) -> dict[str, Any]:
        return {
            "id": str(cid),
            "type": 0,
            "guild_id": str(guild),
            "name": name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def add_text_channel(self, name: str) -> int:
        """Another text channel of the guild (add it before the adapter connects)."""
        cid = self.next_id()
        self.channels[cid] = self._text_channel(cid, name)
        return cid

    def _thread(self, tid: int, parent: int, name: str) -> dict[str, Any]:
        return {
            "id": str(tid),
            "type": 11,
            "guild_id": str(GUILD_ID),
            "parent_id": str(parent),
            "owner_id": str(MEMBER_ID),
            "name": name,
            "message_count": 0,
            "member_count": 2,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }

    def _member(self, uid: int) -> dict[str, Any]:
        return {
            "roles": [str(r) for r in self.roles.get(uid, [])],
            "joined_at": _now_iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }

    def grant_admin(self, uid: int) -> None:
        self.roles.setdefault(uid, []).append(ADMIN_ROLE)

    def _guild(self, gid: int = GUILD_ID) -> dict[str, Any]:
        mine = [c for c in self.channels.values() if c.get("guild_id") == str(gid)]
        channels = [c for c in mine if c["type"] != 11]
        threads = [c for c in mine if c["type"] == 11]
        return {
            "id": str(gid),
            "name": "Fake Guild",
            "icon": None,
            "owner_id": str(OWNER_ID),
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "roles": [
                {
                    "id": str(gid),  # @everyone's id is the guild's
                    "name": "@everyone",
                    "permissions": str((1 << 10) | (1 << 11) | (1 << 16)),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": str(ADMIN_ROLE),
                    "name": "mods",
                    "permissions": str(1 << 5),  # MANAGE_GUILD
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
            ],
            "emojis": [],
            "stickers": [],
            "channels": channels,
            "threads": threads,
            "members": [
                {**self._member(BOT_ID), "user": self.users[BOT_ID]},
            ],
            "member_count": 4,
            "large": False,
            "unavailable": False,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": _now_iso(),
        }

    def message_payload(self, msg: FakeMessage) -> dict[str, Any]:
        channel = self.channels.get(msg.channel_id)
        payload: dict[str, Any] = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "author": msg.author,
            "content": msg.content,
            "timestamp": _now_iso(),
            "edited_timestamp": _now_iso() if msg.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": msg.mentions,
            "mention_roles": [],
            "attachments": msg.attachments,
            "embeds": [],
            "pinned": False,
            "type": 19 if msg.reference else 0,
            "flags": msg.flags,
            "components": msg.components,
        }
        if channel is not None and "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
        if msg.webhook_id is not None:
            payload["webhook_id"] = str(msg.webhook_id)
            payload["application_id"] = str(APP_ID)
        if msg.reference is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(msg.reference),
                "channel_id": str(msg.channel_id),
            }
            ref = self.messages.get(msg.reference)
            if ref is not None and not ref.deleted:
                payload["referenced_message"] = self.message_payload(ref)
        return payload

    # ------------------------------------------------------------------ injection

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str,
        *,
        duration: float | None = None,
        waveform: bytes | None = None,
        declared_size: int | None = None,
    ) -> dict[str, Any]:
        aid = self.next_id()
        path = f"{CHANNEL_ID}/{aid}/{filename}"
        self.cdn[path] = (data, content_type)
        url = f"{self.cdn_base}/{path}"
        att: dict[str, Any] = {
            "id": str(aid),
            "filename": filename,
            "size": declared_size if declared_size is not None else len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }
        if duration is not None:
            att["duration_secs"] = duration
            att["waveform"] = base64.b64encode(waveform or bytes(32)).decode()
        return att

    async def send_message(
        self,
        content: str,
        *,
        author: int = MEMBER_ID,
        channel_id: int = CHANNEL_ID,
        mention_bot: bool = False,
        reply_to: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        flags: int = 0,
    ) -> FakeMessage:
        """A user (or bot) posts a message; it is dispatched as MESSAGE_CREATE."""
        if mention_bot:
            content = f"<@{BOT_ID}> {content}"
        mentions = []
        if mention_bot or (reply_to is not None and self._author_of(reply_to) == BOT_ID):
            mentions.append({**self.users[BOT_ID], "member": self._member(BOT_ID)})
        msg = self._store_message(
            channel_id,
            self.users[author],
            content,
            flags=flags,
            attachments=attachments or [],
            reference=reply_to,
            mentions=mentions,
        )
        payload = self.message_payload(msg)
        if channel_id in self.channels and "guild_id" in self.channels[channel_id]:
            payload["member"] = self._member(author)
        await self.dispatch("MESSAGE_CREATE", payload)
        return msg

    async def edit_message(self, mid: int, content: str) -> FakeMessage:
        """The author edits a message; dispatched as MESSAGE_UPDATE."""
        msg = self.messages[mid]
        msg.content = content
        msg.versions.append((time.monotonic(), content))
        payload = self.message_payload(msg)
        channel = self.channels.get(msg.channel_id)
        if channel is not None and "guild_id" in channel:
            payload["member"] = self._member(int(msg.author["id"]))
        await self.dispatch("MESSAGE_UPDATE", payload)
        return msg

    async def delete_message(self, mid: int) -> None:
        """The author deletes a message; dispatched as MESSAGE_DELETE."""
        msg = self.messages[mid]
        msg.deleted = True
        payload: dict[str, Any] = {"id": str(mid), "channel_id": str(msg.channel_id)}
        channel = self.channels.get(msg.channel_id)
        if channel is not None and "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
        await self.dispatch("MESSAGE_DELETE", payload)

    def open_dm(self, uid: int) -> int:
        """The DM channel between the bot and `uid` (created on first use)."""
        cid = self.dm_channels.setdefault(uid, self.next_id())
        self.channels.setdefault(
            cid,
            {"id": str(cid), "type": 1, "recipients": [self.users[uid]], "last_message_id": None},
        )
        return cid

    def _author_of(self, mid: int) -> int | None:
        msg = self.messages.get(mid)
        return int(msg.author["id"]) if msg else None

    def _store_message(
        self, channel_id: int, author: dict[str, Any], content: str, **kw: Any
    ) -> FakeMessage:
        msg = FakeMessage(self.next_id(), channel_id, author, content, **kw)
        msg.versions.append((time.monotonic(), content))
        self.messages[msg.id] = msg
        return msg

    async def send_interaction(
        self,
        name: str,
        options: list[dict[str, Any]] | None = None,
        *,
        user: int = MEMBER_ID,
        channel_id: int = CHANNEL_ID,
        command_type: int = 1,
        target: FakeMessage | None = None,
        resolved: dict[str, Any] | None = None,
        interaction_type: int = 2,
        focused: bool = False,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs an application command (type 2) or autocompletes one (type 4)."""
        iid = self.next_id()
        token = f"itok{iid}"
        data: dict[str, Any] = {"id": str(self.next_id()), "name": name, "type": command_type}
        if options:
            data["options"] = options
        resolved = dict(resolved or {})
        if target is not None:
            data["target_id"] = str(target.id)
            resolved.setdefault("messages", {})[str(target.id)] = self.message_payload(target)
        if resolved:
            data["resolved"] = resolved
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": interaction_type,
            "data": data,
            "guild_id": str(GUILD_ID),
            "channel_id": str(channel_id),
            "channel": self.channels[channel_id],
            "member": {
                **self._member(user),
                "user": self.users[user],
                "permissions": str(self._permissions(user)),
            },
            "token": token,
            "version": 1,
            "app_permissions": str((1 << 53) - 1),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": self.filesize_limit,
        }
        fi = FakeInteraction(iid, token, name, channel_id, user, time.monotonic(), payload)
        self.interactions[iid] = fi
        await self.dispatch("INTERACTION_CREATE", payload)
        return fi

    async def click(
        self, message: FakeMessage, custom_id: str, *, user: int = MEMBER_ID
    ) -> FakeInteraction:
        """A user presses a button of `message` (a MESSAGE_COMPONENT interaction)."""
        buttons = [c for row in message.components for c in row.get("components", [])]
        if not any(b.get("custom_id") == custom_id for b in buttons):
            raise AssertionError(f"message {message.id} has no button {custom_id!r}")
        iid = self.next_id()
        token = f"itok{iid}"
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": 3,
            "data": {"custom_id": custom_id, "component_type": 2},
            "message": self.message_payload(message),
            "guild_id": str(GUILD_ID),
            "channel_id": str(message.channel_id),
            "channel": self.channels[message.channel_id],
            "member": {
                **self._member(user),
                "user": self.users[user],
                "permissions": str(self._permissions(user)),
            },
            "token": token,
            "version": 1,
            "app_permissions": str((1 << 53) - 1),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": self.filesize_limit,
        }
        fi = FakeInteraction(
            iid, token, custom_id, message.channel_id, user, time.monotonic(), payload
        )
        self.interactions[iid] = fi
        await self.dispatch("INTERACTION_CREATE", payload)
        return fi

    def _permissions(self, uid: int) -> int:
        if uid == OWNER_ID:
            return (1 << 53) - 1
        perms = (1 << 10) | (1 << 11) | (1 << 16)
        if ADMIN_ROLE in self.roles.get(uid, []):
            perms |= 1 << 5
        return perms

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to the connections that receive it: a guild's events go to the
        shard that guild is on; DMs (no guild) to shard 0, as Discord routes them."""
        self._seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
        guild = int(data["guild_id"]) if data.get("guild_id") else None
        for ws in list(self._sockets):
            if not ws.closed and self._receives(ws, guild):
                await ws.send_str(frame)

    def _receives(self, ws: web.WebSocketResponse, guild: int | None) -> bool:
        shard = self._shards.get(ws)
        if shard is None:
            return True
        shard_id, count = shard
        return shard_id == (0 if guild is None else (guild >> 22) % count)

    @property
    def shards_ready(self) -> set[int]:
        """The shard ids that have a connection identified (READY sent)."""
        return {shard[0] for ws, shard in self._shards.items() if not ws.closed}

    # ------------------------------------------------------------------ observation

    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait (bounded) until predicate() holds; it is re-checked after every REST call."""
        async with asyncio.timeout(within), self._changed:
            while not predicate():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)

    def bot_messages(self, channel_id: int | None = None) -> list[FakeMessage]:
        return [
            m
            for m in self.messages.values()
            if m.author["id"] == str(BOT_ID)
            and not m.deleted
            and (channel_id is None or m.channel_id == channel_id)
        ]

    def replies_to(self, mid: int) -> list[FakeMessage]:
        """Our reply to `mid` and the messages that continue it (each replying to the last)."""
        chain: list[FakeMessage] = []
        current = mid
        while True:
            nxt = [m for m in self.bot_messages() if m.reference == current]
            if not nxt:
                return chain
            chain.append(nxt[0])
            current = nxt[0].id

    # ------------------------------------------------------------------ rate limits

    def _limit(self, kind: str, scope: int | str) -> tuple[web.Response | None, dict[str, str]]:
        """Discord-style buckets (per channel; per interaction token for follow-ups): a 429
        with real headers and body when over."""
        limit = self.create_limit if kind == "create" else self.edit_limit
        now = time.monotonic()
        win = self._windows.get((kind, scope))
        if win is None or now - win.started >= win.seconds:
            win = Window(limit, self.window, started=now)
            self._windows[(kind, scope)] = win
        reset_after = max(win.started + win.seconds - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Bucket": f"fake-{kind}-bucket",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        }
        if self.enforce_limits and win.used >= limit:
            self.served_429 += 1
            headers.update(
                {
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Scope": "user",
                    "Retry-After": str(max(int(reset_after + 0.999), 1)),
                    # discord.py treats a 429 without Via as a Cloudflare ban.
                    "Via": "1.1 google",
                }
            )
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(reset_after, 3),
                "global": False,
            }
            return json_response(body, 429, headers), headers
        win.used += 1
        headers["X-RateLimit-Remaining"] = str(max(limit - win.used, 0))
        return None, headers

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        response = await self._route(request, path)
        self.calls.append((time.monotonic(), request.method, path, response.status))
        await self._touch()
        return response

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return json_response({"message": message, "code": code}, status)

    async def _route(self, request: web.Request, path: str) -> web.Response:
        auth = request.headers.get("Authorization", "")
        parts = path.strip("/").split("/")
        method = request.method
        for (fmethod, prefix), (status, code, message) in self.failures.items():
            if method == fmethod and path.startswith(prefix):
                return self._error(status, code, message)
        if parts[0] in ("webhooks", "interactions"):
            return await self._webhook_route(request, method, parts)
        if auth != f"Bot {self.token}":
            return self._error(401, 0, "401: Unauthorized")
        if path == "/users/@me":
            return json_response(self.users[BOT_ID])
        if path == "/applications/@me" or path == "/oauth2/applications/@me":
            return json_response(self._app())
        if path in ("/gateway/bot", "/gateway"):
            return json_response(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts[0] == "applications" and method == "PUT":
            body = await request.json()
            echoed = [self._command(c) for c in body]
            if "guilds" in parts:
                self.guild_command_syncs.append((int(parts[3]), body))
            else:
                self.command_syncs.append(body)
            return json_response(echoed)
        if parts[:2] == ["users", "@me"] and parts[2:] == ["channels"]:
            body = await request.json()
            rid = int(body["recipient_id"])
            cid = self.dm_channels.setdefault(rid, self.next_id())
            self.channels.setdefault(
                cid,
                {
                    "id": str(cid),
                    "type": 1,
                    "recipients": [self.users[rid]],
                    "last_message_id": None,
                },
            )
            return json_response(self.channels[cid])
        if parts[0] == "channels":
            return await self._channel_route(request, method, parts)
        return self._error(404, 0, f"404: Not Found ({method} {path})")

    def _app(self) -> dict[str, Any]:
        return {
            "id": str(APP_ID),
            "name": "chatops",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.users[OWNER_ID],
            "verify_key": "00",
            "flags": 0,
            "team": None,
            "summary": "",
            "rpc_origins": [],
            "interactions_endpoint_url": None,
        }

    def _command(self, c: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(self.next_id()),
            "application_id": str(APP_ID),
            "version": "1",
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "type": 1,
            "description": "",
            **c,
        }

    async def _read_message_body(
        self, request: web.Request
    ) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            payload: dict[str, Any] = {}
            files: list[tuple[str, bytes]] = []
            async for part in reader:
                name = getattr(part, "name", None)
                data = await part.read()  # type: ignore[union-attr]
                if name == "payload_json":
                    payload = json.loads(data)
                elif name and name.startswith("files["):
                    files.append((getattr(part, "filename", None) or name, bytes(data)))
            return payload, files
        if request.can_read_body:
            return await request.json(), []
        return {}, []

    def _attachments_for(self, files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        out = []
        for filename, data in files:
            out.append(self.add_attachment(filename, data, "application/octet-stream"))
        return out

    async def _channel_route(
        self, request: web.Request, method: str, parts: list[str]
    ) -> web.Response:
        cid = int(parts[1])
        channel = self.channels.get(cid)
        if channel is None:
            return self._error(404, 10003, "Unknown Channel")
        if parts[2:] == ["typing"] and method == "POST":
            self.typing.append((time.monotonic(), cid))
            return web.Response(status=204)
        if parts[2:] == ["messages"] and method == "GET":
            before = request.query.get("before")
            limit = int(request.query.get("limit", "50"))
            msgs = sorted(
                (m for m in self.messages.values() if m.channel_id == cid and not m.deleted),
                key=lambda m: m.id,
                reverse=True,
            )
            if before:
                msgs = [m for m in msgs if m.id < int(before)]
            return json_response([self.message_payload(m) for m in msgs[:limit]])
        if parts[2:] == ["messages"] and method == "POST":
            limited, headers = self._limit("create", cid)
            if limited is not None:
                return limited
            body, files = await self._read_message_body(request)
            if sum(len(d) for _, d in files) > self.filesize_limit:
                return self._error(413, 40005, "Request entity too large")
            content = body.get("content") or ""
            if len(content) > 2000:
                return self._error(400, 50035, "Invalid Form Body: content too long")
            if not content and not files:
                return self._error(400, 50006, "Cannot send an empty message")
            ref = body.get("message_reference") or {}
            msg = self._store_message(
                cid,
                self.users[BOT_ID],
                content,
                reference=int(ref["message_id"]) if ref.get("message_id") else None,
                attachments=self._attachments_for(files),
                files=files,
            )
            return json_response(self.message_payload(msg), headers=headers)
        if len(parts) == 4 and parts[2] == "messages":
            mid = int(parts[3])
            found = self.messages.get(mid)
            if found is None or found.deleted or found.channel_id != cid:
                return self._error(404, 10008, "Unknown Message")
            msg = found
            if method == "GET":
                return json_response(self.message_payload(msg))
            if method == "DELETE":
                if msg.author["id"] != str(BOT_ID):
                    return self._error(403, 50013, "Missing Permissions")
                limited, headers = self._limit("delete", cid)
                if limited is not None:
                    return limited
                msg.deleted = True
                return web.Response(status=204, headers=headers)
            if method == "PATCH":
                if msg.author["id"] != str(BOT_ID):
                    return self._error(403, 50005, "Cannot edit a message authored by another user")
                limited, headers = self._limit("edit", cid)
                if limited is not None:
                    return limited
                body, _ = await self._read_message_body(request)
                return self._apply_edit(msg, body, headers)
        return self._error(404, 0, "404: Not Found")

    def _apply_edit(
        self, msg: FakeMessage, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "content" in body and body["content"] is not None:
            if len(body["content"]) > 2000:
                return self._error(400, 50035, "Invalid Form Body: content too long")
            msg.content = body["content"]
            msg.flags &= ~LOADING_FLAG
            msg.versions.append((time.monotonic(), msg.content))
        return json_response(self.message_payload(msg), headers=headers)

    async def _webhook_route(
        self, request: web.Request, method: str, parts: list[str]
    ) -> web.Response:
        if parts[0] == "interactions":
            iid, token = int(parts[1]), parts[2]
            fi = self.interactions.get(iid)
            if fi is None or fi.token != token:
                return self._error(404, 10062, "Unknown interaction")
            if fi.callback_type is not None:
                return self._error(400, 40060, "Interaction has already been acknowledged.")
            body, files = await self._read_message_body(request)
            fi.callback_type = int(body["type"])
            data = body.get("data") or {}
            fi.callback_flags = int(data.get("flags") or 0)
            fi.callback_data = data
            fi.callback_at = time.monotonic()
            resource: dict[str, Any] = {"type": fi.callback_type}
            if fi.callback_type in (4, 5):
                flags = fi.callback_flags | (LOADING_FLAG if fi.callback_type == 5 else 0)
                msg = self._store_message(
                    fi.channel_id,
                    self.users[BOT_ID],
                    data.get("content") or "",
                    flags=flags,
                    interaction_id=fi.id,
                    webhook_id=APP_ID,
                    files=files,
                )
                fi.original_id = msg.id
                resource["message"] = self.message_payload(msg)
            if fi.callback_type == 8:
                resource = {"type": 8}
            return json_response(
                {
                    "interaction": {
                        "id": str(fi.id),
                        "type": 2,
                        "response_message_id": str(fi.original_id) if fi.original_id else None,
                        "response_message_loading": fi.callback_type == 5,
                        "response_message_ephemeral": bool(fi.callback_flags & EPHEMERAL_FLAG),
                    },
                    "resource": resource,
                }
            )
        # /webhooks/{app}/{token}[/messages/{id|@original}]
        token = parts[2]
        fi = next((i for i in self.interactions.values() if i.token == token), None)
        if fi is None:
            return self._error(401, 50027, "Invalid Webhook Token")
        if fi.callback_type is None:
            return self._error(404, 10015, "Unknown Webhook")
        if len(parts) == 3 and method == "POST":
            limited, headers = self._limit("create", fi.token)
            if limited is not None:
                return limited
            body, files = await self._read_message_body(request)
            original = self.messages.get(fi.original_id or 0)
            if original is not None and original.flags & LOADING_FLAG and not original.deleted:
                # The first follow-up after a "thinking" defer fills that message and keeps
                # the defer's visibility.
                original.files = files
                original.attachments = self._attachments_for(files)
                return self._apply_edit(original, {"content": body.get("content") or ""}, headers)
            flags = int(body.get("flags") or 0) & EPHEMERAL_FLAG
            msg = self._store_message(
                fi.channel_id,
                self.users[BOT_ID],
                body.get("content") or "",
                flags=flags,
                interaction_id=fi.id,
                webhook_id=APP_ID,
                files=files,
                attachments=self._attachments_for(files),
            )
            fi.followups.append(msg.id)
            return json_response(self.message_payload(msg), headers=headers)
        if len(parts) == 5 and parts[3] == "messages":
            mid = fi.original_id if parts[4] == "@original" else int(parts[4])
            found = self.messages.get(mid or 0)
            if found is None or found.deleted:
                return self._error(404, 10008, "Unknown Message")
            msg = found
            if method == "GET":
                return json_response(self.message_payload(msg))
            if method == "DELETE":
                msg.deleted = True
                return web.Response(status=204)
            if method == "PATCH":
                limited, headers = self._limit("edit", fi.token)
                if limited is not None:
                    return limited
                body, files = await self._read_message_body(request)
                if files:
                    msg.files = files
                    msg.attachments = self._attachments_for(files)
                return self._apply_edit(msg, body, headers)
        return self._error(404, 0, "404: Not Found")

    # ------------------------------------------------------------------ CDN

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        entry = self.cdn.get(request.match_info["tail"])
        if entry is None:
            return web.Response(status=404)
        data, content_type = entry
        return web.Response(body=data, content_type=content_type)

    # ------------------------------------------------------------------ gateway

    def hold_ready(self) -> None:
        """Sessions that IDENTIFY (or RESUME) from now on wait for release_ready()."""
        self._ready_allowed.clear()

    def release_ready(self) -> None:
        self._ready_allowed.set()

    async def reconnect(self) -> None:
        """Ask every gateway session to reconnect (op 7), as Discord does before maintenance."""
        for ws in list(self._sockets):
            await ws.send_str(json.dumps({"op": 7, "d": None}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        hello = {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
        await ws.send_str(json.dumps(hello))
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(frame.data)
                op = msg.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    self.identifies.append(msg["d"])
                    await self._ready_allowed.wait()
                    shard = msg["d"].get("shard")
                    if shard is not None:
                        self._shards[ws] = (int(shard[0]), int(shard[1]))
                    await self._ready(ws, shard)
                elif op == 6 and self.resumable:
                    await self._ready_allowed.wait()
                    self._seq += 1
                    resumed = {"op": 0, "t": "RESUMED", "s": self._seq, "d": {}}
                    await ws.send_str(json.dumps(resumed))
                elif op == 6:
                    # No session to resume here: ask for a fresh IDENTIFY.
                    await ws.send_str(json.dumps({"op": 9, "d": False}))
        finally:
            self._sockets.remove(ws)
            self._shards.pop(ws, None)
        return ws

    async def _ready(self, ws: web.WebSocketResponse, shard: list[int] | None) -> None:
        self._seq += 1
        guilds = [g for g in self.guild_ids if self._receives(ws, g)]
        ready = {
            "v": 10,
            "user": self.users[BOT_ID],
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
            "session_id": "fake-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if shard is not None:
            ready["shard"] = shard
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": self._seq, "d": ready}))
        for gid in guilds:
            self._seq += 1
            await ws.send_str(
                json.dumps({"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": self._guild(gid)})
            )
        self.ready.set()
        await self._touch()
