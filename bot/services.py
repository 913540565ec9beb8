"""The long-lived collaborators every command can reach."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config import Config
from bot.gateway.client import Gateway
from bot.ops.telemetry import Silent, Telemetry
from bot.streaming.budgets import Budgets
from storage.base import Store

if TYPE_CHECKING:
    from bot.knowledge.memory import ChannelMemory
    from bot.tools.mcp import McpServers


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Services:
    config: Config
    gateway: Gateway
    store: Store
    budgets: Budgets
    # The current moment for what commands show about time (quota resets); the store keeps its
    # own. Tests give both one clock so no result depends on the real date.
    clock: Callable[[], datetime] = utc_now
    # The MCP servers of CHATOPS_MCP_CONFIG (None: none configured).
    mcp: McpServers | None = None
    # Channel memory's indexer and search (None: not running, e.g. in the quota CLI).
    memory: ChannelMemory | None = None
    # Metrics hooks (bot/ops/metrics.py when the ops port is on).
    telemetry: Telemetry = field(default_factory=Silent)
