"""Schema versions: an older file migrates in place without losing rows; a newer one is refused."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.base import (
    Amounts,
    ChannelSettings,
    Charge,
    DatabaseUnusable,
    QuotaConfig,
    QuotaExceeded,
)
from storage.sqlite.schema import LATEST
from storage.sqlite.store import SqliteStore

# Version 1 as the core issue shipped it, written out here on purpose: the migration must
# keep working on files that exist, whatever storage/sqlite/schema.py says today.
V1_FILE = """
CREATE TABLE channel_settings (channel TEXT PRIMARY KEY, model TEXT, updated_at TEXT NOT NULL);
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, platform TEXT NOT NULL,
    channel TEXT NOT NULL, user_id TEXT NOT NULL, command TEXT NOT NULL, model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
    images INTEGER NOT NULL DEFAULT 0, audio_seconds REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL);
CREATE INDEX ledger_channel ON ledger (channel, created_at);
CREATE TABLE events (event_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL);
INSERT INTO channel_settings VALUES ('slack:C1', 'gpt-4o-mini', '2026-11-01T08:00:00.000000Z');
INSERT INTO ledger (created_at, platform, channel, user_id, command, model, tokens_in,
    tokens_out, images, audio_seconds, status) VALUES
    ('2026-10-31T09:00:00.000000Z', 'slack', 'slack:C1', 'U1', 'ask', 'gpt-4o', 10, 20, 0, 0,
     'ok'),
    ('2026-11-25T09:00:00.000000Z', 'slack', 'slack:C1', 'U1', 'ask', 'gpt-4o', 100, 200, 0, 0,
     'ok'),
    ('2026-11-26T09:00:00.000000Z', 'slack', 'slack:C1', 'U2', 'image', 'gpt-image-1', 0, 0, 2, 0,
     'ok'),
    ('2026-11-26T09:30:00.000000Z', 'slack', 'slack:C1', 'U2', 'ask', 'gpt-4o', 0, 0, 0, 0,
     'error'),
    ('2026-11-26T10:00:00.000000Z', 'discord', 'discord:9', 'U3', 'transcribe', 'whisper-1',
     0, 0, 0, 61.5, 'ok');
INSERT INTO events VALUES ('Ev-old', '2026-11-26T09:00:00.000000Z');
PRAGMA user_version = 1;
"""
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def write_v1(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_FILE)
    conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


async def test_v1_file_migrates_in_place_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_v1(path)
    quota = QuotaConfig(limits={("images", "day"): 3, ("tokens", "month"): 400})
    store = await SqliteStore.open(path, quota, clock=lambda: NOW)
    try:
        assert user_version(path) == LATEST
        assert await store.channel_settings("slack:C1") == ChannelSettings(model="gpt-4o-mini")
        rows = await store.ledger()
        assert [r.charge.command for r in rows] == [
            "ask",
            "ask",
            "image",
            "ask",
            "transcribe",
        ]
        assert rows[1].amounts == Amounts(requests=1, tokens_in=100, tokens_out=200)
        assert rows[3].amounts == Amounts()  # the failed request counted nothing
        assert rows[4].amounts.audio_seconds == 61.5 and rows[4].day == "2026-11-26"
        assert await store.first_delivery("Ev-old") is False
        # The counters carry this month's and today's pre-upgrade usage: no free budget.
        status = await store.quota_status("slack:C1", now=NOW)
        assert status.windows[0].used["images"] == 2
        assert status.windows[1].used["tokens"] == 300
        with pytest.raises(QuotaExceeded) as info:
            await store.reserve(
                Charge("slack", "slack:C1", "U1", "ask", "gpt-4o"),
                Amounts(tokens_in=50, tokens_out=100),
                now=NOW,
            )
        assert (info.value.used, info.value.left) == (300, 100)
        await store.reserve(Charge("slack", "slack:C1", "U1", "image", "i"), Amounts(images=1))
    finally:
        await store.close()
    # Reopening a migrated file is a no-op.
    again = await SqliteStore.open(path, quota)
    try:
        assert len(await again.ledger()) == 7
    finally:
        await again.close()


async def test_a_newer_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    write_v1(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(DatabaseUnusable) as info:
        await SqliteStore.open(path)
    assert info.value.variable == "CHATOPS_DB"
    assert f"schema version {LATEST + 5}" in info.value.problem
    assert "upgrade the bot" in info.value.problem
    assert user_version(path) == LATEST + 5
    assert path.read_bytes() == before


async def test_an_unusable_path_or_file_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseUnusable) as info:
        await SqliteStore.open(blocker / "chatops.db")
    assert info.value.variable == "CHATOPS_DB" and "cannot open" in info.value.problem
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseUnusable) as info:
        await SqliteStore.open(garbage)
    assert "is not a usable database" in info.value.problem


async def test_two_processes_creating_one_file_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    async with asyncio.timeout(20):
        stores = await asyncio.gather(*(SqliteStore.open(path) for _ in range(4)))
    try:
        assert user_version(path) == LATEST
        await stores[0].set_channel_settings("c", ChannelSettings(model="m"))
        assert (await stores[3].channel_settings("c")).model == "m"
    finally:
        for store in stores:
            await store.close()
