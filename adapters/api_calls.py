"""Counts a platform library's HTTP calls through aiohttp's tracing hooks, by method and status."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from yarl import URL

from bot.ops.telemetry import Telemetry

# (HTTP method, URL) -> a low-cardinality name: "chat.update", "PATCH /channels/{id}/messages/{id}".
CallName = Callable[[str, URL], str]


def api_call_trace(platform: str, name_of: CallName, telemetry: Telemetry) -> aiohttp.TraceConfig:
    """A TraceConfig for the platform library's session: every answer and failed call counted.

    The library's own session is the one seam every call passes (bolt, slack_sdk and
    discord.py each make calls the adapter never sees), so counting happens there.
    """
    trace = aiohttp.TraceConfig()

    async def ended(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        if status != 101:  # a websocket upgrade is a connection, not an API call
            telemetry.platform_call(platform, name_of(params.method, params.url), status)

    async def failed(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        telemetry.platform_call(platform, name_of(params.method, params.url), None)

    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    trace.freeze()
    return trace
