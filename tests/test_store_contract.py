"""Store contract: every backend (SQLite and PostgreSQL) must pass this same suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.quota.view import refusal_text
from storage.base import (
    EVENT_RETENTION,
    Amounts,
    ChannelSettings,
    Charge,
    QuotaConfig,
    QuotaExceeded,
    Rates,
    RuleScope,
    Store,
    ToolCallRecord,
)
from storage.opener import open_store

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHAT = Charge("slack", "slack:C1", "U1", "ask", "gpt-4o")
EST = Amounts(tokens_in=100, tokens_out=400)

MakeStore = Callable[..., Awaitable[Store]]


class Clock:
    """Injected time: tests move it, nothing sleeps."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def make_store(store_at: str) -> AsyncIterator[MakeStore]:
    """Opens stores on one database (each backend in turn); a second call reopens it."""
    opened: list[Store] = []

    async def make(quota: QuotaConfig | None = None, clock: Clock | None = None) -> Store:
        store = await open_store(store_at, quota or QuotaConfig(), clock=clock or Clock())
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def limits(**values: float | None) -> QuotaConfig:
    """QuotaConfig(limits=...) from keywords like requests_day=3."""
    table: dict[Any, float | None] = {}
    for key, value in values.items():
        metric, window = key.rsplit("_", 1)
        table[(metric, window)] = value
    return QuotaConfig(limits=table)


async def used(store: Store, channel: str = CHAT.channel, now: datetime = T0) -> dict[str, float]:
    status = await store.quota_status(channel, now=now)
    return {f"{w.window}_{m}": v for w in status.windows for m, v in w.used.items()}


# --- channel settings ---------------------------------------------------------------------


async def test_ping_answers_while_the_store_is_open(make_store: MakeStore) -> None:
    store = await make_store()
    # Readiness calls it every few seconds: it answers, repeatedly, and changes nothing.
    for _ in range(3):
        await store.ping()
    assert await store.channels() == []


async def test_settings_default_then_persist_across_restart(make_store: MakeStore) -> None:
    store = await make_store()
    assert await store.channel_settings("slack:C1") == ChannelSettings()
    chosen = ChannelSettings(
        model="gpt-4o",
        system_prompt="Be terse.",
        temperature=0.3,
        max_tokens=800,
        auto_transcribe=False,
        language="zh_CN",
    )
    await store.set_channel_settings("slack:C1", chosen)
    await store.close()
    again = await make_store()
    assert await again.channel_settings("slack:C1") == chosen
    assert await again.channel_settings("slack:C2") == ChannelSettings()


async def test_update_channel_settings_is_atomic(make_store: MakeStore) -> None:
    store = await make_store()
    await store.set_channel_settings("c", ChannelSettings(max_tokens=0))

    def bump(s: ChannelSettings) -> ChannelSettings:
        return replace(s, max_tokens=(s.max_tokens or 0) + 1)

    async with asyncio.timeout(20):
        await asyncio.gather(*(store.update_channel_settings("c", bump) for _ in range(60)))
    assert (await store.channel_settings("c")).max_tokens == 60


async def test_a_failing_change_is_undone_alone(make_store: MakeStore) -> None:
    store = await make_store()

    def explode(s: ChannelSettings) -> ChannelSettings:
        raise RuntimeError("validation failed half way")

    def named(model: str) -> Callable[[ChannelSettings], ChannelSettings]:
        return lambda s: replace(s, model=model)

    async with asyncio.timeout(20):
        results = await asyncio.gather(
            store.update_channel_settings("a", named("m-a")),
            store.update_channel_settings("b", explode),
            store.reserve(CHAT, EST, now=T0),
            store.update_channel_settings("c", named("m-c")),
            return_exceptions=True,
        )
    assert isinstance(results[1], RuntimeError)
    assert (await store.channel_settings("a")).model == "m-a"
    assert (await store.channel_settings("b")) == ChannelSettings()
    assert (await store.channel_settings("c")).model == "m-c"
    assert len(await store.ledger()) == 1


# --- event de-duplication -----------------------------------------------------------------


async def test_first_delivery_is_persisted(make_store: MakeStore) -> None:
    store = await make_store()
    assert await store.first_delivery("Ev1") is True
    assert await store.first_delivery("Ev1") is False
    assert await store.first_delivery("Ev2") is True
    await store.close()
    again = await make_store()
    assert await again.first_delivery("Ev1") is False
    # No id (console input) cannot be de-duplicated, so it is never dropped.
    assert await again.first_delivery("") is True
    assert await again.first_delivery("") is True


async def test_old_event_ids_are_pruned_after_the_retention(make_store: MakeStore) -> None:
    clock = Clock()
    store = await make_store(clock=clock)
    assert await store.first_delivery("Ev-old") is True
    clock.now = T0 + EVENT_RETENTION / 2
    assert await store.first_delivery("Ev-old") is False  # a redelivery within the retention
    clock.now = T0 + EVENT_RETENTION + timedelta(hours=1)
    assert await store.first_delivery("Ev-new") is True
    assert await store.first_delivery("Ev-new") is False
    # Pruned: a day on, no platform redelivers it, and the table does not grow for ever.
    assert await store.first_delivery("Ev-old") is True


# --- reserve, settle, release ---------------------------------------------------------------


async def test_settle_replaces_estimate_with_actual(make_store: MakeStore) -> None:
    store = await make_store(limits(tokens_day=10_000))
    r = await store.reserve(CHAT, EST, now=T0)
    assert (await used(store))["day_tokens"] == 500
    await store.settle(r, Amounts(tokens_in=90, tokens_out=210))
    assert (await used(store))["day_tokens"] == 300
    assert (await used(store))["day_requests"] == 1
    [row] = await store.ledger()
    assert row.id == r.id and row.status == "ok" and row.charge == CHAT
    assert row.amounts == Amounts(requests=1, tokens_in=90, tokens_out=210)
    assert row.estimate == Amounts(requests=1, tokens_in=100, tokens_out=400)
    assert row.created_at == T0 and row.finished_at == T0


async def test_release_gives_the_budget_back(make_store: MakeStore) -> None:
    store = await make_store(limits(requests_day=1))
    r = await store.reserve(CHAT, EST, now=T0)
    with pytest.raises(QuotaExceeded):
        await store.reserve(CHAT, EST, now=T0)
    await store.release(r, "error")
    again = await store.reserve(CHAT, EST, now=T0)
    rows = {row.id: row for row in await store.ledger()}
    assert rows[r.id].status == "error" and rows[r.id].amounts == Amounts()
    assert rows[again.id].status == "pending"


async def test_settle_or_release_twice_never_counts_twice(make_store: MakeStore) -> None:
    store = await make_store()
    r = await store.reserve(CHAT, EST, now=T0)
    await store.settle(r, Amounts(tokens_in=10, tokens_out=20))
    await store.settle(r, Amounts(tokens_in=10, tokens_out=20))
    await store.release(r)
    assert (await used(store))["day_tokens"] == 30
    assert (await used(store))["month_requests"] == 1
    [row] = await store.ledger()
    assert row.status == "ok"


async def test_refusal_names_limit_left_and_reset(make_store: MakeStore) -> None:
    store = await make_store(limits(tokens_month=1000))
    first = await store.reserve(CHAT, EST, now=T0)
    await store.settle(first, Amounts(tokens_in=300, tokens_out=300))
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(CHAT, EST, now=T0)
    e = info.value
    assert (e.metric, e.window, e.scope) == ("tokens", "month", "channel")
    assert (e.limit, e.used, e.left, e.needed) == (1000, 600, 400, 500)
    assert e.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    said = refusal_text(e)
    assert "monthly token limit" in said and "400 tokens left" in said
    assert "2026-12-01 00:00" in said
    # The refused request leaves a row that charges nothing; the counters did not move.
    refused = [row for row in await store.ledger() if row.status == "refused"]
    assert len(refused) == 1 and refused[0].amounts == Amounts()
    assert (await used(store))["month_tokens"] == 600


async def test_estimate_bigger_than_the_limit_is_refused_on_a_fresh_channel(
    make_store: MakeStore,
) -> None:
    store = await make_store(limits(images_day=2))
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(CHAT, Amounts(images=3), now=T0)
    assert (info.value.metric, info.value.used) == ("images", 0)
    assert (await used(store))["day_images"] == 0
    await store.reserve(CHAT, Amounts(images=2), now=T0)


async def test_a_limit_gates_only_requests_that_use_its_metric(make_store: MakeStore) -> None:
    store = await make_store(limits(tokens_day=500))
    r = await store.reserve(CHAT, EST, now=T0)
    await store.settle(r, Amounts(tokens_in=200, tokens_out=400))  # over: reported > estimate
    with pytest.raises(QuotaExceeded):
        await store.reserve(CHAT, EST, now=T0)
    image = Charge("slack", CHAT.channel, "U1", "image", "gpt-image-1")
    await store.reserve(image, Amounts(images=1), now=T0)


async def test_a_follow_up_charges_its_units_but_no_request(make_store: MakeStore) -> None:
    store = await make_store(limits(requests_day=1, tokens_day=2000))
    first = await store.reserve(CHAT, EST, now=T0)
    await store.settle(first, Amounts(requests=1, tokens_in=100, tokens_out=100))
    # The day's one request is spent; a later round of the same question still goes ahead.
    round_two = replace(CHAT, follow_up=True)
    second = await store.reserve(round_two, EST, now=T0)
    await store.settle(second, Amounts(requests=1, tokens_in=300, tokens_out=100))
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(CHAT, EST, now=T0)
    assert refused.value.metric == "requests"
    assert (await used(store))["day_requests"] == 1
    assert (await used(store))["day_tokens"] == 600
    rows = [r for r in await store.ledger() if r.status == "ok"]
    assert [r.amounts.requests for r in rows] == [1, 0]
    # A follow-up is still held to the other limits.
    with pytest.raises(QuotaExceeded) as over:
        await store.reserve(round_two, Amounts(tokens_in=1000, tokens_out=1000), now=T0)
    assert over.value.metric == "tokens"


async def test_concurrent_reservations_never_pass_the_limit(make_store: MakeStore) -> None:
    store = await make_store(limits(images_day=25))

    async def one(i: int) -> bool:
        try:
            await store.reserve(replace(CHAT, user=f"U{i % 7}"), Amounts(images=2), now=T0)
        except QuotaExceeded:
            return False
        return True

    async with asyncio.timeout(30):
        won = await asyncio.gather(*(one(i) for i in range(210)))
    assert sum(won) == 12  # 12 x 2 = 24 <= 25 < 26
    assert (await used(store))["day_images"] == 24
    assert sum(r.amounts.images for r in await store.ledger()) == 24


async def test_a_charge_without_a_user_does_not_count_twice(make_store: MakeStore) -> None:
    store = await make_store(replace(limits(requests_day=3), user_share=0.5))
    r = await store.reserve(replace(CHAT, user=""), EST, now=T0)
    await store.settle(r, EST)
    assert (await used(store))["day_requests"] == 1
    [row] = await store.ledger()
    assert row.charge.user == "unknown"


async def test_negative_amounts_are_rejected(make_store: MakeStore) -> None:
    store = await make_store()
    with pytest.raises(ValueError, match="zero or more"):
        await store.reserve(CHAT, Amounts(tokens_in=-500), now=T0)
    r = await store.reserve(CHAT, EST, now=T0)
    with pytest.raises(ValueError, match="zero or more"):
        await store.settle(r, Amounts(audio_seconds=float("nan")))
    assert [row.status for row in await store.ledger()] == ["pending"]


# --- limits ---------------------------------------------------------------------------------


async def test_overrides_beat_defaults_and_clear_restores_them(make_store: MakeStore) -> None:
    store = await make_store(limits(requests_day=1, tokens_month=5000))
    await store.set_limit(CHAT.channel, "requests", "day", 3)
    await store.set_limit(CHAT.channel, "tokens", "month", None)  # unlimited beats a default
    found = {(s.metric, s.window): s for s in await store.limits(CHAT.channel)}
    assert found[("requests", "day")].value == 3 and found[("requests", "day")].overridden
    assert found[("tokens", "month")].value is None and found[("tokens", "month")].overridden
    assert found[("images", "day")].value is None and not found[("images", "day")].overridden
    for _ in range(3):
        await store.reserve(CHAT, Amounts(tokens_in=4000), now=T0)
    with pytest.raises(QuotaExceeded):
        await store.reserve(CHAT, EST, now=T0)
    # Another channel still has the defaults.
    other = replace(CHAT, channel="slack:C2")
    await store.reserve(other, EST, now=T0)
    with pytest.raises(QuotaExceeded):
        await store.reserve(other, EST, now=T0)
    assert await store.clear_limits(CHAT.channel, "requests", "day") == 1
    found = {(s.metric, s.window): s for s in await store.limits(CHAT.channel)}
    assert found[("requests", "day")].value == 1 and not found[("requests", "day")].overridden
    assert await store.clear_limits(CHAT.channel) == 1
    assert await store.channels() == ["slack:C1", "slack:C2"]


async def test_user_share_caps_one_person(make_store: MakeStore) -> None:
    store = await make_store(replace(limits(requests_day=4), user_share=0.5))
    alice, bob = replace(CHAT, user="alice"), replace(CHAT, user="bob")
    await store.reserve(alice, EST, now=T0)
    await store.reserve(alice, EST, now=T0)
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(alice, EST, now=T0)
    assert info.value.scope == "user" and info.value.limit == 2
    assert refusal_text(info.value).startswith("Your share")
    await store.reserve(bob, EST, now=T0)
    await store.reserve(bob, EST, now=T0)
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(replace(CHAT, user="carol"), EST, now=T0)
    assert info.value.scope == "channel"


# --- expiry, reset, status, ledger ----------------------------------------------------------


async def test_a_refusal_after_sweeping_stale_holds_leaves_no_trace(
    make_store: MakeStore,
) -> None:
    store = await make_store(replace(limits(requests_day=4), user_share=0.5))
    alice, bob = replace(CHAT, user="alice"), replace(CHAT, user="bob")
    for _ in range(2):
        await store.reserve(alice, EST, now=T0)  # left pending: alice's process died
        r = await store.reserve(bob, EST, now=T0)
        await store.settle(r, EST)
    later = T0 + timedelta(minutes=11)
    # The channel looks full; sweeping alice's stale holds frees it, but bob is at his share.
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(bob, EST, now=later)
    assert info.value.scope == "user"
    status = await store.quota_status(CHAT.channel, now=later)
    assert status.windows[0].used["requests"] == 2
    assert sum(r.amounts.requests for r in await store.ledger()) == 2
    await store.reserve(alice, EST, now=later)
    await store.reserve(alice, EST, now=later)


async def test_stale_reservation_expires_and_a_late_settle_counts_once(
    make_store: MakeStore,
) -> None:
    clock = Clock()
    store = await make_store(limits(requests_day=1), clock)
    stale = await store.reserve(CHAT, EST, now=T0)
    with pytest.raises(QuotaExceeded):
        await store.reserve(CHAT, EST, now=T0 + timedelta(minutes=9))
    assert await store.expire_stale(now=T0 + timedelta(minutes=9)) == 0
    # Past the TTL the gate sweeps the stale hold when the budget looks spent.
    fresh = await store.reserve(CHAT, EST, now=T0 + timedelta(minutes=11))
    rows = {row.id: row for row in await store.ledger()}
    assert rows[stale.id].status == "expired" and rows[stale.id].amounts == Amounts()
    clock.now = T0 + timedelta(minutes=12)
    await store.settle(fresh, Amounts(tokens_in=1, tokens_out=1))
    # The slow call finishes after all: its real usage is charged once, not its estimate.
    await store.settle(stale, Amounts(tokens_in=5, tokens_out=5))
    await store.settle(stale, Amounts(tokens_in=5, tokens_out=5))
    now = T0 + timedelta(minutes=12)
    assert await used(store, now=now) == {
        "day_requests": 2,
        "day_tokens": 12,
        "day_images": 0,
        "day_audio_seconds": 0,
        "day_cost": 0,
        "month_requests": 2,
        "month_tokens": 12,
        "month_images": 0,
        "month_audio_seconds": 0,
        "month_cost": 0,
    }
    assert sum(r.amounts.tokens for r in await store.ledger()) == 12


async def test_reset_usage_gives_a_fresh_budget_but_keeps_the_ledger(
    make_store: MakeStore,
) -> None:
    store = await make_store(limits(requests_day=2))
    done = await store.reserve(CHAT, EST, now=T0)
    await store.settle(done, Amounts(tokens_in=1))
    held = await store.reserve(CHAT, EST, now=T0)
    await store.reset_usage(CHAT.channel, now=T0)
    # The request still in flight keeps its hold; the finished one is forgiven.
    assert (await used(store))["day_requests"] == 1
    await store.reserve(CHAT, EST, now=T0)
    await store.release(held)
    assert (await used(store))["day_requests"] == 1
    assert len(await store.ledger()) == 3


async def test_quota_status_shows_top_users_models_and_pending(make_store: MakeStore) -> None:
    store = await make_store(limits(tokens_day=100_000))
    for user, model, tokens in (("ann", "m1", 500), ("bo", "m2", 50), ("ann", "m2", 10)):
        name = "Ann Lee" if user == "ann" else ""
        charge = Charge("slack", CHAT.channel, user, "ask", model, user_name=name)
        r = await store.reserve(charge, EST, now=T0)
        await store.settle(r, Amounts(tokens_in=tokens))
    await store.reserve(replace(CHAT, user="cy"), EST, now=T0)
    await store.reserve(replace(CHAT, channel="slack:other"), EST, now=T0)
    status = await store.quota_status(CHAT.channel, now=T0)
    day = status.windows[0]
    assert day.window == "day" and day.key == "2026-11-26"
    assert day.used["tokens"] == 1060 and day.used["requests"] == 4
    # Shown by name where the platform gave one, by id otherwise.
    assert [(s.name, s.tokens) for s in day.top_users] == [
        ("Ann Lee", 510),
        ("cy", 500),
        ("bo", 50),
    ]
    # The pending request counts its estimate; ties go by requests, then name.
    assert [(s.name, s.tokens) for s in day.top_models] == [
        ("gpt-4o", 500),
        ("m1", 500),
        ("m2", 60),
    ]
    assert status.pending == 1
    tomorrow = await store.quota_status(CHAT.channel, now=T0 + timedelta(days=1))
    assert tomorrow.windows[0].used["tokens"] == 0 and tomorrow.windows[0].top_users == ()
    # A day later the reservation left pending has expired; the month keeps the rest.
    assert tomorrow.windows[1].used["tokens"] == 560 and tomorrow.pending == 0


async def test_ledger_pages_and_filters(make_store: MakeStore) -> None:
    store = await make_store()
    for i in range(5):
        await store.reserve(replace(CHAT, channel=f"slack:C{i % 2}"), EST, now=T0)
    rows = await store.ledger()
    assert [r.id for r in rows] == sorted(r.id for r in rows) and len(rows) == 5
    page = await store.ledger(after_id=rows[1].id, limit=2)
    assert [r.id for r in page] == [rows[2].id, rows[3].id]
    assert {r.charge.channel for r in await store.ledger("slack:C1")} == {"slack:C1"}
    assert len(await store.ledger("slack:C1")) == 2


# --- tools ------------------------------------------------------------------------------


async def test_tool_switches_persist_and_reset(make_store: MakeStore) -> None:
    store = await make_store()
    assert await store.tool_switches("slack:C1") == {}
    await store.set_tool_switch("slack:C1", "jira", True)
    await store.set_tool_switch("slack:C1", "generate_image", False)
    await store.set_tool_switch("slack:C1", "jira", False)
    await store.set_tool_switch("slack:C2", "jira", True)
    await store.close()
    again = await make_store()
    assert await again.tool_switches("slack:C1") == {"jira": False, "generate_image": False}
    await again.set_tool_switch("slack:C1", "jira", None)
    assert await again.tool_switches("slack:C1") == {"generate_image": False}
    assert await again.tool_switches("slack:C2") == {"jira": True}


async def test_tool_calls_are_recorded_in_order(make_store: MakeStore) -> None:
    store = await make_store()
    reservation = await store.reserve(CHAT, Amounts(requests=1, tokens_in=10))
    await store.record_tool_call(
        ToolCallRecord("slack:C1", "U1", "jira.search", "ok", 120, ledger_id=reservation.id)
    )
    await store.record_tool_call(
        ToolCallRecord("slack:C2", "U2", "generate_image", "timeout", 30000, detail="slow")
    )
    first, second = await store.tool_calls()
    assert (first.tool, first.outcome, first.duration_ms, first.ledger_id) == (
        "jira.search",
        "ok",
        120,
        reservation.id,
    )
    assert (second.channel, second.ledger_id, second.detail) == ("slack:C2", None, "slow")
    assert second.id > first.id and second.created_at is not None
    assert [c.tool for c in await store.tool_calls("slack:C2")] == ["generate_image"]
    assert await store.tool_calls(after_id=second.id) == []


async def test_one_vote_per_person_and_reply_the_latest_wins(make_store: MakeStore) -> None:
    store = await make_store()
    first = await store.reserve(CHAT, EST, now=T0)
    await store.settle(first, EST)
    other = await store.reserve(replace(CHAT, model="claude-sonnet-4"), EST, now=T0)
    await store.settle(other, EST)
    assert await store.record_vote(first.id, "U1", 1, channel=CHAT.channel)
    assert await store.record_vote(first.id, "U1", -1, channel=CHAT.channel)  # changed mind
    assert await store.record_vote(first.id, "U2", 1, channel=CHAT.channel)
    assert await store.record_vote(other.id, "U1", 1, channel=CHAT.channel)
    # A reply of another channel (or none at all) takes no vote from here.
    assert not await store.record_vote(first.id, "U3", 1, channel="slack:C2")
    assert not await store.record_vote(first.id + 99, "U3", 1, channel=CHAT.channel)
    votes = {v.model: (v.up, v.down) for v in await store.votes_by_model(CHAT.channel)}
    assert votes == {"gpt-4o": (1, 1), "claude-sonnet-4": (1, 0)}
    (top, _) = await store.votes_by_model()
    assert top.model == "gpt-4o" and top.satisfaction == 0.5
    assert await store.votes_by_model(month="2026-11") != []
    assert await store.votes_by_model(month="2026-12") == []
    assert await store.votes_by_model("slack:C2") == []
    # Votes survive a restart.
    await store.close()
    again = await make_store()
    assert len(await again.votes_by_model(CHAT.channel)) == 2


# --- governance: spend, access rules, notices ----------------------------------------------

RATES = Rates("USD", input=2_500_000, output=10_000_000)


async def test_cost_is_held_settled_and_kept_with_its_rates(make_store: MakeStore) -> None:
    store = await make_store(limits(cost_day=10_000))
    priced = replace(CHAT, rates=RATES)
    held = await store.reserve(priced, replace(EST, cost=RATES.cost(EST)), now=T0)
    assert (await used(store))["day_cost"] == 4250  # 100 in and 400 out at 2.50/10.00 per M
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(priced, replace(EST, cost=6000), now=T0)
    assert (info.value.metric, info.value.left) == ("cost", 5750)
    actual = Amounts(tokens_in=100, tokens_out=50)
    await store.settle(held, replace(actual, cost=RATES.cost(actual)))
    rows = await store.ledger()
    assert rows[0].amounts.cost == 750 and rows[0].estimate.cost == 4250
    assert rows[0].charge.rates == RATES, "the ledger keeps the rates it charged"
    assert rows[1].status == "refused" and rows[1].amounts.cost == 0
    assert (await used(store))["month_cost"] == 750
    bill = await store.bill("2026-11")
    (line,) = bill.lines
    assert (line.channel, line.model, line.currency, line.cost) == (
        "slack:C1",
        "gpt-4o",
        "USD",
        750,
    )
    assert (line.requests, line.tokens_in, line.tokens_out, bill.pending) == (1, 100, 50, 0)
    assert (await store.bill("2026-10")).lines == ()


async def test_access_rules_by_workspace_and_channel(make_store: MakeStore) -> None:
    store = await make_store()
    workspace, channel = RuleScope("slack", "T1"), RuleScope("slack", "T1", "C1")
    assert await store.add_access_rules(workspace, "channel_block", ["general", "C9"], "ada") == 2
    assert await store.add_access_rules(workspace, "channel_block", ["general"]) == 0
    await store.add_access_rules(channel, "model_allow", ["gpt-4o*"])
    await store.add_access_rules(RuleScope("slack", "T2"), "channel_block", ["other"])
    await store.add_access_rules(RuleScope("slack", "T1", "C2"), "model_allow", ["claude-*"])
    rules = await store.access_rules("slack", "T1", "C1")
    assert rules.patterns("channel_block", channel=False) == ("C9", "general")
    assert rules.patterns("model_allow", channel=True) == ("gpt-4o*",)
    assert rules.patterns("model_allow", channel=False) == ()
    assert {r.set_by for r in rules.rules if r.pattern == "general"} == {"ada"}
    assert await store.remove_access_rules(workspace, "channel_block", ["C9", "nope"]) == 1
    assert await store.remove_access_rules(channel, "model_allow") == 1
    await store.close()
    again = await make_store()
    rules = await again.access_rules("slack", "T1", "C1")
    assert [r.pattern for r in rules.rules] == ["general"]


async def test_a_notice_is_claimed_once_per_period_across_stores(make_store: MakeStore) -> None:
    first, second = await make_store(), await make_store()
    hour = timedelta(hours=1)
    claims = await asyncio.gather(
        *(s.claim_notice("refusal:slack:C1", every=hour, now=T0) for s in [first, second] * 10)
    )
    assert claims.count(True) == 1
    assert not await second.claim_notice("refusal:slack:C1", every=hour, now=T0 + hour / 2)
    assert await second.claim_notice("refusal:slack:C2", every=hour, now=T0 + hour / 2)
    assert await first.claim_notice("refusal:slack:C1", every=hour, now=T0 + hour)
