"""Quota configuration: limits, shares and hold TTL parsed from the environment and commands."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ConfigError
from bot.governance.money import parse_money
from bot.i18n import number, t
from storage.base import DEFAULT_TTL, METRICS, WINDOWS, Metric, QuotaConfig, Window

# Above this a limit is a typo, not a budget (a trillion tokens is ~ millions of dollars).
MAX_LIMIT = 1e12

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
    "cost": "cost",
    "spend": "cost",
    "money": "cost",
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
        raise ValueError(
            t(
                "unknown metric {value}; use one of: requests, tokens, images, audio, cost",
                value=repr(text),
            )
        )
    return metric


def parse_window(text: str) -> Window:
    window = _WINDOW_NAMES.get(text.strip().lower())
    if window is None:
        raise ValueError(t("unknown window {value}; use day or month", value=repr(text)))
    return window


def parse_limit(metric: Metric, text: str) -> float | None:
    """A limit for `metric`: a number (k/M suffixes; s/min/h for audio; money for cost, kept in
    micro-units) or "unlimited" (None)."""
    raw = text.strip().lower()
    if raw in _UNLIMITED:
        return None
    if metric == "cost":
        return float(parse_money(text))
    if raw.startswith("-"):
        raise ValueError(t("a limit cannot be negative (got {value})", value=repr(text.strip())))
    match = _NUMBER.match(raw)
    suffixes = _SECONDS_SUFFIX if metric == "audio_seconds" else _COUNT_SUFFIX
    if match is None or match.group(2) not in suffixes:
        if metric == "audio_seconds":
            problem = t(
                "{value} is not a limit; use seconds, or with min/h, or 'unlimited'",
                value=repr(text.strip()),
            )
        else:
            problem = t(
                "{value} is not a limit; use a whole number, or 'unlimited'",
                value=repr(text.strip()),
            )
        raise ValueError(problem)
    value = float(match.group(1).replace("_", "").replace(",", "")) * suffixes[match.group(2)]
    if not math.isfinite(value) or value > MAX_LIMIT:
        raise ValueError(
            t(
                "{value} is absurdly large (at most {limit})",
                value=repr(text.strip()),
                limit=number(MAX_LIMIT),
            )
        )
    if metric != "audio_seconds":
        if value != int(value):
            raise ValueError(
                t(
                    "limits on {metric} are whole numbers (got {value})",
                    metric=metric,
                    value=repr(text.strip()),
                )
            )
        return float(int(value))
    return value


def quota_config_from_env(environ: Mapping[str, str]) -> QuotaConfig:
    """Default limits, time zone, user share and hold TTL from CHATOPS_QUOTA_* variables."""
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
    return QuotaConfig(
        limits=limits,
        tz=tz,
        user_share=_parse_share(environ.get("CHATOPS_QUOTA_USER_SHARE", "")),
        reservation_ttl=_parse_ttl(environ.get("CHATOPS_QUOTA_RESERVATION_TTL", "")),
    )


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
