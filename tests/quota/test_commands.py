"""The `quota` chat command through the real dispatcher, memory adapter and SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.commands.quota import QUOTA
from bot.commands.settings import SETTINGS_COMMANDS
from bot.commands.table import command_table
from bot.dispatch import Dispatcher
from bot.events import User
from storage.base import Amounts, Charge, LimitSetting
from tests.core_harness import Core, running_core
from tests.memory_adapter import make_request

ADMIN = User("U0", "boss", is_admin=True)
MEMBER = User("U1", "pat")
CHANNEL = "memory:C1"


@asynccontextmanager
async def core_with_quota(tmp_path: Path) -> AsyncIterator[Core]:
    async with running_core(tmp_path) as core:
        table = dict(command_table())
        table.update({c.name: c for c in (QUOTA, *SETTINGS_COMMANDS)})
        core.dispatcher = Dispatcher(core.services, table)
        yield core


def last(core: Core) -> str:
    return list(core.adapter.messages.values())[-1]


async def limits(core: Core) -> dict[tuple[str, str], LimitSetting]:
    return {(s.metric, s.window): s for s in await core.store.limits(CHANNEL)}


async def test_quota_shows_usage_limits_resets_and_top_users(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.store.set_limit(CHANNEL, "tokens", "day", 10_000)
        for user, model, tokens in (("ann", "gpt-4o", 1200), ("bo", "o3", 300)):
            r = await core.store.reserve(Charge("memory", CHANNEL, user, "ask", model), Amounts())
            await core.store.settle(r, Amounts(tokens_in=tokens))
        await core.send(make_request("quota"))
        event = core.adapter.writes()[-1]
        assert event.ephemeral
        text = event.text
        # Windows and resets follow the core's clock, not the real date.
        assert "(windows in UTC)" in text
        assert "**Today** (2026-06-15), resets 2026-06-16 00:00 UTC (in 11 h" in text
        assert "tokens: 1,500 of 10,000 used, 8,500 left (set for this channel)" in text
        assert "requests: 2 used, no limit" in text
        assert "top users: ann (1 req, 1,200 tokens); bo (1 req, 300 tokens)" in text
        assert "top models: gpt-4o" in text


async def test_admin_sets_a_limit_and_the_gate_obeys_it(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.send(make_request("set tokens day 20k", command="quota", user=ADMIN))
        assert "daily token limit is now 20,000 (set by boss)" in last(core)
        await core.send(make_request("quota set requests month 1", user=ADMIN))
        assert "monthly request limit is now 1" in last(core)
        await core.send(make_request("quota set audio day 1.5h", user=ADMIN))
        assert "daily audio limit is now 1 h 30 min" in last(core)
        found = await limits(core)
        assert found[("tokens", "day")].value == 20_000
        assert found[("audio_seconds", "day")].value == 5400
        # The limit is live: one chat fits in the month, the second is refused in plain words.
        await core.send(make_request("hello"))
        await core.send(make_request("hello again"))
        refusal = last(core)
        assert "monthly request limit is used up (1 request of 1)" in refusal
        assert "It resets" in refusal
        await core.send(make_request("quota set requests month default", user=ADMIN))
        assert "back to the default (none)" in last(core)
        await core.send(make_request("quota set tokens day unlimited", user=ADMIN))
        found = await limits(core)
        assert found[("tokens", "day")].value is None and found[("tokens", "day")].overridden
        assert not found[("requests", "month")].overridden


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("set tokens day -5", "cannot be negative"),
        ("set tokens day lots", "is not a limit"),
        ("set tokens day 1.5", "whole numbers"),
        ("set dollars day 5", "Unknown metric 'dollars'"),
        ("set tokens week 5", "Unknown window 'week'"),
        ("set tokens day 99999999999999", "absurdly large"),
        ("set tokens day", "Usage: `quota set"),
        ("set tokens day 5 6", "Usage: `quota set"),
        ("reset everything", "Usage: `quota reset`"),
        ("frobnicate", "not something I know"),
    ],
)
async def test_bad_input_is_explained_and_changes_nothing(
    tmp_path: Path, args: str, says: str
) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.store.set_limit(CHANNEL, "tokens", "day", 777)
        before = await limits(core)
        await core.send(make_request(args, command="quota", user=ADMIN))
        assert says in last(core)
        assert last(core).startswith("⚠️")
        assert await limits(core) == before


async def test_members_can_read_but_not_change(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        r = await core.store.reserve(Charge("memory", CHANNEL, "U1", "ask", "m"), Amounts())
        await core.store.settle(r, Amounts(tokens_in=5))
        for args in ("set tokens day 5", "reset", "reset limits"):
            await core.send(make_request(args, command="quota", user=MEMBER))
            assert "Only admins can change this channel's quota" in last(core)
        assert not any(s.overridden for s in (await limits(core)).values())
        status = await core.store.quota_status(CHANNEL)
        assert status.windows[0].used["tokens"] == 5
        await core.send(make_request("quota", user=MEMBER))
        assert "tokens: 5 used" in last(core)


async def test_admin_resets_usage_and_limits(tmp_path: Path) -> None:
    async with core_with_quota(tmp_path) as core:
        await core.store.set_limit(CHANNEL, "requests", "day", 1)
        await core.send(make_request("hello"))
        await core.send(make_request("hello?"))
        assert "daily request limit is used up" in last(core)
        await core.send(make_request("quota reset", user=ADMIN))
        assert "usage for today and this month was reset by boss" in last(core)
        await core.send(make_request("hello once more"))
        assert "limit" not in last(core)
        await core.send(make_request("quota reset limits", user=ADMIN))
        assert "(1 override removed)" in last(core)
        assert not (await limits(core))[("requests", "day")].overridden
        assert len([r for r in await core.store.ledger() if r.status == "ok"]) == 2
