"""The Store on one SQLite file (aiosqlite, WAL): settings, quota gate, ledger, de-duplication."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

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
from storage.limits import Limits, bill_lines_of, exceeded, ledger_row, metered, settings_of
from storage.sqlite import memory
from storage.sqlite.checkpointer import INLINE_PAGES, Checkpointer
from storage.sqlite.group_commit import GroupCommit
from storage.sqlite.quota import (
    ADJUST_SQL,
    EST_RETURNING,
    GATE_BASE,
    GATE_SQL,
    INSERT_LEDGER_SQL,
    LEDGER_COLS,
    REFUSED,
    deltas,
    expire,
    finish,
    parse_ts,
    top_spenders,
    ts,
)
from storage.sqlite.schema import check_version, migrate
from storage.vectors import Vector

T = TypeVar("T")
Clock = Callable[[], datetime]


class SqliteStore:
    """The Store protocol on SQLite.

    One aiosqlite connection. Every write transaction runs whole on that connection's thread
    (statements of concurrent tasks never interleave inside one, and a reserve or settle
    costs one hop to the thread, not one per statement); writes that queue up meanwhile share
    one COMMIT (storage/sqlite/group_commit.py). Other processes (the operator CLI, a second
    replica on the same host) share the file through WAL, BEGIN IMMEDIATE and busy_timeout.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        raw: sqlite3.Connection,
        where: str,
        quota: QuotaConfig,
        clock: Clock,
    ) -> None:
        self._db = db
        self._raw = raw
        self._where = where
        self.quota = quota
        self._clock = clock
        self._pruned_at: datetime | None = None
        self._writes = GroupCommit(raw, self._run)
        self._checkpointer: Checkpointer | None = None
        # Channels' vectors between searches; touched only on the DB thread.
        self.vectors = memory.VectorCache()
        # (device, inode) of the file when opened: ping() notices the file moved or deleted.
        self._file_id: tuple[int, int] | None = None
        self._defaults = Limits.defaults(quota)

    @classmethod
    async def open(
        cls, path: str | Path, quota: QuotaConfig | None = None, *, clock: Clock | None = None
    ) -> SqliteStore:
        """Open (creating and migrating as needed) the database at `path`."""
        where = str(path)
        try:
            if where != ":memory:":
                await asyncio.to_thread(Path(where).parent.mkdir, parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; timeout: busy_timeout.
            db = await aiosqlite.connect(where, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as e:
            raise DatabaseUnusable(f"cannot open {where}: {e}") from None
        try:
            raw = db._conn
            store = cls(
                db, raw, where, quota or QuotaConfig(), clock or (lambda: datetime.now(UTC))
            )
            try:
                await store._run(store._setup)
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError):
                    raise  # locked, I/O: not a configuration problem
                raise DatabaseUnusable(f"{where} is not a usable database: {e}") from None
            if where != ":memory:":
                store._file_id = await asyncio.to_thread(_file_id, where)
                store._checkpointer = Checkpointer(where)
                await store._checkpointer.start()
        except BaseException:
            await db.close()
            raise
        return store

    def _setup(self) -> None:
        conn = self._raw
        conn.row_factory = sqlite3.Row
        check_version(conn, self._where)  # before WAL: a newer bot's file stays untouched
        # WAL: readers (the CLI, `quota`) never block the gate; NORMAL is durable across a
        # process crash (the kill test) and only loses the last commits on power loss.
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {INLINE_PAGES}")  # see checkpointer.py
        migrate(conn, self._where)

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the connection's own thread.

        aiosqlite has no public call for running a function there; `_execute` is the method
        all of its own statements go through. A whole transaction in one hop is what makes
        the gate both atomic among our tasks and fast (see bench/bench_quota.py).
        """
        execute = cast(Callable[[Callable[[], T]], Awaitable[T]], self._db._execute)
        return await execute(fn)

    async def ping(self) -> None:
        await self._run(self._answer)

    def _answer(self) -> None:
        # Reads the schema page: the file itself answers, not a cached connection state.
        self._raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if self._file_id is not None:
            # An open connection keeps working on a moved or deleted file, but nobody else
            # (the quota CLI, a restart) would ever see what it writes there.
            try:
                same = _file_id(self._where) == self._file_id
            except OSError as e:
                raise DatabaseUnusable(f"{self._where} is gone: {e.strerror or e}") from None
            if not same:
                raise DatabaseUnusable(f"{self._where} was replaced by another file")

    async def close(self) -> None:
        await self._writes.drain()
        if self._checkpointer is not None:
            await self._checkpointer.close()
        await self._db.close()

    # --- channel settings --------------------------------------------------------------

    async def channel_settings(self, channel: str) -> ChannelSettings:
        return await self._run(lambda: _read_settings(self._raw, channel))

    async def set_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        now = ts(self._clock())
        await self._run(lambda: _write_settings(self._raw, channel, settings, now))

    async def update_channel_settings(
        self, channel: str, change: Callable[[ChannelSettings], ChannelSettings]
    ) -> ChannelSettings:
        now = ts(self._clock())

        def update(conn: sqlite3.Connection) -> ChannelSettings:
            new = change(_read_settings(conn, channel))
            _write_settings(conn, channel, new, now)
            return new

        return await self._writes.run(update)

    # --- event de-duplication ----------------------------------------------------------

    async def first_delivery(self, event_id: str) -> bool:
        if not event_id:
            return True  # nothing to de-duplicate on
        now = self._clock()
        prune = self._pruned_at is None or now - self._pruned_at >= EVENT_PRUNE_INTERVAL
        if prune:
            self._pruned_at = now
        cutoff = ts(now - EVENT_RETENTION)

        def insert(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "INSERT INTO events (event_id, seen_at) VALUES (?, ?) "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (event_id, ts(now)),
            ).fetchall()
            if prune:
                conn.execute("DELETE FROM events WHERE seen_at < ?", (cutoff,))
            return bool(rows)

        # Through the group commit: a burst of events shares one COMMIT.
        return await self._writes.run(insert)

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
            "now": ts(moment),
            "expires_at": ts(moment + self.quota.reservation_ttl),
            "platform": charge.platform,
            "channel": charge.channel,
            "command": charge.command,
            "model": charge.model,
            "day_key": keys.day,
            "month_key": keys.month,
            "requests": want["requests"],
            "tokens_in": estimate.tokens_in,
            "tokens_out": estimate.tokens_out,
            "tokens_in_est": estimate.tokens_in,
            "tokens_out_est": estimate.tokens_out,
            "images": estimate.images,
            "audio_seconds": estimate.audio_seconds,
            "cost": estimate.cost,
            "currency": charge.rates.currency,
            "price_input": charge.rates.input,
            "price_output": charge.rates.output,
            "price_image": charge.rates.image,
            "price_audio_minute": charge.rates.audio_minute,
            "user_id": charge.user,
            "user_name": charge.user_name,
            "status": "pending",
        }
        for m in METRICS:
            params[f"e_{m}"] = want[m]

        def gate(conn: sqlite3.Connection, limits: Limits) -> QuotaExceeded | None:
            """The channel's counters, then the user's; None when both took the estimate."""
            base = {k: params[k] for k in GATE_BASE}
            row = conn.execute(
                GATE_SQL, {**base, "user_id": "", **limits.channel_params}
            ).fetchone()
            if row is None:
                return self._diagnose(conn, charge, "", limits.channel, keys, want, moment)
            # Charged to the counter's window (only later than ours if a clock lags).
            params["day_key"] = base["day_key"] = row[0]
            params["month_key"] = base["month_key"] = row[1]
            row = conn.execute(
                GATE_SQL, {**base, "user_id": charge.user, **limits.user_params}
            ).fetchone()
            if row is None:
                return self._diagnose(conn, charge, charge.user, limits.user, keys, want, moment)
            return None

        def reserve(conn: sqlite3.Connection) -> int | QuotaExceeded:
            limits = self._limits(conn, charge.channel)
            for attempt in (1, 2):
                # A savepoint per attempt: when the channel's counters took the estimate but
                # the user's did not, the channel's must be given back.
                conn.execute("SAVEPOINT gate")
                refused = gate(conn, limits)
                if refused is None:
                    conn.execute("RELEASE gate")
                    break
                conn.execute("ROLLBACK TO gate")
                conn.execute("RELEASE gate")
                # Stale reservations (a crashed process) are swept only when they could
                # matter, when the budget looks spent; then the gate gets a second look.
                if attempt == 2 or not expire(conn, params["now"]):
                    break
            if refused is None:
                return int(conn.execute(INSERT_LEDGER_SQL, params).fetchone()[0])
            # Every request leaves a ledger row, refused ones too (with nothing charged).
            conn.execute(INSERT_LEDGER_SQL, {**params, **REFUSED})
            return refused

        result = await self._writes.run(reserve)
        if isinstance(result, QuotaExceeded):
            raise result
        return Reservation(id=result, charge=charge, estimate=estimate)

    async def settle(
        self, reservation: Reservation, actual: Amounts, status: Status = "ok"
    ) -> None:
        new = metered(actual, reservation.charge)
        params: dict[str, Any] = {
            "id": reservation.id,
            "now": ts(self._clock()),
            "status": status,
            "requests": new["requests"],
            "tokens_in": actual.tokens_in,
            "tokens_out": actual.tokens_out,
            "images": actual.images,
            "audio_seconds": actual.audio_seconds,
            "cost": actual.cost,
        }
        await self._writes.run(lambda conn: finish(conn, params, new))

    async def release(self, reservation: Reservation, status: Status = "error") -> None:
        params: dict[str, Any] = {
            "id": reservation.id,
            "now": ts(self._clock()),
            "status": status,
            "requests": 0,
            "tokens_in": 0,
            "tokens_out": 0,
            "images": 0,
            "audio_seconds": 0.0,
            "cost": 0,
        }
        await self._writes.run(lambda conn: finish(conn, params, None))

    async def expire_stale(self, *, now: datetime | None = None) -> int:
        stamp = ts(now or self._clock())
        return await self._writes.run(lambda conn: expire(conn, stamp))

    def _limits(self, conn: sqlite3.Connection, channel: str) -> Limits:
        """Read on every reserve, so a limit set by the CLI (another process) applies at once."""
        rows = conn.execute(
            "SELECT metric, period, value FROM quota_limits WHERE channel = ?", (channel,)
        ).fetchall()
        return self._defaults.overridden_by(rows, self.quota.user_share)

    def _diagnose(
        self,
        conn: sqlite3.Connection,
        charge: Charge,
        user_id: str,
        limits: dict[tuple[Metric, Window], float | None],
        keys: WindowKeys,
        want: dict[Metric, float],
        moment: datetime,
    ) -> QuotaExceeded:
        """Which limit refused: read after the gate said no, only to word the message."""
        row = conn.execute(
            "SELECT * FROM quota_usage WHERE channel = ? AND user_id = ?",
            (charge.channel, user_id),
        ).fetchone()
        refused = exceeded(
            row,
            limits,
            keys,
            want,
            quota=self.quota,
            moment=moment,
            user_scope=bool(user_id),
        )
        if refused is not None:
            return refused
        raise AssertionError("the quota gate refused but no limit is exceeded")

    # --- quota administration ----------------------------------------------------------

    async def limits(self, channel: str) -> tuple[LimitSetting, ...]:
        found = await self._run(lambda: self._limits(self._raw, channel))
        return settings_of(found)

    async def set_limit(
        self, channel: str, metric: Metric, window: Window, value: float | None
    ) -> None:
        if value is not None and value < 0:
            raise ValueError("a limit cannot be negative")
        now = ts(self._clock())
        await self._run(
            lambda: self._raw.execute(
                "INSERT INTO quota_limits (channel, metric, period, value, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, metric, period) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                (channel, metric, window, value, now),
            )
        )

    async def clear_limits(
        self, channel: str, metric: Metric | None = None, window: Window | None = None
    ) -> int:
        def clear() -> int:
            cursor = self._raw.execute(
                "DELETE FROM quota_limits WHERE channel = ? "
                "AND (? IS NULL OR metric = ?) AND (? IS NULL OR period = ?)",
                (channel, metric, metric, window, window),
            )
            return cursor.rowcount

        return await self._run(clear)

    async def reset_usage(self, channel: str, *, now: datetime | None = None) -> None:
        keys = self.quota.window_keys(now or self._clock())

        def reset(conn: sqlite3.Connection) -> None:
            for w in WINDOWS:
                conn.execute(
                    f"UPDATE quota_usage SET {', '.join(f'{w}_{m} = 0' for m in METRICS)} "
                    f"WHERE channel = ? AND {w}_key = ?",
                    (channel, keys.of(w)),
                )
            # Reservations in flight still hold their estimate, so settling them stays exact.
            pending = conn.execute(
                f"SELECT {EST_RETURNING} FROM ledger WHERE channel = ? AND status = 'pending'",
                (channel,),
            ).fetchall()
            for row in pending:
                params = deltas(row, None, had_charge=True)
                for m in METRICS:
                    params[f"d_{m}"] = -params[f"d_{m}"]
                conn.execute(ADJUST_SQL, params)

        await self._writes.run(reset)

    async def quota_status(
        self, channel: str, *, now: datetime | None = None, top: int = 3
    ) -> QuotaStatus:
        moment = now or self._clock()
        keys = self.quota.window_keys(moment)

        def read(conn: sqlite3.Connection) -> QuotaStatus:
            expire(conn, ts(moment))
            limits = self._limits(conn, channel)
            row = conn.execute(
                "SELECT * FROM quota_usage WHERE channel = ? AND user_id = ''", (channel,)
            ).fetchone()
            windows = []
            for w in WINDOWS:
                current = row is not None and row[f"{w}_key"] >= keys.of(w)
                used: dict[Metric, float] = {
                    m: (float(row[f"{w}_{m}"]) if current and row is not None else 0.0)
                    for m in METRICS
                }
                windows.append(
                    WindowUsage(
                        window=w,
                        key=keys.of(w),
                        used=used,
                        top_users=top_spenders(conn, "user", channel, w, keys, top),
                        top_models=top_spenders(conn, "model", channel, w, keys, top),
                        resets_at=self.quota.resets_at(w, moment),
                    )
                )
            pending = conn.execute(
                "SELECT COUNT(*) FROM ledger WHERE status = 'pending' AND channel = ?",
                (channel,),
            ).fetchone()[0]
            return QuotaStatus(
                channel=channel,
                windows=tuple(windows),
                limits=settings_of(limits),
                user_share=self.quota.user_share,
                pending=int(pending),
                time_zone=self.quota.tz.key,
            )

        return await self._writes.run(read)

    async def channels(self) -> list[str]:
        rows = await self._db.execute_fetchall(
            "SELECT channel FROM channel_settings UNION SELECT channel FROM quota_limits "
            "UNION SELECT channel FROM quota_usage ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    async def bill(self, month: str) -> Bill:
        def read(conn: sqlite3.Connection) -> Bill:
            rows = conn.execute(
                "SELECT channel, model, currency, SUM(requests), SUM(tokens_in), "
                "SUM(tokens_out), SUM(images), SUM(audio_seconds), SUM(cost) FROM ledger "
                "WHERE month_key = ? AND status <> 'pending' GROUP BY channel, model, currency "
                "HAVING SUM(requests) > 0 ORDER BY channel, SUM(cost) DESC, model",
                (month,),
            ).fetchall()
            pending = conn.execute(
                "SELECT COUNT(*) FROM ledger WHERE month_key = ? AND status = 'pending'",
                (month,),
            ).fetchone()[0]
            return Bill(month, bill_lines_of(rows), int(pending))

        return await self._run(lambda: read(self._raw))

    # --- access rules and notices --------------------------------------------------------

    async def access_rules(self, platform: str, workspace: str, channel: str) -> AccessRules:
        def read() -> AccessRules:
            rows = self._raw.execute(
                "SELECT kind, channel, pattern, set_by FROM access_rules WHERE platform = ? "
                "AND workspace = ? AND channel IN ('', ?) ORDER BY kind, channel, pattern",
                (platform, workspace, channel),
            ).fetchall()
            return AccessRules(tuple(AccessRule(r[0], r[1], r[2], r[3]) for r in rows))

        return await self._run(read)

    async def add_access_rules(
        self, scope: RuleScope, kind: RuleKind, patterns: Sequence[str], set_by: str = ""
    ) -> int:
        now = ts(self._clock())

        where = (scope.platform, scope.workspace, scope.channel, kind)

        def add(conn: sqlite3.Connection) -> int:
            added = 0
            for pattern in dict.fromkeys(patterns):
                added += len(
                    conn.execute(
                        "INSERT INTO access_rules (platform, workspace, channel, kind, pattern, "
                        "set_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                        "(platform, workspace, channel, kind, pattern) DO NOTHING "
                        "RETURNING pattern",
                        (*where, pattern, set_by, now),
                    ).fetchall()
                )
            return added

        return await self._writes.run(add)

    async def remove_access_rules(
        self, scope: RuleScope, kind: RuleKind, patterns: Sequence[str] | None = None
    ) -> int:
        where = "platform = ? AND workspace = ? AND channel = ? AND kind = ?"
        key = (scope.platform, scope.workspace, scope.channel, kind)

        def remove(conn: sqlite3.Connection) -> int:
            if patterns is None:
                return conn.execute(f"DELETE FROM access_rules WHERE {where}", key).rowcount
            return sum(
                conn.execute(
                    f"DELETE FROM access_rules WHERE {where} AND pattern = ?", (*key, p)
                ).rowcount
                for p in dict.fromkeys(patterns)
            )

        return await self._writes.run(remove)

    async def claim_notice(
        self, key: str, *, every: timedelta, now: datetime | None = None
    ) -> bool:
        moment = now or self._clock()

        def claim(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "INSERT INTO notices (notice_key, sent_at) VALUES (?, ?) ON CONFLICT "
                "(notice_key) DO UPDATE SET sent_at = excluded.sent_at "
                "WHERE notices.sent_at <= ? RETURNING notice_key",
                (key, ts(moment), ts(moment - every)),
            ).fetchall()
            return bool(rows)

        return await self._writes.run(claim)

    # --- tools -------------------------------------------------------------------------

    async def tool_switches(self, channel: str) -> dict[str, bool]:
        rows = await self._db.execute_fetchall(
            "SELECT name, enabled FROM channel_tools WHERE channel = ?", (channel,)
        )
        return {str(r[0]): bool(r[1]) for r in rows}

    async def set_tool_switch(self, channel: str, name: str, enabled: bool | None) -> None:
        now = ts(self._clock())

        def switch(conn: sqlite3.Connection) -> None:
            if enabled is None:
                conn.execute(
                    "DELETE FROM channel_tools WHERE channel = ? AND name = ?", (channel, name)
                )
                return
            conn.execute(
                "INSERT INTO channel_tools (channel, name, enabled, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (channel, name) DO UPDATE SET "
                "enabled = excluded.enabled, updated_at = excluded.updated_at",
                (channel, name, int(enabled), now),
            )

        await self._writes.run(switch)

    async def record_tool_call(self, record: ToolCallRecord) -> None:
        now = ts(record.created_at or self._clock())
        await self._writes.run(
            lambda conn: conn.execute(
                "INSERT INTO tool_calls (created_at, channel, user_id, ledger_id, tool, outcome, "
                "duration_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now,
                    record.channel,
                    record.user,
                    record.ledger_id,
                    record.tool,
                    record.outcome,
                    record.duration_ms,
                    record.detail[:500],
                ),
            )
        )

    async def tool_calls(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ToolCallRecord]:
        rows = await self._db.execute_fetchall(
            "SELECT id, created_at, channel, user_id, ledger_id, tool, outcome, duration_ms, "
            "detail FROM tool_calls WHERE id > ? AND (? IS NULL OR channel = ?) "
            "ORDER BY id LIMIT ?",
            (after_id, channel, channel, -1 if limit is None else limit),
        )
        return [
            ToolCallRecord(
                id=int(r[0]),
                created_at=datetime.fromisoformat(str(r[1])).astimezone(UTC),
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

    # --- feedback ----------------------------------------------------------------------

    async def record_vote(self, ledger_id: int, user: str, vote: int, *, channel: str) -> bool:
        if vote not in (-1, 1):
            raise ValueError("a vote is 1 or -1")
        now = ts(self._clock())

        def upsert(conn: sqlite3.Connection) -> bool:
            # One statement: only a reply of this channel takes the vote; a second vote of
            # the same person replaces the first.
            cursor = conn.execute(
                "INSERT INTO feedback (ledger_id, user_id, vote, updated_at) "
                "SELECT id, ?, ?, ? FROM ledger WHERE id = ? AND channel = ? "
                "ON CONFLICT (ledger_id, user_id) DO UPDATE SET "
                "vote = excluded.vote, updated_at = excluded.updated_at",
                (user, vote, now, ledger_id, channel),
            )
            return cursor.rowcount > 0

        return await self._writes.run(upsert)

    async def votes_by_model(
        self, channel: str | None = None, *, month: str | None = None, since: datetime | None = None
    ) -> list[ModelVotes]:
        rows = await self._db.execute_fetchall(
            "SELECT l.model, SUM(CASE WHEN f.vote > 0 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN f.vote < 0 THEN 1 ELSE 0 END) "
            "FROM feedback f JOIN ledger l ON l.id = f.ledger_id "
            "WHERE (? IS NULL OR l.channel = ?) AND (? IS NULL OR l.month_key = ?) "
            "AND (? IS NULL OR l.created_at >= ?) "
            "GROUP BY l.model ORDER BY COUNT(*) DESC, l.model",
            (channel, channel, month, month, *(2 * [None if since is None else ts(since)])),
        )
        return [ModelVotes(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # --- channel memory and embeddings ------------------------------------------------------

    async def memory_channels(self) -> set[str]:
        return await self._run(lambda: memory.enabled_channels(self._raw))

    async def set_memory(self, channel: str, enabled: bool) -> None:
        now = ts(self._clock())
        await self._writes.run(lambda conn: memory.set_enabled(conn, channel, enabled, now))

    async def memory_status(self, channel: str) -> MemoryStatus:
        return await self._run(lambda: memory.status(self._raw, channel))

    async def index_message(
        self,
        channel: str,
        message_id: str,
        passages: Sequence[Passage],
        model: str,
        vectors: Sequence[Vector],
    ) -> None:
        now = ts(self._clock())
        await self._writes.run(
            lambda conn: memory.index(conn, channel, message_id, passages, model, vectors, now)
        )

    async def forget_message(self, channel: str, message_id: str) -> int:
        now = ts(self._clock())
        return await self._writes.run(
            lambda conn: memory.forget_message(conn, channel, message_id, now)
        )

    async def forget_memory(self, channel: str) -> int:
        now = ts(self._clock())
        return await self._writes.run(lambda conn: memory.forget_channel(conn, channel, now))

    async def search_memory(
        self, channel: str, model: str, query: Vector, k: int
    ) -> list[MemoryHit]:
        return await self._run(
            lambda: memory.search(self._raw, self.vectors, channel, model, query, k)
        )

    async def stale_passages(self, channel: str, model: str, limit: int) -> list[Passage]:
        return await self._run(lambda: memory.stale(self._raw, channel, model, limit))

    async def revector(self, model: str, vectors: Mapping[int, Vector]) -> None:
        now = ts(self._clock())
        await self._writes.run(lambda conn: memory.revector(conn, model, vectors, now))

    async def prune_memory(self, before: datetime) -> int:
        now = ts(self._clock())
        return await self._writes.run(lambda conn: memory.prune(conn, before, now))

    async def cached_embeddings(self, model: str, keys: Sequence[str]) -> dict[str, Vector]:
        return await self._run(lambda: memory.cached(self._raw, model, keys))

    async def cache_embeddings(self, model: str, vectors: Mapping[str, Vector]) -> None:
        now = ts(self._clock())
        await self._writes.run(lambda conn: memory.cache(conn, model, vectors, now))

    # --- ledger ------------------------------------------------------------------------

    async def ledger(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[LedgerRow]:
        rows = await self._db.execute_fetchall(
            f"SELECT {LEDGER_COLS} FROM ledger WHERE id > ? AND (? IS NULL OR channel = ?) "
            "ORDER BY id LIMIT ?",
            (after_id, channel, channel, -1 if limit is None else limit),
        )
        return [ledger_row(r, parse_ts) for r in rows]


# --- helpers that run on the DB thread ---------------------------------------------------


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once
    # rather than waiting in busy_timeout, so processes opening one fresh file retry here
    # (on the DB thread, never the event loop).
    for attempt in range(200):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 199:
                raise
            time.sleep(0.05)


def _read_settings(conn: sqlite3.Connection, channel: str) -> ChannelSettings:
    row = conn.execute(
        "SELECT model, system_prompt, temperature, max_tokens, auto_transcribe, language "
        "FROM channel_settings WHERE channel = ?",
        (channel,),
    ).fetchone()
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


def _write_settings(conn: sqlite3.Connection, channel: str, s: ChannelSettings, now: str) -> None:
    conn.execute(
        "INSERT INTO channel_settings (channel, model, system_prompt, temperature, max_tokens, "
        "auto_transcribe, language, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (channel) DO "
        "UPDATE SET model = excluded.model, system_prompt = excluded.system_prompt, "
        "temperature = excluded.temperature, max_tokens = excluded.max_tokens, "
        "auto_transcribe = excluded.auto_transcribe, language = excluded.language, "
        "updated_at = excluded.updated_at",
        (
            channel,
            s.model,
            s.system_prompt,
            s.temperature,
            s.max_tokens,
            int(s.auto_transcribe),
            s.language,
            now,
        ),
    )


async def open_store(
    path: str | Path, quota: QuotaConfig | None = None, *, clock: Clock | None = None
) -> SqliteStore:
    """Open the SQLite store (the service's default backend)."""
    return await SqliteStore.open(path, quota, clock=clock)


def _file_id(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino
