"""`help`, generated from the command table so it can never drift from what exists."""

from __future__ import annotations

from collections.abc import Mapping

from bot.commands import Command
from bot.context import Context
from bot.i18n import N_, t


def help_command(table: Mapping[str, Command]) -> Command:
    async def run_help(ctx: Context) -> None:
        lines = [t("**Commands** (as a slash command or after mentioning me):")]
        seen: set[str] = set()
        for command in table.values():
            if command.name in seen or command.hidden:
                continue
            seen.add(command.name)
            lines.append(f"• `{command.usage}`: {t(command.summary)}")
        lines.append(t("Anything else you mention me with is a question for the channel's model."))
        await ctx.reply("\n".join(lines), ephemeral=True)

    return Command(
        name="help",
        summary=N_("This list."),
        usage="help",
        run=run_help,
        private=True,
    )
