"""The SQLite schema as numbered migrations, applied in place under PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from storage.base import DatabaseUnusable

# Version 1 is the minimal store of the core issue (settings: model; a plain ledger; events).
V1 = """
CREATE TABLE channel_settings (
    channel TEXT PRIMARY KEY,
    model TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL,
    command TEXT NOT NULL,
    model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    images INTEGER NOT NULL DEFAULT 0,
    audio_seconds REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL
);
CREATE INDEX ledger_channel ON ledger (channel, created_at);
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
"""

# Version 2: full channel settings, quota reservations in the ledger, counters and limits.
V2 = """
ALTER TABLE channel_settings ADD COLUMN system_prompt TEXT;
ALTER TABLE channel_settings ADD COLUMN temperature REAL;
ALTER TABLE channel_settings ADD COLUMN max_tokens INTEGER;
ALTER TABLE channel_settings ADD COLUMN auto_transcribe INTEGER NOT NULL DEFAULT 1;

ALTER TABLE ledger ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_tokens_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_tokens_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_audio_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN finished_at TEXT;
ALTER TABLE ledger ADD COLUMN expires_at TEXT;
ALTER TABLE ledger ADD COLUMN day_key TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN month_key TEXT NOT NULL DEFAULT '';

-- Rows written before quota existed: finished requests; windows by their UTC date.
UPDATE ledger SET
    requests = CASE WHEN status = 'error' AND tokens_in + tokens_out + images = 0
                    AND audio_seconds = 0 THEN 0 ELSE 1 END,
    est_requests = 1, est_tokens_in = tokens_in, est_tokens_out = tokens_out,
    est_images = images, est_audio_seconds = audio_seconds,
    finished_at = created_at,
    day_key = substr(created_at, 1, 10),
    month_key = substr(created_at, 1, 7);

-- Few indexes: each one is written on every reserve and settle. (channel, month, day)
-- serves both windows' top users/models; the partial index finds stale reservations.
DROP INDEX ledger_channel;
CREATE INDEX ledger_window ON ledger (channel, month_key, day_key);
CREATE INDEX ledger_pending ON ledger (expires_at) WHERE status = 'pending';

-- One row per channel (user_id '') and per user within a channel: the quota gate's counters
-- for the current day and month; a window rolls over when a later key arrives.
CREATE TABLE quota_usage (
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL,
    day_key TEXT NOT NULL,
    month_key TEXT NOT NULL,
    day_requests INTEGER NOT NULL DEFAULT 0,
    day_tokens INTEGER NOT NULL DEFAULT 0,
    day_images INTEGER NOT NULL DEFAULT 0,
    day_audio_seconds REAL NOT NULL DEFAULT 0,
    month_requests INTEGER NOT NULL DEFAULT 0,
    month_tokens INTEGER NOT NULL DEFAULT 0,
    month_images INTEGER NOT NULL DEFAULT 0,
    month_audio_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, user_id)
);

-- Per-channel overrides of the service defaults; value NULL means unlimited.
CREATE TABLE quota_limits (
    channel TEXT NOT NULL,
    metric TEXT NOT NULL,
    period TEXT NOT NULL,
    value REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (channel, metric, period)
);
"""

# Version 3: which tools each channel has switched on or off, and one row per tool call.
# Plain portable SQL (the PostgreSQL backend takes the same tables).
V3 = """
CREATE TABLE channel_tools (
    channel TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (channel, name)
);
CREATE TABLE tool_calls (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL,
    ledger_id INTEGER,
    tool TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tool_calls_channel ON tool_calls (channel, id);
"""

# Version 4: governance. Spend in money (micro-units of the price table's currency, integers
# so sums are exact) in the ledger and the counters, each ledger row keeping the rates it was
# charged at; access rules (channel allow/block lists, model allow-lists); notice claims.
V4 = """
ALTER TABLE ledger ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN est_cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN currency TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN price_input INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN price_output INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN price_image INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN price_audio_minute INTEGER NOT NULL DEFAULT 0;

ALTER TABLE quota_usage ADD COLUMN day_cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE quota_usage ADD COLUMN month_cost INTEGER NOT NULL DEFAULT 0;

-- channel '' is the whole workspace; kind is channel_allow, channel_block or model_allow.
CREATE TABLE access_rules (
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    pattern TEXT NOT NULL,
    set_by TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (platform, workspace, channel, kind, pattern)
);

-- The last time a rate-limited notice (a blocked channel's refusal) was sent, per key.
CREATE TABLE notices (
    notice_key TEXT PRIMARY KEY,
    sent_at TEXT NOT NULL
);
"""

# Carry the latest windows of pre-quota rows into the counters so an upgrade mid-month does
# not hand every channel a fresh budget. `{who}` is '' (channel row) or l.user_id.
_BACKFILL = """
INSERT INTO quota_usage (channel, user_id, day_key, month_key,
    day_requests, day_tokens, day_images, day_audio_seconds,
    month_requests, month_tokens, month_images, month_audio_seconds)
SELECT l.channel, {who}, k.d, k.m,
    SUM(CASE WHEN l.day_key = k.d THEN l.requests ELSE 0 END),
    SUM(CASE WHEN l.day_key = k.d THEN l.tokens_in + l.tokens_out ELSE 0 END),
    SUM(CASE WHEN l.day_key = k.d THEN l.images ELSE 0 END),
    SUM(CASE WHEN l.day_key = k.d THEN l.audio_seconds ELSE 0 END),
    SUM(CASE WHEN l.month_key = k.m THEN l.requests ELSE 0 END),
    SUM(CASE WHEN l.month_key = k.m THEN l.tokens_in + l.tokens_out ELSE 0 END),
    SUM(CASE WHEN l.month_key = k.m THEN l.images ELSE 0 END),
    SUM(CASE WHEN l.month_key = k.m THEN l.audio_seconds ELSE 0 END)
FROM ledger l
JOIN (SELECT channel, MAX(day_key) AS d, MAX(month_key) AS m FROM ledger GROUP BY channel) k
    ON k.channel = l.channel
GROUP BY l.channel, {who}, k.d, k.m
"""


# Version 5: channel memory (opt-in per channel) and the embedding cache. Vectors are unit-length
# little-endian float32 bytes with the model and dimension that made them, so a model change
# never mixes vectors; `version` changes with every write to a channel's passages, which tells
# a search whether the vectors it holds in memory are still current.
V5 = """
CREATE TABLE memory_channels (
    channel TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE TABLE memory_passages (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    author TEXT NOT NULL,
    posted_at TEXT NOT NULL,
    link TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (channel, message_id, part)
);
CREATE INDEX memory_passages_search ON memory_passages (channel, model, dimension, id);
CREATE INDEX memory_passages_posted ON memory_passages (posted_at);
CREATE TABLE embedding_cache (
    model TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (model, text_hash)
);
CREATE INDEX embedding_cache_used ON embedding_cache (used_at);
"""


# Version 6: 👍/👎 on replies, one row per person and reply. A reply is named by the ledger
# row of its final model request, which says the channel and the model. A channel's language.
V6 = """
ALTER TABLE channel_settings ADD COLUMN language TEXT;
CREATE TABLE feedback (
    ledger_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (ledger_id, user_id)
);
"""


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        # Not executescript: it commits first, and each step must stay in our transaction.
        pending = ""
        for line in sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                conn.execute(pending)
                pending = ""

    return run


def _v2(conn: sqlite3.Connection) -> None:
    _script(V2)(conn)
    conn.execute(_BACKFILL.format(who="''"))
    conn.execute(_BACKFILL.format(who="l.user_id"))


# MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _script(V1),
    _v2,
    _script(V3),
    _script(V4),
    _script(V5),
    _script(V6),
)
LATEST = len(MIGRATIONS)


def check_version(conn: sqlite3.Connection, where: str) -> int:
    """The file's schema version; refuses one written by a newer bot, changing nothing."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > LATEST:
        raise DatabaseUnusable(
            f"{where} has schema version {version} but this bot knows only up to "
            f"{LATEST}; upgrade the bot, or point CHATOPS_DB at another file",
        )
    return version


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the database up to LATEST in place; refuse one written by a newer bot.

    Each step runs in its own IMMEDIATE transaction and re-reads the version inside it,
    so two processes opening the same fresh file (the bot and the CLI) migrate it once.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = check_version(conn, where)
            if version == LATEST:
                conn.execute("COMMIT")
                return version
            MIGRATIONS[version](conn)
            # PRAGMA takes no parameters; the value is our own integer.
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
