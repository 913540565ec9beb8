"""Showing tool calls while they run: native tasks where the platform has them, else status."""

from __future__ import annotations

import asyncio
import logging

from bot.adapter import ShowsTasks
from bot.context import Context
from bot.errors import PlatformRateLimited
from bot.events import Task
from bot.i18n import t
from bot.streaming.reply import StreamingReply

log = logging.getLogger(__name__)

# Longest wait for a write token before a task update is dropped (a later one replaces it).
TASK_WAIT = 5.0


class ToolProgress:
    """Tells the user which tools run, through the same write budget as the reply's edits.

    On an adapter that ShowsTasks (Slack native streams) each call is a task with its status;
    elsewhere, or when the adapter declines, the running calls are the reply's status line
    ("🔧 generating an image…"). `used` lists every call for the reply's closing line.
    """

    def __init__(self, ctx: Context, reply: StreamingReply) -> None:
        self._ctx = ctx
        self._reply = reply
        self._budget = ctx.services.budgets.for_place(ctx.adapter.limits, ctx.req.place)
        self._native = isinstance(ctx.adapter, ShowsTasks)
        self._lock = asyncio.Lock()
        self._running: dict[str, str] = {}
        self.used: list[tuple[str, bool]] = []

    async def started(self, call_id: str, title: str, doing: str) -> None:
        # Built-ins say what they do in the catalog's words; MCP tools go by their title.
        said = t(doing)
        self._running[call_id] = f"🔧 {said.rstrip()} …" if said.endswith(" ") else f"🔧 {said}…"
        await self._show(Task(call_id, title, "in_progress"))

    async def finished(self, call_id: str, title: str, *, ok: bool, details: str = "") -> None:
        self._running.pop(call_id, None)
        await self._show(Task(call_id, title, "complete" if ok else "error", details[:200]))

    def note(self, title: str, *, ok: bool) -> None:
        """A call for the closing line (in the order the model made them)."""
        self.used.append((title, ok))

    def footer(self) -> str | None:
        """ "🔧 used: a, b (failed)" for the end of the reply; None when no tool ran."""
        if not self.used:
            return None
        names: dict[str, bool] = {}
        for title, ok in self.used:
            names[title] = names.get(title, True) and ok
        shown = t(", ").join(
            title if ok else t("{tool} (failed)", tool=title) for title, ok in names.items()
        )
        return t("_🔧 used: {tools}_", tools=shown)

    async def _show(self, task: Task) -> None:
        if self._native and await self._native_task(task):
            return
        self._reply.progress(" · ".join(self._running.values()))

    async def _native_task(self, task: Task) -> bool:
        adapter = self._ctx.adapter
        assert isinstance(adapter, ShowsTasks)
        # One at a time: parallel calls must not each open a stream of their own.
        async with self._lock:
            try:
                async with asyncio.timeout(TASK_WAIT):
                    await self._budget.acquire()
            except TimeoutError:
                return True  # dropped, as an intermediate edit would be
            try:
                shown = await adapter.show_task(self._ctx.req, task)
            except PlatformRateLimited as limited:
                self._budget.penalize(limited.retry_after)
                return True
            except Exception:
                log.warning("%s: could not show a task", adapter.name, exc_info=True)
                shown = False
            if not shown:
                self._native = False
            return shown
