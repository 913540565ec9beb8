"""The Store on PostgreSQL (an asyncpg pool): what several replicas of the bot share."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.base import (
    EVENT_PRUNE_INTERVAL,
    EVENT_RETENTION,
    METRICS,
    WINDOWS,
    AccessRule,
    AccessRules,
    Amounts,
    Bill,
    ChannelSettings,
    Charge,
    DatabaseUnavailable,
    DatabaseUnusable,
    LedgerRow,
    LimitSetting,
    MemoryHit,
    MemoryStatus,
    Metric,
    ModelVotes,
    Passage,
    QuotaConfig,
    QuotaExceeded,
    QuotaStatus,
    Reservation,
    RuleKind,
    RuleScope,
    Status,
    ToolCallRecord,
    Window,
    WindowKeys,
    WindowUsage,
)
from storage.limits import (
    Limits,
    bill_lines_of,
    exceeded,
    ledger_row,
    metered,
    settings_of,
    spenders_of,
)
from storage.postgres import memory
from storage.postgres.batches import GateBatches
from storage.postgres.budgets import SharedWindows
from storage.postgres.errors import CONNECT_FAILED, LOST, OPEN_FAILED
from storage.postgres.gate import NOTHING, Kind, item
from storage.postgres.quota import (
    COUNTERS,
    DUE,
    LEDGER_COLS,
    REFUSED,
    RESET,
    TOP_MODELS,
    TOP_USERS,
)
from storage.postgres.schema import migrate
from storage.vectors import Vector

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
# What the pool hands out (generic only in the type stubs, hence the quotes).
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

DEFAULT_POOL_SIZE = 10
CONNECT_TIMEOUT = 10.0
# Longest a statement may run (lock waits included) before the request fails plainly.
COMMAND_TIMEOUT = 30.0
# Idempotent calls are retried across a lost connection for about this long in all.
CLOSE_SECONDS = 10.0
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)


def redact(url: str) -> str:
    """`url` as safe to show: scheme, host, port and database, never user or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the PostgreSQL URL"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class PostgresStore:
    """The Store protocol on PostgreSQL.

    Reservations, settlements and expiries go through the gate function
    (storage/postgres/gate.py), batched per round trip and commit by GateBatches; everything
    else is a statement or a short transaction on a pooled connection. Several processes
    (replicas, the operator CLI) share everything here: settings, limits, the ledger, the
    counters and de-duplication.
    """

    def __init__(self, pool: asyncpg.Pool, where: str, quota: QuotaConfig, clock: Clock) -> None:
        self._pool = pool
        self._where = where
        self.quota = quota
        self._clock = clock
        self._defaults = Limits.defaults(quota)
        # What the gate needs to work out the limits in force itself.
        self._limit_params: dict[str, float | None] = {
            f"def_{w}_{m}": quota.default_limit(m, w) for m in METRICS for w in WINDOWS
        } | {"share": quota.user_share}
        self._pruned_at: datetime | None = None
        self._gate = GateBatches(self._once)
        # Channels' vectors between searches (storage/postgres/memory.py).
        self.vectors = memory.Vectors()

    @classmethod
    async def open(
        cls,
        url: str,
        quota: QuotaConfig | None = None,
        *,
        clock: Clock | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> PostgresStore:
        """Connect (creating and migrating the schema as needed) to the database at `url`."""
        where = redact(url)
        password = urlsplit(url).password if "://" in url else None
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                reset=_keep_session,
            )
        except OPEN_FAILED as e:
            raise DatabaseUnusable(f"cannot connect to {where}: {_reason(e, password)}") from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, where)
        except DatabaseUnusable:
            await pool.close()
            raise
        except OPEN_FAILED as e:
            await pool.close()
            raise DatabaseUnusable(
                f"{where} could not be prepared: {_reason(e, password)}"
            ) from None
        except BaseException:
            await pool.close()
            raise
        return cls(pool, where, quota or QuotaConfig(), clock or (lambda: datetime.now(UTC)))

    async def ping(self) -> None:
        """One cheap round trip; DatabaseUnavailable (saying why) when there is no answer."""
        await self._once(lambda conn: conn.fetchval("SELECT 1"))

    def budgets(self) -> SharedWindows:
        """Platform write budgets shared with every replica, on this store's pool."""
        return SharedWindows(self._pool)

    async def close(self) -> None:
        # Bounded: a connection stuck on a dead server must not hold up shutdown. Batches
        # still out when time is up end with the pool; their callers learn it as a lost
        # connection, and a hold left behind expires after the reservation TTL.
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._gate.drain()
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()

    # --- running statements ------------------------------------------------------------

    async def _once(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `work` on a pooled connection; a lost connection becomes DatabaseUnavailable.

        For work that must not run twice (a reservation): the first attempt's fate is
        unknown when the connection drops, so it is not retried. A hold it may have left
        expires after the reservation TTL, so nothing is charged twice.
        """
        try:
            conn = await self._pool.acquire(timeout=CONNECT_TIMEOUT)
        except CONNECT_FAILED as e:
            # Any refusal to connect (a server starting or shut, a database closed to
            # connections) means the same to a request: not now.
            raise self._unavailable(e) from None
        try:
            return await work(conn)
        except LOST as e:
            raise self._unavailable(e) from None
        finally:
            # The pool closes a connection that broke rather than hand it out again.
            await self._pool.release(conn)

    def _unavailable(self, e: BaseException) -> DatabaseUnavailable:
        log.warning("database %s unavailable: %s", self._where, type(e).__name__)
        return DatabaseUnavailable(type(e).__name__)

    async def _retried(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Like _once, for work that is safe to repeat: retried while the pool reconnects."""
        return await _repeated(lambda: self._once(work))

    # --- channel settings --------------------------------------------------------------

    async def channel_settings(self, channel: str) -> ChannelSettings:
        return await self._retried(lambda conn: _read_settings(conn, channel))

    async def set_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        now = self._clock()
        await self._retried(lambda conn: _write_settings(conn, channel, settings, now))

    async def update_channel_settings(
        self, channel: str, change: Callable[[ChannelSettings], ChannelSettings]
    ) -> ChannelSettings:
        now = self._clock()

        async def update(conn: Conn) -> ChannelSettings:
            async with conn.transaction():
                # A row to lock first, so two first changes of a channel also queue up.
                await conn.execute(
                    "INSERT INTO channel_settings (channel, updated_at) VALUES ($1, $2) "
                    "ON CONFLICT (channel) DO NOTHING",
                    channel,
                    now,
                )
                new = change(await _read_settings(conn, channel, lock=True))
                await _write_settings(conn, channel, new, now)
                return new

        # Not retried: a change applied by a commit whose answer was lost would apply twice.
        return await self._once(update)

    # --- event de-duplication ----------------------------------------------------------

    async def first_delivery(self, event_id: str) -> bool:
        if not event_id:
            return True  # nothing to de-duplicate on
        now = self._clock()
        # The claim makes a retry after a lost connection idempotent: an id this call
        # already inserted still counts as its first delivery.
        claim = secrets.token_hex(8)
        prune = self._pruned_at is None or now - self._pruned_at >= EVENT_PRUNE_INTERVAL

        async def insert(conn: Conn) -> bool:
            row = await conn.fetchrow(
                "INSERT INTO events (event_id, seen_at, claim) VALUES ($1, $2, $3) "
                "ON CONFLICT (event_id) DO UPDATE SET seen_at = events.seen_at "
                "WHERE events.claim = excluded.claim RETURNING event_id",
                event_id,
                now,
                claim,
            )
            return row is not None

        first = await self._retried(insert)
        if prune:
            self._pruned_at = now
            await self._retried(
                lambda conn: conn.execute(
                    "DELETE FROM events WHERE seen_at < $1", now - EVENT_RETENTION
                )
            )
        return first

    # --- quota: reserve, settle, release, expire ---------------------------------------

    async def reserve(
        self, charge: Charge, estimate: Amounts, *, now: datetime | None = None
    ) -> Reservation:
        if not charge.user:
            # '' is the channel's own counter row; an anonymous user must not land on it.
            charge = replace(charge, user="unknown")
        moment = now or self._clock()
        keys = self.quota.window_keys(moment)
        want = metered(estimate, charge)
        params: dict[str, Any] = {
            "now": moment,
            "expires_at": moment + self.quota.reservation_ttl,
            "platform": charge.platform,
            "channel": charge.channel,
            "user_id": charge.user,
            "user_name": charge.user_name,
            "command": charge.command,
            "model": charge.model,
            "day_key": keys.day,
            "month_key": keys.month,
            "tokens_in": estimate.tokens_in,
            "tokens_out": estimate.tokens_out,
            "currency": charge.rates.currency,
            "price_input": charge.rates.input,
            "price_output": charge.rates.output,
            "price_image": charge.rates.image,
            "price_audio_minute": charge.rates.audio_minute,
            **_metric_params("e", want),
            **self._limit_params,
        }

        gated = item("reserve", params)
        swept = False
        # Bounded: each pass either reserves, refuses with a reason, or saw the budget change
        # under it (a hold expired or was given back) and looks again. Not retried after a
        # lost connection: the first attempt's fate is unknown, and a hold it may have left
        # expires after the reservation TTL, so nothing is charged twice.
        for _ in range(4):
            reserved = await self._gate.run(gated)
            if reserved is not None:
                return Reservation(id=reserved, charge=charge, estimate=estimate)
            # Stale holds (a crashed replica) are swept only when they could matter, when
            # the budget looks spent; then the gate gets a second look.
            if not swept:
                swept = True
                if await self._expire(moment):
                    continue
            refused = await self._once(partial(self._refuse, charge, keys, want, moment, params))
            if refused is not None:
                raise refused
        # Each look saw room the gate then did not find: hardly possible, but bounded.
        raise DatabaseUnavailable("the quota counters kept changing")

    async def _refuse(
        self,
        charge: Charge,
        keys: WindowKeys,
        want: dict[Metric, float],
        moment: datetime,
        params: Mapping[str, Any],
        conn: Conn,
    ) -> QuotaExceeded | None:
        """Word a refusal and leave its ledger row; None when there is room again."""
        # The limits again, only to word the refusal (the gate read them itself).
        limits = await self._limits(conn, charge.channel)
        refused = await self._diagnose(conn, charge, limits, keys, want, moment)
        if refused is not None:
            # Every request leaves a ledger row, refused ones too (nothing charged).
            await conn.execute(REFUSED.text, *REFUSED.args(params))
        return refused

    async def settle(
        self, reservation: Reservation, actual: Amounts, status: Status = "ok"
    ) -> None:
        new = metered(actual, reservation.charge)
        params = {
            **_metric_params("n", new),
            "tokens_in": actual.tokens_in,
            "tokens_out": actual.tokens_out,
        }
        await self._finish("settle", reservation, status, params)

    async def release(self, reservation: Reservation, status: Status = "error") -> None:
        await self._finish("release", reservation, status, NOTHING)

    async def _finish(
        self,
        kind: Kind,
        reservation: Reservation,
        status: Status,
        amounts: Mapping[str, Any],
    ) -> None:
        """Settle (real usage) or release a reservation, exactly once; retried while the
        pool reconnects, since finishing a finished reservation changes nothing."""
        finished = item(
            kind,
            {
                **amounts,
                "id": reservation.id,
                "channel": reservation.charge.channel,
                "user_id": reservation.charge.user,
                "status": status,
                "now": self._clock(),
            },
        )
        await _repeated(lambda: self._gate.run(finished))

    async def expire_stale(self, *, now: datetime | None = None) -> int:
        return await self._expire(now or self._clock())

    async def _expire(self, moment: datetime) -> int:
        """Give back reservations past their TTL, each its own gate item (see FINISH)."""
        expired = 0
        while True:
            due = await self._retried(lambda conn: conn.fetch(DUE.text, *DUE.args({"now": moment})))
            # Another replica may sweep the same row at once; only one of them counts.
            done = await asyncio.gather(
                *(
                    self._gate.run(
                        item(
                            "expire",
                            {
                                **NOTHING,
                                "id": row["id"],
                                "channel": row["channel"],
                                "user_id": row["user_id"],
                                "status": "expired",
                                "now": moment,
                                "due": moment,
                            },
                        )
                    )
                    for row in due
                )
            )
            expired += sum(int(n or 0) for n in done)
            if len(due) < 500:
                return expired

    async def _limits(self, conn: Conn, channel: str) -> Limits:
        """Read on every reserve, so a limit set by the CLI (another process) applies at once."""
        rows = await conn.fetch(
            "SELECT metric, period, value FROM quota_limits WHERE channel = $1", channel
        )
        return self._defaults.overridden_by(rows, self.quota.user_share)

    async def _diagnose(
        self,
        conn: Conn,
        charge: Charge,
        limits: Limits,
        keys: WindowKeys,
        want: dict[Metric, float],
        moment: datetime,
    ) -> QuotaExceeded | None:
        """Which limit refused, read after the gate said no, to word the message; None when
        the counters have room again (a hold was given back meanwhile)."""
        rows = await conn.fetch(
            COUNTERS.text, *COUNTERS.args({"channel": charge.channel, "user_id": charge.user})
        )
        by_user = {row["user_id"]: row for row in rows}
        for who, table in (("", limits.channel), (charge.user, limits.user)):
            refused = exceeded(
                by_user.get(who),
                table,
                keys,
                want,
                quota=self.quota,
                moment=moment,
                user_scope=bool(who),
            )
            if refused is not None:
                return refused
        return None

    # --- quota administration ----------------------------------------------------------

    async def limits(self, channel: str) -> tuple[LimitSetting, ...]:
        return settings_of(await self._retried(lambda conn: self._limits(conn, channel)))

    async def set_limit(
        self, channel: str, metric: Metric, window: Window, value: float | None
    ) -> None:
        if value is not None and value < 0:
            raise ValueError("a limit cannot be negative")
        now = self._clock()
        await self._retried(
            lambda conn: conn.execute(
                "INSERT INTO quota_limits (channel, metric, period, value, updated_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, metric, period) DO UPDATE "
                "SET value = excluded.value, updated_at = excluded.updated_at",
                channel,
                metric,
                window,
                value,
                now,
            )
        )

    async def clear_limits(
        self, channel: str, metric: Metric | None = None, window: Window | None = None
    ) -> int:
        async def clear(conn: Conn) -> int:
            status = await conn.execute(
                "DELETE FROM quota_limits WHERE channel = $1 "
                "AND ($2::text IS NULL OR metric = $2) AND ($3::text IS NULL OR period = $3)",
                channel,
                metric,
                window,
            )
            return int(status.rsplit(" ", 1)[-1])

        # Not retried: a repeat would report 0 removed after the first removed them.
        return await self._once(clear)

    async def reset_usage(self, channel: str, *, now: datetime | None = None) -> None:
        keys = self.quota.window_keys(now or self._clock())
        params = {"channel": channel, "day_key": keys.day, "month_key": keys.month}

        async def reset(conn: Conn) -> None:
            async with conn.transaction():
                # Locked first, in a statement of its own: RESET's snapshot then includes
                # every reservation that got in before us, and later ones wait.
                await conn.execute(
                    "SELECT 1 FROM quota_usage WHERE channel = $1 ORDER BY user_id FOR UPDATE",
                    channel,
                )
                await conn.execute(RESET.text, *RESET.args(params))

        await self._retried(reset)

    async def quota_status(
        self, channel: str, *, now: datetime | None = None, top: int = 3
    ) -> QuotaStatus:
        moment = now or self._clock()
        keys = self.quota.window_keys(moment)

        await self._expire(moment)

        async def read(conn: Conn) -> QuotaStatus:
            limits = await self._limits(conn, channel)
            row = await conn.fetchrow(
                "SELECT * FROM quota_usage WHERE channel = $1 AND user_id = ''", channel
            )
            windows = []
            for w in WINDOWS:
                current = row is not None and row[f"{w}_key"] >= keys.of(w)
                used: dict[Metric, float] = {
                    m: (float(row[f"{w}_{m}"]) if current and row is not None else 0.0)
                    for m in METRICS
                }
                spent = {
                    "channel": channel,
                    "month_key": keys.month,
                    "day_key": keys.day if w == "day" else None,
                    "top": top,
                }
                windows.append(
                    WindowUsage(
                        window=w,
                        key=keys.of(w),
                        used=used,
                        top_users=spenders_of(
                            await conn.fetch(TOP_USERS.text, *TOP_USERS.args(spent))
                        ),
                        top_models=spenders_of(
                            await conn.fetch(TOP_MODELS.text, *TOP_MODELS.args(spent))
                        ),
                        resets_at=self.quota.resets_at(w, moment),
                    )
                )
            pending = await conn.fetchval(
                "SELECT count(*) FROM ledger WHERE status = 'pending' AND channel = $1", channel
            )
            return QuotaStatus(
                channel=channel,
                windows=tuple(windows),
                limits=settings_of(limits),
                user_share=self.quota.user_share,
                pending=int(pending),
                time_zone=self.quota.tz.key,
            )

        return await self._retried(read)

    async def channels(self) -> list[str]:
        rows = await self._retried(
            lambda conn: conn.fetch(
                "SELECT channel FROM channel_settings UNION SELECT channel FROM quota_limits "
                "UNION SELECT channel FROM quota_usage ORDER BY 1"
            )
        )
        return [str(r[0]) for r in rows]

    # --- bill, access rules and notices ------------------------------------------------

    async def bill(self, month: str) -> Bill:
        async def read(conn: Conn) -> Bill:
            rows = await conn.fetch(
                "SELECT channel, model, currency, SUM(requests), SUM(tokens_in), "
                "SUM(tokens_out), SUM(images), SUM(audio_seconds), SUM(cost) FROM ledger "
                "WHERE month_key = $1 AND status <> 'pending' GROUP BY channel, model, currency "
                "HAVING SUM(requests) > 0 ORDER BY channel, SUM(cost) DESC, model",
                month,
            )
            pending = await conn.fetchval(
                "SELECT count(*) FROM ledger WHERE month_key = $1 AND status = 'pending'", month
            )
            return Bill(month, bill_lines_of(rows), int(pending))

        return await self._retried(read)

    async def access_rules(self, platform: str, workspace: str, channel: str) -> AccessRules:
        rows = await self._retried(
            lambda conn: conn.fetch(
                "SELECT kind, channel, pattern, set_by FROM access_rules WHERE platform = $1 "
                "AND workspace = $2 AND channel IN ('', $3) ORDER BY kind, channel, pattern",
                platform,
                workspace,
                channel,
            )
        )
        return AccessRules(tuple(AccessRule(r[0], r[1], r[2], r[3]) for r in rows))

    async def add_access_rules(
        self, scope: RuleScope, kind: RuleKind, patterns: Sequence[str], set_by: str = ""
    ) -> int:
        now = self._clock()
        unique = list(dict.fromkeys(patterns))
        rows = await self._once(
            lambda conn: conn.fetch(
                "INSERT INTO access_rules (platform, workspace, channel, kind, pattern, set_by, "
                "updated_at) SELECT $1, $2, $3, $4, p, $5, $6 FROM unnest($7::text[]) AS p "
                "ON CONFLICT (platform, workspace, channel, kind, pattern) DO NOTHING "
                "RETURNING pattern",
                scope.platform,
                scope.workspace,
                scope.channel,
                kind,
                set_by,
                now,
                unique,
            )
        )
        return len(rows)

    async def remove_access_rules(
        self, scope: RuleScope, kind: RuleKind, patterns: Sequence[str] | None = None
    ) -> int:
        chosen = None if patterns is None else list(dict.fromkeys(patterns))
        done = await self._once(
            lambda conn: conn.execute(
                "DELETE FROM access_rules WHERE platform = $1 AND workspace = $2 "
                "AND channel = $3 AND kind = $4 AND ($5::text[] IS NULL OR pattern = ANY($5))",
                scope.platform,
                scope.workspace,
                scope.channel,
                kind,
                chosen,
            )
        )
        return int(done.rsplit(" ", 1)[-1])

    async def claim_notice(
        self, key: str, *, every: timedelta, now: datetime | None = None
    ) -> bool:
        moment = now or self._clock()
        row = await self._once(
            lambda conn: conn.fetchrow(
                "INSERT INTO notices (notice_key, sent_at) VALUES ($1, $2) ON CONFLICT "
                "(notice_key) DO UPDATE SET sent_at = excluded.sent_at "
                "WHERE notices.sent_at <= $3 RETURNING notice_key",
                key,
                moment,
                moment - every,
            )
        )
        return row is not None

    # --- channel memory and embeddings ---------------------------------------------------

    async def memory_channels(self) -> set[str]:
        return await self._retried(memory.enabled_channels)

    async def set_memory(self, channel: str, enabled: bool) -> None:
        now = self._clock()
        await self._retried(lambda conn: memory.set_enabled(conn, channel, enabled, now))

    async def memory_status(self, channel: str) -> MemoryStatus:
        return await self._retried(lambda conn: memory.status(conn, channel))

    async def index_message(
        self,
        channel: str,
        message_id: str,
        passages: Sequence[Passage],
        model: str,
        vectors: Sequence[Vector],
    ) -> None:
        now = self._clock()
        # Safe to repeat: it replaces everything indexed for the message.
        await self._retried(
            lambda conn: memory.index(conn, channel, message_id, passages, model, vectors, now)
        )

    async def forget_message(self, channel: str, message_id: str) -> int:
        now = self._clock()
        return await self._once(lambda conn: memory.forget_message(conn, channel, message_id, now))

    async def forget_memory(self, channel: str) -> int:
        now = self._clock()
        return await self._once(lambda conn: memory.forget_channel(conn, channel, now))

    async def search_memory(
        self, channel: str, model: str, query: Vector, k: int
    ) -> list[MemoryHit]:
        return await self._retried(
            lambda conn: memory.search(conn, self.vectors, channel, model, query, k)
        )

    async def stale_passages(self, channel: str, model: str, limit: int) -> list[Passage]:
        return await self._retried(lambda conn: memory.stale(conn, channel, model, limit))

    async def revector(self, model: str, vectors: Mapping[int, Vector]) -> None:
        now = self._clock()
        await self._retried(lambda conn: memory.revector(conn, model, vectors, now))

    async def prune_memory(self, before: datetime) -> int:
        now = self._clock()
        return await self._once(lambda conn: memory.prune(conn, before, now))

    async def cached_embeddings(self, model: str, keys: Sequence[str]) -> dict[str, Vector]:
        return await self._retried(lambda conn: memory.cached(conn, model, keys))

    async def cache_embeddings(self, model: str, vectors: Mapping[str, Vector]) -> None:
        now = self._clock()
        await self._retried(lambda conn: memory.cache(conn, model, vectors, now))

    # --- tools -------------------------------------------------------------------------

    async def tool_switches(self, channel: str) -> dict[str, bool]:
        rows = await self._retried(
            lambda conn: conn.fetch(
                "SELECT name, enabled FROM channel_tools WHERE channel = $1", channel
            )
        )
        return {str(r[0]): bool(r[1]) for r in rows}

    async def set_tool_switch(self, channel: str, name: str, enabled: bool | None) -> None:
        now = self._clock()

        async def switch(conn: Conn) -> None:
            if enabled is None:
                await conn.execute(
                    "DELETE FROM channel_tools WHERE channel = $1 AND name = $2", channel, name
                )
                return
            await conn.execute(
                "INSERT INTO channel_tools (channel, name, enabled, updated_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (channel, name) DO UPDATE SET "
                "enabled = excluded.enabled, updated_at = excluded.updated_at",
                channel,
                name,
                enabled,
                now,
            )

        await self._retried(switch)

    async def record_tool_call(self, record: ToolCallRecord) -> None:
        now = record.created_at or self._clock()
        # Not retried: a record whose commit went unanswered would be written twice.
        await self._once(
            lambda conn: conn.execute(
                "INSERT INTO tool_calls (created_at, channel, user_id, ledger_id, tool, outcome, "
                "duration_ms, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                now,
                record.channel,
                record.user,
                record.ledger_id,
                record.tool,
                record.outcome,
                record.duration_ms,
                record.detail[:500],
            )
        )

    # --- feedback --------------------------------------------------------------------

    async def record_vote(self, ledger_id: int, user: str, vote: int, *, channel: str) -> bool:
        if vote not in (-1, 1):
            raise ValueError("a vote is 1 or -1")
        now = self._clock()
        # One statement, safe to repeat: only a reply of this channel takes the vote, and a
        # second vote of the same person replaces the first.
        status = await self._retried(
            lambda conn: conn.execute(
                "INSERT INTO feedback (ledger_id, user_id, vote, updated_at) "
                "SELECT id, $1, $2, $3 FROM ledger WHERE id = $4 AND channel = $5 "
                "ON CONFLICT (ledger_id, user_id) DO UPDATE SET "
                "vote = excluded.vote, updated_at = excluded.updated_at",
                user,
                vote,
                now,
                ledger_id,
                channel,
            )
        )
        return str(status).rsplit(" ", 1)[-1] != "0"

    async def votes_by_model(
        self, channel: str | None = None, *, month: str | None = None, since: datetime | None = None
    ) -> list[ModelVotes]:
        rows = await self._retried(
            lambda conn: conn.fetch(
                "SELECT l.model, count(*) FILTER (WHERE f.vote > 0), "
                "count(*) FILTER (WHERE f.vote < 0) "
                "FROM feedback f JOIN ledger l ON l.id = f.ledger_id "
                "WHERE ($1::text IS NULL OR l.channel = $1) "
                "AND ($2::text IS NULL OR l.month_key = $2) "
                "AND ($3::timestamptz IS NULL OR l.created_at >= $3) "
                "GROUP BY l.model ORDER BY count(*) DESC, l.model",
                channel,
                month,
                since,
            )
        )
        return [ModelVotes(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def tool_calls(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ToolCallRecord]:
        rows = await self._retried(
            lambda conn: conn.fetch(
                "SELECT id, created_at, channel, user_id, ledger_id, tool, outcome, duration_ms, "
                "detail FROM tool_calls WHERE id > $1 AND ($2::text IS NULL OR channel = $2) "
                "ORDER BY id LIMIT $3",
                after_id,
                channel,
                limit,
            )
        )
        return [
            ToolCallRecord(
                id=int(r[0]),
                created_at=r[1].astimezone(UTC),
                channel=str(r[2]),
                user=str(r[3]),
                ledger_id=None if r[4] is None else int(r[4]),
                tool=str(r[5]),
                outcome=str(r[6]),
                duration_ms=int(r[7]),
                detail=str(r[8]),
            )
            for r in rows
        ]

    # --- ledger ------------------------------------------------------------------------

    async def ledger(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[LedgerRow]:
        rows = await self._retried(
            lambda conn: conn.fetch(
                f"SELECT {LEDGER_COLS} FROM ledger WHERE id > $1 "
                "AND ($2::text IS NULL OR channel = $2) ORDER BY id LIMIT $3",
                after_id,
                channel,
                limit,
            )
        )
        return [ledger_row(r, _utc) for r in rows]


# --- helpers -------------------------------------------------------------------------------


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset between borrowers: nothing to do, and no round trip for it.

    asyncpg's default sends RESET ALL, UNLISTEN, CLOSE ALL and an advisory unlock on every
    release, one more round trip per statement; this store sets no session state (its one
    advisory lock is transaction-scoped) and asyncpg still rolls back an open transaction.
    """


async def _repeated(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt` again after each DatabaseUnavailable, RETRY_DELAYS apart, then give up."""
    for delay in RETRY_DELAYS:
        try:
            return await attempt()
        except DatabaseUnavailable:
            await asyncio.sleep(delay)
    return await attempt()


def _reason(e: BaseException, password: str | None) -> str:
    """One line saying why a connection failed, with the password scrubbed to be sure."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, TimeoutError):
        text = f"no answer within {CONNECT_TIMEOUT:g} s"
    if password:
        text = text.replace(password, "***")
    return text


def _metric_params(prefix: str, values: dict[Metric, float]) -> dict[str, Any]:
    return {
        f"{prefix}_{m}": (float(v) if m == "audio_seconds" else int(v)) for m, v in values.items()
    }


async def _read_settings(conn: Conn, channel: str, *, lock: bool = False) -> ChannelSettings:
    row = await conn.fetchrow(
        "SELECT model, system_prompt, temperature, max_tokens, auto_transcribe, language "
        "FROM channel_settings WHERE channel = $1" + (" FOR UPDATE" if lock else ""),
        channel,
    )
    if row is None:
        return ChannelSettings()
    return ChannelSettings(
        model=row[0],
        system_prompt=row[1],
        temperature=row[2],
        max_tokens=row[3],
        auto_transcribe=bool(row[4]),
        language=row[5],
    )


async def _write_settings(conn: Conn, channel: str, s: ChannelSettings, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO channel_settings (channel, model, system_prompt, temperature, max_tokens, "
        "auto_transcribe, language, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (channel) "
        "DO UPDATE SET model = excluded.model, system_prompt = excluded.system_prompt, "
        "temperature = excluded.temperature, max_tokens = excluded.max_tokens, "
        "auto_transcribe = excluded.auto_transcribe, language = excluded.language, "
        "updated_at = excluded.updated_at",
        channel,
        s.model,
        s.system_prompt,
        s.temperature,
        s.max_tokens,
        s.auto_transcribe,
        s.language,
        now,
    )


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None
