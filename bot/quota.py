"""Quota rules: limit defaults from the environment, windows in a time zone, the quota view."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ConfigError
from storage.base import (
    LimitSetting,
    Metric,
    QuotaStatus,
    Spender,
    Window,
)

METRICS: tuple[Metric, ...] = ("requests", "tokens", "images", "audio_seconds")
WINDOWS: tuple[Window, ...] = ("day", "month")

# Above this a limit is a typo, not a budget (a trillion tokens is ~ millions of dollars).
MAX_LIMIT = 1e12
DEFAULT_TTL = timedelta(minutes=10)

_METRIC_NAMES: dict[str, Metric] = {
    "requests": "requests",
    "request": "requests",
    "req": "requests",
    "tokens": "tokens",
    "token": "tokens",
    "images": "images",
    "image": "images",
    "img": "images",
    "audio": "audio_seconds",
    "audio_seconds": "audio_seconds",
    "audio-seconds": "audio_seconds",
    "seconds": "audio_seconds",
}
_WINDOW_NAMES: dict[str, Window] = {
    "day": "day",
    "daily": "day",
    "today": "day",
    "month": "month",
    "monthly": "month",
}
_UNLIMITED = {"unlimited", "none", "off", "inf", "infinite", "-"}
_COUNT_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_SECONDS_SUFFIX = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"^([0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*([a-z]*)$")


def parse_metric(text: str) -> Metric:
    """A metric name or alias; ValueError names the valid ones."""
    metric = _METRIC_NAMES.get(text.strip().lower())
    if metric is None:
        raise ValueError(f"unknown metric {text!r}; use one of: requests, tokens, images, audio")
    return metric


def parse_window(text: str) -> Window:
    window = _WINDOW_NAMES.get(text.strip().lower())
    if window is None:
        raise ValueError(f"unknown window {text!r}; use day or month")
    return window


def parse_limit(metric: Metric, text: str) -> float | None:
    """A limit for `metric`: a number (k/M suffixes; s/min/h for audio) or "unlimited" (None)."""
    raw = text.strip().lower()
    if raw in _UNLIMITED:
        return None
    if raw.startswith("-"):
        raise ValueError(f"a limit cannot be negative (got {text.strip()!r})")
    match = _NUMBER.match(raw)
    suffixes = _SECONDS_SUFFIX if metric == "audio_seconds" else _COUNT_SUFFIX
    if match is None or match.group(2) not in suffixes:
        hint = "seconds, or with min/h" if metric == "audio_seconds" else "a whole number"
        raise ValueError(f"{text.strip()!r} is not a limit; use {hint}, or 'unlimited'")
    value = float(match.group(1).replace("_", "").replace(",", "")) * suffixes[match.group(2)]
    if not math.isfinite(value) or value > MAX_LIMIT:
        raise ValueError(f"{text.strip()!r} is absurdly large (at most {MAX_LIMIT:,.0f})")
    if metric != "audio_seconds":
        if value != int(value):
            raise ValueError(f"{metric} limits are whole numbers (got {text.strip()!r})")
        return float(int(value))
    return value


@dataclass(frozen=True, slots=True)
class WindowKeys:
    """The calendar windows a moment falls in, as sortable strings in the quota time zone."""

    day: str
    month: str

    def of(self, window: Window) -> str:
        return self.day if window == "day" else self.month


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Default limits for every channel, the windows' time zone and the reservation TTL."""

    limits: Mapping[tuple[Metric, Window], float | None] = field(default_factory=dict)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # Fraction of each channel limit one user may use inside that channel; None = no cap.
    user_share: float | None = None
    reservation_ttl: timedelta = DEFAULT_TTL

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> QuotaConfig:
        limits: dict[tuple[Metric, Window], float | None] = {}
        for metric in METRICS:
            for window in WINDOWS:
                name = f"CHATOPS_QUOTA_{metric.upper()}_{window.upper()}"
                raw = environ.get(name, "").strip()
                if not raw:
                    continue
                try:
                    limits[(metric, window)] = parse_limit(metric, raw)
                except ValueError as e:
                    raise ConfigError(name, str(e)) from None
        tz_name = environ.get("CHATOPS_QUOTA_TZ", "").strip() or "UTC"
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                "CHATOPS_QUOTA_TZ", f"unknown time zone {tz_name!r} (e.g. UTC, Europe/Berlin)"
            ) from None
        return cls(
            limits=limits,
            tz=tz,
            user_share=_parse_share(environ.get("CHATOPS_QUOTA_USER_SHARE", "")),
            reservation_ttl=_parse_ttl(environ.get("CHATOPS_QUOTA_RESERVATION_TTL", "")),
        )

    def default_limit(self, metric: Metric, window: Window) -> float | None:
        return self.limits.get((metric, window))

    def window_keys(self, now: datetime) -> WindowKeys:
        local = now.astimezone(self.tz)
        return WindowKeys(day=local.date().isoformat(), month=f"{local.year:04d}-{local.month:02d}")

    def resets_at(self, window: Window, now: datetime) -> datetime:
        """The start of the next window, in the quota time zone."""
        today = now.astimezone(self.tz).date()
        if window == "day":
            nxt = today + timedelta(days=1)
        else:
            nxt = date(today.year + today.month // 12, today.month % 12 + 1, 1)
        return datetime.combine(nxt, time(), tzinfo=self.tz)


def _parse_share(raw: str) -> float | None:
    raw = raw.strip()
    if not raw or raw.lower() in _UNLIMITED:
        return None
    try:
        share = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        share = math.nan
    if not 0 < share <= 1:
        raise ConfigError(
            "CHATOPS_QUOTA_USER_SHARE", f"{raw!r} is not a share; use a fraction in (0, 1] or 25%"
        )
    return None if share == 1 else share


def _parse_ttl(raw: str) -> timedelta:
    raw = raw.strip()
    if not raw:
        return DEFAULT_TTL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    # Below a minute a slow image generation would lose its reservation mid-call.
    if not 60 <= seconds <= 86400:
        raise ConfigError(
            "CHATOPS_QUOTA_RESERVATION_TTL", f"{raw!r}: use seconds between 60 and 86400"
        )
    return timedelta(seconds=seconds)


# --- formatting -------------------------------------------------------------------------

_LABELS: dict[Metric, str] = {
    "requests": "requests",
    "tokens": "tokens",
    "images": "images",
    "audio_seconds": "audio",
}


def format_amount(metric: Metric, value: float) -> str:
    if metric == "audio_seconds":
        return format_seconds(value)
    return f"{value:,.0f}"


def format_seconds(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{value:.0f} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def format_in(delta: timedelta) -> str:
    """A coarse "in 3 h 5 min" for reset times."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"in {days} d {hours} h"
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min"


def _limit_line(metric: Metric, used: float, setting: LimitSetting | None) -> str:
    value = None if setting is None else setting.value
    mark = " (set for this channel)" if setting is not None and setting.overridden else ""
    if value is None:
        return f"• {_LABELS[metric]}: {format_amount(metric, used)} used, no limit{mark}"
    left = max(value - used, 0)
    return (
        f"• {_LABELS[metric]}: {format_amount(metric, used)} of {format_amount(metric, value)}"
        f" used, {format_amount(metric, left)} left{mark}"
    )


def _spenders(title: str, rows: tuple[Spender, ...]) -> str:
    if not rows:
        return f"• {title}: nobody yet" if title == "top users" else f"• {title}: none yet"
    parts = []
    for row in rows:
        bits = [f"{row.requests:,} req"]
        if row.tokens:
            bits.append(f"{row.tokens:,} tokens")
        if row.images:
            bits.append(f"{row.images:,} images")
        if row.audio_seconds:
            bits.append(format_seconds(row.audio_seconds) + " audio")
        parts.append(f"{row.name} ({', '.join(bits)})")
    return f"• {title}: " + "; ".join(parts)


def format_quota(status: QuotaStatus, now: datetime) -> str:
    """The `quota` view: usage against limits per window, resets, top users and models."""
    settings = {(s.metric, s.window): s for s in status.limits}
    title = {"day": "Today", "month": "This month"}
    lines = [f"**Quota for this channel** (windows in {status.time_zone})"]
    for usage in status.windows:
        at = usage.resets_at
        lines.append(
            f"**{title[usage.window]}** ({usage.key}), resets {at:%Y-%m-%d %H:%M} {at.tzname()}"
            f" ({format_in(at - now)})"
        )
        for metric in METRICS:
            setting = settings.get((metric, usage.window))
            lines.append(_limit_line(metric, usage.used.get(metric, 0), setting))
        lines.append(_spenders("top users", usage.top_users))
        lines.append(_spenders("top models", usage.top_models))
    if status.user_share is not None:
        lines.append(f"Each person may use at most {status.user_share:.0%} of each limit.")
    if status.pending:
        lines.append(f"{status.pending} request(s) in progress hold part of the budget.")
    return "\n".join(lines)
