"""The quota ledger's SQL for PostgreSQL, written with :name parameters: the gate's
reservation and settlement (bodies of the batch function in storage/postgres/gate.py) and the
statements the store sends on their own."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from storage.base import METRICS, WINDOWS, Metric, Window

PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
# The SQL type of each metric's counters and amounts.
SQL_TYPE: dict[Metric, str] = {
    "requests": "bigint",
    "tokens": "bigint",
    "images": "bigint",
    "audio_seconds": "float8",
    "cost": "bigint",  # micro-units of the price table's currency (storage.base.MICRO)
}


class Named:
    """A statement written with :name parameters, sent with asyncpg's $n ones."""

    def __init__(self, text: str) -> None:
        self.names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.names:
                self.names.append(name)
            return f"${self.names.index(name) + 1}"

        self.text = PARAMETER.sub(number, text)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


_COUNTERS = [f"{w}_{m}" for w in WINDOWS for m in METRICS]


def _estimate(m: Metric) -> str:
    return f":e_{m}::{SQL_TYPE[m]}"


def _limit(scope: str, w: Window, m: Metric) -> str:
    """A limit in force, from the record CAPS was read into just before the gate."""
    return f"v_cap.{scope}_{w}_{m}"


def _override(w: Window, m: Metric) -> str:
    """The channel's override of one limit (its value, NULL meaning unlimited), else the
    service default; the same rule as storage/limits.py's Limits.overridden_by."""
    mine = f"metric = '{m}' AND period = '{w}'"
    return (
        f"CASE WHEN bool_or({mine}) THEN max(value) FILTER (WHERE {mine}) "
        f"ELSE :def_{w}_{m}::float8 END AS ch_{w}_{m}"
    )


def _cap(w: Window, m: Metric) -> str:
    """One user's share of a channel limit: storage/limits.py's user_cap, in SQL."""
    share = f"ch_{w}_{m} * :share::float8"
    capped = share if m == "audio_seconds" else f"GREATEST(floor({share}), 1)"
    return (
        f"CASE WHEN :share::float8 IS NULL OR ch_{w}_{m} IS NULL THEN NULL "
        f"ELSE {capped} END AS us_{w}_{m}"
    )


# The limits in force for the channel, read right before each reservation in the same
# transaction (after its counter rows are locked): a limit an operator sets (another process)
# applies to the very next reservation.
_CAPS = (
    "lim AS (SELECT "
    + ", ".join(_override(w, m) for w in WINDOWS for m in METRICS)
    + " FROM quota_limits WHERE channel = :channel), caps AS (SELECT lim.*, "
    + ", ".join(_cap(w, m) for w in WINDOWS for m in METRICS)
    + " FROM lim)"
)
CAPS = f"WITH {_CAPS} SELECT * FROM caps"


def _base(w: Window, m: Metric) -> str:
    """A counter's value in the incoming row's window: zero once that window has rolled over."""
    return f"(CASE WHEN excluded.{w}_key > q.{w}_key THEN 0 ELSE q.{w}_{m} END)"


def _row_limit(w: Window, m: Metric) -> str:
    """The limit for the row being gated: the channel's on its own row, the share on a user's."""
    return f"(CASE WHEN q.user_id = '' THEN {_limit('ch', w, m)} ELSE {_limit('us', w, m)} END)"


def _fresh_fits(scope: str) -> str:
    """Whether a first reservation fits a counter row that does not exist yet."""
    return " AND ".join(
        f"({_estimate(m)} = 0 OR {_limit(scope, w, m)} IS NULL "
        f"OR {_estimate(m)} <= {_limit(scope, w, m)})"
        for w in WINDOWS
        for m in METRICS
    )


def _fits(w: Window, m: Metric) -> str:
    # A limit only gates requests that use its metric: an exhausted token budget should not
    # block an image, and a lowered limit must not block everything at once.
    value = f"{_base(w, m)} + excluded.{w}_{m}"
    return f"(excluded.{w}_{m} = 0 OR {_row_limit(w, m)} IS NULL OR {value} <= {_row_limit(w, m)})"


# What a request is charged at, kept with its ledger row (a later price change applies to
# new requests only).
_RATES = "currency, price_input, price_output, price_image, price_audio_minute"
_RATE_VALUES = (
    ":currency::text, :price_input::bigint, :price_output::bigint, :price_image::bigint, "
    ":price_audio_minute::bigint"
)

_KNOWN = "(SELECT {w}_key FROM quota_usage WHERE channel = :channel AND user_id = '')"

# The reservation: both counter rows (the channel's, user_id '', and the user's) gated by one
# INSERT ... ON CONFLICT ... DO UPDATE ... WHERE ... RETURNING against the limits in force
# (v_cap), and the ledger row written only when both took the estimate. It answers how many
# rows took it, which one when only one did (the batch function puts that row back) and the
# ledger id. Rows are locked in user_id order ('' first) here and in every other statement that
# changes counters, so concurrent statements never deadlock. A window key never goes back: a
# replica whose clock lags charges the channel's current window.
RESERVE = (
    "WITH gate AS (INSERT INTO quota_usage AS q (channel, user_id, day_key, month_key, "
    + ", ".join(_COUNTERS)
    + ") SELECT :channel, v.user_id, "
    + ", ".join(f"GREATEST(:{w}_key::text, COALESCE({_KNOWN.format(w=w)}, ''))" for w in WINDOWS)
    + ", "
    + ", ".join(_estimate(m) for _w in WINDOWS for m in METRICS)
    + f" FROM (VALUES ('', {_fresh_fits('ch')}), (:user_id::text, {_fresh_fits('us')})) "
    "AS v(user_id, fits) WHERE v.fits ORDER BY v.user_id"
    " ON CONFLICT (channel, user_id) DO UPDATE SET "
    + ", ".join(f"{w}_key = GREATEST(q.{w}_key, excluded.{w}_key)" for w in WINDOWS)
    + ", "
    + ", ".join(f"{w}_{m} = {_base(w, m)} + excluded.{w}_{m}" for w in WINDOWS for m in METRICS)
    + " WHERE "
    + " AND ".join(_fits(w, m) for w in WINDOWS for m in METRICS)
    + " RETURNING q.user_id, q.day_key, q.month_key), "
    "passed AS (SELECT count(*) AS n, max(user_id) AS lone, "
    "max(day_key) FILTER (WHERE user_id = '') AS day_key, "
    "max(month_key) FILTER (WHERE user_id = '') AS month_key FROM gate), "
    "written AS (INSERT INTO ledger (created_at, platform, channel, user_id, user_name, command, "
    "model, requests, tokens_in, tokens_out, images, audio_seconds, cost, status, est_requests, "
    "est_tokens_in, est_tokens_out, est_images, est_audio_seconds, est_cost, expires_at, "
    f"day_key, month_key, {_RATES}) SELECT :now, :platform, :channel, :user_id, :user_name, "
    ":command, :model, :e_requests, :tokens_in::bigint, :tokens_out::bigint, :e_images, "
    ":e_audio_seconds, :e_cost, 'pending', :e_requests, :tokens_in, :tokens_out, :e_images, "
    f":e_audio_seconds, :e_cost, :expires_at, p.day_key, p.month_key, {_RATE_VALUES} "
    "FROM passed p WHERE p.n = 2 RETURNING id) "
    "SELECT p.n, p.lone, (SELECT id FROM written) FROM passed p"
)

REFUSED = Named(
    "INSERT INTO ledger (created_at, platform, channel, user_id, user_name, command, model, "
    "status, est_requests, est_tokens_in, est_tokens_out, est_images, est_audio_seconds, "
    f"est_cost, day_key, month_key, {_RATES}) VALUES (:now, :platform, :channel, :user_id, "
    ":user_name, :command, :model, 'refused', :e_requests::bigint, :tokens_in::bigint, "
    ":tokens_out::bigint, :e_images::bigint, :e_audio_seconds::float8, :e_cost::bigint, "
    f":day_key, :month_key, {_RATE_VALUES})"
)

COUNTERS = Named(
    "SELECT user_id, day_key, month_key, "
    + ", ".join(_COUNTERS)
    + " FROM quota_usage WHERE channel = :channel AND user_id IN ('', :user_id)"
)


def _delta(w: Window, m: Metric) -> str:
    est = "d.est_tokens_in + d.est_tokens_out" if m == "tokens" else f"d.est_{m}"
    change = f":n_{m}::{SQL_TYPE[m]} - CASE WHEN :had_charge::boolean THEN {est} ELSE 0 END"
    # Only in the window the request was charged to; a rolled-over window is history.
    return (
        f"{w}_{m} = CASE WHEN q.{w}_key = d.{w}_key "
        f"THEN GREATEST(q.{w}_{m} + {change}, 0) ELSE q.{w}_{m} END"
    )


# Settle, release or expire one reservation, exactly once: the ledger row changes only from
# the status `was` (and, for expiry, only once due), and its counters move by the difference
# between what it held and what it now charges.
FINISH = (
    "WITH done AS (UPDATE ledger SET requests = :n_requests, tokens_in = :tokens_in, "
    "tokens_out = :tokens_out, images = :n_images, audio_seconds = :n_audio_seconds, "
    "cost = :n_cost, status = :status, finished_at = :now, expires_at = NULL "
    "WHERE id = :id AND status = :was AND (:due::timestamptz IS NULL OR expires_at <= :due) "
    "RETURNING channel, user_id, day_key, month_key, est_requests, est_tokens_in, "
    "est_tokens_out, est_images, est_audio_seconds, est_cost), "
    "locked AS (SELECT q.channel, q.user_id FROM quota_usage q JOIN done d ON "
    "q.channel = d.channel AND q.user_id IN ('', d.user_id) ORDER BY q.user_id FOR UPDATE OF q), "
    "moved AS (UPDATE quota_usage q SET "
    + ", ".join(_delta(w, m) for w in WINDOWS for m in METRICS)
    + " FROM done d, locked l WHERE q.channel = l.channel AND q.user_id = l.user_id RETURNING 1) "
    "SELECT count(*) FROM done"
)

DUE = Named(
    "SELECT id, channel, user_id FROM ledger WHERE status = 'pending' AND expires_at <= :now "
    "ORDER BY id LIMIT 500"
)

LEDGER_COLS = (
    "id, created_at, platform, channel, user_id, command, model, requests, tokens_in, "
    "tokens_out, images, audio_seconds, status, est_requests, est_tokens_in, est_tokens_out, "
    "est_images, est_audio_seconds, finished_at, day_key, month_key, user_name, cost, "
    "est_cost, currency, price_input, price_output, price_image, price_audio_minute"
)

# Give a channel a fresh budget in the current windows: zero its counters (locked in order),
# then put back what requests still in flight hold, so settling them stays exact.
RESET = Named(
    "WITH locked AS (SELECT channel, user_id FROM quota_usage WHERE channel = :channel "
    "ORDER BY user_id FOR UPDATE), "
    "held AS (SELECT user_id, day_key, month_key, est_requests AS requests, "
    "est_tokens_in + est_tokens_out AS tokens, est_images AS images, "
    "est_audio_seconds AS audio_seconds, est_cost AS cost FROM ledger WHERE channel = :channel "
    "AND status = 'pending'), "
    "totals AS (SELECT l.user_id, "
    + ", ".join(
        f"COALESCE(SUM(h.{m}) FILTER (WHERE h.{w}_key = :{w}_key), 0) AS {w}_{m}"
        for w in WINDOWS
        for m in METRICS
    )
    + " FROM locked l LEFT JOIN held h ON l.user_id IN ('', h.user_id) GROUP BY l.user_id) "
    "UPDATE quota_usage q SET "
    + ", ".join(
        f"{w}_{m} = CASE WHEN q.{w}_key = :{w}_key THEN t.{w}_{m} ELSE q.{w}_{m} END"
        for w in WINDOWS
        for m in METRICS
    )
    + " FROM totals t WHERE q.channel = :channel AND q.user_id = t.user_id"
)


def top_spenders_sql(by: str) -> Named:
    """The biggest users or models of a window, by cost, then tokens, then requests."""
    # People are grouped by id (stable) and shown by a name they used (names change).
    column, label = (
        ("user_id", "COALESCE(NULLIF(MAX(user_name), ''), user_id)")
        if by == "user"
        else ("model", "model")
    )
    return Named(
        f"SELECT {label}, SUM(requests), SUM(tokens_in + tokens_out), SUM(images), "
        "SUM(audio_seconds), SUM(cost) FROM ledger WHERE channel = :channel "
        "AND month_key = :month_key AND (:day_key::text IS NULL OR day_key = :day_key) "
        f"GROUP BY {column} HAVING SUM(requests) > 0 ORDER BY 6 DESC, 3 DESC, 2 DESC, {column} "
        "LIMIT :top"
    )


TOP_USERS = top_spenders_sql("user")
TOP_MODELS = top_spenders_sql("model")
