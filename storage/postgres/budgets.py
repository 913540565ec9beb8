"""Platform write budgets in PostgreSQL: one sliding window per scope, shared by every replica."""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from storage.base import DatabaseUnavailable
from storage.postgres.errors import CONNECT_FAILED

log = logging.getLogger(__name__)

# Take one write from a window: granted only if, after forgetting writes older than the
# window, there is room for it and `reserve` more, and no 429 has closed the window. One
# statement: the row lock makes concurrent takes from every replica queue, and each sees
# the writes of those before it. Times are the database's, which all replicas share.
TAKE = (
    "INSERT INTO budgets AS b (key, spent) SELECT $1, ARRAY[now()] WHERE 1 + $4::int <= $2::int "
    "ON CONFLICT (key) DO UPDATE SET spent = ARRAY(SELECT t FROM unnest(b.spent) AS t "
    "WHERE t > now() - make_interval(secs => $3::float8) ORDER BY t) || now() "
    "WHERE (SELECT count(*) FROM unnest(b.spent) AS t "
    "WHERE t > now() - make_interval(secs => $3::float8)) + 1 + $4::int <= $2::int "
    "AND (b.blocked_until IS NULL OR b.blocked_until <= now()) RETURNING 1"
)
# After a refusal: the writes still in the window, the 429 block, and the database's now.
LOOK = (
    "SELECT ARRAY(SELECT t FROM unnest(spent) AS t "
    "WHERE t > now() - make_interval(secs => $2::float8) ORDER BY t), blocked_until, now() "
    "FROM budgets WHERE key = $1"
)
BLOCK = (
    "INSERT INTO budgets AS b (key, blocked_until) "
    "VALUES ($1, now() + make_interval(secs => $2::float8)) ON CONFLICT (key) DO UPDATE "
    "SET blocked_until = GREATEST(b.blocked_until, excluded.blocked_until)"
)


MIN_WAIT = 0.005


class SharedWindows:
    """Sliding-window budgets on the store's connection pool (see bot/streaming/shared.py)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take(self, key: str, *, burst: int, window: float, reserve: int = 0) -> float:
        """Take one write: 0.0 when granted, else the seconds (> 0; inf: never) until
        `1 + reserve` writes could fit."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                if await conn.fetchval(TAKE, key, burst, window, reserve) is not None:
                    return 0.0
                row = await conn.fetchrow(LOOK, key, window)
        except CONNECT_FAILED as e:
            raise DatabaseUnavailable(type(e).__name__) from None
        if row is None:
            return float("inf")  # a first take is refused only when 1 + reserve > burst
        wait = wait_for(row[0], row[1], row[2], burst=burst, window=window, need=1 + reserve)
        # Refused yet no wait: the window changed between the two statements; look again soon.
        return max(wait, MIN_WAIT)

    async def block(self, key: str, seconds: float) -> None:
        """The platform answered 429 for this scope: no replica writes for `seconds`."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                await conn.execute(BLOCK, key, seconds)
        except CONNECT_FAILED as e:
            raise DatabaseUnavailable(type(e).__name__) from None


def wait_for(
    spent: list[datetime],
    blocked_until: datetime | None,
    now: datetime,
    *,
    burst: int,
    window: float,
    need: int,
) -> float:
    """Seconds until `need` writes fit the window (inf: never, need > burst)."""
    if need > burst:
        return float("inf")
    free = burst - len(spent)
    wait = 0.0 if free >= need else (spent[need - free - 1] - now).total_seconds() + window
    if blocked_until is not None:
        wait = max(wait, (blocked_until - now).total_seconds())
    return max(wait, 0.0)
