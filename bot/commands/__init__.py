"""The command noun and the explicit table of every command the bot understands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
