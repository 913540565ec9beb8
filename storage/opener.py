"""Open the store CHATOPS_DB names: a postgresql:// URL is PostgreSQL, a path SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from storage.base import DatabaseUnusable, QuotaConfig, Store
from storage.postgres.store import DEFAULT_POOL_SIZE, PostgresStore
from storage.sqlite.store import SqliteStore

POSTGRES_SCHEMES = ("postgresql", "postgres")


def scheme_of(where: str) -> str | None:
    """The URL scheme of `where` ("postgresql"), or None for a file path."""
    scheme, sep, _ = where.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").isalnum():
        return None
    return scheme.lower()


def is_postgres(where: str | Path) -> bool:
    return scheme_of(str(where)) in POSTGRES_SCHEMES


def check_location(where: str) -> None:
    """Refuse a URL of a database we do not speak, rather than take it as a folder name."""
    scheme = scheme_of(where)
    if scheme is not None and scheme not in POSTGRES_SCHEMES:
        raise DatabaseUnusable(
            f"{scheme}:// is not supported; give a SQLite file path or a postgresql:// URL"
        )


async def open_store(
    where: str | Path,
    quota: QuotaConfig | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> Store:
    """The store at `where`, created and migrated as needed."""
    text = str(where)
    check_location(text)
    if is_postgres(text):
        return await PostgresStore.open(text, quota, clock=clock, pool_size=pool_size)
    return await SqliteStore.open(text, quota, clock=clock)
