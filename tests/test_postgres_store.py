"""PostgreSQL-only behaviour: migrations under a lock, refusals at start-up, lost connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from storage.base import (
    Amounts,
    Charge,
    DatabaseUnavailable,
    DatabaseUnusable,
    QuotaConfig,
    QuotaExceeded,
    Reservation,
)
from storage.opener import open_store
from storage.postgres.schema import LATEST
from storage.postgres.store import PostgresStore
from tests.core_harness import running_core
from tests.memory_adapter import make_request

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHAT = Charge("slack", "slack:C1", "U1", "ask", "gpt-4o")
EST = Amounts(tokens_in=100, tokens_out=400)


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    async with asyncio.timeout(30):
        stores = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(4)))
    try:
        await stores[0].set_limit("slack:C1", "requests", "day", 3)
        found = {(s.metric, s.window): s.value for s in await stores[3].limits("slack:C1")}
        assert found[("requests", "day")] == 3
    finally:
        for store in stores:
            await store.close()
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM chatops_schema")]
        assert versions == [LATEST]
    finally:
        await conn.close()


async def test_a_newer_schema_is_refused_and_left_alone(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    await store.close()
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        await conn.execute("UPDATE chatops_schema SET version = $1", LATEST + 1)
        with pytest.raises(DatabaseUnusable) as info:
            await PostgresStore.open(postgres_url)
        assert f"schema version {LATEST + 1}" in info.value.problem
        assert await conn.fetchval("SELECT version FROM chatops_schema") == LATEST + 1
    finally:
        await conn.close()


def _with(url: str, **change: str | int) -> str:
    parts = urlsplit(url)
    user, password = parts.username or "", parts.password or ""
    port = change.get("port", parts.port)
    password = str(change.get("password", password))
    path = str(change.get("path", parts.path))
    return parts._replace(netloc=f"{user}:{password}@127.0.0.1:{port}", path=path).geturl()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"password": "not-the-password"}, "password authentication failed"),
        ({"path": "/no_such_database"}, "does not exist"),
        ({"port": 1}, "cannot connect"),
    ],
)
async def test_a_wrong_url_is_one_line_naming_the_variable_without_the_password(
    postgres_url: str,
    change: dict[str, str | int],
    says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = _with(postgres_url, **change)
    password = urlsplit(url).password
    assert password
    caplog.set_level(logging.DEBUG)
    async with asyncio.timeout(30):
        with pytest.raises(DatabaseUnusable) as info:
            await open_store(url)
    message = str(info.value)
    assert message.startswith("CHATOPS_DB: ") and says in message
    assert "\n" not in message
    assert password not in message and password not in caplog.text


async def test_a_url_of_another_database_is_refused_not_taken_as_a_folder(tmp_path: object) -> None:
    with pytest.raises(DatabaseUnusable, match=r"mysql:// is not supported"):
        await open_store("mysql://root@db/chatops")


async def _terminate_others(admin: asyncpg.Connection, database: str) -> int:
    """Kill every connection to `database` but the admin's own: the server restarting."""
    return int(
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    )


@asynccontextmanager
async def _store_and_admin(
    postgres_url: str, requests_a_day: int
) -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection, str]]:
    """A store with a daily request limit, a second connection to hold its rows from, and
    the database's name."""
    quota = QuotaConfig(limits={("requests", "day"): requests_a_day})
    store = await PostgresStore.open(postgres_url, quota, clock=lambda: T0)
    admin = await asyncpg.connect(postgres_url, timeout=10)
    try:
        yield store, admin, urlsplit(postgres_url).path.lstrip("/")
    finally:
        await admin.close()
        await store.close()


@asynccontextmanager
async def _channel_row_held(admin: asyncpg.Connection, channel: str) -> AsyncIterator[None]:
    """The channel's counter row locked by another connection until the block ends."""
    async with admin.transaction():
        await admin.execute(
            "SELECT 1 FROM quota_usage WHERE channel = $1 AND user_id = '' FOR UPDATE", channel
        )
        yield


async def _until_waiting_on_a_lock(admin: asyncpg.Connection, database: str) -> None:
    for _ in range(1000):
        if await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            database,
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the reservation never waited on the lock")


async def test_a_lost_connection_fails_the_request_plainly_charges_nothing_and_recovers(
    postgres_url: str,
) -> None:
    async with _store_and_admin(postgres_url, 3) as (store, admin, database):
        first = await store.reserve(CHAT, EST, now=T0)
        # Hold the channel's counter row so the next reservation is in flight, then cut
        # every connection but ours, as a database failover would.
        async with _channel_row_held(admin, CHAT.channel):
            inflight = asyncio.create_task(store.reserve(CHAT, EST, now=T0))
            async with asyncio.timeout(10):
                await _until_waiting_on_a_lock(admin, database)
            assert await _terminate_others(admin, database) >= 1
            with pytest.raises(DatabaseUnavailable) as info:
                async with asyncio.timeout(10):
                    await inflight
        assert "nothing was done or charged" in info.value.user_message
        # The pool reconnects: settling the first request works (and is retried if needed),
        # and two more requests fit the limit of 3: the one cut short took nothing.
        await _terminate_others(admin, database)  # idle pooled connections die too
        await store.settle(first, Amounts(tokens_in=10, tokens_out=10))
        more = [await store.reserve(CHAT, EST, now=T0) for _ in range(2)]
        with pytest.raises(QuotaExceeded):
            await store.reserve(CHAT, EST, now=T0)
        for r in more:
            await store.release(r)
        rows = await store.ledger()
        status = await store.quota_status(CHAT.channel, now=T0)
    assert [r.status for r in rows] == ["ok", "error", "error", "refused"]
    assert status.windows[0].used["requests"] == 1 == sum(r.amounts.requests for r in rows)
    assert status.windows[0].used["tokens"] == 20


async def test_200_reservations_over_three_replicas_against_a_limit_of_50(
    postgres_url: str,
) -> None:
    quota = QuotaConfig(limits={("requests", "day"): 50, ("tokens", "month"): 10**9})
    # Three stores, three pools: three replicas' worth of connections on one database.
    stores = [await PostgresStore.open(postgres_url, quota) for _ in range(3)]
    outcomes: list[Reservation | QuotaExceeded] = []

    async def one(i: int) -> None:
        charge = Charge("slack", "slack:C1", f"U{i % 11}", "ask", "gpt-4o")
        try:
            outcomes.append(await stores[i % 3].reserve(charge, EST, now=T0))
        except QuotaExceeded as e:
            outcomes.append(e)

    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(one(i) for i in range(200)))
            won = [o for o in outcomes if isinstance(o, Reservation)]
            await asyncio.gather(
                *(stores[i % 3].settle(r, Amounts(tokens_in=i)) for i, r in enumerate(won))
            )
            ledger = await stores[1].ledger()
            status = await stores[2].quota_status("slack:C1", now=T0)
    finally:
        for store in stores:
            await store.close()
    assert len(won) == 50
    assert len(ledger) == 200 and sum(r.status == "refused" for r in ledger) == 150
    day = status.windows[0].used
    assert day["requests"] == 50 == sum(r.amounts.requests for r in ledger)
    assert day["tokens"] == sum(range(50)) == sum(r.amounts.tokens for r in ledger)


async def test_a_request_during_an_outage_is_told_plainly_and_service_resumes(
    postgres_url: str, postgres_server: str, tmp_path: Path
) -> None:
    database = urlsplit(postgres_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_server, timeout=10)
    try:
        async with running_core(tmp_path, db=postgres_url) as core:
            await core.send(make_request("before"))
            # The database goes away: no new connections, the pooled ones cut.
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await _terminate_others(admin, database)
            async with asyncio.timeout(30):
                await core.send(make_request("during"))
            told = list(core.adapter.messages.values())[-1]
            assert told.startswith("⚠️ The bot's database is unreachable right now")
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            async with asyncio.timeout(30):
                await core.send(make_request("after"))
            assert list(core.adapter.messages.values())[-1] == "You said: after"
            rows = await core.store.ledger()
    finally:
        await admin.close()
    # Nothing was charged for the request the outage refused.
    assert [r.status for r in rows] == ["ok", "ok"]


async def test_reservations_queued_behind_a_busy_channel_go_as_one_transaction(
    postgres_url: str,
) -> None:
    async with _store_and_admin(postgres_url, 100) as (store, admin, database):
        await store.settle(await store.reserve(CHAT, EST, now=T0), EST)
        # The channel's row held elsewhere: the first reservation waits in the database and
        # the next 19 queue behind it in this process.
        async with _channel_row_held(admin, CHAT.channel):
            first = asyncio.create_task(store.reserve(replace(CHAT, user="U0"), EST, now=T0))
            async with asyncio.timeout(10):
                await _until_waiting_on_a_lock(admin, database)
            queued = [
                asyncio.create_task(store.reserve(replace(CHAT, user=f"U{i}"), EST, now=T0))
                for i in range(1, 20)
            ]
            await asyncio.sleep(0.05)  # would they go separately, they would be waiting too
        async with asyncio.timeout(10):
            reservations = await asyncio.gather(first, *queued)
        # Rows a transaction wrote carry its id (xmin): one for the first, one for the rest.
        transactions = await admin.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM ledger WHERE id = ANY($1::bigint[])",
            [r.id for r in reservations],
        )
        for r in reservations:
            await store.settle(r, EST)
        status = await store.quota_status(CHAT.channel, now=T0)
    assert transactions == 2
    assert status.windows[0].used["requests"] == 21


async def test_a_caller_cancelled_while_its_reservation_is_out_gets_the_hold_given_back(
    postgres_url: str,
) -> None:
    async with _store_and_admin(postgres_url, 1) as (store, admin, database):
        await store.release(await store.reserve(CHAT, EST, now=T0))  # the counter row exists
        async with _channel_row_held(admin, CHAT.channel):
            doomed = asyncio.create_task(store.reserve(CHAT, EST, now=T0))
            async with asyncio.timeout(10):
                await _until_waiting_on_a_lock(admin, database)
            doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        # The reservation committed after its caller left; the store gives it back at once,
        # so the only request the limit allows fits now, not after the reservation TTL.
        for _ in range(1000):
            if not (await store.quota_status(CHAT.channel, now=T0)).pending:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the cancelled caller's hold was never given back")
        kept = await store.reserve(CHAT, EST, now=T0)
        await store.settle(kept, EST)
        rows = await store.ledger()
    assert [r.status for r in rows] == ["error", "cancelled", "ok"]
