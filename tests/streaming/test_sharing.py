"""How replies share scarce budgets: where finals are pledged, what is held back, the even gap."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.events import Limits, Posted, Request
from bot.streaming.budgets import Budgets, EditBudget, Outlook
from bot.streaming.pacing import gap
from bot.streaming.reply import StreamingReply
from tests.memory_adapter import MemoryAdapter, make_request


class FrozenClock:
    """The budgets' clock: time passes only when a test says so (no token ever returns)."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def slack_shaped(**changes: object) -> Limits:
    """Edits per workspace, posts per channel, deletes per workspace apart: Slack's shape.
    Rates so low that a spent token does not come back while a test runs."""
    values: dict[str, object] = {
        "max_chars": 10_000,
        "edit_interval": 0.0,
        "budget_per_second": 0.01,
        "budget_burst": 4,
        "budget_scope": "workspace",
        "post_per_second": 100.0,
        "post_burst": 5,
        "delete_per_second": 0.01,
        "delete_burst": 20,
        "delete_scope": "workspace",
    }
    values.update(changes)
    return Limits(**values)  # type: ignore[arg-type]


class AppendingAdapter(MemoryAdapter):
    """A platform whose streamed messages take appended text under a limit of their own
    (AppendsApart), until an edit replaces their text (as Slack's native streams do)."""

    def __init__(self, budgets: Budgets, limits: Limits) -> None:
        super().__init__(limits=limits)
        self.appends = budgets.named("appends", "memory:W1", 0.01, 30, app_wide=False)
        self.live: set[str] = set()

    def append_budget(self, posted: Posted) -> EditBudget | None:
        return self.appends if posted.id in self.live else None

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        posted = await super().reply(req, text, ephemeral=ephemeral, streamed=streamed)
        if streamed:
            self.live.add(posted.id)
        return posted

    async def edit(self, posted: Posted, text: str) -> None:
        if not text.startswith(self.messages[posted.id]):
            self.live.discard(posted.id)
        await super().edit(posted, text)


def words(channel: str, count: int) -> list[str]:
    return [f"{channel}w{i} " for i in range(count)]


async def stream_all(replies: list[StreamingReply], texts: list[list[str]]) -> None:
    """Every reply's first word at once (so all pledge before any edits), then the rest
    interleaved, a little at a time, then every reply finished."""
    for reply, text in zip(replies, texts, strict=True):
        reply.write(text[0])
    for i in range(1, max(len(t) for t in texts)):
        for reply, text in zip(replies, texts, strict=True):
            if i < len(text):
                reply.write(text[i])
        await asyncio.sleep(0.005)
    await asyncio.gather(*(r.finish() for r in replies))


def edits_before_final(adapter: MemoryAdapter, finals: set[str]) -> int:
    """Intermediate frames: edits that did not give a message its final text."""
    return sum(1 for e in adapter.writes(("edit",)) if e.text not in finals)


# --- the even gap ----------------------------------------------------------------------------


def test_one_reply_with_plenty_spare_edits_at_the_platform_interval() -> None:
    assert gap(Outlook(supply=50, pledged=1, streaming=1), 0, horizon=10, floor=1.0) == 1.0


def test_spare_writes_are_spread_evenly_over_the_horizon() -> None:
    # 40 replies share 50 spare writes: 1.25 each, so a frame every 10 * 40 / 90 s.
    due = gap(Outlook(supply=50, pledged=0, streaming=40), 0, horizon=10, floor=1.0)
    assert due == pytest.approx(10 * 40 / 90)
    # Fewer spare writes for as many replies: frames further apart.
    fewer = gap(Outlook(supply=50, pledged=30, streaming=40), 0, horizon=10, floor=1.0)
    assert fewer == pytest.approx(10 * 40 / 60)


def test_pledges_and_held_tokens_are_not_spare() -> None:
    outlook = Outlook(supply=10, pledged=6, streaming=2)
    assert gap(outlook, 4, horizon=8, floor=0.5) == 8  # nothing spare: a whole horizon
    assert gap(outlook, 2, horizon=8, floor=0.5) == pytest.approx(8 * 2 / 4)


def test_an_outlook_counts_what_comes_back_within_the_horizon() -> None:
    clock = FrozenClock()
    budget = EditBudget(rate=1.0, burst=10, clock=clock)  # a 10 s window
    for _ in range(4):
        assert budget.try_acquire()
    clock.now += 6
    assert budget.try_acquire()
    budget.pledge(2)
    budget.join()
    # Free now: 5; the write spent just now also counts over any horizon, those spent 6 s
    # ago only over a horizon longer than that.
    assert budget.outlook(5.0) == Outlook(supply=6, pledged=2, streaming=1)
    assert budget.outlook(7.0) == Outlook(supply=10, pledged=2, streaming=1)
    assert budget.outlook(0.0).supply == budget.available() == 5
    assert budget.shortfall() == 0
    budget.pledge(5)
    assert budget.shortfall() == 2  # 7 pledged, 5 free


# --- where a final write is pledged ----------------------------------------------------------


async def test_a_final_that_can_be_posted_anew_is_pledged_on_the_delete_budget() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = MemoryAdapter(limits=slack_shaped())
    req = make_request(thread="T1")
    edits = budgets.for_place(adapter.limits, req.place)
    deletes = budgets.for_deletes(adapter.limits, req.place)
    assert deletes is not None
    reply = StreamingReply(adapter, req, budgets)
    reply.write("hello")
    await adapter.wait_for(lambda: bool(adapter.messages))
    assert (deletes.pledged, edits.pledged) == (1, 0)
    async with asyncio.timeout(5):
        await reply.finish()
    assert (deletes.pledged, edits.pledged, deletes.streaming, edits.streaming) == (0, 0, 0, 0)


async def test_without_a_delete_budget_the_final_is_pledged_on_the_edit_budget() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = MemoryAdapter(limits=slack_shaped(delete_per_second=None))
    req = make_request(thread="T1")
    edits = budgets.for_place(adapter.limits, req.place)
    reply = StreamingReply(adapter, req, budgets)
    reply.write("hello")
    await adapter.wait_for(lambda: bool(adapter.messages))
    assert edits.pledged == 1
    async with asyncio.timeout(5):
        await reply.finish()
    assert edits.pledged == 0


async def test_a_natively_streamed_final_is_pledged_where_appends_are_counted() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = AppendingAdapter(budgets, limits=slack_shaped())
    req = make_request(thread="T1")
    edits = budgets.for_place(adapter.limits, req.place)
    deletes = budgets.for_deletes(adapter.limits, req.place)
    assert deletes is not None
    reply = StreamingReply(adapter, req, budgets)
    reply.write("hello")
    await adapter.wait_for(lambda: bool(adapter.messages))
    assert (adapter.appends.pledged, deletes.pledged, edits.pledged) == (1, 0, 0)
    assert adapter.appends.streaming == 1
    async with asyncio.timeout(5):
        await reply.finish()
    assert (adapter.appends.pledged, adapter.appends.streaming) == (0, 0)


async def test_a_text_replacing_what_a_stream_showed_is_an_edit_and_so_is_every_later_one() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = AppendingAdapter(budgets, limits=slack_shaped(budget_burst=100))
    req = make_request(thread="T1")
    edits = budgets.for_place(adapter.limits, req.place)
    reply = StreamingReply(adapter, req, budgets, horizon=0.01)
    reply.progress("⏳ thinking")
    await adapter.wait_for(lambda: bool(adapter.messages))
    (mid,) = adapter.messages
    text = words("C1", 30)
    async with asyncio.timeout(5):
        await stream_all([reply], [text])
    history = adapter.history_of(mid)
    assert history[-1] == "".join(text)
    # The first text replaced the status line: an ordinary edit, which ended the stream.
    # Every later text only added to what was shown, yet the stream was over by then.
    replaced = sum(1 for a, b in itertools.pairwise(history) if not b.startswith(a))
    assert replaced == 1
    assert edits.available() == edits.burst - (len(history) - 1)
    assert adapter.appends.available() == adapter.appends.burst


async def test_appends_leave_the_edit_budget_untouched() -> None:
    budgets = Budgets(clock=FrozenClock())
    adapter = AppendingAdapter(budgets, limits=slack_shaped())
    req = make_request(thread="T1")
    edits = budgets.for_place(adapter.limits, req.place)
    reply = StreamingReply(adapter, req, budgets, horizon=0.01)
    text = words("C1", 30)
    async with asyncio.timeout(5):
        await stream_all([reply], [text])
    (mid,) = adapter.messages
    history = adapter.history_of(mid)
    assert history[-1] == "".join(text) and len(history) > 2
    assert all(b.startswith(a) for a, b in itertools.pairwise(history))
    assert edits.available() == edits.burst
    assert adapter.appends.available() == adapter.appends.burst - (len(history) - 1)


# --- what intermediate edits may spend -------------------------------------------------------


async def test_finals_the_delete_budget_covers_leave_the_edit_budget_to_frames() -> None:
    # Six replies, four edits for the workspace: pledging every final on the edits would
    # leave no frame at all. Their finals can go out anew (posts per channel, deletes apart),
    # so the four edits show frames, and the finals are posted anew.
    budgets = Budgets(clock=FrozenClock())
    adapter = MemoryAdapter(limits=slack_shaped())
    channels = [f"C{k}" for k in range(6)]
    replies = [
        StreamingReply(adapter, make_request(channel=c, thread=f"T{c}"), budgets, horizon=0.05)
        for c in channels
    ]
    texts = [words(c, 60) for c in channels]
    async with asyncio.timeout(10):
        await stream_all(replies, texts)
    finals = {"".join(t) for t in texts}
    assert sorted(adapter.messages.values()) == sorted(finals)
    frames = edits_before_final(adapter, finals)
    final_edits = len(adapter.writes(("edit",))) - frames
    assert frames >= 1
    assert frames + final_edits <= 4
    # The finals the edits did not carry were posted anew, their frames deleted.
    assert len(adapter.deleted) == 6 - final_edits
    assert adapter.rate_limited == 0
    for mid in adapter.messages:
        assert all(b.startswith(a) for a, b in itertools.pairwise(adapter.history_of(mid)))


async def test_finals_the_delete_budget_cannot_cover_hold_edits_back() -> None:
    # Only two deletes: four of the six finals must be edits, so no frame may spend them.
    budgets = Budgets(clock=FrozenClock())
    adapter = MemoryAdapter(limits=slack_shaped(delete_burst=2))
    channels = [f"C{k}" for k in range(6)]
    replies = [
        StreamingReply(adapter, make_request(channel=c, thread=f"T{c}"), budgets, horizon=0.01)
        for c in channels
    ]
    texts = [words(c, 40) for c in channels]
    async with asyncio.timeout(10):
        await stream_all(replies, texts)
    finals = {"".join(t) for t in texts}
    assert sorted(adapter.messages.values()) == sorted(finals)
    assert edits_before_final(adapter, finals) == 0
    assert len(adapter.writes(("edit",))) == 4
    assert len(adapter.deleted) == 2
    assert adapter.rate_limited == 0


async def test_a_reposted_final_shows_before_its_old_message_is_deleted() -> None:
    # A real clock: the delete budget's one token comes back a second after it was spent.
    budgets = Budgets()
    limits = slack_shaped(delete_per_second=1.0, delete_burst=1)
    adapter = MemoryAdapter(limits=limits)
    req = make_request(thread="T1")
    reply = StreamingReply(adapter, req, budgets)
    reply.write("first words")
    await adapter.wait_for(lambda: bool(adapter.messages))
    (first,) = adapter.messages
    for budget in (budgets.for_place(limits, req.place), budgets.for_deletes(limits, req.place)):
        assert budget is not None
        while budget.try_acquire():
            pass
    reply.write(" and the rest")
    finishing = asyncio.create_task(reply.finish())
    async with asyncio.timeout(5):
        await adapter.wait_for(lambda: "first words and the rest" in adapter.messages.values())
        # Shown while the old message waits for the delete budget.
        assert first not in adapter.deleted and not finishing.done()
        posted = await finishing
    assert adapter.deleted == {first}
    assert adapter.messages == {posted[0].id: "first words and the rest"}
