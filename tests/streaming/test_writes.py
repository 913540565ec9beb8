"""One-shot messages and uploads draw from the post budget and wait out platform 429s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.errors import PlatformRateLimited
from bot.events import Limits
from bot.streaming.budgets import Budgets
from bot.streaming.writes import send, upload
from tests.core_harness import running_core
from tests.memory_adapter import MemoryAdapter, make_request

LIMITS = Limits(
    max_chars=200,
    edit_interval=0.01,
    budget_per_second=1.0,
    budget_burst=5,
    post_per_second=1.0,
    post_burst=3,
)


class FrozenClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_a_message_and_an_upload_each_take_a_post_token() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = MemoryAdapter(limits=LIMITS)
    req = make_request()
    posts = budgets.for_posts(LIMITS, req.place)
    async with asyncio.timeout(5):
        await send(adapter, budgets, req, "⚠️ refused")
        await upload(adapter, budgets, req, b"\x89PNG", "image-1.png", "a fox")
    assert posts.available() == 1
    assert [e.kind for e in adapter.writes()] == ["reply", "upload"]
    # Edits are a budget of their own: untouched.
    assert budgets.for_place(LIMITS, req.place).available() == 5


async def test_a_429_is_waited_out_and_the_message_delivered_once() -> None:
    adapter = MemoryAdapter(limits=LIMITS)
    adapter.inject_429(times=2, retry_after=0.02)
    budgets = Budgets()
    req = make_request()
    async with asyncio.timeout(5):
        posted = await send(adapter, budgets, req, "⚠️ refused", ephemeral=True)
    assert adapter.rate_limited == 2
    assert adapter.messages == {posted.id: "⚠️ refused"}
    assert posted.id in adapter.ephemeral_ids


async def test_a_message_kept_out_past_its_deadline_says_rate_limited() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = MemoryAdapter(limits=LIMITS)
    req = make_request()
    posts = budgets.for_posts(LIMITS, req.place)
    while posts.try_acquire():
        pass
    with pytest.raises(PlatformRateLimited):
        async with asyncio.timeout(5):
            await send(adapter, budgets, req, "never shown", within=0.05)
    assert adapter.writes() == []


async def test_refusals_of_one_channel_share_its_post_budget(tmp_path: Path) -> None:
    # Through the dispatcher: ten unknown commands at once in one channel, each refused.
    async with running_core(tmp_path) as core:
        core.adapter.limits = LIMITS
        clock = FrozenClock()
        core.services.budgets = Budgets(clock=clock)
        requests = [make_request(f"/nonsense{n}", command=f"nonsense{n}") for n in range(10)]
        posts = core.services.budgets.for_posts(LIMITS, requests[0].place)
        handled = [asyncio.create_task(core.send(r)) for r in requests]
        # The frozen clock gives no token back: exactly the burst gets out, the rest queue
        # (each refusal first reads the channel's access rules, so they queue one by one).
        async with asyncio.timeout(5):
            while not (len(core.adapter.writes()) == 3 and posts.waiting):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # queueing writes nothing to wake a wait_for
        await core.dispatcher.drain(0.0)
        await asyncio.gather(*handled, return_exceptions=True)
    writes = core.adapter.writes()
    assert len(writes) == 3
    assert all("I don't know the command" in e.text for e in writes)


async def test_command_output_and_uploads_are_paced_like_replies(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.adapter.limits = LIMITS
        core.services.budgets = Budgets(clock=FrozenClock())
        req = make_request("/help", command="help")
        async with asyncio.timeout(10):
            await core.send(req)
            await core.send(make_request("image a red fox"))
        kinds = [e.kind for e in core.adapter.writes()]
        assert "upload" in kinds and kinds[0] == "reply"
        # help's output and the image's upload each took a post token; the image's progress
        # message took the third.
        posts = core.services.budgets.for_posts(LIMITS, req.place)
        assert posts.available() == 0
