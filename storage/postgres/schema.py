"""The PostgreSQL schema as numbered migrations, applied at start-up under an advisory lock."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.base import DatabaseUnusable
from storage.postgres.gate import ensure_gate

# Same tables as storage/sqlite/schema.py at its latest version, in PostgreSQL's own types;
# `events.claim` lets a caller retry an insert after a lost connection and learn whether its
# own earlier attempt was the first delivery.
V1 = """
CREATE TABLE channel_settings (
    channel text PRIMARY KEY,
    model text,
    system_prompt text,
    temperature double precision,
    max_tokens integer,
    auto_transcribe boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL
);

CREATE TABLE ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL,
    platform text NOT NULL,
    channel text NOT NULL,
    user_id text NOT NULL,
    user_name text NOT NULL DEFAULT '',
    command text NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    tokens_in bigint NOT NULL DEFAULT 0,
    tokens_out bigint NOT NULL DEFAULT 0,
    images bigint NOT NULL DEFAULT 0,
    audio_seconds double precision NOT NULL DEFAULT 0,
    status text NOT NULL,
    est_requests bigint NOT NULL DEFAULT 0,
    est_tokens_in bigint NOT NULL DEFAULT 0,
    est_tokens_out bigint NOT NULL DEFAULT 0,
    est_images bigint NOT NULL DEFAULT 0,
    est_audio_seconds double precision NOT NULL DEFAULT 0,
    finished_at timestamptz,
    expires_at timestamptz,
    day_key text NOT NULL DEFAULT '',
    month_key text NOT NULL DEFAULT ''
);
-- Few indexes: each one is written on every reserve and settle. (channel, month, day)
-- serves both windows' top users/models; the partial index finds stale reservations.
CREATE INDEX ledger_window ON ledger (channel, month_key, day_key);
CREATE INDEX ledger_pending ON ledger (expires_at) WHERE status = 'pending';

-- One row per channel (user_id '') and per user within a channel: the quota gate's counters
-- for the current day and month; a window rolls over when a later key arrives.
CREATE TABLE quota_usage (
    channel text NOT NULL,
    user_id text NOT NULL,
    day_key text NOT NULL,
    month_key text NOT NULL,
    day_requests bigint NOT NULL DEFAULT 0,
    day_tokens bigint NOT NULL DEFAULT 0,
    day_images bigint NOT NULL DEFAULT 0,
    day_audio_seconds double precision NOT NULL DEFAULT 0,
    month_requests bigint NOT NULL DEFAULT 0,
    month_tokens bigint NOT NULL DEFAULT 0,
    month_images bigint NOT NULL DEFAULT 0,
    month_audio_seconds double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, user_id)
);

-- Per-channel overrides of the service defaults; value NULL means unlimited.
CREATE TABLE quota_limits (
    channel text NOT NULL,
    metric text NOT NULL,
    period text NOT NULL,
    value double precision,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (channel, metric, period)
);

CREATE TABLE events (
    event_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL,
    claim text NOT NULL
);
CREATE INDEX events_seen ON events (seen_at);

-- The reservation statement gates the channel's and the user's counter rows at once; when
-- only one of them has room it calls this, so the statement (and its one change) is undone.
-- (Bots since the batched gate, storage/postgres/gate.py, put the row back instead; this stays
-- for replicas of the older version during a rolling deploy.)
CREATE FUNCTION chatops_gate_split() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CQ001',
        MESSAGE = 'quota gate: one counter row had room and the other not; undone';
END
$$;
"""

# Version 2: platform write budgets shared by replicas (storage/postgres/budgets.py). Each
# row is one sliding window: when its last `burst` writes were recorded (by the database's
# clock, which every replica shares), and until when a 429 closed it.
V2 = """
CREATE TABLE budgets (
    key text PRIMARY KEY,
    spent timestamptz[] NOT NULL DEFAULT '{}',
    blocked_until timestamptz
);
-- Writes each replica's open replies will certainly still need in a scope (their pledges),
-- kept by every take it makes; a replica that stops refreshing them (crashed) is forgotten.
CREATE TABLE budget_pledges (
    key text NOT NULL,
    owner text NOT NULL,
    count integer NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key, owner)
);
"""

# Version 3: which tools each channel has switched on or off, and one row per tool call (as
# storage/sqlite/schema.py's version 3).
V3 = """
CREATE TABLE channel_tools (
    channel text NOT NULL,
    name text NOT NULL,
    enabled boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (channel, name)
);
CREATE TABLE tool_calls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL,
    channel text NOT NULL,
    user_id text NOT NULL,
    ledger_id bigint,
    tool text NOT NULL,
    outcome text NOT NULL,
    duration_ms integer NOT NULL,
    detail text NOT NULL DEFAULT ''
);
CREATE INDEX tool_calls_channel ON tool_calls (channel, id);
"""

# Version 4: money (storage/sqlite/schema.py's version 4): each request's cost and the rates
# it was charged at, cost counters, access rules and rate-limited notices.
V4 = """
ALTER TABLE ledger ADD COLUMN cost bigint NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_cost bigint NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN currency text NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN price_input bigint NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN price_output bigint NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN price_image bigint NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN price_audio_minute bigint NOT NULL DEFAULT 0;

ALTER TABLE quota_usage ADD COLUMN day_cost bigint NOT NULL DEFAULT 0;
ALTER TABLE quota_usage ADD COLUMN month_cost bigint NOT NULL DEFAULT 0;

-- channel '' is the whole workspace; kind is channel_allow, channel_block or model_allow.
CREATE TABLE access_rules (
    platform text NOT NULL,
    workspace text NOT NULL,
    channel text NOT NULL,
    kind text NOT NULL,
    pattern text NOT NULL,
    set_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (platform, workspace, channel, kind, pattern)
);

-- The last time a rate-limited notice (a blocked channel's refusal) was sent, per key.
CREATE TABLE notices (
    notice_key text PRIMARY KEY,
    sent_at timestamptz NOT NULL
);
"""

# Version 5: channel memory and the embedding cache (storage/sqlite/schema.py's version 5):
# unit-length little-endian float32 vectors with the model and dimension that made them;
# `version` changes with every write to a channel's passages, so a replica knows when the
# vectors it holds for searches are out of date.
V5 = """
CREATE TABLE memory_channels (
    channel text PRIMARY KEY,
    enabled boolean NOT NULL DEFAULT false,
    version bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
CREATE TABLE memory_passages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel text NOT NULL,
    message_id text NOT NULL,
    part integer NOT NULL,
    author text NOT NULL,
    posted_at timestamptz NOT NULL,
    link text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    text text NOT NULL,
    model text NOT NULL,
    dimension integer NOT NULL,
    vector bytea NOT NULL,
    UNIQUE (channel, message_id, part)
);
CREATE INDEX memory_passages_search ON memory_passages (channel, model, dimension, id);
CREATE INDEX memory_passages_posted ON memory_passages (posted_at);
CREATE TABLE embedding_cache (
    model text NOT NULL,
    text_hash text NOT NULL,
    vector bytea NOT NULL,
    used_at timestamptz NOT NULL,
    PRIMARY KEY (model, text_hash)
);
CREATE INDEX embedding_cache_used ON embedding_cache (used_at);
"""

# Version 6: 👍/👎 on replies and a channel's language (storage/sqlite/schema.py's version 6):
# one vote per person and reply, a reply named by the ledger row of its final model request.
V6 = """
ALTER TABLE channel_settings ADD COLUMN language text;
CREATE TABLE feedback (
    ledger_id bigint NOT NULL,
    user_id text NOT NULL,
    vote smallint NOT NULL CHECK (vote IN (-1, 1)),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (ledger_id, user_id)
);
"""

# MIGRATIONS[n] takes a database from version n to n + 1 (each runs in one transaction).
MIGRATIONS: tuple[str, ...] = (V1, V2, V3, V4, V5, V6)
LATEST = len(MIGRATIONS)

# Any constant both replicas agree on; 0x63686174 is "chat".
MIGRATION_LOCK = 0x63686174


async def migrate(conn: PoolConnectionProxy[asyncpg.Record], where: str) -> int:
    """Bring the database up to LATEST; refuse one written by a newer bot, changing nothing.

    One transaction under a transaction-level advisory lock: replicas starting together
    queue on the lock, and each finds the version the one before it committed. DDL is
    transactional in PostgreSQL, so a failed step leaves the previous version whole.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS chatops_schema (version integer NOT NULL)")
        version = int(await conn.fetchval("SELECT max(version) FROM chatops_schema") or 0)
        if version > LATEST:
            raise DatabaseUnusable(
                f"{where} has schema version {version} but this bot knows only up to "
                f"{LATEST}; upgrade the bot, or point CHATOPS_DB at another database"
            )
        for step in MIGRATIONS[version:]:
            await conn.execute(step)
        if version < LATEST:
            await conn.execute("DELETE FROM chatops_schema")
            await conn.execute("INSERT INTO chatops_schema (version) VALUES ($1)", LATEST)
        await ensure_gate(conn)
        return LATEST
