"""Shared fixtures: one PostgreSQL server per test session, a fresh database per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.postgres import server_url, with_database


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The superuser URL of the session's server, started on first use and removed at the end.

    Synchronous on purpose: a session fixture outlives every test's event loop, and starting
    a server is a handful of blocking subprocess calls made once.
    """
    with server_url() as url:
        yield url


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A URL of a new, empty database on the session's server, dropped after the test."""
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(postgres_server, name)
    finally:
        admin = await asyncpg.connect(postgres_server, timeout=10)
        try:
            # FORCE: a test that failed may leave connections (or a killed child's) behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
