"""StreamingReply and its shared budgets, against the in-memory adapter with small limits."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import Iterator

import pytest

from bot.errors import UserFacingError
from bot.events import Limits, Place
from bot.streaming.budgets import Budgets, EditBudget
from bot.streaming.reply import EMPTY_REPLY, StreamingReply
from bot.streaming.splitting import split_message
from tests.memory_adapter import Event, MemoryAdapter, make_request
from tests.streaming.test_splitting import ATOMS, CJK, fences_balanced, reassembles

STATUS = re.compile(r"(\n\n)?(🎨|⏳) [^\n]*\Z")


def small_limits(**changes: object) -> Limits:
    values: dict[str, object] = {
        "max_chars": 200,
        "edit_interval": 0.01,
        "budget_per_second": 1000.0,
        "budget_burst": 100,
    }
    values.update(changes)
    return Limits(**values)  # type: ignore[arg-type]


def chunks(text: str, rng: random.Random, most: int = 7) -> Iterator[str]:
    """Split anywhere, even inside an emoji sequence, as a model's tokens may."""
    i = 0
    while i < len(text):
        n = rng.randint(1, most)
        yield text[i : i + n]
        i += n


async def stream(reply: StreamingReply, text: str, *, seed: int = 0, every: int = 5) -> None:
    for k, delta in enumerate(chunks(text, random.Random(seed))):
        reply.write(delta)
        if k % every == 0:
            await asyncio.sleep(0.001)


def assert_monotonic(adapter: MemoryAdapter) -> None:
    """No message ever loses text it showed (a progress status line aside)."""
    for mid in adapter.messages:
        bodies = [STATUS.sub("", t) for t in adapter.history_of(mid)]
        for before, after in itertools.pairwise(bodies):
            assert after.startswith(before), (mid, before, after)


def assert_parts_frozen(adapter: MemoryAdapter, place: Place) -> None:
    """Once the next message of a reply is posted, the earlier ones never change."""
    ids = [e.message_id for e in adapter.events if e.kind == "reply" and e.place == place]
    for earlier, later in itertools.pairwise(ids):
        posted_at = next(i for i, e in enumerate(adapter.events) if e.message_id == later)
        assert not any(
            e.kind == "edit" and e.message_id == earlier for e in adapter.events[posted_at:]
        )


def writes_of(adapter: MemoryAdapter, mid: str) -> list[Event]:
    return [e for e in adapter.events if e.message_id == mid and e.kind in ("reply", "edit")]


# --- EditBudget and Budgets ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_burst_then_waits_a_window() -> None:
    clock = FakeClock()
    budget = EditBudget(rate=2.0, burst=4, clock=clock)  # 4 writes per 2 s
    assert [budget.try_acquire() for _ in range(5)] == [True] * 4 + [False]
    assert budget.delay() == pytest.approx(2.0)
    clock.now += 1.9
    assert not budget.try_acquire()
    clock.now += 0.1
    assert budget.available() == 4
    assert budget.delay(5) == float("inf")


def test_budget_reserve_keeps_pledged_tokens() -> None:
    clock = FakeClock()
    budget = EditBudget(rate=1.0, burst=3, clock=clock)
    budget.pledge(2)
    assert budget.try_acquire(reserve=budget.pledged)  # 3 free, 2 pledged: one spare
    assert not budget.try_acquire(reserve=budget.pledged)
    assert budget.try_acquire()  # a required write may still take a pledged token
    budget.unpledge(2)
    assert budget.pledged == 0


def test_penalty_blocks_the_whole_scope() -> None:
    clock = FakeClock()
    budget = EditBudget(rate=10.0, burst=10, clock=clock)
    budget.penalize(3.0)
    assert budget.available() == 0 and not budget.try_acquire()
    assert budget.delay() == pytest.approx(3.0)
    clock.now += 3.0
    assert budget.try_acquire()


async def test_acquire_is_first_come_first_served_and_survives_cancellation() -> None:
    budget = EditBudget(rate=200.0, burst=1)  # one token per 5 ms
    order: list[int] = []

    async def take(n: int) -> None:
        await budget.acquire()
        order.append(n)

    async with asyncio.timeout(5):
        tasks = [asyncio.create_task(take(n)) for n in range(6)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 1, 3, 4, 5]


async def test_acquire_waits_out_a_penalty() -> None:
    budget = EditBudget(rate=1000.0, burst=5)
    budget.penalize(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5):
        await budget.acquire()
    # A sleep never ends early (loop clock granularity aside): a deterministic lower bound.
    assert loop.time() - started >= 0.049


def test_budgets_are_shared_per_scope_and_posts_apart_when_configured() -> None:
    budgets = Budgets()
    limits = small_limits(budget_scope="workspace", post_per_second=1.0, post_burst=1)
    a = Place("slack", "C1", workspace="W1")
    b = Place("slack", "C2", workspace="W1")
    c = Place("slack", "C3", workspace="W2")
    assert budgets.for_place(limits, a) is budgets.for_place(limits, b)
    assert budgets.for_place(limits, a) is not budgets.for_place(limits, c)
    assert budgets.for_posts(limits, a) is not budgets.for_posts(limits, b)
    assert budgets.for_posts(limits, a) is not budgets.for_place(limits, a)
    shared = small_limits()
    assert budgets.for_posts(shared, a) is budgets.for_place(shared, a)


# --- StreamingReply ------------------------------------------------------------------------


async def test_first_write_posts_immediately() -> None:
    adapter = MemoryAdapter(limits=small_limits(edit_interval=10.0))
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5):
        reply.write("Hel")
        await adapter.wait_for(lambda: bool(adapter.messages))
        assert adapter.events[0].kind == "reply"
        assert adapter.events[0].text == "Hel"
        reply.write("lo")
        posted = await reply.finish()
    assert [p.id for p in posted] == list(adapter.messages)
    assert adapter.messages == {posted[0].id: "Hello"}


async def test_coalesces_frames_and_ends_with_the_full_text() -> None:
    adapter = MemoryAdapter(limits=small_limits(max_chars=100_000, edit_interval=0.02))
    reply = StreamingReply(adapter, make_request(), Budgets())
    text = " ".join(f"token{i}" for i in range(400))
    deltas = list(chunks(text, random.Random(1)))
    async with asyncio.timeout(10):
        for k, delta in enumerate(deltas):
            reply.write(delta)
            if k % 10 == 0:
                await asyncio.sleep(0.002)
        await reply.finish()
    writes = adapter.writes()
    assert 2 <= len(writes) < len(deltas) / 3
    assert writes[-1].text == text
    assert list(adapter.messages.values()) == [text]
    assert reply.text == text
    assert_monotonic(adapter)


async def test_many_replies_share_one_budget() -> None:
    rate, burst = 100.0, 4  # at most 4 writes in any 40 ms, across all replies
    limits = small_limits(max_chars=10_000, budget_per_second=rate, budget_burst=burst)
    adapter = MemoryAdapter(limits=limits)
    budgets = Budgets()
    texts = [" ".join(f"r{n}w{i}" for i in range(60)) for n in range(12)]

    async def one(n: int) -> None:
        reply = StreamingReply(adapter, make_request(channel="C1"), budgets)
        async with reply:
            await stream(reply, texts[n], seed=n, every=3)

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(20):
        await asyncio.gather(*(one(n) for n in range(12)))
    elapsed = loop.time() - started
    writes = adapter.writes()
    assert sorted(adapter.messages.values()) == sorted(texts)
    # Never more than the budget allows, counted over the whole run and per window.
    assert len(writes) <= burst * (elapsed * rate / burst + 1) + 1
    window = burst / rate / 2
    times = [e.at for e in writes]
    assert max(sum(1 for t in times if s <= t < s + window) for s in times) <= burst
    assert adapter.rate_limited == 0
    assert_monotonic(adapter)


async def test_scarce_budget_gives_each_reply_one_post_and_one_final_edit() -> None:
    # Slack's shape: ~50 chat.update a minute for the workspace, posts limited per channel.
    n = 10
    limits = small_limits(
        max_chars=10_000,
        budget_per_second=n / 60,
        budget_burst=n,
        budget_scope="workspace",
        post_per_second=1.0,
        post_burst=1,
    )
    adapter = MemoryAdapter(limits=limits)
    budgets = Budgets()
    texts = [" ".join(f"c{k}t{i}" for i in range(80)) for k in range(n)]

    async def one(k: int) -> None:
        reply = StreamingReply(adapter, make_request(channel=f"C{k}"), budgets)
        async with reply:
            await stream(reply, texts[k], seed=k)

    async with asyncio.timeout(20):
        await asyncio.gather(*(one(k) for k in range(n)))
    assert sorted(adapter.messages.values()) == sorted(texts)
    for mid in adapter.messages:
        kinds = [e.kind for e in writes_of(adapter, mid)]
        assert kinds == ["reply", "edit"], kinds
    assert adapter.rate_limited == 0


async def test_a_reply_that_ended_before_its_post_needs_no_edit() -> None:
    # Discord's shape: a few creates per window per channel; here one post per 50 ms.
    limits = small_limits(post_per_second=20.0, post_burst=1)
    adapter = MemoryAdapter(limits=limits)
    budgets = Budgets()

    async def one(k: int) -> None:
        reply = StreamingReply(adapter, make_request(channel="C1"), budgets)
        reply.write(f"answer {k} ")
        await asyncio.sleep(0.01)
        reply.write("in full")
        await reply.finish(footer="footer")

    async with asyncio.timeout(10):
        await asyncio.gather(*(one(k) for k in range(5)))
    expected = sorted(f"answer {k} in full\n\nfooter" for k in range(5))
    assert sorted(adapter.messages.values()) == expected
    # Only the first reply got its post before its stream ended; the rest post once, final.
    assert sorted(e.kind for e in adapter.writes()) == ["edit"] + ["reply"] * 5


async def test_rollover_keeps_code_fences_balanced() -> None:
    limits = small_limits(max_chars=120)
    adapter = MemoryAdapter(limits=limits)
    code = "\n".join(f"    total += value_{i}  # step {i}" for i in range(14))
    text = (
        "Here is the plan in a few words, then the code.\n\n"
        + "It adds values one by one. " * 4
        + f"\n```python\ndef total():\n{code}\n    return total\n```\n"
        + "That is all, and it works for every input you give it. " * 3
    )
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(10), reply:
        await stream(reply, text, seed=3)
    final = list(adapter.messages.values())
    assert len(final) >= 5
    for mid in adapter.messages:
        assert all(len(t) <= 120 for t in adapter.history_of(mid))
    assert all(fences_balanced(part) for part in final), final
    assert any(part.startswith("```python\n") for part in final[1:])
    assert reassembles(final, text)
    assert_parts_frozen(adapter, make_request().place)
    assert_monotonic(adapter)


async def test_rollover_never_takes_back_shown_text() -> None:
    adapter = MemoryAdapter(limits=small_limits(max_chars=100))
    reply = StreamingReply(adapter, make_request(), Budgets())
    first = "x" * 60 + "\n\n" + "word " * 5  # 87 characters, all shown at once
    async with asyncio.timeout(5):
        reply.write(first)
        await adapter.wait_for(lambda: bool(adapter.messages))
        reply.write("more " * 10)  # the paragraph break at 62 would be the nicest cut...
        await reply.finish()
    parts = list(adapter.messages.values())
    assert parts[0].startswith(first)  # ...but 87 characters were already shown
    assert "".join(parts) == first + "more " * 10
    assert_monotonic(adapter)


async def test_rollover_cuts_at_a_word_even_when_much_was_shown() -> None:
    adapter = MemoryAdapter(limits=small_limits(max_chars=100))
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5):
        reply.write("x" * 10)
        await adapter.wait_for(lambda: bool(adapter.messages))
        reply.write("y" * 50 + "\n\n" + "word " * 7 + "wo")  # 99 characters
        await adapter.wait_for(lambda: len(adapter.history_of("m1")) == 2)
        reply.write("rd " * 20)
        await reply.finish()
    parts = list(adapter.messages.values())
    assert len(parts) == 2
    assert len(adapter.history_of("m1")[1]) <= 100 - 100 // 8
    assert parts[0].endswith(" ") and not parts[1].startswith("rd")
    assert_monotonic(adapter)


async def test_cjk_and_emoji_are_never_broken_across_messages() -> None:
    rng = random.Random(7)
    text = "".join(rng.choice([*ATOMS, CJK[:9], CJK[9:20], " ", "\n"]) for _ in range(150))
    adapter = MemoryAdapter(limits=small_limits(max_chars=40))
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(10), reply:
        await stream(reply, text, seed=7)
    final = list(adapter.messages.values())
    assert len(final) > 5
    assert "".join(final) == text
    for atom in ATOMS:
        assert sum(part.count(atom) for part in final) == text.count(atom)
    for part in final:
        assert len(part) <= 40
        assert not part.startswith(("\u200d", "\ufe0f", "\u0301", "\U0001f3fd"))
    assert_monotonic(adapter)


async def test_a_huge_first_write_is_split_before_posting() -> None:
    adapter = MemoryAdapter(limits=small_limits(max_chars=50))
    reply = StreamingReply(adapter, make_request(), Budgets())
    text = "word " * 60
    async with asyncio.timeout(10):
        reply.write(text)
        await reply.finish()
    assert list(adapter.messages.values()) == split_message(text, 50)
    assert all(len(h) == 1 for h in map(adapter.history_of, adapter.messages))


async def test_finish_with_footer_delivers_every_part() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5):
        reply.write("The answer is 42.")
        posted = await reply.finish(footer="gpt-4o · 12 tokens")
        again = await reply.finish()
    assert posted == again
    assert list(adapter.messages.values()) == ["The answer is 42.\n\ngpt-4o · 12 tokens"]


async def test_an_unclosed_code_block_is_closed_at_the_end() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5), reply:
        reply.write("```sh\nls -la")
    assert list(adapter.messages.values()) == ["```sh\nls -la\n```"]


async def test_an_error_interrupts_and_keeps_the_partial_text() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    with pytest.raises(RuntimeError):
        async with asyncio.timeout(5), reply:
            reply.write("Half of the ans")
            await adapter.wait_for(lambda: bool(adapter.messages))
            raise RuntimeError("gateway fell over")
    [final] = adapter.messages.values()
    assert final == "Half of the ans\n\n⚠️ Interrupted: something went wrong on our side."
    assert "gateway fell over" not in final
    assert_monotonic(adapter)


async def test_a_user_facing_error_says_why() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    with pytest.raises(UserFacingError):
        async with asyncio.timeout(5), reply:
            raise UserFacingError("The model `gpt-9` does not exist; try `models`.")
    assert list(adapter.messages.values()) == [
        "⚠️ Interrupted: The model `gpt-9` does not exist; try `models`."
    ]


async def test_cancellation_cuts_short_and_reraises() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    started = asyncio.Event()

    async def work() -> None:
        async with StreamingReply(adapter, make_request(), Budgets()) as reply:
            reply.write("Partial")
            started.set()
            await asyncio.sleep(30)

    async with asyncio.timeout(5):
        task = asyncio.create_task(work())
        await started.wait()
        await adapter.wait_for(lambda: bool(adapter.messages))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    [final] = adapter.messages.values()
    assert final.startswith("Partial\n\n⚠️ Cut short:")


async def test_429s_are_retried_and_the_final_text_still_arrives() -> None:
    adapter = MemoryAdapter(limits=small_limits(edit_interval=0.01))
    budgets = Budgets()
    reply = StreamingReply(adapter, make_request(), budgets)
    adapter.inject_429(times=2, retry_after=0.03)  # the first post is refused twice
    async with asyncio.timeout(10):
        reply.write("first ")
        await adapter.wait_for(lambda: bool(adapter.messages))
        adapter.inject_429(times=3, retry_after=0.03)
        reply.write("second third")
        await reply.finish(footer="done")
    assert list(adapter.messages.values()) == ["first second third\n\ndone"]
    assert adapter.rate_limited == 5
    # After each 429 the scope waited out Retry-After before writing again.
    for i, event in enumerate(adapter.events[:-1]):
        if event.kind == "rate_limited":
            assert adapter.events[i + 1].at - event.at >= 0.029
    assert_monotonic(adapter)


async def test_progress_shows_until_text_arrives() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5):
        reply.progress("🎨 generating image… 1 s")
        await adapter.wait_for(lambda: bool(adapter.messages))
        reply.progress("🎨 generating image… 2 s")
        await adapter.wait_for(lambda: "2 s" in next(iter(adapter.messages.values())))
        reply.write("Here it is.")
        await reply.finish()
    [mid] = adapter.messages
    assert adapter.history_of(mid)[0] == "🎨 generating image… 1 s"
    assert adapter.messages[mid] == "Here it is."


async def test_progress_alone_never_ends_as_a_placeholder() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5):
        reply.progress("⏳ transcribing piece 1 of 3")
        await adapter.wait_for(lambda: bool(adapter.messages))
        await reply.finish()
    assert list(adapter.messages.values()) == [EMPTY_REPLY]


async def test_interrupt_before_anything_was_posted_posts_the_note() -> None:
    adapter = MemoryAdapter(limits=small_limits())
    reply = StreamingReply(adapter, make_request(), Budgets())
    async with asyncio.timeout(5):
        await reply.interrupt("The gateway is unreachable; try again in a minute")
        reply.progress("ignored after the end")
        with pytest.raises(RuntimeError):
            reply.write("too late")
    assert list(adapter.messages.values()) == [
        "⚠️ Interrupted: The gateway is unreachable; try again in a minute."
    ]


async def test_hundreds_of_concurrent_replies_all_complete() -> None:
    limits = small_limits(max_chars=300, budget_per_second=5000.0, budget_burst=500)
    adapter = MemoryAdapter(limits=limits)
    budgets = Budgets()
    text = "lorem ipsum dolor sit amet " * 20

    async def one(k: int) -> None:
        async with StreamingReply(adapter, make_request(channel=f"C{k % 7}"), budgets) as r:
            await stream(r, text, seed=k, every=2)

    async with asyncio.timeout(30):
        await asyncio.gather(*(one(k) for k in range(300)))
    for k in range(7):
        place = make_request(channel=f"C{k}").place
        joined = adapter.messages_in(place)
        assert len(joined) >= 300 // 7 * 2
    assert sum(1 for e in adapter.writes() if e.kind == "reply") == len(adapter.messages)
    assert_monotonic(adapter)
