"""The Store protocol and the nouns it speaks: channel settings, usage amounts, reservations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bot.errors import UserFacingError

Metric = Literal["requests", "tokens", "images", "audio_seconds"]
Window = Literal["day", "month"]
Status = Literal["ok", "error", "interrupted", "cancelled"]


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Per-channel choices; None means "use the service default"."""

    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    auto_transcribe: bool = True


@dataclass(frozen=True, slots=True)
class Amounts:
    """Usage in the four metered units (tokens split as the gateway reports them)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    audio_seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True, slots=True)
class Charge:
    """Who and what a ledger row is for."""

    platform: str
    channel: str  # Place.channel_key
    user: str
    command: str
    model: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """A pending ledger row holding an estimate until it is settled or released."""

    id: int
    charge: Charge
    estimate: Amounts


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    created_at: datetime
    charge: Charge
    amounts: Amounts
    status: str


class QuotaExceeded(UserFacingError):
    """A reservation would pass a limit; says which limit, what is left, when it resets."""

    def __init__(
        self, metric: Metric, window: Window, limit: float, used: float, resets_at: datetime
    ) -> None:
        left = max(limit - used, 0)
        super().__init__(
            f"This channel has used its {window}ly {metric.replace('_', ' ')} quota "
            f"({used:g} of {limit:g}, {left:g} left); it resets {resets_at:%Y-%m-%d %H:%M %Z}."
        )
        self.metric = metric
        self.window = window
        self.limit = limit
        self.used = used
        self.resets_at = resets_at


class Store(Protocol):
    """Everything the bot persists. Implementations must make `reserve` atomic."""

    async def channel_settings(self, channel: str) -> ChannelSettings: ...

    async def set_channel_settings(self, channel: str, settings: ChannelSettings) -> None: ...

    async def reserve(
        self, charge: Charge, estimate: Amounts, *, now: datetime | None = None
    ) -> Reservation:
        """Hold `estimate` against the channel's limits; raise QuotaExceeded if it does not fit."""
        ...

    async def settle(
        self, reservation: Reservation, actual: Amounts, status: Status = "ok"
    ) -> None:
        """Replace the estimate with what was really used."""
        ...

    async def release(self, reservation: Reservation, status: Status = "error") -> None:
        """Drop the estimate; the ledger row stays with zero usage and the status."""
        ...

    async def first_delivery(self, event_id: str) -> bool:
        """True the first time an event id is seen (persisted), False for redeliveries."""
        ...

    async def ledger(self, channel: str | None = None) -> list[LedgerRow]: ...

    async def close(self) -> None: ...
