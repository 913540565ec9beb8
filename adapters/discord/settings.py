"""Discord adapter configuration read from the environment, and the library seams it sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import discord
import yarl
from discord.http import Route

from bot.errors import ConfigError
from bot.secret import Secret

DEFAULT_API_BASE = "https://discord.com/api/v10"

# What the bot needs in a channel: read and answer, stream by editing its own messages,
# attach images, answer inside threads, show "typing", read the reply chain.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_application_commands=True,
)


def _url(environ: Mapping[str, str], name: str, schemes: set[str]) -> str | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        allowed = " or ".join(sorted(schemes))
        raise ConfigError(name, f"expected an absolute {allowed} URL, got {raw!r}")
    return raw


def _int_list(environ: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = environ.get(name, "").strip()
    if not raw:
        return ()
    try:
        return tuple(int(part) for part in raw.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(name, f"expected comma-separated numeric ids, got {raw!r}") from None


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    """Everything the Discord adapter reads from the environment."""

    token: Secret = field(repr=False)
    api_base: str = DEFAULT_API_BASE
    # None: discord.py's default (wss://gateway.discord.gg/).
    gateway_url: str | None = None
    # Other bots whose messages are answered (never our own); "all" → allow_all_bots.
    allowed_bots: frozenset[int] = frozenset()
    allow_all_bots: bool = False
    # None: one unsharded connection. 0: ask Discord (/gateway/bot) for the shard count.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] = ()
    # Guilds whose command copies are synced too (instant updates while developing).
    command_guilds: tuple[int, ...] = ()
    state_dir: Path = Path("data")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DiscordSettings | None:
        """None when DISCORD_BOT_TOKEN is unset (the adapter is disabled)."""
        env = os.environ if environ is None else environ
        token = env.get("DISCORD_BOT_TOKEN", "").strip()
        if not token:
            return None
        if any(ch.isspace() for ch in token) or token.lower().startswith("bot "):
            raise ConfigError("DISCORD_BOT_TOKEN", "give the bare token, without 'Bot ' or spaces")
        api_base = (_url(env, "DISCORD_API_BASE", {"http", "https"}) or DEFAULT_API_BASE).rstrip(
            "/"
        )
        gateway = _url(env, "DISCORD_GATEWAY_URL", {"ws", "wss"})
        bots_raw = env.get("DISCORD_ALLOW_BOTS", "").strip().lower()
        allow_all = bots_raw in {"all", "true", "1", "yes"}
        allowed: frozenset[int] = frozenset()
        if not allow_all and bots_raw not in {"", "false", "0", "no"}:
            allowed = frozenset(_int_list(env, "DISCORD_ALLOW_BOTS"))
        shards_raw = env.get("DISCORD_SHARD_COUNT", "").strip().lower()
        shard_count: int | None = None
        if shards_raw == "auto":
            shard_count = 0
        elif shards_raw:
            if not shards_raw.isdigit() or int(shards_raw) < 1:
                raise ConfigError(
                    "DISCORD_SHARD_COUNT", f"expected 'auto' or a count ≥ 1, got {shards_raw!r}"
                )
            shard_count = int(shards_raw)
        shard_ids = _int_list(env, "DISCORD_SHARD_IDS")
        if shard_ids and not shard_count:
            raise ConfigError("DISCORD_SHARD_IDS", "needs DISCORD_SHARD_COUNT set to a number")
        if shard_count and any(i >= shard_count for i in shard_ids):
            raise ConfigError(
                "DISCORD_SHARD_IDS", f"ids must be below DISCORD_SHARD_COUNT={shard_count}"
            )
        # Next to the database unless told otherwise: the command hash is service state.
        # A database URL (PostgreSQL) has no folder: then ./data, as by default.
        db = env.get("CHATOPS_DB", "").strip()
        beside = str(Path(db).parent) if db and "://" not in db else "data"
        state = env.get("CHATOPS_DATA_DIR", "").strip() or beside
        return cls(
            token=Secret(token),
            api_base=api_base,
            gateway_url=gateway,
            allowed_bots=allowed,
            allow_all_bots=allow_all,
            shard_count=shard_count,
            shard_ids=shard_ids,
            command_guilds=_int_list(env, "DISCORD_COMMAND_GUILDS"),
            state_dir=Path(state),
        )

    def apply_endpoints(self) -> None:
        """Point discord.py at the configured endpoints.

        Both seams are class attributes, so they are process-wide: REST routes (including
        interaction callbacks and webhook follow-ups) are built from Route.BASE; the plain
        Client and explicitly sharded clients connect to DiscordWebSocket.DEFAULT_GATEWAY
        (discord.py 2.7 never calls GET /gateway for them), and an invalidated session
        falls back to it too. With DISCORD_SHARD_COUNT=auto the URL comes from
        GET /gateway/bot on DISCORD_API_BASE instead.
        """
        Route.BASE = self.api_base
        if self.gateway_url is not None:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot with the permissions it needs and its commands."""
    return discord.utils.oauth_url(
        application_id,
        permissions=INVITE_PERMISSIONS,
        scopes=("bot", "applications.commands"),
    )
