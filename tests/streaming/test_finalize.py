"""StreamingReply tells the adapter when each message is final (Adapter.finalize)."""

from __future__ import annotations

import asyncio

from bot.events import Limits
from bot.streaming.budgets import Budgets
from bot.streaming.reply import StreamingReply
from tests.memory_adapter import MemoryAdapter, make_request

LIMITS = Limits(max_chars=120, edit_interval=0.01, budget_per_second=1000.0, budget_burst=100)


def final_texts(adapter: MemoryAdapter) -> list[tuple[str, str]]:
    return list(adapter.messages.items())


async def test_each_message_is_finalized_once_with_its_final_text() -> None:
    adapter = MemoryAdapter(limits=LIMITS)
    reply = StreamingReply(adapter, make_request(), Budgets())
    words = [f"word{i} " for i in range(60)]
    for word in words[:30]:
        reply.write(word)
        await asyncio.sleep(0.001)
    # Rolled over already: the first part is final, so it is finalized before the reply ends.
    await adapter.wait_for(lambda: len(adapter.messages) > 1)
    first = next(iter(adapter.messages))
    assert [mid for mid, _ in adapter.finalized] == [first]
    for word in words[30:]:
        reply.write(word)
    posted = await reply.finish()
    assert len(posted) >= 3
    assert adapter.finalized == final_texts(adapter)
    assert [mid for mid, _ in adapter.finalized] == [p.id for p in posted]
    assert adapter.streamed_ids == {p.id for p in posted}


async def test_an_interrupted_reply_is_finalized_after_its_note() -> None:
    adapter = MemoryAdapter(limits=LIMITS)
    reply = StreamingReply(adapter, make_request(), Budgets())
    reply.write("partial answer")
    await adapter.wait_for(lambda: bool(adapter.messages))
    await reply.interrupt("the gateway broke off")
    ((mid, text),) = adapter.finalized
    assert text == adapter.messages[mid] and "Interrupted: the gateway broke off." in text


async def test_a_reply_cancelled_before_its_post_is_finalized_too() -> None:
    adapter = MemoryAdapter(limits=LIMITS)

    async def work() -> None:
        async with StreamingReply(adapter, make_request(), Budgets()) as reply:
            reply.progress("⏳ waiting…")
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await adapter.wait_for(lambda: bool(adapter.messages))
    task.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)
    ((mid, text),) = adapter.finalized
    assert text == adapter.messages[mid] and "Cut short" in text


async def test_a_failing_finalize_does_not_fail_the_reply() -> None:
    class Refusing(MemoryAdapter):
        async def finalize(self, posted: object) -> None:
            raise RuntimeError("platform refused")

    adapter = Refusing(limits=LIMITS)
    reply = StreamingReply(adapter, make_request(), Budgets())
    reply.write("all of it")
    (posted,) = await reply.finish()
    assert adapter.messages[posted.id] == "all of it"
