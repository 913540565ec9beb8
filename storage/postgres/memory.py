"""Channel memory and the embedding cache on PostgreSQL (as storage/sqlite/memory.py).

Search is exact, as on SQLite: a channel's vectors (one model, one dimension) are read once
into a matrix held by this process until the channel's `version` changes (any replica's
write bumps it), and every query is scored against all of them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

import asyncpg
import numpy as np
import numpy.typing as npt
from asyncpg.pool import PoolConnectionProxy

from storage.base import MemoryHit, MemoryStatus, Passage
from storage.vectors import Matrix, Vector, best_of, from_bytes, stack, to_bytes

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_PASSAGE_COLS = "id, channel, message_id, part, text, author, posted_at, link, source"


@dataclass(frozen=True, slots=True)
class Loaded:
    """One channel's vectors for one model and dimension, as of `version`."""

    version: int
    ids: npt.NDArray[np.int64]
    matrix: Matrix


class Vectors:
    """Channels' vectors held between searches, least recently used out first; bounded by
    bytes."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._held: OrderedDict[tuple[str, str, int], Loaded] = OrderedDict()

    def get(self, key: tuple[str, str, int], version: int) -> Loaded | None:
        loaded = self._held.get(key)
        if loaded is None or loaded.version != version:
            return None
        self._held.move_to_end(key)
        return loaded

    def put(self, key: tuple[str, str, int], loaded: Loaded) -> None:
        self._held[key] = loaded
        self._held.move_to_end(key)
        while len(self._held) > 1 and self._bytes() > self.max_bytes:
            self._held.popitem(last=False)

    def _bytes(self) -> int:
        return sum(int(h.matrix.nbytes + h.ids.nbytes) for h in self._held.values())


def _passage(row: asyncpg.Record) -> Passage:
    return Passage(
        id=int(row[0]),
        channel=str(row[1]),
        message_id=str(row[2]),
        part=int(row[3]),
        text=str(row[4]),
        author=str(row[5]),
        posted_at=row[6].astimezone(UTC),
        link=str(row[7]),
        source=str(row[8]),
    )


async def _touch(conn: Conn, channel: str, now: datetime) -> None:
    """A write to the channel's passages: every replica must read its vectors afresh."""
    await conn.execute(
        "INSERT INTO memory_channels (channel, enabled, version, updated_at) "
        "VALUES ($1, false, 1, $2) ON CONFLICT (channel) DO UPDATE "
        "SET version = memory_channels.version + 1",
        channel,
        now,
    )


async def enabled_channels(conn: Conn) -> set[str]:
    rows = await conn.fetch("SELECT channel FROM memory_channels WHERE enabled")
    return {str(r[0]) for r in rows}


async def set_enabled(conn: Conn, channel: str, enabled: bool, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO memory_channels (channel, enabled, version, updated_at) "
        "VALUES ($1, $2, 0, $3) ON CONFLICT (channel) DO UPDATE "
        "SET enabled = excluded.enabled, updated_at = excluded.updated_at",
        channel,
        enabled,
        now,
    )


async def status(conn: Conn, channel: str) -> MemoryStatus:
    enabled = await conn.fetchval("SELECT enabled FROM memory_channels WHERE channel = $1", channel)
    counts = await conn.fetchrow(
        "SELECT count(*), count(DISTINCT message_id), min(posted_at) FROM memory_passages "
        "WHERE channel = $1",
        channel,
    )
    assert counts is not None
    models = await conn.fetch(
        "SELECT DISTINCT model FROM memory_passages WHERE channel = $1 ORDER BY model", channel
    )
    return MemoryStatus(
        enabled=bool(enabled),
        passages=int(counts[0]),
        messages=int(counts[1]),
        oldest=counts[2].astimezone(UTC) if counts[2] is not None else None,
        models=tuple(str(m[0]) for m in models),
    )


async def index(
    conn: Conn,
    channel: str,
    message_id: str,
    passages: Sequence[Passage],
    model: str,
    vectors: Sequence[Vector],
    now: datetime,
) -> None:
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM memory_passages WHERE channel = $1 AND message_id = $2",
            channel,
            message_id,
        )
        await conn.executemany(
            "INSERT INTO memory_passages (channel, message_id, part, author, posted_at, link, "
            "source, text, model, dimension, vector) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                (
                    channel,
                    message_id,
                    p.part,
                    p.author,
                    p.posted_at,
                    p.link,
                    p.source,
                    p.text,
                    model,
                    len(v),
                    to_bytes(v),
                )
                for p, v in zip(passages, vectors, strict=True)
            ],
        )
        await _touch(conn, channel, now)


async def forget_message(conn: Conn, channel: str, message_id: str, now: datetime) -> int:
    async with conn.transaction():
        done = await conn.execute(
            "DELETE FROM memory_passages WHERE channel = $1 AND message_id = $2",
            channel,
            message_id,
        )
        gone = _count(done)
        if gone:
            await _touch(conn, channel, now)
    return gone


async def forget_channel(conn: Conn, channel: str, now: datetime) -> int:
    async with conn.transaction():
        gone = _count(await conn.execute("DELETE FROM memory_passages WHERE channel = $1", channel))
        await _touch(conn, channel, now)
    return gone


async def search(
    conn: Conn, held: Vectors, channel: str, model: str, query: Vector, k: int
) -> list[MemoryHit]:
    version = await conn.fetchval("SELECT version FROM memory_channels WHERE channel = $1", channel)
    version = -1 if version is None else int(version)
    key = (channel, model, len(query))
    loaded = held.get(key, version)
    if loaded is None:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # The version and the vectors from one snapshot: a write in between bumps the
            # version past what is held, so the next search reads again.
            version = await conn.fetchval(
                "SELECT version FROM memory_channels WHERE channel = $1", channel
            )
            rows = await conn.fetch(
                "SELECT id, vector FROM memory_passages WHERE channel = $1 AND model = $2 "
                "AND dimension = $3 ORDER BY id",
                channel,
                model,
                len(query),
            )
        ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        matrix = stack([bytes(r[1]) for r in rows], len(query))
        loaded = Loaded(-1 if version is None else int(version), ids, matrix)
        held.put(key, loaded)
    if not len(loaded.ids):
        return []
    scores = (loaded.matrix @ query).astype(np.float32)
    best = best_of(scores, loaded.ids, k)
    if not best:
        return []
    rows = await conn.fetch(
        f"SELECT {_PASSAGE_COLS} FROM memory_passages WHERE id = ANY($1::bigint[])",
        [pid for pid, _ in best],
    )
    found = {int(r[0]): _passage(r) for r in rows}
    return [MemoryHit(found[pid], score) for pid, score in best if pid in found]


async def stale(conn: Conn, channel: str, model: str, limit: int) -> list[Passage]:
    rows = await conn.fetch(
        f"SELECT {_PASSAGE_COLS} FROM memory_passages WHERE channel = $1 AND model <> $2 "
        "ORDER BY id LIMIT $3",
        channel,
        model,
        limit,
    )
    return [_passage(r) for r in rows]


async def revector(conn: Conn, model: str, vectors: Mapping[int, Vector], now: datetime) -> None:
    async with conn.transaction():
        channels: set[str] = set()
        for pid, vector in vectors.items():
            channel = await conn.fetchval(
                "UPDATE memory_passages SET model = $1, dimension = $2, vector = $3 "
                "WHERE id = $4 RETURNING channel",
                model,
                len(vector),
                to_bytes(vector),
                pid,
            )
            if channel is not None:
                channels.add(str(channel))
        for channel in sorted(channels):
            await _touch(conn, channel, now)


async def prune(conn: Conn, before: datetime, now: datetime) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            "DELETE FROM memory_passages WHERE posted_at < $1 RETURNING channel", before
        )
        for channel in sorted({str(r[0]) for r in rows}):
            await _touch(conn, channel, now)
        await conn.execute("DELETE FROM embedding_cache WHERE used_at < $1", before)
    return len(rows)


async def cached(conn: Conn, model: str, keys: Sequence[str]) -> dict[str, Vector]:
    rows = await conn.fetch(
        "SELECT text_hash, vector FROM embedding_cache WHERE model = $1 "
        "AND text_hash = ANY($2::text[])",
        model,
        list(keys),
    )
    return {str(r[0]): from_bytes(bytes(r[1])) for r in rows}


async def cache(conn: Conn, model: str, vectors: Mapping[str, Vector], now: datetime) -> None:
    await conn.executemany(
        "INSERT INTO embedding_cache (model, text_hash, vector, used_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (model, text_hash) DO UPDATE SET vector = excluded.vector, "
        "used_at = excluded.used_at",
        [(model, key, to_bytes(v), now) for key, v in vectors.items()],
    )


def _count(status: str) -> int:
    """Rows a command touched, from its status ("DELETE 3")."""
    return int(status.rsplit(" ", 1)[-1])
