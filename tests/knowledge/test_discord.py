"""Documents and channel memory on the Discord fake: gateway events, REST, CDN attachments."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.discord.test_e2e import Stack, stack
from tests.document_fixtures import big_log, encrypted_pdf, pdf_bytes
from tests.fakes.discord import CHANNEL_ID, GUILD_ID, OWNER_ID, FakeMessage
from tests.fakes.gateway import png_bytes

__all__ = ["stack"]

NEEDLE = "payment gateway rejected card token tok_visa_4242 with ERR_CARD_DECLINED"


def _last_user_text(stack: Stack) -> str:
    return str(stack.gateway.chat_bodies()[-1]["messages"][-1]["content"])


async def _answer(stack: Stack, text: str, **kw: object) -> str:
    """Mention the bot; its whole answer once the request is done."""
    fake = stack.discord
    sent = await fake.send_message(text, mention_bot=True, **kw)  # type: ignore[arg-type]
    await fake.wait_until(lambda: bool(fake.replies_to(sent.id)), within=20)
    async with asyncio.timeout(20):
        while stack.dispatcher.inflight:  # noqa: ASYNC110 - the dispatcher exposes a count
            await asyncio.sleep(0.02)
    return "".join(m.content for m in fake.replies_to(sent.id))


async def _until(stack: Stack, done: Callable[[], Awaitable[bool]]) -> None:
    """Wait (bounded) until channel memory shows a change the fake's gateway event caused."""
    async with asyncio.timeout(10):
        while not await done():  # noqa: ASYNC110 - the store has no change notification
            await asyncio.sleep(0.02)
        await stack.memory.idle()


async def _messages(stack: Stack) -> int:
    return (await stack.store.memory_status(f"discord:{CHANNEL_ID}")).messages


def _reaches(stack: Stack, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _messages(stack) == count

    return check


async def _posted(stack: Stack, text: str) -> FakeMessage:
    before = await _messages(stack)
    message = await stack.discord.send_message(text)
    await _until(stack, _reaches(stack, before + 1))
    return message


async def test_an_attached_log_reaches_the_model_and_a_3_mb_log_only_its_nearest_chunk(
    stack: Stack,
) -> None:
    fake = stack.discord
    small = fake.add_attachment("error.log", b"10:00 ERROR disk /var is full\n", "text/plain")
    await _answer(stack, "why does this fail?", attachments=[small])
    assert "10:00 ERROR disk /var is full" in _last_user_text(stack)
    large = fake.add_attachment("app.log", big_log(3 * 1024 * 1024, NEEDLE), "text/plain")
    shown = await _answer(stack, "why was the card token rejected", attachments=[large])
    sent = _last_user_text(stack)
    assert NEEDLE in sent and len(sent) < 40_000
    assert "too large to read whole" in shown and "app.log" in shown


async def test_pdfs_are_read_and_unreadable_files_refused_plainly(stack: Stack) -> None:
    fake = stack.discord
    pdf = pdf_bytes([["Restart with systemctl restart pay"]])
    runbook = fake.add_attachment("runbook.pdf", pdf, "application/pdf")
    await _answer(stack, "how do I restart?", attachments=[runbook])
    assert "systemctl restart pay" in _last_user_text(stack)
    asked = len(stack.gateway.chat_bodies())
    refusals = {
        "locked.pdf": (encrypted_pdf([["x"]]), "application/pdf", "encrypted"),
        "notes.txt": (png_bytes(), "text/plain", "a PNG image"),
    }
    for name, (data, mime, why) in refusals.items():
        file = fake.add_attachment(name, data, mime)
        text = await _answer(stack, "what is in it?", attachments=[file])
        assert text.startswith("⚠️") and name in text and why in text, text
    huge = fake.add_attachment("huge.log", b"tiny", "text/plain", declared_size=200 * 1024 * 1024)
    text = await _answer(stack, "what is in it?", attachments=[huge])
    assert text.startswith("⚠️") and "200.0 MB" in text
    assert len(stack.gateway.chat_bodies()) == asked


async def test_memory_indexes_the_channel_and_search_answers_with_jump_urls(
    stack: Stack,
) -> None:
    fake = stack.discord
    assert "now **on**" in await _answer(stack, "memory on", author=OWNER_ID)
    redis = await _posted(stack, "We decided to upgrade Redis to version 7 on Friday")
    await _posted(stack, "Lunch is at noon in the big room")
    kafka = await _posted(stack, "The Kafka brokers need more disk before the migration")
    jump = f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{redis.id}"
    found = await _answer(stack, "search what did we decide about the redis upgrade")
    assert f"]({jump})" in found and "upgrade Redis to version 7" in found
    # Edited: found by its new text only.
    await fake.edit_message(redis.id, "Postgres failover drill moved")

    async def edited() -> bool:
        return "Postgres failover drill moved" in stack.gateway.embedded()

    await _until(stack, edited)
    assert "Nothing in this channel" in await _answer(stack, "search redis upgrade")
    assert jump in await _answer(stack, "search postgres failover drill")
    # Deleted: gone.
    before = await _messages(stack)
    await fake.delete_message(kafka.id)
    await _until(stack, _reaches(stack, before - 1))
    assert "Nothing in this channel" in await _answer(stack, "search kafka brokers disk")
    # Another channel (memory on there too) finds nothing of this one's.
    other = fake.next_id()
    fake.channels[other] = fake._text_channel(other, "other")
    assert "now **on**" in await _answer(stack, "memory on", author=OWNER_ID, channel_id=other)
    assert "Nothing in this channel" in await _answer(
        stack, "search postgres failover", channel_id=other
    )
    # Forget empties the index.
    assert "passages removed" in await _answer(stack, "memory forget", author=OWNER_ID)
    assert "Nothing in this channel" in await _answer(stack, "search postgres failover")
