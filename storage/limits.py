"""Quota rules both backends share: metered units, the limits in force, which limit refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from storage.base import (
    METRICS,
    WINDOWS,
    Amounts,
    BillLine,
    Charge,
    LedgerRow,
    LimitSetting,
    Metric,
    QuotaConfig,
    QuotaExceeded,
    Rates,
    Spender,
    Window,
    WindowKeys,
)


class Counters(Protocol):
    """A quota_usage row as either driver returns it (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, column: str, /) -> Any: ...


def metered(amounts: Amounts, charge: Charge) -> dict[Metric, float]:
    """The metered units of `amounts`; every reservation is one request but a follow-up."""
    values = (
        amounts.tokens_in,
        amounts.tokens_out,
        amounts.images,
        amounts.audio_seconds,
        amounts.cost,
    )
    # A negative or NaN amount would quietly hand budget back: a caller bug, caught here.
    if not all(v >= 0 for v in values):
        raise ValueError(f"usage amounts must be zero or more: {amounts}")
    return {
        "requests": 0 if charge.follow_up else max(amounts.requests, 1),
        "tokens": amounts.tokens,
        "images": amounts.images,
        "audio_seconds": amounts.audio_seconds,
        "cost": amounts.cost,
    }


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one reservation is held against: the channel's and each user's share."""

    channel: dict[tuple[Metric, Window], float | None]
    overridden: frozenset[tuple[Metric, Window]]
    user: dict[tuple[Metric, Window], float | None]
    # The same as SQL parameters (lim_day_tokens, ...), built once.
    channel_params: dict[str, float | None]
    user_params: dict[str, float | None]

    @classmethod
    def of(
        cls,
        channel: dict[tuple[Metric, Window], float | None],
        overridden: frozenset[tuple[Metric, Window]],
        share: float | None,
    ) -> Limits:
        user = {
            k: (None if v is None or share is None else user_cap(k[0], v, share))
            for k, v in channel.items()
        }
        return cls(channel, overridden, user, lim_params(channel), lim_params(user))

    @classmethod
    def defaults(cls, quota: QuotaConfig) -> Limits:
        return cls.of(
            {(m, w): quota.default_limit(m, w) for m in METRICS for w in WINDOWS},
            frozenset(),
            quota.user_share,
        )

    def overridden_by(self, rows: Iterable[Any], share: float | None) -> Limits:
        """These limits with a channel's (metric, period, value) rows applied over them."""
        limits = dict(self.channel)
        overridden = set()
        for metric, period, value in rows:
            key = cast(tuple[Metric, Window], (metric, period))
            if key in limits:
                limits[key] = None if value is None else float(value)
                overridden.add(key)
        if not overridden:
            return self
        return Limits.of(limits, frozenset(overridden), share)


def lim_params(limits: dict[tuple[Metric, Window], float | None]) -> dict[str, float | None]:
    return {f"lim_{w}_{m}": limits[(m, w)] for m in METRICS for w in WINDOWS}


def user_cap(metric: Metric, limit: float, share: float) -> float:
    cap = limit * share
    # Counts round down but never to zero: a share must leave each person at least one.
    return cap if metric == "audio_seconds" else float(max(int(cap), 1))


def settings_of(limits: Limits) -> tuple[LimitSetting, ...]:
    return tuple(
        LimitSetting(
            metric=m, window=w, value=limits.channel[(m, w)], overridden=(m, w) in limits.overridden
        )
        for w in WINDOWS
        for m in METRICS
    )


def amounts_of(values: Iterable[Any], cost: Any = 0) -> Amounts:
    r, ti, to, im, au = values
    return Amounts(
        requests=int(r),
        tokens_in=int(ti),
        tokens_out=int(to),
        images=int(im),
        audio_seconds=float(au),
        cost=int(cost),
    )


def exceeded(
    counters: Counters | None,
    limits: dict[tuple[Metric, Window], float | None],
    keys: WindowKeys,
    want: dict[Metric, float],
    *,
    quota: QuotaConfig,
    moment: datetime,
    user_scope: bool,
) -> QuotaExceeded | None:
    """The limit a counter row (quota_usage columns; None: no row yet) has no room under for
    `want`, worded for the refusal; None when every limit has room."""
    # Month first: when both windows are full, the later reset is the one that matters.
    for w in ("month", "day"):
        for m in METRICS:
            limit = limits[(m, w)]
            if limit is None or want[m] == 0:
                continue
            used = 0.0
            if counters is not None and counters[f"{w}_key"] >= keys.of(w):
                used = float(counters[f"{w}_{m}"])
            if used + want[m] > limit:
                return QuotaExceeded(
                    m,
                    w,
                    limit,
                    used,
                    quota.resets_at(w, moment),
                    needed=want[m],
                    scope="user" if user_scope else "channel",
                )
    return None


def ledger_row(r: Any, moment: Callable[[Any], datetime | None]) -> LedgerRow:
    """A ledger row from its columns in the order both backends select them; `moment` reads
    the backend's timestamps (text in SQLite, timestamptz in PostgreSQL)."""
    created = moment(r[1])
    assert created is not None
    return LedgerRow(
        id=int(r[0]),
        created_at=created,
        charge=Charge(
            platform=r[2],
            channel=r[3],
            user=r[4],
            command=r[5],
            model=r[6],
            user_name=r[21],
            rates=Rates(str(r[24]), int(r[25]), int(r[26]), int(r[27]), int(r[28])),
        ),
        amounts=amounts_of(r[7:12], r[22]),
        status=str(r[12]),
        estimate=amounts_of(r[13:18], r[23]),
        finished_at=moment(r[18]),
        day=str(r[19]),
        month=str(r[20]),
    )


def spenders_of(rows: Iterable[Any]) -> tuple[Spender, ...]:
    """Top users or models from rows of (name, requests, tokens, images, audio, cost)."""
    return tuple(
        Spender(
            name=str(r[0]),
            requests=int(r[1]),
            tokens=int(r[2]),
            images=int(r[3]),
            audio_seconds=float(r[4]),
            cost=int(r[5]),
        )
        for r in rows
    )


def bill_lines_of(rows: Iterable[Any]) -> tuple[BillLine, ...]:
    """A bill's lines from rows of (channel, model, currency, requests, tokens in, tokens out,
    images, audio seconds, cost)."""
    return tuple(
        BillLine(
            channel=str(r[0]),
            model=str(r[1]),
            currency=str(r[2]),
            requests=int(r[3]),
            tokens_in=int(r[4]),
            tokens_out=int(r[5]),
            images=int(r[6]),
            audio_seconds=float(r[7]),
            cost=int(r[8]),
        )
        for r in rows
    )
