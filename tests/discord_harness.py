"""Runs the Discord adapter against the fake Discord for tests and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import aiohttp

from adapters.discord.client import DISCORD_LIMITS, DiscordAdapter
from adapters.discord.commands import ModelsSource
from adapters.discord.origin import INTERACTION_TTL
from adapters.discord.settings import DiscordSettings
from bot.adapter import Handler
from bot.commands import Command
from bot.events import Limits
from tests.fakes.discord import FakeDiscord


def settings_for(fake: FakeDiscord, state_dir: Path, **env: str) -> DiscordSettings:
    settings = DiscordSettings.from_env(fake.env(CHATOPS_DATA_DIR=str(state_dir), **env))
    assert settings is not None
    return settings


@contextlib.asynccontextmanager
async def running(
    fake: FakeDiscord,
    handler: Handler | None,
    state_dir: Path,
    *,
    commands: Mapping[str, Command] | None = None,
    models: ModelsSource | None = None,
    interaction_ttl: float | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits = DISCORD_LIMITS,
    first_delivery: Callable[[str], Awaitable[bool]] | None = None,
    wire: Callable[[DiscordAdapter], Handler] | None = None,
    http_trace: aiohttp.TraceConfig | None = None,
) -> AsyncIterator[DiscordAdapter]:
    """The adapter connected to `fake` (gateway READY seen), stopped on exit."""
    settings = settings_for(fake, state_dir, **dict(env or {}))
    adapter = DiscordAdapter(
        settings,
        commands=commands,
        models=models,
        guild_ready_timeout=0.1,
        interaction_ttl=INTERACTION_TTL if interaction_ttl is None else interaction_ttl,
        limits=limits,
        first_delivery=first_delivery,
        http_trace=http_trace,
    )
    # wire: builds the handler from the adapter (Dispatcher.handler_for) instead.
    handle = wire(adapter) if wire is not None else handler
    assert handle is not None
    task = asyncio.create_task(adapter.run(handle))
    try:
        async with asyncio.timeout(15):
            ready = asyncio.create_task(adapter.ready.wait())
            done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                task.result()  # raises what stopped it
                raise RuntimeError("adapter stopped before READY")
        yield adapter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            async with asyncio.timeout(10):
                await task


def names(commands: Sequence[Command]) -> dict[str, Command]:
    return {c.name: c for c in commands}
