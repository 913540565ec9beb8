"""The HTTP transport under the gateway's httpx client: aiohttp's C parser for SSE-heavy traffic."""

from __future__ import annotations

from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

TransportName = Literal["aiohttp", "httpcore"]


def make_transport(name: TransportName, max_connections: int) -> httpx.AsyncBaseTransport:
    """A transport whose pool holds `max_connections` (an explicit transport ignores the
    client's `limits`, so the pool is sized here).

    aiohttp is the default: each streamed chunk costs about a third of the CPU it costs through
    httpcore + h11 (bench/bench_gateway.py), and that bounds the concurrent streams one
    process carries. httpcore (httpx's own) stays available as a fallback.
    """
    if name == "httpcore":
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=100)
        return httpx.AsyncHTTPTransport(limits=limits)

    def session() -> aiohttp.ClientSession:
        # Built here rather than by httpx-aiohttp so that proxies from the environment
        # (HTTPS_PROXY, as httpx honours them) still apply; created lazily inside the loop.
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
        return aiohttp.ClientSession(connector=connector, trust_env=True)

    return AiohttpTransport(client=session)
