"""The Store on one SQLite file (aiosqlite, WAL): settings, quota gate, ledger, de-duplication."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from bot.quota import METRICS, WINDOWS, QuotaConfig, WindowKeys
from storage.base import (
    Amounts,
    ChannelSettings,
    Charge,
    LedgerRow,
    LimitSetting,
    Metric,
    QuotaExceeded,
    QuotaStatus,
    Reservation,
    Spender,
    Status,
    Window,
    WindowUsage,
)
from storage.checkpointer import INLINE_PAGES, Checkpointer
from storage.group_commit import GroupCommit
from storage.schema import check_version, migrate

T = TypeVar("T")
Clock = Callable[[], datetime]

_TS = "%Y-%m-%dT%H:%M:%S.%fZ"
# Redeliveries come within minutes (Slack retries, Discord resumes); a day is plenty.
_EVENT_KEEP_SECONDS = 86400.0
_EVENT_PRUNE_EVERY = 1000

_COUNTERS = [f"{w}_{m}" for w in WINDOWS for m in METRICS]


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so string order is time order (and portable to any SQL)."""
    return moment.astimezone(UTC).strftime(_TS)


def _parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def _window_base(w: Window, m: Metric) -> str:
    """A counter's value in the incoming row's window: zero once that window has rolled over."""
    return f"(CASE WHEN excluded.{w}_key > quota_usage.{w}_key THEN 0 ELSE quota_usage.{w}_{m} END)"


def _fits(value: str, w: Window, m: Metric) -> str:
    # A limit only gates requests that use its metric: an exhausted token budget should not
    # block an image, and a lowered limit must not block everything at once.
    return f"(excluded.{w}_{m} = 0 OR :lim_{w}_{m} IS NULL OR {value} <= :lim_{w}_{m})"


# The quota gate: one conditional upsert per counter row. The INSERT branch is guarded by the
# SELECT's WHERE (a first reservation larger than the limit), the UPDATE branch by DO UPDATE's
# WHERE; no row comes back when the estimate does not fit. Portable to PostgreSQL as is.
GATE_SQL = (
    "INSERT INTO quota_usage (channel, user_id, day_key, month_key, "
    + ", ".join(_COUNTERS)
    + ") SELECT :channel, :user_id, :day_key, :month_key, "
    + ", ".join(f":e_{m}" for _w in WINDOWS for m in METRICS)
    + " WHERE "
    + " AND ".join(
        f"(:e_{m} = 0 OR :lim_{w}_{m} IS NULL OR :e_{m} <= :lim_{w}_{m})"
        for w in WINDOWS
        for m in METRICS
    )
    + " ON CONFLICT (channel, user_id) DO UPDATE SET "
    + ", ".join(
        f"{w}_key = CASE WHEN excluded.{w}_key > quota_usage.{w}_key "
        f"THEN excluded.{w}_key ELSE quota_usage.{w}_key END"
        for w in WINDOWS
    )
    + ", "
    + ", ".join(
        f"{w}_{m} = {_window_base(w, m)} + excluded.{w}_{m}" for w in WINDOWS for m in METRICS
    )
    + " WHERE "
    + " AND ".join(
        _fits(f"{_window_base(w, m)} + excluded.{w}_{m}", w, m) for w in WINDOWS for m in METRICS
    )
    + " RETURNING day_key, month_key"
)

# Settlement, release and expiry move a row's charge by a delta, in the windows it was
# charged to only (a window that has rolled over since is history; the ledger keeps it).
ADJUST_SQL = (
    "UPDATE quota_usage SET "
    + ", ".join(
        f"{w}_{m} = CASE WHEN {w}_key = :{w}_key THEN "
        f"CASE WHEN {w}_{m} + :d_{m} < 0 THEN 0 ELSE {w}_{m} + :d_{m} END ELSE {w}_{m} END"
        for w in WINDOWS
        for m in METRICS
    )
    + " WHERE channel = :channel AND user_id IN ('', :user_id)"
)

_LEDGER_COLS = (
    "id, created_at, platform, channel, user_id, command, model, requests, tokens_in, "
    "tokens_out, images, audio_seconds, status, est_requests, est_tokens_in, est_tokens_out, "
    "est_images, est_audio_seconds, finished_at, day_key, month_key"
)
_EST_RETURNING = (
    "channel, user_id, day_key, month_key, est_requests, est_tokens_in + est_tokens_out, "
    "est_images, est_audio_seconds"
)
_SETTLE_SQL = (
    "UPDATE ledger SET requests = :requests, tokens_in = :tokens_in, tokens_out = :tokens_out, "
    "images = :images, audio_seconds = :audio_seconds, status = :status, finished_at = :now, "
    "expires_at = NULL WHERE id = :id AND status = :was RETURNING " + _EST_RETURNING
)
_EXPIRE_SQL = (
    "UPDATE ledger SET requests = 0, tokens_in = 0, tokens_out = 0, images = 0, "
    "audio_seconds = 0, status = 'expired', finished_at = :now, expires_at = NULL "
    "WHERE status = 'pending' AND expires_at <= :now RETURNING " + _EST_RETURNING
)
_INSERT_LEDGER_SQL = (
    "INSERT INTO ledger (created_at, platform, channel, user_id, command, model, requests, "
    "tokens_in, tokens_out, images, audio_seconds, status, est_requests, est_tokens_in, "
    "est_tokens_out, est_images, est_audio_seconds, expires_at, day_key, month_key) VALUES "
    "(:now, :platform, :channel, :user_id, :command, :model, :requests, :tokens_in, "
    ":tokens_out, :images, :audio_seconds, :status, :e_requests, :tokens_in_est, "
    ":tokens_out_est, :e_images, :e_audio_seconds, :expires_at, :day_key, :month_key) "
    "RETURNING id"
)


def _metered(amounts: Amounts) -> dict[Metric, float]:
    # Every reservation is one request, whatever the caller put in `requests`.
    return {
        "requests": max(amounts.requests, 1),
        "tokens": amounts.tokens,
        "images": amounts.images,
        "audio_seconds": amounts.audio_seconds,
    }


def _deltas(
    row: sqlite3.Row | tuple[Any, ...], new: dict[Metric, float] | None, *, had_charge: bool
) -> dict[str, Any]:
    """Parameters for ADJUST_SQL from a RETURNING row (_EST_RETURNING) and the new charge."""
    old: dict[Metric, float] = (
        dict(zip(METRICS, (row[4], row[5], row[6], row[7]), strict=True))
        if had_charge
        else dict.fromkeys(METRICS, 0.0)
    )
    params: dict[str, Any] = {
        "channel": row[0],
        "user_id": row[1],
        "day_key": row[2],
        "month_key": row[3],
    }
    for m in METRICS:
        params[f"d_{m}"] = (new[m] if new else 0) - old[m]
    return params


_REFUSED: dict[str, Any] = {
    "status": "refused",
    "requests": 0,
    "tokens_in": 0,
    "tokens_out": 0,
    "images": 0,
    "audio_seconds": 0,
    "expires_at": None,
}


@dataclass(frozen=True, slots=True)
class _Limits:
    channel: dict[tuple[Metric, Window], float | None]
    overridden: frozenset[tuple[Metric, Window]]
    user: dict[tuple[Metric, Window], float | None]
    # The same as GATE_SQL parameters (lim_day_tokens, ...), built once.
    channel_params: dict[str, float | None]
    user_params: dict[str, float | None]

    @classmethod
    def of(
        cls,
        channel: dict[tuple[Metric, Window], float | None],
        overridden: frozenset[tuple[Metric, Window]],
        share: float | None,
    ) -> _Limits:
        user = {
            k: (None if v is None or share is None else _user_cap(k[0], v, share))
            for k, v in channel.items()
        }
        return cls(channel, overridden, user, _lim_params(channel), _lim_params(user))


class SqliteStore:
    """The Store protocol on SQLite. One aiosqlite connection; every transaction runs whole
    on that connection's thread, so statements of concurrent tasks never interleave inside
    a transaction and a reserve or settle costs one hop to the thread, not one per statement.
    Other processes (the operator CLI) share the file through WAL and busy_timeout."""

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
        self._events_seen = 0
        self._writes = GroupCommit(raw, self._run)
        self._checkpointer: Checkpointer | None = None
        self._defaults = _Limits.of(
            {(m, w): quota.default_limit(m, w) for m in METRICS for w in WINDOWS},
            frozenset(),
            quota.user_share,
        )

    @classmethod
    async def open(
        cls, path: str | Path, quota: QuotaConfig | None = None, *, clock: Clock | None = None
    ) -> SqliteStore:
        """Open (creating and migrating as needed) the database at `path`."""
        where = str(path)
        if where != ":memory:":
            await asyncio.to_thread(Path(where).parent.mkdir, parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; timeout is busy_timeout.
        db = await aiosqlite.connect(where, isolation_level=None, timeout=10.0)
        try:
            raw = db._conn
            store = cls(
                db, raw, where, quota or QuotaConfig(), clock or (lambda: datetime.now(UTC))
            )
            await store._run(store._setup)
            if where != ":memory:":
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
        conn.execute(f"PRAGMA wal_autocheckpoint = {INLINE_PAGES}")  # see storage/checkpointer.py
        migrate(conn, self._where)

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the connection's own thread.

        aiosqlite has no public call for running a function there; `_execute` is the method
        all of its own statements go through. A whole transaction in one hop is what makes
        the gate both atomic among our tasks and fast (see bench/bench_quota.py).
        """
        execute = cast(Callable[[Callable[[], T]], Awaitable[T]], self._db._execute)
        return await execute(fn)

    async def close(self) -> None:
        await self._writes.drain()
        if self._checkpointer is not None:
            await self._checkpointer.close()
        await self._db.close()

    # --- channel settings --------------------------------------------------------------

    async def channel_settings(self, channel: str) -> ChannelSettings:
        return await self._run(lambda: _read_settings(self._raw, channel))

    async def set_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        now = _ts(self._clock())
        await self._run(lambda: _write_settings(self._raw, channel, settings, now))

    async def update_channel_settings(
        self, channel: str, change: Callable[[ChannelSettings], ChannelSettings]
    ) -> ChannelSettings:
        now = _ts(self._clock())

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
        self._events_seen += 1
        prune = self._events_seen % _EVENT_PRUNE_EVERY == 0
        cutoff = _ts(datetime.fromtimestamp(now.timestamp() - _EVENT_KEEP_SECONDS, UTC))

        def insert() -> bool:
            rows = self._raw.execute(
                "INSERT INTO events (event_id, seen_at) VALUES (?, ?) "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (event_id, _ts(now)),
            ).fetchall()
            if prune:
                self._raw.execute("DELETE FROM events WHERE seen_at < ?", (cutoff,))
            return bool(rows)

        return await self._run(insert)

    # --- quota: reserve, settle, release, expire ---------------------------------------

    async def reserve(
        self, charge: Charge, estimate: Amounts, *, now: datetime | None = None
    ) -> Reservation:
        moment = now or self._clock()
        keys = self.quota.window_keys(moment)
        want = _metered(estimate)
        params: dict[str, Any] = {
            "now": _ts(moment),
            "expires_at": _ts(moment + self.quota.reservation_ttl),
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
            "user_id": charge.user,
            "status": "pending",
        }
        for m in METRICS:
            params[f"e_{m}"] = want[m]

        def gate(conn: sqlite3.Connection, limits: _Limits) -> QuotaExceeded | None:
            """The channel's counters, then the user's; None when both took the estimate."""
            base = {k: params[k] for k in _GATE_BASE}
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
            conn.execute("SAVEPOINT gate")
            refused = gate(conn, limits)
            # Stale reservations (a crashed process) are swept only when they could matter:
            # when the budget looks spent. Then the gate gets a second look.
            if refused is not None:
                conn.execute("ROLLBACK TO gate")
                if _expire(conn, params["now"]):
                    refused = gate(conn, limits)
            conn.execute("RELEASE gate")
            if refused is None:
                return int(conn.execute(_INSERT_LEDGER_SQL, params).fetchone()[0])
            # Every request leaves a ledger row, refused ones too (with nothing charged).
            conn.execute(_INSERT_LEDGER_SQL, {**params, **_REFUSED})
            return refused

        result = await self._writes.run(reserve)
        if isinstance(result, QuotaExceeded):
            raise result
        return Reservation(id=result, charge=charge, estimate=estimate)

    async def settle(
        self, reservation: Reservation, actual: Amounts, status: Status = "ok"
    ) -> None:
        new = _metered(actual)
        params: dict[str, Any] = {
            "id": reservation.id,
            "now": _ts(self._clock()),
            "status": status,
            "requests": new["requests"],
            "tokens_in": actual.tokens_in,
            "tokens_out": actual.tokens_out,
            "images": actual.images,
            "audio_seconds": actual.audio_seconds,
        }
        await self._writes.run(lambda conn: _finish(conn, params, new))

    async def release(self, reservation: Reservation, status: Status = "error") -> None:
        params: dict[str, Any] = {
            "id": reservation.id,
            "now": _ts(self._clock()),
            "status": status,
            "requests": 0,
            "tokens_in": 0,
            "tokens_out": 0,
            "images": 0,
            "audio_seconds": 0.0,
        }
        await self._writes.run(lambda conn: _finish(conn, params, None))

    async def expire_stale(self, *, now: datetime | None = None) -> int:
        stamp = _ts(now or self._clock())
        return await self._writes.run(lambda conn: _expire(conn, stamp))

    def _limits(self, conn: sqlite3.Connection, channel: str) -> _Limits:
        """Read on every reserve, so a limit set by the CLI (another process) applies at once."""
        rows = conn.execute(
            "SELECT metric, period, value FROM quota_limits WHERE channel = ?", (channel,)
        ).fetchall()
        if not rows:
            return self._defaults
        limits = dict(self._defaults.channel)
        overridden = set()
        for metric, period, value in rows:
            key = cast(tuple[Metric, Window], (metric, period))
            if key in limits:
                limits[key] = value
                overridden.add(key)
        return _Limits.of(limits, frozenset(overridden), self.quota.user_share)

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
        # Month first: when both windows are full, the later reset is the one that matters.
        for w in ("month", "day"):
            for m in METRICS:
                limit = limits[(m, w)]
                if limit is None or want[m] == 0:
                    continue
                used = 0.0
                if row is not None and row[f"{w}_key"] >= keys.of(w):
                    used = float(row[f"{w}_{m}"])
                if used + want[m] > limit:
                    return QuotaExceeded(
                        m,
                        w,
                        limit,
                        used,
                        self.quota.resets_at(w, moment),
                        needed=want[m],
                        scope="user" if user_id else "channel",
                    )
        raise AssertionError("the quota gate refused but no limit is exceeded")

    # --- quota administration ----------------------------------------------------------

    async def limits(self, channel: str) -> tuple[LimitSetting, ...]:
        found = await self._run(lambda: self._limits(self._raw, channel))
        return _settings_of(found)

    async def set_limit(
        self, channel: str, metric: Metric, window: Window, value: float | None
    ) -> None:
        if value is not None and value < 0:
            raise ValueError("a limit cannot be negative")
        now = _ts(self._clock())
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
                f"SELECT {_EST_RETURNING} FROM ledger WHERE channel = ? AND status = 'pending'",
                (channel,),
            ).fetchall()
            for row in pending:
                params = _deltas(row, None, had_charge=True)
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
            _expire(conn, _ts(moment))
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
                        top_users=_top(conn, "user_id", channel, w, keys, top),
                        top_models=_top(conn, "model", channel, w, keys, top),
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
                limits=_settings_of(limits),
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

    # --- ledger ------------------------------------------------------------------------

    async def ledger(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[LedgerRow]:
        rows = await self._db.execute_fetchall(
            f"SELECT {_LEDGER_COLS} FROM ledger WHERE id > ? AND (? IS NULL OR channel = ?) "
            "ORDER BY id LIMIT ?",
            (after_id, channel, channel, -1 if limit is None else limit),
        )
        return [_ledger_row(r) for r in rows]


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


_GATE_BASE = ("channel", "day_key", "month_key", *(f"e_{m}" for m in METRICS))


def _lim_params(limits: dict[tuple[Metric, Window], float | None]) -> dict[str, float | None]:
    return {f"lim_{w}_{m}": limits[(m, w)] for m in METRICS for w in WINDOWS}


def _user_cap(metric: Metric, limit: float, share: float) -> float:
    cap = limit * share
    # Counts round down but never to zero: a share must leave each person at least one.
    return cap if metric == "audio_seconds" else float(max(int(cap), 1))


def _finish(
    conn: sqlite3.Connection, params: dict[str, Any], new: dict[Metric, float] | None
) -> None:
    """Settle (new = real usage) or release (new = None) a reservation, exactly once."""
    row = conn.execute(_SETTLE_SQL, {**params, "was": "pending"}).fetchone()
    if row is not None:
        conn.execute(ADJUST_SQL, _deltas(row, new, had_charge=True))
        return
    # Expired meanwhile (the call outlived the TTL): the estimate was given back, so the real
    # usage is charged afresh; a release has nothing left to give back.
    row = conn.execute(_SETTLE_SQL, {**params, "was": "expired"}).fetchone()
    if row is not None and new is not None:
        conn.execute(ADJUST_SQL, _deltas(row, new, had_charge=False))
    # Anything else was settled or released already: doing it twice must not count twice.


def _expire(conn: sqlite3.Connection, now: str) -> int:
    rows = conn.execute(_EXPIRE_SQL, {"now": now}).fetchall()
    for row in rows:
        conn.execute(ADJUST_SQL, _deltas(row, None, had_charge=True))
    return len(rows)


def _read_settings(conn: sqlite3.Connection, channel: str) -> ChannelSettings:
    row = conn.execute(
        "SELECT model, system_prompt, temperature, max_tokens, auto_transcribe "
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
    )


def _write_settings(conn: sqlite3.Connection, channel: str, s: ChannelSettings, now: str) -> None:
    conn.execute(
        "INSERT INTO channel_settings (channel, model, system_prompt, temperature, max_tokens, "
        "auto_transcribe, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel) DO "
        "UPDATE SET model = excluded.model, system_prompt = excluded.system_prompt, "
        "temperature = excluded.temperature, max_tokens = excluded.max_tokens, "
        "auto_transcribe = excluded.auto_transcribe, updated_at = excluded.updated_at",
        (
            channel,
            s.model,
            s.system_prompt,
            s.temperature,
            s.max_tokens,
            int(s.auto_transcribe),
            now,
        ),
    )


def _top(
    conn: sqlite3.Connection, column: str, channel: str, w: Window, keys: WindowKeys, top: int
) -> tuple[Spender, ...]:
    # `column` and `w` come from our own code, never from input.
    rows = conn.execute(
        f"SELECT {column}, SUM(requests), SUM(tokens_in + tokens_out), SUM(images), "
        f"SUM(audio_seconds) FROM ledger WHERE channel = ? AND month_key = ? AND {w}_key = ? "
        f"GROUP BY {column} HAVING SUM(requests) > 0 "
        "ORDER BY 3 DESC, 2 DESC, 1 LIMIT ?",
        (channel, keys.month, keys.of(w), top),
    ).fetchall()
    return tuple(
        Spender(
            name=str(r[0]),
            requests=int(r[1]),
            tokens=int(r[2]),
            images=int(r[3]),
            audio_seconds=float(r[4]),
        )
        for r in rows
    )


def _settings_of(limits: _Limits) -> tuple[LimitSetting, ...]:
    return tuple(
        LimitSetting(
            metric=m, window=w, value=limits.channel[(m, w)], overridden=(m, w) in limits.overridden
        )
        for w in WINDOWS
        for m in METRICS
    )


def _amounts(values: Iterable[Any]) -> Amounts:
    r, ti, to, im, au = values
    return Amounts(
        requests=int(r),
        tokens_in=int(ti),
        tokens_out=int(to),
        images=int(im),
        audio_seconds=float(au),
    )


def _ledger_row(r: Any) -> LedgerRow:
    created = _parse_ts(r[1])
    assert created is not None
    return LedgerRow(
        id=int(r[0]),
        created_at=created,
        charge=Charge(platform=r[2], channel=r[3], user=r[4], command=r[5], model=r[6]),
        amounts=_amounts(r[7:12]),
        status=str(r[12]),
        estimate=_amounts(r[13:18]),
        finished_at=_parse_ts(r[18]),
        day=str(r[19]),
        month=str(r[20]),
    )


async def open_store(
    path: str | Path, quota: QuotaConfig | None = None, *, clock: Clock | None = None
) -> SqliteStore:
    """Open the SQLite store (the service's default backend)."""
    return await SqliteStore.open(path, quota, clock=clock)
