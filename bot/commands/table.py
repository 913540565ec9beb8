"""The explicit name → command table (no discovery, no registry)."""

from __future__ import annotations

from bot.commands import Command
from bot.commands.chat import ASK
from bot.commands.help import help_command
from bot.commands.image import IMAGE
from bot.commands.models import MODEL, MODELS


def command_table() -> dict[str, Command]:
    table: dict[str, Command] = {c.name: c for c in (ASK, IMAGE, MODELS, MODEL)}
    table["chat"] = ASK
    table["help"] = help_command(table)
    return table
