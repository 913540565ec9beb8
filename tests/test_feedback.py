"""👍/👎 in the core: buttons asked for on finished chat replies, votes stored, shown in quota."""

from __future__ import annotations

from pathlib import Path

from tests.core_harness import running_core
from tests.memory_adapter import make_request


async def test_a_finished_reply_asks_for_feedback_on_its_last_message(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.reply = "word " * 150  # rolls over into a second message
        await core.send(make_request("tell me a story"))
        posted = list(core.adapter.messages)
        assert len(posted) >= 2
        ((message, text, key),) = core.adapter.feedback_asked
        assert message == posted[-1] and text == core.adapter.messages[message]
        (row,) = await core.store.ledger()
        assert key == str(row.id)
        # Only chat answers ask: a command's own output does not.
        await core.send(make_request("help"))
        assert len(core.adapter.feedback_asked) == 1


async def test_a_failed_reply_asks_for_nothing(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        core.gateway.fail_next(500, "server_error", times=5)
        await core.send(make_request("hello"))
        assert core.adapter.feedback_asked == []


async def test_one_vote_per_person_the_latest_counts_and_quota_shows_it(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("hello"))
        ((_, _, key),) = core.adapter.feedback_asked
        await core.send(make_request(f"up {key}", command="feedback"))
        await core.send(make_request(f"down {key}", command="feedback"))
        thanks = [t for t in core.adapter.messages.values() if t.startswith("Thanks")]
        assert len(thanks) == 2
        (votes,) = await core.store.votes_by_model("memory:C1")
        assert (votes.model, votes.up, votes.down) == ("gpt-4o-mini", 0, 1)
        await core.send(make_request("quota"))
        view = list(core.adapter.messages.values())[-1]
        assert "answers rated: gpt-4o-mini 👍 0 👎 1 (0%)" in view


async def test_votes_only_for_answers_of_this_channel(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await core.send(make_request("hello", channel="C1"))
        ((_, _, key),) = core.adapter.feedback_asked
        await core.send(make_request(f"up {key}", command="feedback", channel="C2"))
        await core.send(make_request("up 12x", command="feedback"))
        texts = list(core.adapter.messages.values())[-2:]
        assert texts == [
            "⚠️ I can't find that answer in this channel any more.",
            "⚠️ That feedback button is not one I know.",
        ]
        assert await core.store.votes_by_model() == []
        # Typed as a message it is a question for the model, not a vote.
        await core.send(make_request(f"feedback up {key}"))
        assert core.gateway.chat_bodies()[-1]["messages"][-1]["content"] == f"feedback up {key}"


async def test_the_buttons_ride_on_the_final_edit(tmp_path: Path) -> None:
    """A reply whose final text is an edit gets its buttons with that edit: no extra write."""
    async with running_core(tmp_path) as core:
        core.gateway.chunks = [f"part {i} " for i in range(30)]
        core.gateway.chunk_delay = 0.01
        await core.send(make_request("stream slowly"))
        ((message, text, _),) = core.adapter.feedback_asked
        assert core.adapter.feedback_with_text == [True]
        assert core.adapter.messages[message] == text == "".join(core.gateway.chunks)
        edits = [e for e in core.adapter.events if e.kind == "edit" and e.message_id == message]
        assert edits[-1].text == text and [e.text for e in edits].count(text) == 1
