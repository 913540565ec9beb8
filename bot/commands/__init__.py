"""The command noun and the explicit table of every command the bot understands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.commands.options import wants_share

if TYPE_CHECKING:
    from bot.context import Context


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str
    usage: str
    run: Callable[[Context], Awaitable[None]]
    # Private output (help, quota) goes to the asker only where the platform can do that.
    private: bool = False
    # Private unless the arguments say `share` (summarize, translate).
    shareable: bool = False
    # Reached only from platform buttons (feedback): not listed in help, not a slash command,
    # not run by a mention's first word.
    hidden: bool = False

    def private_for(self, args: str) -> bool:
        """Whether this invocation's output is for the asker alone (known before it runs)."""
        if not self.private:
            return False
        if not self.shareable:
            return True
        return not wants_share(args)
