"""`tools`: which tools the model may call in this channel; admins switch them on and off."""

from __future__ import annotations

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.tools.builtins import BUILTIN_NAMES

USAGE = "tools [list | enable <name> | disable <name> | default <name>]"


def _names(ctx: Context) -> tuple[list[str], list[str]]:
    servers = ctx.services.mcp.names() if ctx.services.mcp is not None else []
    return list(BUILTIN_NAMES), servers


async def run_tools(ctx: Context) -> None:
    words = ctx.args.split()
    sub = words[0].lower() if words else "list"
    if sub in ("list", "show", "status"):
        await ctx.reply(await _listing(ctx), ephemeral=True)
        return
    if sub not in ("enable", "disable", "on", "off", "default", "reset"):
        raise UserFacingError(f"`tools {words[0]}` is not something I know. Usage: `{USAGE}`")
    if not ctx.is_admin:
        raise UserFacingError(
            "Only admins can switch this channel's tools; anyone can see them with `tools`."
        )
    if len(words) != 2:
        raise UserFacingError(f"Name one tool or MCP server. Usage: `{USAGE}`")
    builtins, servers = _names(ctx)
    name = words[1].lower()
    if name not in builtins and name not in servers:
        known = ", ".join(f"`{n}`" for n in builtins + servers)
        raise UserFacingError(f"There is no tool or MCP server `{words[1]}`; there are {known}.")
    enabled = None if sub in ("default", "reset") else sub in ("enable", "on")
    await ctx.services.store.set_tool_switch(ctx.req.place.channel_key, name, enabled)
    what = "MCP server" if name in servers else "tool"
    if enabled is None:
        default = "on" if name in builtins else "off"
        await ctx.reply(f"The {what} `{name}` is back to its default ({default}) in this channel.")
    else:
        state = "on" if enabled else "off"
        await ctx.reply(
            f"The {what} `{name}` is now {state} in this channel (set by {ctx.req.user.name})."
        )


async def _listing(ctx: Context) -> str:
    builtins, servers = _names(ctx)
    switches = await ctx.services.store.tool_switches(ctx.req.place.channel_key)
    rounds = ctx.services.config.tools.rounds
    lines = ["**Tools the model may call in this channel**"]
    if rounds == 0:
        lines.append("Tool calling is switched off for the whole service (CHATOPS_TOOL_ROUNDS=0).")
    for name in builtins:
        on = switches.get(name, True)
        lines.append(f"• `{name}`: {'on' if on else 'off'}")
    for name in servers:
        on = switches.get(name, False)
        server = ctx.services.mcp.get(name) if ctx.services.mcp is not None else None
        state = "" if server is None or server.up else f" (unavailable: {server.problem})"
        titles = ", ".join(t.title for t in server.tools()) if server is not None else ""
        listed = f": {titles}" if titles else ""
        lines.append(f"• MCP server `{name}`: {'on' if on else 'off'}{state}{listed}")
    if not servers:
        lines.append("No MCP servers are configured (CHATOPS_MCP_CONFIG).")
    lines.append(
        "Built-ins are on and MCP servers off until an admin says `tools enable <name>` "
        "or `tools disable <name>`."
    )
    return "\n".join(lines)


TOOLS = Command(
    name="tools",
    summary="The tools the model may call here (admins: enable or disable one).",
    usage=USAGE,
    run=run_tools,
    private=True,
)
