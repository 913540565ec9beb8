"""The tools one request may use: built-ins and enabled MCP servers, by the channel's switches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.context import Context
from bot.tools.builtins import builtin_tools
from bot.tools.tool import BUILTIN, Tool


@dataclass(frozen=True, slots=True)
class ToolSet:
    """Tools by the name the model calls them."""

    tools: Mapping[str, Tool] = field(default_factory=dict)
    # Sentences for the user about tools that could not be offered (a server that is down).
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, tools: Iterable[Tool], notes: Iterable[str] = ()) -> ToolSet:
        return cls({tool.name: tool for tool in tools}, tuple(notes))

    def __bool__(self) -> bool:
        return bool(self.tools)

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self.tools.values()]

    def names(self) -> list[str]:
        return list(self.tools)


def switched_on(tool: Tool, switches: Mapping[str, bool]) -> bool:
    """Built-ins are on until a channel switches them off; MCP servers off until switched on."""
    if tool.source == BUILTIN:
        return switches.get(tool.name, True)
    return switches.get(tool.source, False)


async def tools_for(ctx: Context) -> ToolSet:
    """What this request's chat offers the model (nothing when CHATOPS_TOOL_ROUNDS is 0)."""
    if ctx.services.config.tools.rounds == 0:
        return ToolSet()
    switches = await ctx.services.store.tool_switches(ctx.req.place.channel_key)
    tools = builtin_tools(ctx)
    notes: list[str] = []
    servers = ctx.services.mcp
    if servers is not None:
        enabled = [name for name in servers.names() if switches.get(name, False)]
        if enabled:
            found, notes = await servers.tools(enabled)
            tools += found
    return ToolSet.of((tool for tool in tools if switched_on(tool, switches)), notes)
