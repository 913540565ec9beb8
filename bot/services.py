"""The long-lived collaborators every command can reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import Config
from bot.gateway.client import Gateway
from bot.streaming.budgets import Budgets
from storage.base import Store

if TYPE_CHECKING:
    from bot.tools.mcp import McpServers


@dataclass(slots=True)
class Services:
    config: Config
    gateway: Gateway
    store: Store
    budgets: Budgets
    # The MCP servers of CHATOPS_MCP_CONFIG (None: none configured).
    mcp: McpServers | None = None
