"""Serve an aiohttp app on 127.0.0.1 for the fakes, returning the runner and its port."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve_on_loopback(
    app: web.Application, *, port: int = 0, **runner_options: Any
) -> tuple[web.AppRunner, int]:
    """Start `app` on 127.0.0.1 (`port` 0: any free one); clean up with `runner.cleanup()`."""
    runner = web.AppRunner(app, handle_signals=False, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    return runner, runner.addresses[0][1]
