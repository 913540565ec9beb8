"""👍/👎 buttons on Discord answers and the votes they bring back (persistent components)."""

from __future__ import annotations

from tests.discord.test_e2e import Stack, stack
from tests.fakes.discord import EPHEMERAL_FLAG, FakeDiscord, FakeMessage

__all__ = ["stack"]


def button_ids(message: FakeMessage) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


async def test_buttons_on_the_answer_and_one_vote_per_person(stack: Stack) -> None:
    fake: FakeDiscord = stack.discord
    stack.gateway.reply = "The answer."
    sent = await fake.send_message("a question", mention_bot=True)
    await fake.wait_until(lambda: any(m.components for m in fake.replies_to(sent.id)))
    (reply,) = fake.replies_to(sent.id)
    assert reply.content == "The answer."
    (row,) = await stack.store.ledger()
    assert button_ids(reply) == [f"chatops:fb:up:{row.id}", f"chatops:fb:down:{row.id}"]
    first = await fake.click(reply, f"chatops:fb:up:{row.id}")
    await fake.wait_until(
        lambda: first.original_id is not None and _answered(fake, first.original_id)
    )
    second = await fake.click(reply, f"chatops:fb:down:{row.id}")
    await fake.wait_until(
        lambda: second.original_id is not None and _answered(fake, second.original_id)
    )
    (votes,) = await stack.store.votes_by_model(f"discord:{reply.channel_id}")
    assert (votes.up, votes.down) == (0, 1)
    # Each click is answered privately.
    assert first.callback_type == 5 and first.callback_flags & EPHEMERAL_FLAG
    assert fake.messages[first.original_id or 0].content.startswith("Thanks! Glad it helped.")


def _answered(fake: FakeDiscord, message_id: int) -> bool:
    return bool(fake.messages[message_id].content)
