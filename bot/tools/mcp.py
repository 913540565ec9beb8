"""MCP servers as tool sources, through the official `mcp` client (stdio or streamable HTTP)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import mcp_types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bot.context import Context
from bot.i18n import t
from bot.tools.config import ServerSpec
from bot.tools.tool import Tool, ToolError

log = logging.getLogger(__name__)

# Connecting (spawn, initialize, list tools) may take this long before the server counts as down.
CONNECT_TIMEOUT = 20.0
# A server that is down is tried again on use, at most this often.
RETRY_EVERY = 30.0
# How long a chat waits for such a retry before answering without the server (the retry
# goes on in the background for the next chat).
USE_WAIT = 5.0
# Longest tool result handed to the model, in characters.
MAX_RESULT_CHARS = 8000
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")


def function_name(server: str, tool: str) -> str:
    """The name the model calls: "<server>__<tool>", within OpenAI's ^[a-zA-Z0-9_-]{1,64}$."""
    return _NOT_ALLOWED.sub("_", f"{server}__{tool}")[:64]


class McpServer:
    """One configured server: its connection lives in a task of its own (anyio's scopes must
    be left in the task that entered them); a failed or dead connection is retried on use."""

    def __init__(self, spec: ServerSpec, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.spec = spec
        self.name = spec.name
        self.problem = "not started"
        self._connect_timeout = connect_timeout
        self._session: ClientSession | None = None
        self._listed: list[mcp_types.Tool] = []
        self._holder: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tried_at = -RETRY_EVERY

    @property
    def up(self) -> bool:
        return self._session is not None

    async def connect(self) -> bool:
        """Connect unless connected (or tried within RETRY_EVERY s); True when up."""
        async with self._lock:
            if self._session is not None:
                return True
            now = time.monotonic()
            if now - self._tried_at < RETRY_EVERY and self._holder is not None:
                return False
            self._tried_at = now
            await self._stop_holder()
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._closing = asyncio.Event()
            self._holder = asyncio.create_task(self._hold(ready), name=f"mcp:{self.name}")
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await asyncio.shield(ready)
            except TimeoutError:
                self.problem = f"it did not answer within {self._connect_timeout:g} s"
            except Exception as e:
                self.problem = _describe(e)
            if self._session is None:
                log.warning("MCP server %s is unavailable: %s", self.name, self.problem)
                await self._stop_holder()
                return False
            log.info("MCP server %s: %d tools", self.name, len(self._listed))
            return True

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self._listed = await _list_all(session)
                self._session = session
                self.problem = ""
                ready.set_result(None)
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # anyio wraps failures in ExceptionGroups
            if not ready.done():
                ready.set_exception(_first(e))
            else:
                self.problem = f"it stopped ({_describe(_first(e))})"
                log.warning("MCP server %s stopped: %s", self.name, self.problem)
        finally:
            self._session = None

    def _transport(self, stack: AsyncExitStack) -> Any:
        spec = self.spec
        if spec.url:
            # Our own client, for the configured headers; closed with the connection.
            client = httpx2.AsyncClient(
                headers=dict(spec.headers), timeout=httpx2.Timeout(30.0, read=300.0)
            )
            stack.push_async_callback(client.aclose)
            return streamable_http_client(spec.url, http_client=client)
        params = StdioServerParameters(
            command=spec.command, args=list(spec.args), env=dict(spec.env) or None, cwd=spec.cwd
        )
        return stdio_client(params)

    async def _stop_holder(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        self._closing.set()
        try:
            async with asyncio.timeout(10):
                await asyncio.shield(holder)
        except TimeoutError:
            holder.cancel()
        except BaseException:  # already reported by _hold
            pass
        self._session = None

    def tools(self) -> list[Tool]:
        """The server's tools as the model sees them (a schema the bot cannot use is skipped)."""
        found = []
        for listed in self._listed:
            try:
                found.append(
                    Tool.make(
                        function_name(self.name, listed.name),
                        (listed.description or listed.title or listed.name)[:1000],
                        dict(listed.input_schema or {}),
                        self._runner(listed.name),
                        source=self.name,
                        title=f"{self.name}.{listed.name}",
                    )
                )
            except ValueError as e:
                log.warning("MCP server %s: skipping tool %s: %s", self.name, listed.name, e)
        return found

    def _runner(self, tool: str) -> Any:
        async def run(ctx: Context, args: dict[str, Any]) -> str:
            return await self.call(tool, args)

        return run

    async def call(self, tool: str, args: dict[str, Any]) -> str:
        session = self._session
        if session is None:
            raise ToolError(
                t(
                    "the {server} tool server is unavailable ({problem})",
                    server=self.name,
                    problem=self.problem,
                )
            )
        try:
            result = await session.call_tool(tool, args)
        except MCPError as e:
            if e.code == mcp_types.CONNECTION_CLOSED:
                await self._lost("the connection closed mid-call")
                raise ToolError(
                    t(
                        "the {server} tool server stopped during the call; it is restarted on "
                        "the next use",
                        server=self.name,
                    )
                ) from None
            raise ToolError(
                t("{server} answered with an error: {error}", server=self.name, error=e.message)
            ) from None
        except (OSError, RuntimeError) as e:
            await self._lost(_describe(e))
            raise ToolError(
                t("the {server} tool server failed: {error}", server=self.name, error=_describe(e))
            ) from None
        text = _result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(
                t(
                    "{tool} failed: {details}",
                    tool=f"{self.name}.{tool}",
                    details=text[:500] or t("no details"),
                )
            )
        return text

    async def _lost(self, why: str) -> None:
        self.problem = why
        self._session = None
        self._tried_at = -RETRY_EVERY  # reconnect on the next use
        await self._stop_holder()

    async def close(self) -> None:
        await self._stop_holder()


class McpServers:
    """Every server CHATOPS_MCP_CONFIG lists; started together, each failing on its own."""

    def __init__(
        self, specs: tuple[ServerSpec, ...], *, use_wait: float = USE_WAIT, **options: float
    ) -> None:
        self._servers = {spec.name: McpServer(spec, **options) for spec in specs}
        self._use_wait = use_wait
        self._connecting: set[asyncio.Task[bool]] = set()

    def names(self) -> list[str]:
        return list(self._servers)

    def get(self, name: str) -> McpServer | None:
        return self._servers.get(name)

    async def start(self) -> None:
        """Connect every server; one that is down is logged and tried again on use."""
        await asyncio.gather(*(server.connect() for server in self._servers.values()))

    async def tools(self, names: list[str]) -> tuple[list[Tool], list[str]]:
        """The tools of the named servers, and a sentence per server that is down."""
        servers = [self._servers[n] for n in names if n in self._servers]
        retries = [asyncio.create_task(s.connect()) for s in servers if not s.up]
        if retries:
            self._connecting.update(retries)
            for task in retries:
                task.add_done_callback(self._connecting.discard)
            # A server slow to come back must not hold the reply for its whole connect timeout.
            await asyncio.wait(retries, timeout=self._use_wait)
        tools: list[Tool] = []
        down: list[str] = []
        for server in servers:
            if server.up:
                tools += server.tools()
            else:
                down.append(
                    t(
                        "the {server} tools are unavailable ({problem})",
                        server=server.name,
                        problem=server.problem,
                    )
                )
        return tools, down

    async def close(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        await asyncio.gather(*(server.close() for server in self._servers.values()))


async def _list_all(session: ClientSession) -> list[mcp_types.Tool]:
    listed = await session.list_tools()
    tools = list(listed.tools)
    cursor = listed.next_cursor
    while cursor:
        page = await session.list_tools(params=mcp_types.PaginatedRequestParams(cursor=cursor))
        tools += page.tools
        cursor = page.next_cursor
    return tools


def _result_text(result: Any) -> str:
    parts: list[str] = []
    for block in getattr(result, "content", None) or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} omitted]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(block, 'uri', '')}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    text = "\n".join(parts)
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "… (cut)"


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:200]
