"""Channel memory through the core: switches, indexing, search with links, edits, deletes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bot.events import Attachment, ChannelMessage, Place, User
from bot.knowledge.config import KnowledgeConfig
from bot.knowledge.memory import ChannelMemory
from tests.core_harness import ANCHOR, Core, running_core
from tests.memory_adapter import make_request

ADMIN = User("UA", "alice", is_admin=True)
PLACE = Place("memory", "C1", None, "W1")


async def _say(core: Core, text: str, *, channel: str = "C1", user: User = ADMIN) -> str:
    thread = f"t{len(core.adapter.events)}-{channel}"
    await core.send(make_request(text, channel=channel, thread=thread, user=user))
    return "\n".join(core.adapter.messages_in(make_request(channel=channel, thread=thread).place))


def _post(core: Core, mid: str, text: str, *, channel: str = "C1", **kw: object) -> None:
    place = replace(PLACE, channel=channel)
    message = ChannelMessage(
        place,
        mid,
        kw.pop("change", "posted"),  # type: ignore[arg-type]
        text,
        "bob",
        ANCHOR,
        f"https://memory.example/{channel}/{mid}",
        **kw,  # type: ignore[arg-type]
    )
    core.memory.intake(core.adapter).observe(message)


async def _indexed(core: Core) -> None:
    async with asyncio.timeout(10):
        await core.memory.idle()


async def test_memory_is_off_by_default_and_only_admins_switch_it(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        assert "**off**" in await _say(core, "memory")
        assert "turn it on with `memory on`" in await _say(core, "search redis upgrade")
        _post(core, "m0", "ignored while memory is off")
        refused = await _say(core, "memory on", user=User("U2", "bob"))
        assert refused.startswith("⚠️") and "Only admins" in refused
        assert "now **on**" in await _say(core, "memory on")
        assert "**on**" in await _say(core, "memory status")
        await _indexed(core)
        assert (await core.store.memory_status("memory:C1")).passages == 0


async def test_posted_messages_are_found_with_links_edits_and_deletes_follow(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path) as core:
        await _say(core, "memory on")
        _post(core, "m1", "We decided to upgrade Redis to version 7 on Friday after the freeze")
        _post(core, "m2", "Lunch is at noon in the big room")
        _post(core, "m3", "The Kafka brokers need more disk before the migration")
        await _indexed(core)
        found = await _say(core, "search what did we decide about the redis upgrade")
        assert "[bob, 2026-06-15 12:00 UTC](https://memory.example/C1/m1)" in found
        assert "upgrade Redis to version 7" in found and "Lunch" not in found
        # Edited: found by its new text only.
        _post(core, "m1", "We postponed the Postgres failover drill", change="edited")
        await _indexed(core)
        assert "Nothing in this channel's memory" in await _say(core, "search redis upgrade")
        assert "m1" in await _say(core, "search postgres failover drill")
        # Deleted: gone.
        _post(core, "m3", "", change="deleted")
        await _indexed(core)
        assert "Nothing in this channel's memory" in await _say(core, "search kafka brokers disk")
        # Another channel (memory on there too) finds nothing of this one.
        await _say(core, "memory on", channel="C2")
        assert "Nothing in this channel's memory" in await _say(
            core, "search postgres failover drill", channel="C2"
        )
        # Forget empties the index.
        assert "Forgot this channel's memory: 2 passages removed" in await _say(
            core, "memory forget"
        )
        assert "Nothing in this channel's memory" in await _say(core, "search postgres failover")
        assert (await core.store.memory_status("memory:C1")).passages == 0
        ledger = await core.store.ledger()
    commands = {r.charge.command for r in ledger}
    assert {"memory", "search"} <= commands  # indexing and searching are charged
    assert all(r.charge.channel in ("memory:C1", "memory:C2") for r in ledger)


async def test_files_posted_and_the_bots_answers_are_indexed(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await _say(core, "memory on")
        runbook = Attachment("F1", "runbook.md", "text/markdown", 60, "file")
        core.adapter.add_file("F1", b"# Failover\nPromote the replica with pg_ctl promote\n")
        _post(core, "m1", "here is the runbook", attachments=(runbook,))
        core.gateway.reply = "The rotation schedule lives in the ops wiki under Oncall"
        await _say(core, "where is the oncall rotation schedule?")
        await _indexed(core)
        found = await _say(core, "search promote the replica")
        assert "(runbook.md, lines 1-2)" in found and "pg_ctl promote" in found
        answer = await _say(core, "search rotation schedule oncall wiki")
        assert "chatops (bot)" in answer and "ops wiki" in answer


async def test_the_model_gets_a_search_channel_tool_when_memory_is_on(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await _say(core, "what now?")
        offered = [t["function"]["name"] for t in core.gateway.chat_bodies()[-1]["tools"]]
        assert "search_channel" not in offered
        await _say(core, "memory on")
        await _say(core, "what now?")
        offered = [t["function"]["name"] for t in core.gateway.chat_bodies()[-1]["tools"]]
        assert "search_channel" in offered


async def test_a_new_embedding_model_re_embeds_the_channel(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await _say(core, "memory on")
        _post(core, "m1", "The VPN certificate expires in March")
        await _indexed(core)
        new = KnowledgeConfig(embedding_model="text-embedding-3-large")
        core.services.config = replace(core.services.config, knowledge=new)
        other = ChannelMemory(
            core.store, core.services.gateway, new, clock=core.services.clock, flush_delay=0.01
        )
        await other.start()
        core.services.memory = other
        try:
            found = await _say(core, "search vpn certificate expiry")
        finally:
            await other.close()
        status = await core.store.memory_status("memory:C1")
    assert "VPN certificate" in found
    assert status.models == ("text-embedding-3-large",)


async def test_passages_older_than_the_retention_are_pruned(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await _say(core, "memory on")
        _post(core, "new", "The staging cluster moved to eu-west-2")
        old = ChannelMessage(
            PLACE,
            "old",
            "posted",
            "The staging cluster lived in us-east-1",
            "bob",
            ANCHOR - timedelta(days=91),
        )
        core.memory.intake(core.adapter).observe(old)
        await _indexed(core)
        assert (await core.store.memory_status("memory:C1")).messages == 2
        assert await core.memory.prune(now=True) == 1
        found = await _say(core, "search where does the staging cluster live")
    assert "eu-west-2" in found and "us-east-1" not in found
