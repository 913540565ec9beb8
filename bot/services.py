"""The long-lived collaborators every command can reach."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Config
from bot.gateway.client import Gateway
from bot.streaming.budgets import Budgets
from storage.base import Store


@dataclass(slots=True)
class Services:
    config: Config
    gateway: Gateway
    store: Store
    budgets: Budgets
