"""Replicas: several real `chatops run` processes on one PostgreSQL, against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta
from pathlib import Path

from storage.base import Amounts, Charge, QuotaConfig
from storage.postgres.store import PostgresStore
from tests.fakes.discord import CHANNEL2_ID, CHANNEL_ID, MEMBER_ID, FakeDiscord
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.replica_harness import (
    deliver,
    mention,
    service_env,
    slack_replicas,
    socket_replicas,
    start,
)


async def until_held(url: str) -> None:
    """Until some reservation is pending in the database (bounded)."""
    store = await PostgresStore.open(url)
    try:
        async with asyncio.timeout(30):
            for _ in range(3000):
                if any(r.status == "pending" for r in await store.ledger()):
                    return
                await asyncio.sleep(0.01)
        raise AssertionError("no reservation was ever held")
    finally:
        await store.close()


def answers(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in slack.thread(channel, ts) if m.get("user") == BOT_USER]


async def test_each_event_is_answered_once_whichever_replica_gets_it_and_its_retry(
    postgres_url: str, tmp_path: Path
) -> None:
    async with (
        FakeGateway() as gateway,
        FakeSlack() as slack,
        slack_replicas(3, slack, gateway, postgres_url, tmp_path) as replicas,
    ):
        asked = [
            (f"C{i % 20}", *mention(slack, f"C{i % 20}", f"question {i}", f"EvRR{i:03d}"))
            for i in range(60)
        ]

        async def both(i: int, body: str) -> None:
            first, again = replicas[i % 3], replicas[(i + 1) % 3]
            # The retry races the first delivery on another replica.
            done = await asyncio.gather(
                deliver(first, body, slack.signing_secret),
                deliver(again, body, slack.signing_secret, retry=1),
            )
            assert [status for status, _ in done] == [200, 200]

        await asyncio.gather(*(both(i, body) for i, (_, _, body) in enumerate(asked)))

        def all_answered() -> bool:
            return all(answers(slack, c, ts) for c, ts, _ in asked)

        await slack.wait_until(all_answered, within=60)
    # Every replica has stopped (drained) by now: no answer is still on its way.
    for i, (channel, ts, _) in enumerate(asked):
        assert answers(slack, channel, ts) == [f"You said: question {i}"]
    assert not slack.rate_limited


async def test_socket_mode_replicas_answer_each_event_once_whichever_connection_gets_it(
    postgres_url: str, tmp_path: Path
) -> None:
    # Slack spreads an app's events over its connections, and a retry (no ack in time) may
    # arrive on another connection than the first delivery: one replica per connection here.
    async with (
        FakeGateway() as gateway,
        FakeSlack() as slack,
        socket_replicas(3, slack, gateway, postgres_url, tmp_path) as _,
    ):
        asked = []
        for i in range(30):
            channel = f"C{i % 10}"
            msg = slack.user_message(channel, f"<@{BOT_USER}> question {i}")
            event = slack.event_callback({**msg, "type": "app_mention"}, event_id=f"EvSM{i:03d}")
            asked.append((channel, msg["ts"]))
            await slack.send("events_api", event, to=i % 3)
            await slack.send("events_api", event, retry_attempt=1, to=(i + 1) % 3)

        def all_answered() -> bool:
            return all(answers(slack, c, ts) for c, ts in asked)

        await slack.wait_until(all_answered, within=60)
    for i, (channel, ts) in enumerate(asked):
        assert answers(slack, channel, ts) == [f"You said: question {i}"]
    assert not slack.rate_limited


async def test_50_conversations_over_3_replicas_draw_no_429_and_all_complete(
    postgres_url: str, tmp_path: Path
) -> None:
    words = [f"word{n}" for n in range(40)]
    full = " ".join(words)
    # A slow stream, so every reply edits its message while the others do too.
    async with FakeGateway(chunk_delay=0.05) as gateway, FakeSlack() as slack:
        gateway.chunks = [w + " " for w in words[:-1]] + [words[-1]]
        async with slack_replicas(3, slack, gateway, postgres_url, tmp_path) as replicas:
            asked = [
                (f"C{i}", *mention(slack, f"C{i}", f"talk {i}", f"EvBurst{i:03d}"))
                for i in range(50)
            ]
            await asyncio.gather(
                *(
                    deliver(replicas[i % 3], body, slack.signing_secret)
                    for i, (_, _, body) in enumerate(asked)
                )
            )

            def all_complete() -> bool:
                return all(answers(slack, c, ts) == [full] for c, ts, _ in asked)

            await slack.wait_until(all_complete, within=60)
    assert not slack.rate_limited, dict(slack.rate_limited)
    updates = [w for w in slack.writes if w.method == "chat.update"]
    assert updates, "no reply was edited: the test would not exercise the shared budget"


async def test_a_killed_replica_leaves_a_hold_that_expires_while_the_others_serve(
    postgres_url: str, tmp_path: Path
) -> None:
    limits = {"CHATOPS_QUOTA_REQUESTS_DAY": "1"}
    async with FakeGateway(chunk_delay=5.0) as gateway, FakeSlack() as slack:
        gateway.chunks = ["thinking", " for", " a", " long", " time"]
        async with slack_replicas(2, slack, gateway, postgres_url, tmp_path, **limits) as replicas:
            doomed, survivor = replicas
            _, body = mention(slack, "C1", "a slow one", "EvKill1")
            await deliver(doomed, body, slack.signing_secret)
            await until_held(postgres_url)
            assert await doomed.stop(signal.SIGKILL) == -signal.SIGKILL
            # The other replica goes on serving (another channel, a quick answer).
            gateway.chunks, gateway.chunk_delay = None, 0.0
            ts, body = mention(slack, "C2", "still there?", "EvKill2")
            await deliver(survivor, body, slack.signing_secret)
            await slack.wait_until(lambda: bool(answers(slack, "C2", ts)), within=30)
    # The dead replica's hold counts until the TTL passes, then the budget is whole again.
    quota = QuotaConfig(limits={("requests", "day"): 1})
    store = await PostgresStore.open(postgres_url, quota)
    try:
        [held] = [r for r in await store.ledger("slack:C1") if r.status == "pending"]
        later = held.created_at + quota.reservation_ttl + timedelta(seconds=1)
        status = await store.quota_status("slack:C1", now=later)
        again = await store.reserve(
            Charge("slack", "slack:C1", "U1", "ask", "m"), Amounts(), now=later
        )
        rows = {r.id: r for r in await store.ledger("slack:C1")}
    finally:
        await store.close()
    assert status.pending == 0 and status.windows[0].used["requests"] == 0
    assert rows[held.id].status == "expired" and rows[held.id].amounts == Amounts()
    assert rows[again.id].status == "pending"


async def test_discord_shards_split_over_two_processes_answer_each_guild_once(
    postgres_url: str, tmp_path: Path
) -> None:
    async with FakeGateway() as gateway, FakeDiscord(second_guild=True) as discord:
        processes = []
        try:
            for shard, model in ((0, "gpt-4o-mini"), (1, "gpt-4o")):
                env = service_env(gateway, postgres_url, CHATOPS_DEFAULT_MODEL=model)
                env |= discord.env(DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS=str(shard))
                processes.append(await start(env, tmp_path / f"shard{shard}"))
            await discord.wait_until(lambda: discord.shards_ready == {0, 1}, within=60)
            first = await discord.send_message("hello guild one", mention_bot=True)
            second = await discord.send_message(
                "hello guild two", mention_bot=True, channel_id=CHANNEL2_ID
            )
            dm = await discord.send_message(
                "hello in private", channel_id=discord.open_dm(MEMBER_ID)
            )
            sent = (first, second, dm)
            await discord.wait_until(lambda: all(discord.replies_to(m.id) for m in sent), within=30)
        finally:
            for process in processes:
                with contextlib.suppress(TimeoutError, ProcessLookupError):
                    await process.stop()
    for message in sent:
        assert [r.content for r in discord.replies_to(message.id)] == [
            f"You said: {message.content.split('> ', 1)[-1]}"
        ]
    store = await PostgresStore.open(postgres_url)
    try:
        ledger = await store.ledger()
    finally:
        await store.close()
    # Which process answered: each runs another default model, and the ledger says which.
    by_channel = {row.charge.channel: row.charge.model for row in ledger}
    assert by_channel[f"discord:{CHANNEL_ID}"] == "gpt-4o-mini"  # guild one: shard 0
    assert by_channel[f"discord:{CHANNEL2_ID}"] == "gpt-4o"  # guild two: shard 1
    assert len(ledger) == 3 and sorted(by_channel.values()).count("gpt-4o-mini") == 2
