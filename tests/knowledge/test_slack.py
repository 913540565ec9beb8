"""Documents and channel memory on the Slack fake: real Socket Mode events, file host, Web API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from adapters.slack.mrkdwn import to_mrkdwn
from tests.document_fixtures import big_log, encrypted_pdf, pdf_bytes
from tests.fakes.gateway import png_bytes
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.slack.test_e2e import Stack, build_stack, mention

NEEDLE = "payment gateway rejected card token tok_visa_4242 with ERR_CARD_DECLINED"


def _last_user_text(stack: Stack) -> str:
    return str(stack.gateway.chat_bodies()[-1]["messages"][-1]["content"])


async def _answer(slack: FakeSlack, channel: str, text: str, **kw: Any) -> str:
    """Mention the bot and return its (last) answer in that thread, once it stops changing."""
    ts = await mention(slack, channel, text, **kw)
    root = str(kw.get("thread_ts") or ts)

    def answers() -> list[dict[str, Any]]:
        return [
            m
            for m in slack.thread(channel, root)
            if m.get("user") == BOT_USER and float(m["ts"]) > float(ts)
        ]

    await slack.wait_until(lambda: bool(answers()))
    await slack.wait_until(lambda: not any(m.get("streaming") for m in answers()))
    return str(answers()[-1]["text"])


async def _post(stack: Stack, channel: str, event: dict[str, Any]) -> None:
    """Deliver a plain channel event (no mention) and wait until memory has indexed it."""
    await stack.slack.wait_ack(
        await stack.slack.send("events_api", stack.slack.event_callback(event))
    )
    async with asyncio.timeout(10):
        await stack.adapter.drained()
        await stack.memory.idle()


async def test_an_attached_log_reaches_the_model_and_a_3_mb_log_only_its_nearest_chunk(
    tmp_path: Path,
) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        small = slack.add_file("error.log", "text/plain", b"10:00 ERROR disk /var is full\n")
        await _answer(slack, "C1", "why does this fail?", files=[small])
        assert "10:00 ERROR disk /var is full" in _last_user_text(stack)
        data = big_log(3 * 1024 * 1024, NEEDLE)
        large = slack.add_file("app.log", "text/plain", data)
        shown = await _answer(slack, "C1", "why was the card token rejected", files=[large])
        sent = _last_user_text(stack)
    assert NEEDLE in sent and len(sent) < 40_000
    assert "too large to read whole" in shown and "app.log" in shown


async def test_pdfs_are_read_and_unreadable_files_refused_plainly(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        runbook = slack.add_file(
            "runbook.pdf", "application/pdf", pdf_bytes([["Restart with systemctl restart pay"]])
        )
        await _answer(slack, "C1", "how do I restart?", files=[runbook])
        assert "systemctl restart pay" in _last_user_text(stack)
        asked = len(stack.gateway.chat_bodies())
        refusals = {
            "locked.pdf": (encrypted_pdf([["x"]]), "application/pdf", "encrypted"),
            "notes.txt": (png_bytes(), "text/plain", "a PNG image"),
        }
        for name, (data, mime, why) in refusals.items():
            file = slack.add_file(name, mime, data)
            text = await _answer(slack, "C1", "what is in it?", files=[file])
            assert text.startswith("⚠️") and name in text and why in text, text
        huge = slack.add_file("huge.log", "text/plain", b"tiny", size=200 * 1024 * 1024)
        text = await _answer(slack, "C1", "what is in it?", files=[huge])
        assert text.startswith("⚠️") and "200.0 MB" in text
        assert huge["id"] not in slack.downloads, "refused by its declared size, never fetched"
        assert len(stack.gateway.chat_bodies()) == asked


async def test_a_file_posted_earlier_in_the_thread_joins_the_question(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        config = slack.add_file("deploy.yaml", "text/plain", b"image: api:1.4.2\nreplicas: 3\n")
        root = slack.user_message("C1", "the deploy config", files=[config])
        await _post(stack, "C1", root)
        await _answer(slack, "C1", "which image runs?", thread_ts=root["ts"])
        assert "image: api:1.4.2" in _last_user_text(stack)


async def test_memory_indexes_the_channel_and_search_answers_with_permalinks(
    tmp_path: Path,
) -> None:
    async with build_stack(tmp_path) as stack:
        slack = stack.slack
        assert "now *on*" in await _answer(slack, "C1", "memory on", user="UADMIN")
        redis = slack.user_message("C1", "We decided to upgrade Redis to version 7 on Friday")
        lunch = slack.user_message("C1", "Lunch is at noon in the big room")
        kafka = slack.user_message("C1", "The Kafka brokers need more disk before the migration")
        for event in (redis, lunch, kafka):
            await _post(stack, "C1", event)
        link = f"{slack.root}/archives/C1/p{redis['ts'].replace('.', '')}"
        found = await _answer(slack, "C1", "search what did we decide about the redis upgrade")
        # The link names who said it (Markdown in a native stream, mrkdwn when posted).
        assert f"](<{link}>)" in found or f"]({link})" in found or f"<{link}|ada, " in found
        assert "ada, " in found and "upgrade Redis to version 7" in found
        assert "Lunch" not in found
        # Edited: found by its new text only.
        await _post(
            stack, "C1", slack.edit_message("C1", redis["ts"], "Postgres failover drill moved")
        )
        assert "Nothing in this channel" in await _answer(slack, "C1", "search redis upgrade")
        assert link in await _answer(slack, "C1", "search postgres failover drill")
        # Deleted: gone.
        await _post(stack, "C1", slack.delete_message("C1", kafka["ts"]))
        assert "Nothing in this channel" in await _answer(slack, "C1", "search kafka brokers disk")
        # Another channel finds nothing of this one's.
        await _answer(slack, "C2", "memory on", user="UADMIN")
        assert "Nothing in this channel" in await _answer(slack, "C2", "search postgres failover")
        # Forget empties the index.
        assert "passages removed" in await _answer(slack, "C1", "memory forget", user="UADMIN")
        assert "Nothing in this channel" in await _answer(slack, "C1", "search postgres failover")


async def test_channels_without_memory_are_not_indexed(tmp_path: Path) -> None:
    async with build_stack(tmp_path) as stack:
        await _post(stack, "C1", stack.slack.user_message("C1", "nobody asked to keep this"))
        status = await stack.store.memory_status("slack:C1")
        assert status.passages == 0 and not stack.gateway.embedding_bodies()
        text = await _answer(stack.slack, "C1", "search keep this")
        assert text.startswith(to_mrkdwn("⚠️ Channel memory is off")[:10])
