"""Quota windows roll over at local midnight and on the 1st, in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.quota.view import refusal_text
from storage.base import Amounts, Charge, QuotaConfig, QuotaExceeded, Store
from storage.opener import open_store as open_at

# Auckland is UTC+13 in November: its midnight is 11:00 UTC, far from UTC's own.
AKL = ZoneInfo("Pacific/Auckland")
CHARGE = Charge("discord", "discord:42", "U1", "ask", "gpt-4o")
EST = Amounts(tokens_in=10, tokens_out=10)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def open_store(store_at: str, **limits: float) -> Store:
    """A store on each backend in turn (the store_at fixture)."""
    table = {tuple(k.rsplit("_", 1)): v for k, v in limits.items()}
    quota = QuotaConfig(limits=table, tz=AKL)  # type: ignore[arg-type]
    return await open_at(store_at, quota)


async def test_day_rolls_over_at_local_midnight_not_utc(store_at: str) -> None:
    store = await open_store(store_at, requests_day=1)
    try:
        held = await store.reserve(CHARGE, EST, now=at("2026-11-25T23:59:00"))  # 12:59 local
        await store.settle(held, EST)  # settled: a pending hold would expire (TTL) meanwhile
        with pytest.raises(QuotaExceeded) as info:
            await store.reserve(CHARGE, EST, now=at("2026-11-26T00:01:00"))  # same local day
        assert info.value.resets_at == datetime(2026, 11, 27, tzinfo=AKL)
        assert "2026-11-27 00:00 NZDT" in refusal_text(info.value)
        with pytest.raises(QuotaExceeded):
            await store.reserve(CHARGE, EST, now=at("2026-11-26T10:59:59"))  # 23:59:59 local
        await store.reserve(CHARGE, EST, now=at("2026-11-26T11:00:00"))  # 00:00 next day
        status = await store.quota_status(CHARGE.channel, now=at("2026-11-26T11:00:00"))
    finally:
        await store.close()
    assert status.windows[0].key == "2026-11-27"
    assert status.windows[0].used["requests"] == 1
    assert status.windows[1].used["requests"] == 2


async def test_month_rolls_over_on_the_first_local_day(store_at: str) -> None:
    store = await open_store(store_at, tokens_month=50)
    try:
        last = await store.reserve(CHARGE, EST, now=at("2026-11-30T10:59:00"))  # Nov 30 local
        with pytest.raises(QuotaExceeded) as info:
            await store.reserve(CHARGE, Amounts(tokens_in=40), now=at("2026-11-30T10:59:30"))
        assert (info.value.window, info.value.used, info.value.left) == ("month", 20, 30)
        assert info.value.resets_at == datetime(2026, 12, 1, tzinfo=AKL)
        first = await store.reserve(CHARGE, Amounts(tokens_in=40), now=at("2026-11-30T11:00:00"))
        # Settling the November request after the roll-over must not touch December.
        await store.settle(last, Amounts(tokens_in=1, tokens_out=1))
        await store.settle(first, Amounts(tokens_in=45))
        status = await store.quota_status(CHARGE.channel, now=at("2026-11-30T11:05:00"))
        rows = await store.ledger()
    finally:
        await store.close()
    assert status.windows[1].key == "2026-12" and status.windows[1].used["tokens"] == 45
    assert [(r.month, r.amounts.tokens) for r in rows] == [
        ("2026-11", 2),
        ("2026-11", 0),  # the refused one
        ("2026-12", 45),
    ]


async def test_year_end_and_dst_reset_times() -> None:
    berlin = QuotaConfig(tz=ZoneInfo("Europe/Berlin"))
    # The night the clocks go back (25 Oct 2026) is 25 hours long; midnight is still midnight.
    assert berlin.resets_at("day", at("2026-10-25T12:00:00")) == datetime(
        2026, 10, 26, tzinfo=ZoneInfo("Europe/Berlin")
    )
    # 00:00 CEST on the 25th is 22:00 UTC on the 24th; the next midnight (CET) is 25 h later.
    local_midnight = at("2026-10-24T22:00:00")
    assert berlin.resets_at("day", local_midnight) - local_midnight == timedelta(hours=25)
    assert berlin.window_keys(local_midnight).day == "2026-10-25"
    assert berlin.resets_at("month", at("2026-12-31T22:59:00")) == datetime(
        2027, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")
    )
    assert berlin.window_keys(at("2026-12-31T23:00:00")).month == "2027-01"
    assert QuotaConfig().window_keys(at("2026-12-31T23:00:00")).month == "2026-12"


async def test_a_lagging_clock_never_rolls_a_window_back(store_at: str) -> None:
    store = await open_store(store_at, requests_day=2)
    try:
        await store.reserve(CHARGE, EST, now=at("2026-11-26T11:00:00"))  # Nov 27 local
        # Another process whose clock is a minute behind still charges the current window.
        late = await store.reserve(CHARGE, EST, now=at("2026-11-26T10:59:00"))
        with pytest.raises(QuotaExceeded):
            await store.reserve(CHARGE, EST, now=at("2026-11-26T11:01:00"))
        rows = await store.ledger()
    finally:
        await store.close()
    assert {r.day for r in rows if r.id == late.id} == {"2026-11-27"}
