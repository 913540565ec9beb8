"""Channel memory and the embedding cache in SQL, run on the store's DB thread.

Search is exact: the channel's vectors (one model, one dimension) are read once into a matrix
kept per channel until its `version` changes, and every query is scored against all of them.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from storage.base import MemoryHit, MemoryStatus, Passage
from storage.sqlite.quota import parse_ts, ts
from storage.vectors import Matrix, Vector, best_of, from_bytes, stack, to_bytes

_PASSAGE_COLS = "id, channel, message_id, part, text, author, posted_at, link, source"
# SQLite's default limit on host parameters is far above this; batches keep statements short.
_BATCH = 500


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A channel's vectors in blocks (appends add a block, nothing is copied); rows of
    passages gone since are masked out until the blocks are compacted."""

    version: int
    ids: npt.NDArray[np.int64]
    blocks: tuple[Matrix, ...]
    live: npt.NDArray[np.bool_]

    @property
    def nbytes(self) -> int:
        return sum(int(b.nbytes) for b in self.blocks) + int(self.ids.nbytes + self.live.nbytes)

    def scores(self, query: Vector) -> npt.NDArray[np.float32]:
        found = np.concatenate([block @ query for block in self.blocks]).astype(np.float32)
        found[~self.live] = -np.inf
        return found


class VectorCache:
    """Channels' vectors held in memory between searches, the most recently used first out
    last; bounded by bytes."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._held: OrderedDict[tuple[str, str, int], _Loaded] = OrderedDict()

    @property
    def nbytes(self) -> int:
        return sum(loaded.nbytes for loaded in self._held.values())

    def held(self, key: tuple[str, str, int]) -> _Loaded | None:
        """What is held for the key, current or not."""
        return self._held.get(key)

    def get(self, key: tuple[str, str, int], version: int) -> _Loaded | None:
        loaded = self._held.get(key)
        if loaded is None or loaded.version != version:
            return None
        self._held.move_to_end(key)
        return loaded

    def put(self, key: tuple[str, str, int], loaded: _Loaded) -> None:
        self._held[key] = loaded
        self._held.move_to_end(key)
        while len(self._held) > 1 and self.nbytes > self.max_bytes:
            self._held.popitem(last=False)


def _passage(row: Sequence[object]) -> Passage:
    posted = parse_ts(str(row[6]))
    assert posted is not None
    return Passage(
        id=int(str(row[0])),
        channel=str(row[1]),
        message_id=str(row[2]),
        part=int(str(row[3])),
        text=str(row[4]),
        author=str(row[5]),
        posted_at=posted,
        link=str(row[7]),
        source=str(row[8]),
    )


def _touch(conn: sqlite3.Connection, channel: str, now: str) -> None:
    """A write to the channel's passages: searches must read its vectors afresh."""
    conn.execute(
        "INSERT INTO memory_channels (channel, enabled, version, updated_at) VALUES (?, 0, 1, ?) "
        "ON CONFLICT (channel) DO UPDATE SET version = memory_channels.version + 1",
        (channel, now),
    )


def enabled_channels(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT channel FROM memory_channels WHERE enabled = 1").fetchall()
    return {str(r[0]) for r in rows}


def set_enabled(conn: sqlite3.Connection, channel: str, enabled: bool, now: str) -> None:
    conn.execute(
        "INSERT INTO memory_channels (channel, enabled, version, updated_at) VALUES (?, ?, 0, ?) "
        "ON CONFLICT (channel) DO UPDATE SET enabled = excluded.enabled, "
        "updated_at = excluded.updated_at",
        (channel, int(enabled), now),
    )


def status(conn: sqlite3.Connection, channel: str) -> MemoryStatus:
    row = conn.execute(
        "SELECT enabled FROM memory_channels WHERE channel = ?", (channel,)
    ).fetchone()
    counts = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT message_id), MIN(posted_at) FROM memory_passages "
        "WHERE channel = ?",
        (channel,),
    ).fetchone()
    models = conn.execute(
        "SELECT DISTINCT model FROM memory_passages WHERE channel = ? ORDER BY model", (channel,)
    ).fetchall()
    return MemoryStatus(
        enabled=bool(row is not None and row[0]),
        passages=int(counts[0]),
        messages=int(counts[1]),
        oldest=parse_ts(counts[2]),
        models=tuple(str(m[0]) for m in models),
    )


def index(
    conn: sqlite3.Connection,
    channel: str,
    message_id: str,
    passages: Sequence[Passage],
    model: str,
    vectors: Sequence[Vector],
    now: str,
) -> None:
    conn.execute(
        "DELETE FROM memory_passages WHERE channel = ? AND message_id = ?", (channel, message_id)
    )
    conn.executemany(
        "INSERT INTO memory_passages (channel, message_id, part, author, posted_at, link, "
        "source, text, model, dimension, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                channel,
                message_id,
                p.part,
                p.author,
                ts(p.posted_at),
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
    _touch(conn, channel, now)


def forget_message(conn: sqlite3.Connection, channel: str, message_id: str, now: str) -> int:
    cursor = conn.execute(
        "DELETE FROM memory_passages WHERE channel = ? AND message_id = ?", (channel, message_id)
    )
    if cursor.rowcount:
        _touch(conn, channel, now)
    return cursor.rowcount


def forget_channel(conn: sqlite3.Connection, channel: str, now: str) -> int:
    cursor = conn.execute("DELETE FROM memory_passages WHERE channel = ?", (channel,))
    _touch(conn, channel, now)
    return cursor.rowcount


def search(
    conn: sqlite3.Connection,
    cache: VectorCache,
    channel: str,
    model: str,
    query: Vector,
    k: int,
) -> list[MemoryHit]:
    row = conn.execute(
        "SELECT version FROM memory_channels WHERE channel = ?", (channel,)
    ).fetchone()
    version = -1 if row is None else int(row[0])
    key = (channel, model, len(query))
    loaded = cache.get(key, version)
    if loaded is None:
        loaded = _refresh(conn, cache.held(key), channel, model, len(query), version)
        cache.put(key, loaded)
    best = best_of(loaded.scores(query), loaded.ids, k)
    if not best:
        return []
    marks = ", ".join("?" for _ in best)
    found = {
        int(r[0]): _passage(r)
        for r in conn.execute(
            f"SELECT {_PASSAGE_COLS} FROM memory_passages WHERE id IN ({marks})",
            [pid for pid, _ in best],
        ).fetchall()
    }
    return [MemoryHit(found[pid], score) for pid, score in best if pid in found]


# Past this many blocks the newer ones are merged; past this share of masked rows, all are.
_MAX_BLOCKS = 16
_MAX_DEAD = 0.25


def _refresh(
    conn: sqlite3.Connection,
    held: _Loaded | None,
    channel: str,
    model: str,
    dimension: int,
    version: int,
) -> _Loaded:
    """The channel's vectors now. With vectors held from before, one id scan finds what
    changed: rows gone are masked, only new rows are read (a new message or an edit does not
    read every vector again)."""
    where = "WHERE channel = ? AND model = ? AND dimension = ? ORDER BY id"
    args = (channel, model, dimension)
    if held is None:
        rows = conn.execute(f"SELECT id, vector FROM memory_passages {where}", args).fetchall()
        ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        matrix = stack([r[1] for r in rows], dimension)
        return _Loaded(version, ids, (matrix,), np.ones(len(ids), dtype=np.bool_))
    current = np.fromiter(
        (int(r[0]) for r in conn.execute(f"SELECT id FROM memory_passages {where}", args)),
        dtype=np.int64,
    )
    live = held.live & np.isin(held.ids, current, assume_unique=True)
    fresh = np.setdiff1d(current, held.ids, assume_unique=True)
    blocks, ids = held.blocks, held.ids
    if len(fresh):
        blobs: dict[int, bytes] = {}
        for start in range(0, len(fresh), _BATCH):
            batch = [int(pid) for pid in fresh[start : start + _BATCH]]
            marks = ", ".join("?" for _ in batch)
            blobs.update(
                (int(r[0]), r[1])
                for r in conn.execute(
                    f"SELECT id, vector FROM memory_passages WHERE id IN ({marks})", batch
                )
            )
        blocks = (*blocks, stack([blobs[int(pid)] for pid in fresh], dimension))
        ids = np.concatenate([ids, fresh])
        live = np.concatenate([live, np.ones(len(fresh), dtype=np.bool_)])
    if len(live) and (~live).mean() > _MAX_DEAD:
        merged = np.concatenate(blocks)[live]
        return _Loaded(version, ids[live], (merged,), np.ones(int(live.sum()), dtype=np.bool_))
    if len(blocks) > _MAX_BLOCKS:
        # The small blocks new messages made join one another, not the large first block.
        blocks = (blocks[0], np.concatenate(blocks[1:]))
    return _Loaded(version, ids, blocks, live)


def stale(conn: sqlite3.Connection, channel: str, model: str, limit: int) -> list[Passage]:
    rows = conn.execute(
        f"SELECT {_PASSAGE_COLS} FROM memory_passages WHERE channel = ? AND model != ? "
        "ORDER BY id LIMIT ?",
        (channel, model, limit),
    ).fetchall()
    return [_passage(r) for r in rows]


def revector(conn: sqlite3.Connection, model: str, vectors: Mapping[int, Vector], now: str) -> None:
    channels: set[str] = set()
    for pid, vector in vectors.items():
        row = conn.execute(
            "UPDATE memory_passages SET model = ?, dimension = ?, vector = ? WHERE id = ? "
            "RETURNING channel",
            (model, len(vector), to_bytes(vector), pid),
        ).fetchone()
        if row is not None:
            channels.add(str(row[0]))
    for channel in channels:
        _touch(conn, channel, now)


def prune(conn: sqlite3.Connection, before: datetime, now: str) -> int:
    cutoff = ts(before)
    channels = conn.execute(
        "SELECT DISTINCT channel FROM memory_passages WHERE posted_at < ?", (cutoff,)
    ).fetchall()
    cursor = conn.execute("DELETE FROM memory_passages WHERE posted_at < ?", (cutoff,))
    for (channel,) in channels:
        _touch(conn, str(channel), now)
    conn.execute("DELETE FROM embedding_cache WHERE used_at < ?", (cutoff,))
    return cursor.rowcount


def cached(conn: sqlite3.Connection, model: str, keys: Sequence[str]) -> dict[str, Vector]:
    found: dict[str, Vector] = {}
    for start in range(0, len(keys), _BATCH):
        batch = list(keys[start : start + _BATCH])
        marks = ", ".join("?" for _ in batch)
        rows = conn.execute(
            f"SELECT text_hash, vector FROM embedding_cache WHERE model = ? "
            f"AND text_hash IN ({marks})",
            [model, *batch],
        ).fetchall()
        found.update({str(r[0]): from_bytes(r[1]) for r in rows})
    return found


def cache(conn: sqlite3.Connection, model: str, vectors: Mapping[str, Vector], now: str) -> None:
    conn.executemany(
        "INSERT INTO embedding_cache (model, text_hash, vector, used_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (model, text_hash) DO UPDATE SET vector = excluded.vector, "
        "used_at = excluded.used_at",
        [(model, key, to_bytes(v), now) for key, v in vectors.items()],
    )
