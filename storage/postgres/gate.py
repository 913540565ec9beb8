"""The quota gate as one PL/pgSQL function that runs a batch of reservations and settlements."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.base import METRICS, WINDOWS
from storage.postgres.quota import CAPS, FINISH, PARAMETER, RESERVE, SQL_TYPE

Kind = Literal["reserve", "settle", "release", "expire"]

# One item of a batch: everything a reservation or a settlement needs, as one composite value.
# `kind` says which: reserve; settle (real usage, charged afresh if the hold expired
# meanwhile); release (nothing charged); expire (a hold past its TTL given back, once due).
FIELDS: tuple[tuple[str, str], ...] = (
    ("kind", "text"),
    ("channel", "text"),
    ("user_id", "text"),
    ("id", "bigint"),
    ("now", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("due", "timestamptz"),
    ("status", "text"),
    ("platform", "text"),
    ("user_name", "text"),
    ("command", "text"),
    ("model", "text"),
    ("day_key", "text"),
    ("month_key", "text"),
    ("tokens_in", "bigint"),
    ("tokens_out", "bigint"),
    ("currency", "text"),
    ("price_input", "bigint"),
    ("price_output", "bigint"),
    ("price_image", "bigint"),
    ("price_audio_minute", "bigint"),
    *((f"e_{m}", SQL_TYPE[m]) for m in METRICS),
    *((f"n_{m}", SQL_TYPE[m]) for m in METRICS),
    *((f"def_{w}_{m}", "float8") for w in WINDOWS for m in METRICS),
    ("share", "float8"),
)
NAMES = tuple(name for name, _ in FIELDS)
# What a finish that charges nothing (a release, an expiry) settles at.
NOTHING: dict[str, Any] = {
    **{f"n_{m}": 0.0 if m == "audio_seconds" else 0 for m in METRICS},
    "tokens_in": 0,
    "tokens_out": 0,
}
CHANNEL, USER = NAMES.index("channel"), NAMES.index("user_id")


def _render(text: str, local: Mapping[str, str] = {}) -> str:
    """A :name statement as PL/pgSQL: each name a field of the item, or a local variable."""

    def name(match: re.Match[str]) -> str:
        field = match.group(1)
        if field in local:
            return local[field]
        if field not in NAMES:
            raise KeyError(f"the gate's statements use :{field}, which no item field carries")
        return f"v_item.{field}"

    return PARAMETER.sub(name, text)


_FINISH = _render(FINISH, {"was": "v_was", "had_charge": "v_had_charge"})

# {item} and {gate} stand for the type's and the function's names, filled in below.
_DDL = f"""
CREATE TYPE {{item}} AS ({", ".join(f"{n} {t}" for n, t in FIELDS)});

CREATE FUNCTION {{gate}}(items {{item}}[]) RETURNS bigint[]
LANGUAGE plpgsql AS $gate$
DECLARE
    v_item {{item}};
    v_cap record;
    v_cap_channel text;
    v_saved quota_usage[];
    v_passed bigint;
    v_lone text;
    v_outcome bigint;
    v_was text;
    v_had_charge boolean;
    v_outcomes bigint[] := '{{}}';
BEGIN
    FOREACH v_item IN ARRAY items LOOP
        -- The channel's counter row, then the user's, locked before anything else (and the
        -- client sends items sorted by channel and user): batches from several replicas take
        -- their locks in one order and never deadlock, and a ledger row is only ever locked
        -- by whoever holds its counters.
        IF v_item.kind = 'reserve' THEN
            v_saved := ARRAY(
                SELECT q FROM quota_usage q
                WHERE q.channel = v_item.channel AND q.user_id IN ('', v_item.user_id)
                ORDER BY q.user_id FOR UPDATE
            );
            -- The limits are read once per channel and batch (items come sorted by channel).
            IF v_cap_channel IS DISTINCT FROM v_item.channel THEN
                {_render(CAPS)} INTO v_cap;
                v_cap_channel := v_item.channel;
            END IF;
            {_render(RESERVE)} INTO v_passed, v_lone, v_outcome;
            IF v_passed = 1 THEN
                -- One row had room and the other not: the row the gate changed is put back
                -- as it was (or removed, if the gate made it), so nothing was charged.
                DELETE FROM quota_usage q WHERE q.channel = v_item.channel AND q.user_id = v_lone;
                INSERT INTO quota_usage SELECT * FROM unnest(v_saved) s WHERE s.user_id = v_lone;
            END IF;
        ELSE
            PERFORM FROM quota_usage q
            WHERE q.channel = v_item.channel AND q.user_id IN ('', v_item.user_id)
            ORDER BY q.user_id FOR UPDATE;
            v_was := 'pending';
            v_had_charge := true;
            {_FINISH} INTO v_outcome;
            IF v_outcome = 0 AND v_item.kind = 'settle' THEN
                -- Expired meanwhile (the call outlived the TTL): the estimate was given back,
                -- so the real usage is charged afresh. Anything else was finished already.
                v_was := 'expired';
                v_had_charge := false;
                {_FINISH} INTO v_outcome;
            END IF;
        END IF;
        v_outcomes := v_outcomes || v_outcome;
    END LOOP;
    RETURN v_outcomes;
END
$gate$;
"""

# Named after their text: a rolling deploy's old and new replicas each call their own version,
# and a changed statement can never run under an old name.
_DIGEST = hashlib.sha256(_DDL.encode()).hexdigest()[:12]
ITEM_TYPE = f"chatops_gate_item_{_DIGEST}"
FUNCTION = f"chatops_gate_{_DIGEST}"
DDL = _DDL.replace("{item}", ITEM_TYPE).replace("{gate}", FUNCTION)
# One outcome per item, in the items' order.
CALL = (
    f"SELECT outcome FROM {FUNCTION}($1::{ITEM_TYPE}[]) WITH ORDINALITY AS r(outcome, n) ORDER BY n"
)


def item(kind: Kind, values: Mapping[str, Any]) -> tuple[Any, ...]:
    """One batch item: `values` by field name (fields left out are NULL)."""
    return tuple(kind if name == "kind" else values.get(name) for name in NAMES)


async def ensure_gate(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    """Create this version's gate function unless it exists; run under the migration lock."""
    exists = await conn.fetchval("SELECT to_regtype($1) IS NOT NULL", ITEM_TYPE)
    if not exists:
        await conn.execute(DDL)
