"""A final text behind a drained edit budget goes out as a new message; its placeholder goes."""

from __future__ import annotations

import asyncio
import itertools

from bot.events import Limits
from bot.streaming.budgets import Budgets, EditBudget
from bot.streaming.reply import MOVED, StreamingReply
from tests.memory_adapter import MemoryAdapter, make_request

PLACEHOLDER = "🎙️ Transcribing voice.webm (0:03)…"


class FrozenClock:
    """The budgets' clock: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(**changes: object) -> Limits:
    """Posts and deletes limited apart from edits, as on Slack."""
    values: dict[str, object] = {
        "max_chars": 200,
        "edit_interval": 0.01,
        "budget_per_second": 1.0,
        "budget_burst": 3,
        "budget_scope": "workspace",
        "post_per_second": 1.0,
        "post_burst": 10,
        "delete_per_second": 1.0,
        "delete_burst": 10,
        "delete_scope": "workspace",
    }
    values.update(changes)
    return Limits(**values)  # type: ignore[arg-type]


def drain(budget: EditBudget) -> None:
    """Spend every token, as a burst of other replies would have."""
    while budget.try_acquire():
        pass


async def placeholder_shown(adapter: MemoryAdapter, budgets: Budgets) -> StreamingReply:
    req = make_request(thread="T1")
    reply = StreamingReply(adapter, req, budgets)
    reply.progress(PLACEHOLDER)
    await adapter.wait_for(lambda: list(adapter.messages.values()) == [PLACEHOLDER])
    return reply


async def test_a_final_text_behind_a_drained_edit_budget_replaces_its_placeholder() -> None:
    clock = FrozenClock()
    budgets = Budgets(clock=clock)
    adapter = MemoryAdapter(limits=limits())
    reply = await placeholder_shown(adapter, budgets)
    (placeholder,) = adapter.messages
    edits = budgets.for_place(adapter.limits, reply.req.place)
    drain(edits)
    # The frozen clock never gives an edit token back: an edit would wait for ever.
    assert edits.eta() > 1.5
    reply.write("the transcript")
    async with asyncio.timeout(5):
        posted = await reply.finish()
    assert adapter.messages == {posted[0].id: "the transcript"}
    assert adapter.deleted == {placeholder}
    assert [e.kind for e in adapter.writes()] == ["reply", "reply", "delete"]
    # Deleted, not finalized; the new message is final as posted.
    assert adapter.finalized == []
    assert posted[0].id not in adapter.streamed_ids


async def test_an_edit_that_comes_soon_stays_an_edit() -> None:
    # A window of 0.1 s: the edit token is back well within the repost threshold.
    adapter = MemoryAdapter(limits=limits(budget_per_second=30.0, budget_burst=3))
    budgets = Budgets()
    reply = await placeholder_shown(adapter, budgets)
    (placeholder,) = adapter.messages
    drain(budgets.for_place(adapter.limits, reply.req.place))
    reply.write("the transcript")
    async with asyncio.timeout(5):
        posted = await reply.finish()
    assert [p.id for p in posted] == [placeholder]
    assert adapter.history_of(placeholder) == [PLACEHOLDER, "the transcript"]
    assert not adapter.deleted
    assert adapter.finalized == [(placeholder, "the transcript")]


async def test_without_a_delete_budget_the_final_text_waits_for_its_edit() -> None:
    adapter = MemoryAdapter(
        limits=limits(budget_per_second=10.0, budget_burst=3, delete_per_second=None)
    )
    budgets = Budgets()
    req = make_request(thread="T1")
    reply = StreamingReply(adapter, req, budgets, repost_after=0.01)
    reply.progress(PLACEHOLDER)
    await adapter.wait_for(lambda: bool(adapter.messages))
    (placeholder,) = adapter.messages
    drain(budgets.for_place(adapter.limits, req.place))
    reply.write("the transcript")
    async with asyncio.timeout(5):
        await reply.finish()
    assert adapter.history_of(placeholder) == [PLACEHOLDER, "the transcript"]
    assert [e.kind for e in adapter.writes()] == ["reply", "edit"]


async def test_a_placeholder_the_platform_will_not_delete_points_to_the_answer() -> None:
    adapter = MemoryAdapter(limits=limits(budget_per_second=20.0, budget_burst=2))
    adapter.refuse_deletes = True
    budgets = Budgets()
    req = make_request(thread="T1")
    reply = StreamingReply(adapter, req, budgets, repost_after=0.01)
    reply.progress(PLACEHOLDER)
    await adapter.wait_for(lambda: bool(adapter.messages))
    (placeholder,) = adapter.messages
    drain(budgets.for_place(adapter.limits, req.place))
    reply.write("the transcript")
    async with asyncio.timeout(5):
        posted = await reply.finish()
    assert adapter.messages == {placeholder: MOVED, posted[0].id: "the transcript"}
    # Still a streamed message: finalized once it shows the pointer.
    assert adapter.finalized == [(placeholder, MOVED)]


async def test_a_429_on_the_final_edit_can_turn_it_into_a_new_message() -> None:
    clock = FrozenClock()
    budgets = Budgets(clock=clock)
    adapter = MemoryAdapter(limits=limits())
    reply = await placeholder_shown(adapter, budgets)
    (placeholder,) = adapter.messages
    # The edit is tried at once, then Slack says: not for 30 s.
    adapter.inject_429(retry_after=30.0)
    reply.write("the transcript")
    async with asyncio.timeout(5):
        posted = await reply.finish()
    assert adapter.rate_limited == 1
    assert adapter.messages == {posted[0].id: "the transcript"}
    assert adapter.deleted == {placeholder}


async def test_a_part_closed_behind_a_drained_budget_is_posted_anew() -> None:
    clock = FrozenClock()
    budgets = Budgets(clock=clock)
    adapter = MemoryAdapter(limits=limits(max_chars=120))
    req = make_request(thread="T1")
    reply = StreamingReply(adapter, req, budgets)
    words = [f"word{i:02d} " for i in range(40)]
    reply.write("".join(words[:3]))
    await adapter.wait_for(lambda: bool(adapter.messages))
    (partial,) = adapter.messages
    drain(budgets.for_place(adapter.limits, req.place))
    for word in words[3:]:
        reply.write(word)
    async with asyncio.timeout(5):
        posted = await reply.finish()
    text = "".join(words)
    # Every part, whole and in order; the partial first frame is gone.
    assert partial in adapter.deleted
    assert "".join(adapter.messages.values()) == text
    assert [p.id for p in posted] == list(adapter.messages)
    assert all(len(t) <= 120 for t in adapter.messages.values())
    # No message that stayed ever lost text it showed.
    for mid in adapter.messages:
        shown = adapter.history_of(mid)
        assert all(b.startswith(a) for a, b in itertools.pairwise(shown))
