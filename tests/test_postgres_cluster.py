"""The test cluster itself: loopback only, never run as root, removed without a trace."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import asyncpg
import pytest

from tests.postgres import ENV_URL, Cluster

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(ENV_URL)), reason=f"{ENV_URL} names a server; no cluster is started"
)


async def test_a_cluster_listens_on_loopback_as_a_normal_user_and_is_removed() -> None:
    cluster = Cluster()
    await asyncio.to_thread(cluster.start)
    try:
        root = cluster.log.parent
        conn = await asyncpg.connect(cluster.url, timeout=10)
        try:
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
            sockets = await conn.fetchval("SHOW unix_socket_directories")
            assert Path(sockets).parent == root
        finally:
            await conn.close()
        if os.geteuid() == 0:
            # initdb refuses root: the server's files belong to an unprivileged account.
            assert (root / "data").stat().st_uid != 0
        # The password in the URL is checked, not ignored.
        wrong = cluster.url.replace(cluster.url.split(":")[2].split("@")[0], "wrong")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(wrong, timeout=10)
    finally:
        await asyncio.to_thread(cluster.stop)
    assert not root.exists()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", cluster.port))
