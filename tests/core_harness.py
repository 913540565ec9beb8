"""A running core for tests: fake gateway over HTTP, a real database, memory adapter."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.events import Limits, Request
from bot.gateway.client import Gateway
from bot.knowledge.memory import ChannelMemory
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.base import Store
from storage.opener import open_store
from tests.fakes.gateway import FakeGateway
from tests.memory_adapter import MemoryAdapter

LIMITS = Limits(max_chars=400, edit_interval=0.01, budget_per_second=500.0, budget_burst=50)
# The core's clock starts here, not at the real date: noon UTC mid-month, hours from any
# quota window's edge, so no test sees a day or a month roll over whenever it runs.
ANCHOR = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def steady_clock(anchor: datetime = ANCHOR) -> Callable[[], datetime]:
    """A clock that starts at `anchor` and runs at real speed."""
    start = time.monotonic()
    return lambda: anchor + timedelta(seconds=time.monotonic() - start)


@dataclass(slots=True)
class Core:
    gateway: FakeGateway
    store: Store
    adapter: MemoryAdapter
    dispatcher: Dispatcher
    services: Services
    memory: ChannelMemory

    async def send(self, req: Request) -> None:
        await self.dispatcher.handler_for(self.adapter)(req)


@asynccontextmanager
async def running_core(tmp_path: Path, **config: object) -> AsyncIterator[Core]:
    """`clock=` is the core's and the store's time (default: a steady clock from ANCHOR);
    `db=` a PostgreSQL URL to use instead of a SQLite file; every other keyword is a Config
    field."""
    given = cast(Callable[[], datetime] | None, config.pop("clock", None))
    db = config.pop("db", None)
    assert db is None or isinstance(db, str)
    async with FakeGateway() as fake:
        settings = Config(
            api_key=Secret(fake.api_key),
            base_url=fake.base_url,
            db_path=tmp_path / "chatops.db",
            **config,  # type: ignore[arg-type]
        )
        clock = given or steady_clock()
        store = await open_store(db or settings.db_path, settings.quota, clock=clock)
        gateway = Gateway(settings.base_url, settings.api_key, retry_base=0.01)
        memory = ChannelMemory(store, gateway, settings.knowledge, clock=clock, flush_delay=0.01)
        await memory.start()
        services = Services(settings, gateway, store, Budgets(), clock=clock, memory=memory)
        adapter = MemoryAdapter(limits=LIMITS)
        try:
            dispatcher = Dispatcher(services, command_table())
            yield Core(fake, store, adapter, dispatcher, services, memory)
        finally:
            await memory.close()
            await gateway.aclose()
            await store.close()
