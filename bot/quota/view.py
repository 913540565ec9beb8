"""The `quota` view: usage against limits per window, resets, top users and models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.governance.money import format_money
from bot.i18n import N_, nt, number, percent, t
from storage.base import (
    METRICS,
    LimitSetting,
    Metric,
    ModelVotes,
    QuotaExceeded,
    QuotaStatus,
    Spender,
    Window,
)

_LABELS: dict[Metric, str] = {
    "requests": N_("requests"),
    "tokens": N_("tokens"),
    "images": N_("images"),
    "audio_seconds": N_("audio"),
    "cost": N_("spend"),
}
_LIMIT_NAMES: dict[tuple[Metric, Window], str] = {
    ("requests", "day"): N_("daily request limit"),
    ("requests", "month"): N_("monthly request limit"),
    ("tokens", "day"): N_("daily token limit"),
    ("tokens", "month"): N_("monthly token limit"),
    ("images", "day"): N_("daily image limit"),
    ("images", "month"): N_("monthly image limit"),
    ("audio_seconds", "day"): N_("daily audio limit"),
    ("audio_seconds", "month"): N_("monthly audio limit"),
    ("cost", "day"): N_("daily spend limit"),
    ("cost", "month"): N_("monthly spend limit"),
}


def limit_name(metric: Metric, window: Window) -> str:
    """ "daily token limit", in the current language."""
    return t(_LIMIT_NAMES[(metric, window)])


def format_amount(metric: Metric, value: float, currency: str = "") -> str:
    """A usage or limit value as people read it (cost is kept in micro-units)."""
    if metric == "audio_seconds":
        return format_seconds(value)
    if metric == "cost":
        return format_money(value, currency)
    return number(value)


def format_seconds(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return t("{seconds} s", seconds=number(value))
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        if sec:
            return t("{minutes} min {seconds} s", minutes=minutes, seconds=sec)
        return t("{minutes} min", minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if minutes:
        return t("{hours} h {minutes} min", hours=hours, minutes=minutes)
    return t("{hours} h", hours=hours)


def format_in(delta: timedelta) -> str:
    """A coarse "in 3 h 5 min" for reset times."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return t("in {days} d {hours} h", days=days, hours=hours)
    if hours:
        return t("in {hours} h {minutes} min", hours=hours, minutes=minutes)
    return t("in {minutes} min", minutes=minutes)


def _limit_line(
    metric: Metric, used: float, setting: LimitSetting | None, currency: str = ""
) -> str:
    value = None if setting is None else setting.value
    mark = " " + t("(set for this channel)") if setting is not None and setting.overridden else ""

    def amount(v: float) -> str:
        return format_amount(metric, v, currency)

    label = t(_LABELS[metric])
    if value is None:
        return t("• {what}: {used} used, no limit", what=label, used=amount(used)) + mark
    left = max(value - used, 0)
    line = t(
        "• {what}: {used} of {limit} used, {left} left",
        what=label,
        used=amount(used),
        limit=amount(value),
        left=amount(left),
    )
    return line + mark


def _spenders(rows: tuple[Spender, ...], currency: str, *, users: bool) -> str:
    title = t("top users") if users else t("top models")
    if not rows:
        return (
            t("• {title}: nobody yet", title=title)
            if users
            else t("• {title}: none yet", title=title)
        )
    parts = []
    for row in rows:
        bits = [nt("{n} req", "{n} req", row.requests)]
        if row.tokens:
            bits.append(nt("{n} token", "{n} tokens", row.tokens))
        if row.images:
            bits.append(nt("{n} image", "{n} images", row.images))
        if row.audio_seconds:
            bits.append(t("{length} audio", length=format_seconds(row.audio_seconds)))
        if row.cost or currency:
            bits.append(format_money(row.cost, currency))
        parts.append(f"{row.name} ({t(', ').join(bits)})")
    return t("• {title}: {rows}", title=title, rows=t("; ").join(parts))


def month_key(status: QuotaStatus) -> str | None:
    """The current quota month of a status ("2026-06"), whose votes the view shows."""
    return next((w.key for w in status.windows if w.window == "month"), None)


def format_votes(votes: Sequence[ModelVotes]) -> str:
    """Satisfaction by model: "gpt-4o 👍 3 👎 1 (75%)"."""
    if not votes:
        return t("• answers rated: none yet")
    parts = []
    for v in votes:
        share = f" ({percent(v.satisfaction)})" if v.satisfaction is not None else ""
        parts.append(f"{v.model} 👍 {number(v.up)} 👎 {number(v.down)}{share}")
    return t("• answers rated: {votes}", votes=t("; ").join(parts))


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
    lines = [t("**Quota for this channel** (windows in {zone})", zone=status.time_zone)]
    for usage in status.windows:
        at = usage.resets_at
        moment = f"{at:%Y-%m-%d %H:%M} {at.tzname()}"
        title = t("Today") if usage.window == "day" else t("This month")
        lines.append(
            t(
                "**{title}** ({key}), resets {moment} ({remaining})",
                title=title,
                key=usage.key,
                moment=moment,
                remaining=format_in(at - now),
            )
        )
        for metric in METRICS:
            if metric == "cost" and not money:
                continue
            setting = settings.get((metric, usage.window))
            lines.append(_limit_line(metric, usage.used.get(metric, 0), setting, currency))
        lines.append(_spenders(usage.top_users, currency, users=True))
        lines.append(_spenders(usage.top_models, currency, users=False))
        if usage.window == "month" and votes is not None:
            lines.append(format_votes(votes))
    if status.user_share is not None:
        lines.append(
            t(
                "Each person may use at most {share} of each limit.",
                share=percent(status.user_share),
            )
        )
    if status.pending:
        lines.append(
            nt(
                "{n} request in progress holds part of the budget.",
                "{n} requests in progress hold part of the budget.",
                status.pending,
            )
        )
    return "\n".join(lines)


def refusal_text(refused: QuotaExceeded, currency: str = "") -> str:
    """The sentence a user sees when a request does not fit: which limit, what is left, when."""
    metric, limit, used, left = refused.metric, refused.limit, refused.used, refused.left
    name = limit_name(metric, refused.window)
    if metric == "cost":
        cap = _amount(metric, limit, currency)
    elif metric == "audio_seconds":
        cap = t("{seconds} s", seconds=number(limit))
    else:
        cap = number(limit)
    at = refused.resets_at
    moment = f"{at:%Y-%m-%d %H:%M} {at.tzname()}"
    channel = refused.scope == "channel"
    if left <= 0 or metric == "requests":
        values = {"limit": name, "used": _amount(metric, used, currency), "cap": cap}
        if channel:
            text = t("This channel's {limit} is used up ({used} of {cap}).", **values)
        else:
            text = t("Your share of this channel's {limit} is used up ({used} of {cap}).", **values)
    else:
        values = {
            "limit": name,
            "used": _amount(metric, used, currency),
            "cap": cap,
            "left": _amount(metric, left, currency),
            "needed": _amount(metric, refused.needed, currency),
        }
        if channel:
            text = t(
                "This channel's {limit} would be exceeded: {used} used of {cap}, {left} left, "
                "this request may need up to {needed}.",
                **values,
            )
        else:
            text = t(
                "Your share of this channel's {limit} would be exceeded: {used} used of {cap}, "
                "{left} left, this request may need up to {needed}.",
                **values,
            )
    return text + " " + t("It resets {moment}.", moment=moment)


def _amount(metric: Metric, value: float, currency: str = "") -> str:
    if metric == "cost":
        return format_money(value, currency)
    if metric == "audio_seconds":
        return t("{seconds} s", seconds=number(value))
    if metric == "requests":
        return nt("{n} request", "{n} requests", value)
    if metric == "tokens":
        return nt("{n} token", "{n} tokens", value)
    return nt("{n} image", "{n} images", value)
