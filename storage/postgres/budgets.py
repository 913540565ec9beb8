"""Platform write budgets in PostgreSQL: one sliding window per scope, shared by every replica."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.base import DatabaseUnavailable
from storage.postgres.errors import CONNECT_FAILED

# A replica's pledges count for others this long after its last take or publish.
PLEDGE_SECONDS = 60.0
MIN_WAIT = 0.005

_LIVE = "ARRAY(SELECT t FROM unnest(b.spent) AS t WHERE t > now() - make_interval(secs => $3))"
# Take one write from a scope's window: granted only if, after forgetting writes older than
# the window, there is room for it, for `reserve` more and, for an optional write, for what
# the other replicas have pledged; and no 429 has closed the window. One statement: the row
# lock queues concurrent takes from every replica, each seeing the writes before it. It also
# records this replica's own pledges (its heartbeat). Times are the database's, which every
# replica shares. $1 key, $2 burst, $3 window seconds, $4 reserve, $5 optional, $6 owner,
# $7 the owner's pledges.
TAKE = (
    "WITH mine AS (INSERT INTO budget_pledges (key, owner, count, expires_at) "
    f"VALUES ($1, $6, $7, now() + make_interval(secs => {PLEDGE_SECONDS})) "
    "ON CONFLICT (key, owner) DO UPDATE SET count = excluded.count, "
    "expires_at = excluded.expires_at), "
    "others AS (SELECT CASE WHEN $5::boolean THEN COALESCE(sum(count), 0) ELSE 0 END AS n "
    "FROM budget_pledges WHERE key = $1 AND owner <> $6 AND expires_at > now()) "
    "INSERT INTO budgets AS b (key, spent) SELECT $1, ARRAY[now()] FROM others "
    "WHERE 1 + $4::int + others.n <= $2::int "
    f"ON CONFLICT (key) DO UPDATE SET spent = {_LIVE.replace('$3', '$3::float8')} || now() "
    f"WHERE cardinality({_LIVE}) + 1 + $4::int + (SELECT n FROM others) <= $2::int "
    "AND (b.blocked_until IS NULL OR b.blocked_until <= now()) RETURNING now()"
)
# After a refusal: the writes still in the window, the 429 block, the others' pledges (for an
# optional write) and the database's now.
LOOK = (
    f"SELECT {_LIVE}, b.blocked_until, now(), (SELECT CASE WHEN $4::boolean THEN "
    "COALESCE(sum(count), 0) ELSE 0 END FROM budget_pledges WHERE key = $1 AND owner <> $2 "
    "AND expires_at > now()) FROM budgets b WHERE key = $1"
)
PLEDGE = (
    "INSERT INTO budget_pledges (key, owner, count, expires_at) "
    f"VALUES ($1, $2, $3, now() + make_interval(secs => {PLEDGE_SECONDS})) "
    "ON CONFLICT (key, owner) DO UPDATE SET count = excluded.count, "
    "expires_at = excluded.expires_at"
)
# A write taken ahead and never used goes back: one occurrence of its time leaves the window.
GIVE_BACK = (
    "UPDATE budgets SET spent = spent[:array_position(spent, $2) - 1] "
    "|| spent[array_position(spent, $2) + 1:] WHERE key = $1 AND $2 = ANY(spent)"
)
BLOCK = (
    "INSERT INTO budgets AS b (key, blocked_until) "
    "VALUES ($1, now() + make_interval(secs => $2::float8)) ON CONFLICT (key) DO UPDATE "
    "SET blocked_until = GREATEST(b.blocked_until, excluded.blocked_until)"
)


@dataclass(frozen=True, slots=True)
class Taken:
    """A take's answer: `at` (the database's time of the write) when granted, else `wait`,
    the seconds (> 0; inf: not while these pledges stand) before asking again."""

    at: datetime | None
    wait: float = 0.0


class SharedWindows:
    """Sliding-window budgets on the store's connection pool (see bot/streaming/shared.py).

    `owner` names this process among the replicas, for its pledges.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.owner = secrets.token_hex(8)

    async def take(
        self,
        key: str,
        *,
        burst: int,
        window: float,
        reserve: int = 0,
        optional: bool = False,
        pledged: int = 0,
    ) -> Taken:
        """Take one write; an optional one also leaves room for the others' pledges."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                args = (key, burst, window, reserve, optional, self.owner, pledged)
                at = await conn.fetchval(TAKE, *args)
                if at is not None:
                    return Taken(at)
                row = await conn.fetchrow(LOOK, key, self.owner, window, optional)
        except CONNECT_FAILED as e:
            raise DatabaseUnavailable(type(e).__name__) from None
        if row is None:
            return Taken(None, float("inf"))  # a first take is refused only by pledges
        need = 1 + reserve + int(row[3])
        wait = wait_for(row[0], row[1], row[2], burst=burst, window=window, need=need)
        # Refused yet no wait: the window changed between the two statements; look again soon.
        return Taken(None, max(wait, MIN_WAIT))

    async def pledge(self, key: str, count: int) -> None:
        """Publish this process's pledges in a scope (the writes it will surely need)."""
        await self._run(PLEDGE, key, self.owner, count)

    async def give_back(self, key: str, at: datetime) -> None:
        await self._run(GIVE_BACK, key, at)

    async def block(self, key: str, seconds: float) -> None:
        """The platform answered 429 for this scope: no replica writes for `seconds`."""
        await self._run(BLOCK, key, seconds)

    async def _run(self, statement: str, *args: object) -> None:
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                await conn.execute(statement, *args)
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
