"""Shared fixtures: one PostgreSQL server per test session, a fresh database per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.postgres import server_url, with_database

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The superuser URL of the session's server, started on first use and removed at the end.

    Synchronous on purpose: a session fixture outlives every test's event loop, and starting
    a server is a handful of blocking subprocess calls made once.
    """
    with server_url() as url:
        yield url


async def create_database(server: str) -> str:
    """A new, empty database on `server`; returns its URL."""
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server, name)


async def drop_database(server: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(server, timeout=10)
    try:
        # FORCE: a failed test (or a killed child process) may leave connections behind.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A URL of a new, empty database on the session's server, dropped after the test."""
    url = await create_database(postgres_server)
    try:
        yield url
    finally:
        await drop_database(postgres_server, url)


@pytest.fixture(params=BACKENDS)
async def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where one test's store lives, once per backend: a SQLite file or a fresh PostgreSQL
    database (CHATOPS_DB's two forms). The server starts only when a test asks for it."""
    if request.param == "sqlite":
        yield str(tmp_path / "chatops.db")
        return
    server = request.getfixturevalue("postgres_server")
    url = await create_database(server)
    try:
        yield url
    finally:
        await drop_database(server, url)
