"""A running core for tests: fake gateway over HTTP, a real database, memory adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.events import Limits, Request
from bot.gateway.client import Gateway
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.base import Store
from storage.opener import open_store
from tests.fakes.gateway import FakeGateway
from tests.memory_adapter import MemoryAdapter

LIMITS = Limits(max_chars=400, edit_interval=0.01, budget_per_second=500.0, budget_burst=50)


@dataclass(slots=True)
class Core:
    gateway: FakeGateway
    store: Store
    adapter: MemoryAdapter
    dispatcher: Dispatcher
    services: Services

    async def send(self, req: Request) -> None:
        await self.dispatcher.handler_for(self.adapter)(req)


@asynccontextmanager
async def running_core(
    tmp_path: Path, *, db: str | None = None, **config: object
) -> AsyncIterator[Core]:
    """`db`: a PostgreSQL URL (or SQLite path) instead of a SQLite file in `tmp_path`."""
    async with FakeGateway() as fake:
        settings = Config(
            api_key=Secret(fake.api_key),
            base_url=fake.base_url,
            db_path=tmp_path / "chatops.db",
            **config,  # type: ignore[arg-type]
        )
        store = await open_store(db or settings.db_path, settings.quota)
        gateway = Gateway(settings.base_url, settings.api_key, retry_base=0.01)
        services = Services(settings, gateway, store, Budgets())
        adapter = MemoryAdapter(limits=LIMITS)
        try:
            yield Core(fake, store, adapter, Dispatcher(services, command_table()), services)
        finally:
            await gateway.aclose()
            await store.close()
