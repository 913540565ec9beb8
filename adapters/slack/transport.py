"""How Slack traffic reaches the bolt app: a Socket Mode websocket or an Events API listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.secret import Secret

log = logging.getLogger("adapters.slack.app")


async def serve_socket(
    app: AsyncApp,
    app_token: Secret,
    client: AsyncWebClient,
    ready: Callable[[AsyncBaseSocketModeClient], None],
) -> None:
    """Hold a Socket Mode connection until cancelled.

    The SDK asks for the websocket URL through apps.connections.open on `client`'s base URL,
    and reconnects by itself when Slack rotates or drops the connection. `ready` gets the
    SDK's client once connected, whose `is_connected()` then tells the connection's state.
    """
    socket = AsyncSocketModeHandler(app, app_token=app_token.reveal(), web_client=client)
    await socket.connect_async()  # type: ignore[no-untyped-call]
    ready(socket.client)
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await socket.close_async()  # type: ignore[no-untyped-call]


async def serve_http(
    app: AsyncApp, host: str, port: int, path: str, ready: Callable[[int], None]
) -> None:
    """Answer Events API, slash command and interactivity POSTs on `path` until cancelled.

    bolt checks each request's signature and timestamp and answers url_verification.
    """

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post(path, events)
    runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server: Any = site._server
        bound = int(server.sockets[0].getsockname()[1])
        log.info("slack: Events API on port %s%s", bound, path)
        ready(bound)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
