"""Which asyncpg failures mean the database is out of reach, rather than a statement wrong."""

from __future__ import annotations

import asyncpg

# The connection, not the statement, failed: the server went away, restarted, was shut
# down, cancelled us or could not be reached in time.
LOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # What asyncpg raises when a statement is sent on a connection the server has just
    # ended, before the client noticed the end.
    asyncpg.exceptions.InternalClientError,
)
# A new connection may also be refused by the server: a login, a database missing or closed.
CONNECT_FAILED: tuple[type[BaseException], ...] = (*LOST, asyncpg.PostgresError)
# Opening may also meet a malformed URL.
OPEN_FAILED: tuple[type[BaseException], ...] = (*CONNECT_FAILED, ValueError)
