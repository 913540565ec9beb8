"""`tools`: which tools the model may call in this channel; admins switch them on and off."""

from __future__ import annotations

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.i18n import N_, t
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
        raise UserFacingError(
            t(
                "`{command}` is not something I know. Usage: `{usage}`",
                command=f"tools {words[0]}",
                usage=USAGE,
            )
        )
    if not ctx.is_admin:
        raise UserFacingError(
            t("Only admins can switch this channel's tools; anyone can see them with `tools`.")
        )
    if len(words) != 2:
        raise UserFacingError(t("Name one tool or MCP server. Usage: `{usage}`", usage=USAGE))
    builtins, servers = _names(ctx)
    name = words[1].lower()
    if name not in builtins and name not in servers:
        known = ", ".join(f"`{n}`" for n in builtins + servers)
        raise UserFacingError(
            t(
                "There is no tool or MCP server `{name}`; there are {names}.",
                name=words[1],
                names=known,
            )
        )
    enabled = None if sub in ("default", "reset") else sub in ("enable", "on")
    await ctx.services.store.set_tool_switch(ctx.req.place.channel_key, name, enabled)
    what = t("MCP server") if name in servers else t("tool")
    if enabled is None:
        default = _state(name in builtins)
        await ctx.reply(
            t(
                "The {what} `{name}` is back to its default ({state}) in this channel.",
                what=what,
                name=name,
                state=default,
            )
        )
    else:
        await ctx.reply(
            t(
                "The {what} `{name}` is now {state} in this channel (set by {who}).",
                what=what,
                name=name,
                state=_state(enabled),
                who=ctx.req.user.name,
            )
        )


def _state(on: bool) -> str:
    return t("on") if on else t("off")


async def _listing(ctx: Context) -> str:
    builtins, servers = _names(ctx)
    switches = await ctx.services.store.tool_switches(ctx.req.place.channel_key)
    rounds = ctx.services.config.tools.rounds
    lines = [t("**Tools the model may call in this channel**")]
    if rounds == 0:
        lines.append(
            t("Tool calling is switched off for the whole service (CHATOPS_TOOL_ROUNDS=0).")
        )
    for name in builtins:
        lines.append(f"• `{name}`: {_state(switches.get(name, True))}")
    for name in servers:
        on = switches.get(name, False)
        server = ctx.services.mcp.get(name) if ctx.services.mcp is not None else None
        if server is None or server.up:
            state = ""
        else:
            state = " " + t("(unavailable: {problem})", problem=server.problem)
        titles = ", ".join(tool.title for tool in server.tools()) if server is not None else ""
        listed = f": {titles}" if titles else ""
        lines.append(
            t("• MCP server `{name}`: {state}", name=name, state=_state(on)) + state + listed
        )
    if not servers:
        lines.append(t("No MCP servers are configured (CHATOPS_MCP_CONFIG)."))
    lines.append(
        t(
            "Built-ins are on and MCP servers off until an admin says `tools enable <name>` or "
            "`tools disable <name>`."
        )
    )
    return "\n".join(lines)


TOOLS = Command(
    name="tools",
    summary=N_("The tools the model may call here (admins: enable or disable one)."),
    usage=USAGE,
    run=run_tools,
    private=True,
)
