"""The quota ledger in SQL: the gate's conditional upsert, counter adjustments, ledger rows.

Plain functions over a sqlite3 connection, run on the store's DB thread inside a transaction.
The statements are kept portable (INSERT ... ON CONFLICT ... DO UPDATE ... WHERE ...
RETURNING works as is on PostgreSQL); only the parameter style would change.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any, Literal

from storage.base import (
    METRICS,
    WINDOWS,
    Metric,
    Spender,
    Window,
    WindowKeys,
)
from storage.limits import spenders_of

_TS = "%Y-%m-%dT%H:%M:%S.%fZ"


_COUNTERS = [f"{w}_{m}" for w in WINDOWS for m in METRICS]


def ts(moment: datetime) -> str:
    """Fixed-width UTC text, so string order is time order (and portable to any SQL)."""
    return moment.astimezone(UTC).strftime(_TS)


def parse_ts(text: str | None) -> datetime | None:
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


LEDGER_COLS = (
    "id, created_at, platform, channel, user_id, command, model, requests, tokens_in, "
    "tokens_out, images, audio_seconds, status, est_requests, est_tokens_in, est_tokens_out, "
    "est_images, est_audio_seconds, finished_at, day_key, month_key, user_name, cost, "
    "est_cost, currency, price_input, price_output, price_image, price_audio_minute"
)


EST_RETURNING = (
    "channel, user_id, day_key, month_key, est_requests, est_tokens_in + est_tokens_out, "
    "est_images, est_audio_seconds, est_cost"
)


SETTLE_SQL = (
    "UPDATE ledger SET requests = :requests, tokens_in = :tokens_in, tokens_out = :tokens_out, "
    "images = :images, audio_seconds = :audio_seconds, cost = :cost, status = :status, "
    "finished_at = :now, expires_at = NULL WHERE id = :id AND status = :was RETURNING "
    + EST_RETURNING
)


EXPIRE_SQL = (
    "UPDATE ledger SET requests = 0, tokens_in = 0, tokens_out = 0, images = 0, "
    "audio_seconds = 0, cost = 0, status = 'expired', finished_at = :now, expires_at = NULL "
    "WHERE status = 'pending' AND expires_at <= :now RETURNING " + EST_RETURNING
)


INSERT_LEDGER_SQL = (
    "INSERT INTO ledger (created_at, platform, channel, user_id, user_name, command, model, "
    "requests, "
    "tokens_in, tokens_out, images, audio_seconds, cost, status, est_requests, est_tokens_in, "
    "est_tokens_out, est_images, est_audio_seconds, est_cost, expires_at, day_key, month_key, "
    "currency, price_input, price_output, price_image, price_audio_minute) VALUES "
    "(:now, :platform, :channel, :user_id, :user_name, :command, :model, :requests, :tokens_in, "
    ":tokens_out, :images, :audio_seconds, :cost, :status, :e_requests, :tokens_in_est, "
    ":tokens_out_est, :e_images, :e_audio_seconds, :e_cost, :expires_at, :day_key, :month_key, "
    ":currency, :price_input, :price_output, :price_image, :price_audio_minute) "
    "RETURNING id"
)


def deltas(
    row: sqlite3.Row | tuple[Any, ...], new: dict[Metric, float] | None, *, had_charge: bool
) -> dict[str, Any]:
    """Parameters for ADJUST_SQL from a RETURNING row (EST_RETURNING) and the new charge."""
    old: dict[Metric, float] = (
        dict(zip(METRICS, (row[4], row[5], row[6], row[7], row[8]), strict=True))
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


REFUSED: dict[str, Any] = {
    "status": "refused",
    "requests": 0,
    "tokens_in": 0,
    "tokens_out": 0,
    "images": 0,
    "audio_seconds": 0,
    "cost": 0,
    "expires_at": None,
}


GATE_BASE = ("channel", "day_key", "month_key", *(f"e_{m}" for m in METRICS))


def finish(
    conn: sqlite3.Connection, params: dict[str, Any], new: dict[Metric, float] | None
) -> None:
    """Settle (new = real usage) or release (new = None) a reservation, exactly once."""
    row = conn.execute(SETTLE_SQL, {**params, "was": "pending"}).fetchone()
    if row is not None:
        conn.execute(ADJUST_SQL, deltas(row, new, had_charge=True))
        return
    # Expired meanwhile (the call outlived the TTL): the estimate was given back, so the real
    # usage is charged afresh; a release has nothing left to give back.
    row = conn.execute(SETTLE_SQL, {**params, "was": "expired"}).fetchone()
    if row is not None and new is not None:
        conn.execute(ADJUST_SQL, deltas(row, new, had_charge=False))
    # Anything else was settled or released already: doing it twice must not count twice.


def expire(conn: sqlite3.Connection, now: str) -> int:
    rows = conn.execute(EXPIRE_SQL, {"now": now}).fetchall()
    for row in rows:
        conn.execute(ADJUST_SQL, deltas(row, None, had_charge=True))
    return len(rows)


def top_spenders(
    conn: sqlite3.Connection,
    by: Literal["user", "model"],
    channel: str,
    w: Window,
    keys: WindowKeys,
    top: int,
) -> tuple[Spender, ...]:
    """The biggest users or models of a window, by cost, then tokens, then requests."""
    # People are grouped by id (stable) and shown by a name they used (names change).
    column, label = (
        ("user_id", "COALESCE(NULLIF(MAX(user_name), ''), user_id)")
        if by == "user"
        else ("model", "model")
    )
    rows = conn.execute(
        f"SELECT {label}, SUM(requests), SUM(tokens_in + tokens_out), SUM(images), "
        f"SUM(audio_seconds), SUM(cost) FROM ledger "
        f"WHERE channel = ? AND month_key = ? AND {w}_key = ? "
        f"GROUP BY {column} HAVING SUM(requests) > 0 "
        f"ORDER BY 6 DESC, 3 DESC, 2 DESC, {column} LIMIT ?",
        (channel, keys.month, keys.of(w), top),
    ).fetchall()
    return spenders_of(rows)
