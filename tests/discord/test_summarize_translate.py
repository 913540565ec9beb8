"""The Translate and Summarize message menus and commands against the fake Discord."""

from __future__ import annotations

from tests.discord.test_e2e import Stack, stack
from tests.fakes.discord import EPHEMERAL_FLAG, OWNER_ID, FakeDiscord, FakeInteraction

__all__ = ["stack"]


def shown(fake: FakeDiscord, fi: FakeInteraction) -> list[str]:
    """What the interaction's answer shows: its original response and follow-ups."""
    ids = [fi.original_id or 0, *fi.followups]
    return [fake.messages[i].content for i in ids if i in fake.messages]


async def test_translate_menu_answers_privately_in_the_users_language(stack: Stack) -> None:
    fake, gw = stack.discord, stack.gateway
    gw.reply = "デプロイはマイグレーション待ちです。"
    target = await fake.send_message("The deploy waits for the migration.", author=OWNER_ID)
    fi = await fake.send_interaction("Translate", command_type=3, target=target, locale="ja")
    await fake.wait_until(lambda: any(str(gw.reply) in text for text in shown(fake, fi)))
    assert fi.callback_type == 5 and fi.callback_flags & EPHEMERAL_FLAG
    system, user = gw.chat_bodies()[0]["messages"]
    assert "into Japanese." in system["content"]
    assert user["content"] == "The deploy waits for the migration."
    (answer,) = shown(fake, fi)
    assert answer.startswith("**Translation into Japanese** of owner's message")


async def test_summarize_menu_reads_the_reply_chain(stack: Stack) -> None:
    fake, gw = stack.discord, stack.gateway
    gw.reply = "They settled on Friday."
    first = await fake.send_message("ship on thursday?", author=OWNER_ID)
    second = await fake.send_message("friday is safer", reply_to=first.id)
    third = await fake.send_message("ok friday", author=OWNER_ID, reply_to=second.id)
    await fake.send_message("unrelated chatter")
    fi = await fake.send_interaction("Summarize", command_type=3, target=third)
    await fake.wait_until(lambda: any(str(gw.reply) in text for text in shown(fake, fi)))
    lines = gw.chat_bodies()[0]["messages"][1]["content"].splitlines()
    assert lines == ["[owner] ship on thursday?", "[member] friday is safer", "[owner] ok friday"]
    (answer,) = shown(fake, fi)
    assert answer.startswith("**Summary of 3 messages** in this thread")
    assert fi.callback_flags & EPHEMERAL_FLAG


async def test_summarize_with_share_is_public(stack: Stack) -> None:
    fake, gw = stack.discord, stack.gateway
    gw.reply = "Two people said hello."
    for text in ("hello", "hi all"):
        await fake.send_message(text)
    options = [
        {"name": "count", "type": 4, "value": 2},
        {"name": "share", "type": 5, "value": True},
    ]
    fi = await fake.send_interaction("summarize", options)
    await fake.wait_until(lambda: any(str(gw.reply) in text for text in shown(fake, fi)))
    assert not fi.callback_flags & EPHEMERAL_FLAG
    assert gw.chat_bodies()[0]["messages"][1]["content"] == "[member] hello\n[member] hi all"
