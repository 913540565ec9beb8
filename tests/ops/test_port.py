"""The operations port in process: real HTTP to /healthz, /readyz and /metrics while a core
(fake gateway over HTTP, real SQLite file, memory adapter) handles requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.adapter import Adapter, Connection
from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.events import Limits, Request, Turn
from bot.gateway.client import Gateway, GatewayError
from bot.ops.metrics import Metrics
from bot.ops.readiness import Readiness
from bot.ops.server import OpsServer
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.base import QuotaConfig
from storage.sqlite.store import SqliteStore
from tests.fakes.gateway import FakeGateway
from tests.memory_adapter import MemoryAdapter, make_request
from tests.ops_harness import get, readyz, scrape


@dataclass
class Port:
    base: str
    metrics: Metrics
    readiness: Readiness
    store: SqliteStore
    services: Services
    dispatcher: Dispatcher
    gateway: FakeGateway


@asynccontextmanager
async def ops_port(
    tmp_path: Path, adapters: Sequence[Adapter], quota: QuotaConfig | None = None
) -> AsyncIterator[Port]:
    async with FakeGateway() as fake:
        config = Config(
            api_key=Secret(fake.api_key),
            base_url=fake.base_url,
            db_path=tmp_path / "chatops.db",
            quota=quota or QuotaConfig(),
        )
        metrics = Metrics()
        store = await SqliteStore.open(config.db_path, config.quota)
        gateway = Gateway(config.base_url, config.api_key, retry_base=0.01, telemetry=metrics)
        services = Services(config, gateway, store, Budgets(), telemetry=metrics)
        dispatcher = Dispatcher(services, command_table())
        metrics.watch(in_flight=lambda: dispatcher.inflight, budgets=services.budgets.spare)
        readiness = Readiness(store, adapters, metrics, timeout=0.5)
        server = OpsServer(readiness, metrics, "127.0.0.1", 0)
        port = await server.start()
        try:
            yield Port(
                f"http://127.0.0.1:{port}", metrics, readiness, store, services, dispatcher, fake
            )
        finally:
            await server.close()
            await gateway.aclose()
            await store.close()


class Hanging(MemoryAdapter):
    """A platform library that never says how its connection is."""

    async def connection(self) -> Connection:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Gated(MemoryAdapter):
    """Holds every chat request in history() until `gate` opens: a request in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def history(self, req: Request) -> Sequence[Turn]:
        self.entered.set()
        await self.gate.wait()
        return ()


async def test_readyz_names_each_part_and_follows_the_platform(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    async with ops_port(tmp_path, [adapter]) as port:
        status, body = await readyz(port.base)
        assert status == 200
        assert body == {
            "ready": True,
            "parts": {
                "database": {"ok": True, "detail": "answers", "required": True},
                "memory": {"ok": True, "detail": "in memory", "required": True},
                "gateway": {"ok": True, "detail": "API key not rejected", "required": False},
            },
        }
        adapter.connected = False
        status, body = await readyz(port.base)
        assert status == 503 and body["parts"]["memory"]["ok"] is False
        assert (await scrape(port.base)).value("chatops_platform_connected", platform="memory") == 0
        assert (await get(f"{port.base}/healthz"))[0] == 200
        adapter.connected = True
        assert (await readyz(port.base))[0] == 200


async def test_a_part_that_does_not_answer_is_not_ready(tmp_path: Path) -> None:
    async with ops_port(tmp_path, [MemoryAdapter(), Hanging(name="stuck")]) as port:
        async with asyncio.timeout(5):
            status, body = await readyz(port.base)
        assert status == 503
        assert body["parts"]["stuck"] == {
            "ok": False,
            "detail": "no state within 0.5 s",
            "required": True,
        }
        assert body["parts"]["memory"]["ok"] is True


async def test_database_moved_away_then_back(tmp_path: Path) -> None:
    async with ops_port(tmp_path, [MemoryAdapter()]) as port:
        db = tmp_path / "chatops.db"
        db.rename(tmp_path / "moved.db")
        status, body = await readyz(port.base)
        assert status == 503
        assert "chatops.db is gone" in body["parts"]["database"]["detail"]
        assert (await scrape(port.base)).value("chatops_database_up") == 0
        (tmp_path / "moved.db").rename(db)
        assert (await readyz(port.base))[0] == 200
        # Another file under the same name is not the database the bot writes to.
        db.rename(tmp_path / "moved.db")
        db.write_bytes(b"")
        status, body = await readyz(port.base)
        assert status == 503 and "replaced" in body["parts"]["database"]["detail"]


async def test_shutting_down_is_not_ready(tmp_path: Path) -> None:
    async with ops_port(tmp_path, [MemoryAdapter()]) as port:
        port.readiness.stopping = True
        status, body = await readyz(port.base)
        assert status == 503 and body["parts"]["service"]["ok"] is False
        assert (await get(f"{port.base}/healthz"))[0] == 200


async def test_a_rejected_key_shows_until_the_gateway_accepts_it(tmp_path: Path) -> None:
    async with ops_port(tmp_path, [MemoryAdapter()]) as port:
        port.gateway.fail_next(401, "invalid_api_key")
        with pytest.raises(GatewayError):
            await port.services.gateway.models()
        status, body = await readyz(port.base)
        assert status == 200  # shown, but no reason to take the replica out of rotation
        assert body["parts"]["gateway"]["ok"] is False
        got = await scrape(port.base)
        assert got.value("chatops_gateway_key_rejected") == 1
        assert (
            got.value("chatops_gateway_requests_total", status="401", code="invalid_api_key") == 1
        )
        await port.services.gateway.models()
        assert (await readyz(port.base))[1]["parts"]["gateway"]["ok"] is True


async def _send(port: Port, adapter: MemoryAdapter, req: Request) -> None:
    await port.dispatcher.handler_for(adapter)(req)


async def test_unknown_command_names_never_become_labels(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    async with ops_port(tmp_path, [adapter]) as port:
        await _send(port, adapter, make_request("x", command="zzz-private-words"))
        got = await scrape(port.base)
        labels = {"platform": "memory", "command": "unknown", "outcome": "unknown_command"}
        assert got.value("chatops_requests_total", **labels) == 1
        assert not any("zzz" in value for value in got.label_values())


async def test_quota_refusals_are_counted_by_metric(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    quota = QuotaConfig(limits={("requests", "day"): 1})
    async with ops_port(tmp_path, [adapter], quota) as port:
        await _send(port, adapter, make_request("ask one"))
        await _send(port, adapter, make_request("ask two"))
        got = await scrape(port.base)
        assert got.value("chatops_requests_total", command="ask", outcome="ok") == 1
        assert got.value("chatops_requests_total", command="ask", outcome="quota") == 1
        refused = {"metric": "requests", "window": "day", "scope": "channel"}
        assert got.value("chatops_quota_refusals_total", **refused) == 1


async def test_images_are_counted_by_model(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    async with ops_port(tmp_path, [adapter]) as port:
        await _send(port, adapter, make_request("image n=2 a red bicycle"))
        got = await scrape(port.base)
        assert got.value("chatops_images_total", model="gpt-image-1") == 2
        assert got.value("chatops_requests_total", command="image", outcome="ok") == 1
        assert got.value("chatops_first_visible_seconds_count", command="image") == 1
        assert got.value("chatops_gateway_requests_total", endpoint="images/generations") == 1


async def test_in_flight_replies_are_read_at_scrape(tmp_path: Path) -> None:
    adapter = Gated()
    async with ops_port(tmp_path, [adapter]) as port:
        task = asyncio.create_task(_send(port, adapter, make_request("ask slowly")))
        async with asyncio.timeout(5):
            await adapter.entered.wait()
        assert (await scrape(port.base)).value("chatops_replies_in_flight") == 1
        adapter.gate.set()
        async with asyncio.timeout(10):
            await task
        assert (await scrape(port.base)).value("chatops_replies_in_flight") == 0


async def test_spare_budget_is_what_pledges_leave(tmp_path: Path) -> None:
    limits = Limits(max_chars=100, edit_interval=1.0, budget_per_second=1.0, budget_burst=3)
    async with ops_port(tmp_path, [MemoryAdapter()]) as port:
        budgets = port.services.budgets
        busy = budgets.for_place(limits, make_request(channel="C1").place)
        budgets.for_place(limits, make_request(channel="C2").place)  # untouched: 3 spare
        assert busy.try_acquire()
        busy.pledge()
        got = await scrape(port.base)
        write = {"platform": "memory", "kind": "write"}
        assert got.value("chatops_budget_spare_writes", **write) == 1
        assert got.value("chatops_budget_exhausted_scopes", **write) == 0
        busy.pledge()
        got = await scrape(port.base)
        assert got.value("chatops_budget_spare_writes", **write) == 0
        assert got.value("chatops_budget_exhausted_scopes", **write) == 1
