"""Spend in money: cost reserved and settled like tokens, the view, the bill, the CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest

from bot.events import Place, Request, User
from bot.governance.policy import Policy
from bot.governance.prices import parse_prices
from bot.quota.cli import CSV_FIELDS, quota_cli
from bot.tools.config import ToolsConfig
from storage.base import MICRO, ChannelSettings, LedgerRow, QuotaConfig, Rates
from tests.core_harness import ANCHOR, Core, running_core, steady_clock

PRICES = """
currency = "USD"
[models."gpt-4o-mini*"]
input = 0.15
output = 0.60
[models."gpt-4o*"]
input = 2.50
output = 10.00
[models."gpt-image-1"]
image = 0.04
"""
# The same file a fortnight later: the operator raised the price of gpt-4o-mini.
DEARER = PRICES.replace("input = 0.15\noutput = 0.60", "input = 0.30\noutput = 1.20")
ADMIN = User("U0", "admin", is_admin=True)


def priced(text: str = PRICES) -> Policy:
    return Policy(prices=parse_prices(text, "prices.toml"))


def said(text: str, *, command: str | None = None, user: str = "U1") -> Request:
    return Request(
        place=Place("slack", "C1", None, "T1", name="general"),
        user=ADMIN if user == "U0" else User(user, f"user {user}"),
        text=text,
        command=command,
        conversational=command is None,
    )


def spend_limit(day: float) -> QuotaConfig:
    return QuotaConfig(limits={("cost", "day"): day * MICRO})


def replies(core: Core) -> list[str]:
    return [e.text for e in core.adapter.events if e.kind == "reply"]


async def charged(core: Core) -> list[LedgerRow]:
    return [r for r in await core.store.ledger() if r.status not in ("refused", "pending")]


async def assert_ledger_equals_counters(core: Core) -> None:
    rows = await core.store.ledger()
    status = await core.store.quota_status("slack:C1")
    for window in status.windows:
        assert window.used["cost"] == sum(r.amounts.cost for r in rows)
        assert window.used["tokens"] == sum(r.amounts.tokens for r in rows)
        assert window.used["images"] == sum(r.amounts.images for r in rows)
    for row in rows:
        # Every row is charged at the rates it keeps, for what it used.
        assert row.amounts.cost == row.charge.rates.cost(row.amounts), row


@pytest.mark.parametrize("capped", [True, False])
async def test_200_concurrent_requests_on_two_models_never_overspend_a_money_limit(
    tmp_path: Path, capped: bool
) -> None:
    limit = 0.5  # USD a day: room for about a dozen images and some chat
    config: dict[str, object] = {
        "governance": priced(),
        "quota": spend_limit(limit),
        # Capped replies hold their whole cap; uncapped ones hold 1 token and settle more.
        "max_reply_tokens": 64 if capped else None,
        "reply_tokens_estimate": 1,
        # No tools: their descriptions, held as prompt tokens, would outweigh what an
        # uncapped reply settles past its 1-token hold, the case this test is about.
        "tools": ToolsConfig(rounds=0),
    }
    async with running_core(tmp_path, **config) as core:
        await core.store.set_channel_settings("slack:C1", ChannelSettings(model="gpt-4o"))
        core.gateway.reply = "a reply that is several tokens longer than one token"
        requests = [
            said(f"question {i}", user=f"U{i % 7 + 1}")
            if i % 2
            else said(f"a lighthouse {i}", command="image", user=f"U{i % 7 + 1}")
            for i in range(200)
        ]
        async with asyncio.timeout(60):
            await asyncio.gather(*(core.send(r) for r in requests))
        rows = await charged(core)
        models = {r.charge.model for r in rows}
        assert models == {"gpt-4o", "gpt-image-1"}, "both models got through"
        for row in rows:
            expected = {
                "gpt-4o": Rates("USD", 2_500_000, 10_000_000),
                "gpt-image-1": Rates("USD", image=40_000),
            }[row.charge.model]
            assert row.charge.rates == expected
        refused = [t for t in replies(core) if "daily spend limit" in t]
        ledger = await core.store.ledger()
        assert len(refused) == sum(1 for r in ledger if r.status == "refused") > 0
        assert all("USD" in t for t in refused)
        total = sum(r.amounts.cost for r in rows)
        # What settling may add over the holds: nothing when capped, else each reply's excess.
        excess = sum(max(r.amounts.cost - r.estimate.cost, 0) for r in rows)
        assert (excess == 0) is capped
        assert total <= limit * MICRO + excess
        assert len(ledger) == 200
        await assert_ledger_equals_counters(core)


async def test_a_price_change_mid_month_applies_to_new_requests_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_core(tmp_path, governance=priced()) as core:
        await core.send(said("before the change"))
        (before,) = await charged(core)
    later = steady_clock(ANCHOR + timedelta(days=10))
    async with running_core(tmp_path, governance=priced(DEARER), clock=later) as core:
        await core.send(said("after the change"))
        first, second = await charged(core)
        assert first == before, "the ledger keeps what it charged"
        assert first.charge.rates == Rates("USD", 150_000, 600_000)
        assert second.charge.rates == Rates("USD", 300_000, 1_200_000)
        assert second.amounts.cost == second.charge.rates.cost(second.amounts)
        month = (await core.store.quota_status("slack:C1")).windows[1]
        assert month.key == "2026-06"
        assert month.used["cost"] == first.amounts.cost + second.amounts.cost
    status = await quota_cli(
        ["--db", str(tmp_path / "chatops.db"), "report", "--month", "2026-06"],
        {"CHATOPS_PRICES": ""},
    )
    assert status == 0
    bill = capsys.readouterr().out
    total = first.amounts.cost + second.amounts.cost
    assert bill.startswith("Bill for 2026-06 (months in UTC)\n\nslack:C1\n")
    (line,) = [b for b in bill.splitlines() if b.strip().startswith("gpt-4o-mini")]
    assert line.split()[1] == "2", "two requests"
    assert line.endswith(f"{total / MICRO:.6f}".rstrip("0") + " USD")
    assert bill.rstrip().endswith(f"All channels: {total / MICRO:.6f}".rstrip("0") + " USD")


async def test_quota_shows_spend_left_and_top_spenders_and_refuses_in_money(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path, governance=priced()) as core:
        await core.send(said("set cost day 0.001", command="quota", user="U0"))
        assert replies(core)[-1] == (
            "This channel's daily spend limit is now 0.001 USD (set by admin)."
        )
        await core.send(said("hello there", user="U1"))
        await core.send(said("", command="quota"))
        view = replies(core)[-1]
        (row,) = await charged(core)
        spent = row.amounts.cost / MICRO
        left = 0.001 - spent
        assert f"• spend: {spent:.6f}".rstrip("0") + " USD of 0.001 USD used" in view
        assert f"{left:.6f}".rstrip("0") + " USD left" in view
        assert "top users: user U1 (1 req" in view and "USD)" in view
        assert "top models: gpt-4o-mini (1 req" in view
        # The next request needs more than is left: refused in money, before any call.
        core.gateway.requests.clear()
        await core.send(said("set cost day 0.000001", command="quota", user="U0"))
        await core.send(said("one more"))
        assert replies(core)[-1].startswith("⚠️ This channel's daily spend limit")
        assert "USD" in replies(core)[-1]
        assert not [p for p in core.gateway.paths() if p.endswith("/completions")]
        await core.send(said("set cost day 5", command="quota"))
        assert "Only admins" in replies(core)[-1]


async def test_spend_limits_need_a_price_table(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(said("set cost month 50", command="quota", user="U0"))
        assert "Spend limits need a price table" in replies(core)[-1]


async def test_the_csv_export_carries_cost_and_the_rates_charged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_core(tmp_path, governance=priced()) as core:
        await core.send(said("a lighthouse", command="image"))
        (row,) = await charged(core)
    assert await quota_cli(["--db", str(tmp_path / "chatops.db"), "export"], {}) == 0
    (exported,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(exported) == list(CSV_FIELDS)
    assert (exported["model"], exported["images"]) == ("gpt-image-1", "1")
    assert exported["cost"] == exported["est_cost"] == "0.040000"
    assert (exported["currency"], exported["price_image"]) == ("USD", "0.040000")
    assert row.amounts.cost == 40_000
