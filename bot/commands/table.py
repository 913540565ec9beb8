"""The explicit name → command table (no discovery, no registry)."""

from __future__ import annotations

from bot.commands import Command
from bot.commands.access import ALLOWLIST, CHANNELS
from bot.commands.chat import ASK
from bot.commands.feedback import FEEDBACK
from bot.commands.help import help_command
from bot.commands.image import IMAGE
from bot.commands.memory import MEMORY, SEARCH
from bot.commands.models import MODEL, MODELS
from bot.commands.quota import QUOTA
from bot.commands.settings import SETTINGS_COMMANDS
from bot.commands.summarize import SUMMARIZE
from bot.commands.tools import TOOLS
from bot.commands.transcribe import TRANSCRIBE
from bot.commands.translate import TRANSLATE


def command_table(transcribe: Command = TRANSCRIBE) -> dict[str, Command]:
    """Every command by name; `transcribe` is bound to the service's audio limits."""
    commands = (
        ASK,
        IMAGE,
        transcribe,
        SUMMARIZE,
        TRANSLATE,
        MODELS,
        MODEL,
        QUOTA,
        TOOLS,
        *SETTINGS_COMMANDS,
        MEMORY,
        SEARCH,
        CHANNELS,
        ALLOWLIST,
        FEEDBACK,
    )
    table: dict[str, Command] = {c.name: c for c in commands}
    table["chat"] = ASK
    table["help"] = help_command(table)
    return table
