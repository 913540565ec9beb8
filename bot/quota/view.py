"""The `quota` view: usage against limits per window, resets, top users and models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.governance.money import format_money
from storage.base import (
    METRICS,
    LimitSetting,
    Metric,
    ModelVotes,
    QuotaExceeded,
    QuotaStatus,
    Spender,
)

_LABELS: dict[Metric, str] = {
    "requests": "requests",
    "tokens": "tokens",
    "images": "images",
    "audio_seconds": "audio",
    "cost": "spend",
}


def format_amount(metric: Metric, value: float, currency: str = "") -> str:
    """A usage or limit value as people read it (cost is kept in micro-units)."""
    if metric == "audio_seconds":
        return format_seconds(value)
    if metric == "cost":
        return format_money(value, currency)
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


def _limit_line(
    metric: Metric, used: float, setting: LimitSetting | None, currency: str = ""
) -> str:
    value = None if setting is None else setting.value
    mark = " (set for this channel)" if setting is not None and setting.overridden else ""

    def amount(v: float) -> str:
        return format_amount(metric, v, currency)

    if value is None:
        return f"• {_LABELS[metric]}: {amount(used)} used, no limit{mark}"
    left = max(value - used, 0)
    return f"• {_LABELS[metric]}: {amount(used)} of {amount(value)} used, {amount(left)} left{mark}"


def _spenders(title: str, rows: tuple[Spender, ...], currency: str = "") -> str:
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
        if row.cost or currency:
            bits.append(format_money(row.cost, currency))
        parts.append(f"{row.name} ({', '.join(bits)})")
    return f"• {title}: " + "; ".join(parts)


def month_key(status: QuotaStatus) -> str | None:
    """The current quota month of a status ("2026-06"), whose votes the view shows."""
    return next((w.key for w in status.windows if w.window == "month"), None)


def format_votes(votes: Sequence[ModelVotes]) -> str:
    """Satisfaction by model: "gpt-4o 👍 3 👎 1 (75%)"."""
    if not votes:
        return "• answers rated: none yet"
    parts = []
    for v in votes:
        share = f" ({v.satisfaction:.0%})" if v.satisfaction is not None else ""
        parts.append(f"{v.model} 👍 {v.up:,} 👎 {v.down:,}{share}")
    return "• answers rated: " + "; ".join(parts)


def format_quota(
    status: QuotaStatus,
    now: datetime,
    currency: str = "",
    votes: Sequence[ModelVotes] | None = None,
) -> str:
    """The `quota` view: usage against limits per window, resets, top users and models, and
    (when given) this month's 👍/👎 by model.

    Spend shows when there is a price table (`currency`) or any spend to show.
    """
    settings = {(s.metric, s.window): s for s in status.limits}
    money = (
        bool(currency)
        or any(s.metric == "cost" and s.value is not None for s in status.limits)
        or any(w.used.get("cost", 0) for w in status.windows)
    )
    title = {"day": "Today", "month": "This month"}
    lines = [f"**Quota for this channel** (windows in {status.time_zone})"]
    for usage in status.windows:
        at = usage.resets_at
        lines.append(
            f"**{title[usage.window]}** ({usage.key}), resets {at:%Y-%m-%d %H:%M} {at.tzname()}"
            f" ({format_in(at - now)})"
        )
        for metric in METRICS:
            if metric == "cost" and not money:
                continue
            setting = settings.get((metric, usage.window))
            lines.append(_limit_line(metric, usage.used.get(metric, 0), setting, currency))
        lines.append(_spenders("top users", usage.top_users, currency))
        lines.append(_spenders("top models", usage.top_models, currency))
        if usage.window == "month" and votes is not None:
            lines.append(format_votes(votes))
    if status.user_share is not None:
        lines.append(f"Each person may use at most {status.user_share:.0%} of each limit.")
    if status.pending:
        lines.append(f"{status.pending} request(s) in progress hold part of the budget.")
    return "\n".join(lines)


def refusal_text(refused: QuotaExceeded, currency: str = "") -> str:
    """The sentence a user sees when a request does not fit: which limit, what is left, when."""
    metric, limit, used, left = refused.metric, refused.limit, refused.used, refused.left
    period = "daily" if refused.window == "day" else "monthly"
    who = "This channel's" if refused.scope == "channel" else "Your share of this channel's"
    name = {"requests": "request", "tokens": "token", "images": "image", "cost": "spend"}.get(
        metric, "audio"
    )
    cap = _amount(metric, limit, currency) if metric == "cost" else f"{limit:,.0f}"
    cap += " s" if metric == "audio_seconds" else ""
    if left <= 0 or metric == "requests":
        state = f"is used up ({_amount(metric, used, currency)} of {cap})"
    else:
        state = (
            f"would be exceeded: {_amount(metric, used, currency)} used of {cap}, "
            f"{_amount(metric, left, currency)} left, this request may need up to "
            f"{_amount(metric, refused.needed, currency)}"
        )
    at = refused.resets_at
    return f"{who} {period} {name} limit {state}. It resets {at:%Y-%m-%d %H:%M} {at.tzname()}."


def _amount(metric: Metric, value: float, currency: str = "") -> str:
    if metric == "cost":
        return format_money(value, currency)
    if metric == "audio_seconds":
        return f"{value:,.0f} s"
    unit = metric[:-1] if value == 1 else metric
    return f"{value:,.0f} {unit}"
