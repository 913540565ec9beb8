"""Which of this process's Discord gateway sessions are READY, from discord.py's events."""

from __future__ import annotations

from typing import Any

import discord

from bot.adapter import Connection


class ShardStates:
    """Follows READY, RESUMED and disconnects per shard (one unsharded session counts as one).

    discord.py reconnects by itself; between a disconnect and the next READY or RESUMED no
    event reaches the bot, which is what readiness must say.
    """

    def __init__(self) -> None:
        self._ready: dict[int, bool] = {}

    def attach(self, client: discord.Client) -> None:
        """Register the event handlers (discord.py keeps one handler per event name)."""
        sharded = isinstance(client, discord.AutoShardedClient)

        async def on_shard_ready(shard_id: int) -> None:
            self._ready[shard_id] = True

        async def on_shard_resumed(shard_id: int) -> None:
            self._ready[shard_id] = True

        async def on_shard_disconnect(shard_id: int) -> None:
            self._ready[shard_id] = False

        async def on_resumed() -> None:
            self._ready[0] = True

        async def on_disconnect() -> None:
            self._ready[0] = False

        if sharded:
            for handler in (on_shard_ready, on_shard_resumed, on_shard_disconnect):
                client.event(handler)
        else:
            # An AutoShardedClient sends these too, for any one shard: only used unsharded.
            for plain in (on_resumed, on_disconnect):
                client.event(plain)

    def ready(self, client: discord.Client) -> None:
        """on_ready of an unsharded client (the adapter owns that handler)."""
        if not isinstance(client, discord.AutoShardedClient):
            self._ready[0] = True

    def connection(self, client: discord.Client | None) -> Connection:
        if client is None or client.is_closed():
            return Connection(False, "gateway not connected")
        if not isinstance(client, discord.AutoShardedClient):
            if self._ready.get(0):
                return Connection(True, "gateway session READY")
            return Connection(False, "gateway session connecting")
        # The shards this process launched (shard_ids stays None when discord.py chose them).
        launched: dict[int, Any] = dict(client.shards)
        expected = sorted(launched)
        ready = sum(
            1 for shard in expected if self._ready.get(shard) and not launched[shard].is_closed()
        )
        up = bool(expected) and ready == len(expected)
        return Connection(up, f"{ready}/{len(expected)} shards READY")
