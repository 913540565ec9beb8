"""The long-lived collaborators every command can reach."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Config
from bot.gateway.client import Gateway
from bot.ops.telemetry import Silent, Telemetry
from bot.streaming.budgets import Budgets
from storage.base import Store


@dataclass(slots=True)
class Services:
    config: Config
    gateway: Gateway
    store: Store
    budgets: Budgets
    # Metrics hooks (bot/ops/metrics.py when the ops port is on).
    telemetry: Telemetry = field(default_factory=Silent)
