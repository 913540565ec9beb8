"""Feedback buttons on Slack answers (context_actions) and the votes they bring back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.slack import FakeSlack
from tests.slack.test_e2e import Stack, build_stack, mention, streams_stopped

pytestmark = pytest.mark.timeout(30)


def answer(slack: FakeSlack, thread: str) -> dict[str, object]:
    (reply,) = [m for m in slack.bot_messages("C1") if m.get("thread_ts") == thread]
    return reply


def buttons(message: dict[str, object]) -> dict[str, object]:
    blocks = message.get("blocks") or []
    assert isinstance(blocks, list)
    (actions,) = [b for b in blocks if b["type"] == "context_actions"]
    (element,) = actions["elements"]
    assert element["type"] == "feedback_buttons"
    return dict(element)


async def click(stack: Stack, message: dict[str, object], *, positive: bool) -> None:
    slack = stack.slack
    seen = len(slack.responses)
    payload = slack.feedback_payload("C1", message, positive=positive)
    await slack.wait_ack(await slack.send("interactive", payload))
    await slack.wait_until(lambda: len(slack.responses) > seen)


async def test_a_native_stream_ends_with_the_buttons_and_votes_replace(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        ts = await mention(slack, "C1", "hello there")
        await slack.wait_until(lambda: streams_stopped(slack))
        reply = answer(slack, ts)
        # The buttons came with chat.stopStream: no extra call for them.
        assert not [c for c in slack.calls if c[1] == "chat.update"]
        element = buttons(reply)
        (row,) = await stack.store.ledger()
        assert element["positive_button"]["value"] == f"up:{row.id}"  # type: ignore[index]
        assert element["negative_button"]["value"] == f"down:{row.id}"  # type: ignore[index]
        await click(stack, reply, positive=True)
        await click(stack, reply, positive=False)
        (votes,) = await stack.store.votes_by_model("slack:C1")
        assert (votes.up, votes.down) == (0, 1)
        thanks = [body for _, body in slack.responses]
        assert all(b["response_type"] == "ephemeral" for b in thanks)
        assert thanks[0]["text"].startswith("Thanks! Glad it helped.")


async def test_without_native_streams_the_buttons_come_with_an_update(tmp_path: Path) -> None:
    async with build_stack(tmp_path, native=False) as stack:
        slack, gw = stack.slack, stack.gateway
        gw.reply = "A **plain** answer."
        ts = await mention(slack, "C1", "hi")
        await slack.wait_until(
            lambda: any(
                m.get("blocks") for m in slack.bot_messages("C1") if m.get("thread_ts") == ts
            )
        )
        reply = answer(slack, ts)
        blocks = reply["blocks"]
        assert isinstance(blocks, list)
        assert blocks[0] == {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "A *plain* answer."},
        }
        buttons(reply)
        await click(stack, reply, positive=True)
        (votes,) = await stack.store.votes_by_model("slack:C1")
        assert (votes.up, votes.down) == (1, 0)
