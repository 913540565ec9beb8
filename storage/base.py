"""The Store protocol and the nouns it speaks: channel settings, usage amounts, reservations."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bot.errors import UserFacingError

Metric = Literal["requests", "tokens", "images", "audio_seconds"]
Window = Literal["day", "month"]
Status = Literal["ok", "error", "interrupted", "cancelled"]
# What a ledger row may say besides a final Status: still held, given back by expiry, refused.
LedgerStatus = Literal["pending", "expired", "refused", "ok", "error", "interrupted", "cancelled"]
Scope = Literal["channel", "user"]


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
    user: str  # User.id
    command: str
    model: str
    user_name: str = ""  # User.name, shown in `quota` instead of the id when set


@dataclass(frozen=True, slots=True)
class Reservation:
    """A pending ledger row holding an estimate until it is settled or released."""

    id: int
    charge: Charge
    estimate: Amounts


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One request. `amounts` is what it is charged now: the estimate while pending, the real
    usage once settled, zero when released, refused or expired (`estimate` keeps the guess)."""

    id: int
    created_at: datetime
    charge: Charge
    amounts: Amounts
    status: str
    estimate: Amounts = Amounts()
    finished_at: datetime | None = None
    day: str = ""  # the quota windows it was charged to (keys in the quota time zone)
    month: str = ""


@dataclass(frozen=True, slots=True)
class LimitSetting:
    """The limit in force for one metric and window; None means unlimited."""

    metric: Metric
    window: Window
    value: float | None
    overridden: bool  # set for this channel, not the service default


@dataclass(frozen=True, slots=True)
class Spender:
    """Usage of one user or one model within a window."""

    name: str
    requests: int
    tokens: int
    images: int
    audio_seconds: float


@dataclass(frozen=True, slots=True)
class WindowUsage:
    window: Window
    key: str  # "2026-11-26" / "2026-11", in the quota time zone
    used: Mapping[Metric, float]  # includes what pending reservations hold
    top_users: tuple[Spender, ...]
    top_models: tuple[Spender, ...]
    resets_at: datetime  # the next window's start, in the quota time zone


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """What the `quota` command shows for one channel."""

    channel: str
    windows: tuple[WindowUsage, ...]
    limits: tuple[LimitSetting, ...]
    user_share: float | None
    pending: int  # reservations currently held
    time_zone: str  # the windows' zone, e.g. "UTC" or "Europe/Berlin"


def _amount(metric: Metric, value: float) -> str:
    if metric == "audio_seconds":
        return f"{value:,.0f} s"
    unit = metric[:-1] if value == 1 else metric
    return f"{value:,.0f} {unit}"


class QuotaExceeded(UserFacingError):
    """A reservation would pass a limit; says which limit, what is left, when it resets."""

    def __init__(
        self,
        metric: Metric,
        window: Window,
        limit: float,
        used: float,
        resets_at: datetime,
        *,
        needed: float = 0.0,
        scope: Scope = "channel",
    ) -> None:
        left = max(limit - used, 0)
        period = "daily" if window == "day" else "monthly"
        who = "This channel's" if scope == "channel" else "Your share of this channel's"
        name = {"requests": "request", "tokens": "token", "images": "image"}.get(metric, "audio")
        cap = f"{limit:,.0f}" + (" s" if metric == "audio_seconds" else "")
        if left <= 0 or metric == "requests":
            state = f"is used up ({_amount(metric, used)} of {cap})"
        else:
            state = (
                f"would be exceeded: {_amount(metric, used)} used of {cap}, "
                f"{_amount(metric, left)} left, this request may need up to "
                f"{_amount(metric, needed)}"
            )
        super().__init__(
            f"{who} {period} {name} limit {state}. "
            f"It resets {resets_at:%Y-%m-%d %H:%M} {resets_at.tzname()}."
        )
        self.metric = metric
        self.window = window
        self.limit = limit
        self.used = used
        self.left = left
        self.needed = needed
        self.scope = scope
        self.resets_at = resets_at


class Store(Protocol):
    """Everything the bot persists. Implementations must make `reserve` atomic."""

    async def channel_settings(self, channel: str) -> ChannelSettings: ...

    async def set_channel_settings(self, channel: str, settings: ChannelSettings) -> None: ...

    async def reserve(
        self, charge: Charge, estimate: Amounts, *, now: datetime | None = None
    ) -> Reservation:
        """Hold `estimate` against the channel's limits; raise QuotaExceeded if it does not fit.

        Every reservation counts as one request. The ledger gets a row either way (a refused
        one charges nothing); the hold expires after the reservation TTL if never settled.
        """
        ...

    async def settle(
        self, reservation: Reservation, actual: Amounts, status: Status = "ok"
    ) -> None:
        """Replace the estimate with what was really used, exactly once: settling or releasing
        again changes nothing; if the hold had expired meanwhile, the real usage is charged."""
        ...

    async def release(self, reservation: Reservation, status: Status = "error") -> None:
        """Drop the estimate; the ledger row stays with zero usage and the status."""
        ...

    async def first_delivery(self, event_id: str) -> bool:
        """True the first time an event id is seen (persisted), False for redeliveries."""
        ...

    async def ledger(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[LedgerRow]:
        """Ledger rows in id order, optionally one channel's, paged by `after_id`."""
        ...

    async def close(self) -> None: ...

    # --- settings, changed atomically ---

    async def update_channel_settings(
        self, channel: str, change: Callable[[ChannelSettings], ChannelSettings]
    ) -> ChannelSettings:
        """Read, change and write one channel's settings in one transaction; returns the result."""
        ...

    # --- quota administration ---

    async def limits(self, channel: str) -> tuple[LimitSetting, ...]:
        """The limits in force for a channel: its overrides over the service defaults."""
        ...

    async def set_limit(
        self, channel: str, metric: Metric, window: Window, value: float | None
    ) -> None:
        """Override one limit for a channel; None means unlimited."""
        ...

    async def clear_limits(
        self, channel: str, metric: Metric | None = None, window: Window | None = None
    ) -> int:
        """Drop a channel's overrides (all, or the matching ones); returns how many."""
        ...

    async def reset_usage(self, channel: str, *, now: datetime | None = None) -> None:
        """Give a channel a fresh budget for the current windows; the ledger keeps its rows."""
        ...

    async def quota_status(
        self, channel: str, *, now: datetime | None = None, top: int = 3
    ) -> QuotaStatus: ...

    async def channels(self) -> list[str]:
        """Every channel that has settings, limits or usage."""
        ...

    async def expire_stale(self, *, now: datetime | None = None) -> int:
        """Give back reservations past their TTL (a crashed process); returns how many."""
        ...
