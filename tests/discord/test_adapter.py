"""The Discord adapter against the fake Discord: gateway, inbound requests, replies, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from adapters.discord.client import DiscordAdapter
from bot.errors import PlatformRateLimited, TooLarge, UserFacingError
from bot.events import Request
from tests.discord_harness import running, settings_for
from tests.fakes.discord import (
    BOT_ID,
    CHANNEL_ID,
    MEMBER_ID,
    OTHER_BOT_ID,
    OWNER_ID,
    THREAD_ID,
    VOICE_FLAG,
    FakeDiscord,
)

MESSAGE_CONTENT_INTENT = 1 << 15


class Inbox:
    """A handler that records requests and answers each with a reply edited to full text."""

    def __init__(self, answer: str | None = "hello") -> None:
        self.requests: list[Request] = []
        self.adapter: DiscordAdapter | None = None
        self.answer = answer
        self.errors: list[BaseException] = []
        self._arrived = asyncio.Condition()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)

    async def __call__(self, req: Request) -> None:
        self.requests.append(req)
        async with self._arrived:
            self._arrived.notify_all()
        if self.answer is None or self.adapter is None:
            return
        try:
            posted = await self.adapter.reply(req, self.answer[:3])
            await self.adapter.edit(posted, self.answer)
        except Exception as exc:
            self.errors.append(exc)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fd:
        yield fd


async def test_gateway_handshake_identifies_with_intents_and_heartbeats(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running(fake, Inbox(None), tmp_path) as adapter:
        await fake.wait_until(lambda: fake.heartbeats >= 1)
        assert adapter.client is not None and adapter.client.user is not None
        assert adapter.client.user.id == BOT_ID
    (identify,) = fake.identifies
    assert identify["token"] == fake.token
    assert identify["intents"] & MESSAGE_CONTENT_INTENT
    assert adapter.invite_url is not None
    assert f"client_id={BOT_ID}" in adapter.invite_url
    assert "applications.commands" in adapter.invite_url and "permissions=" in adapter.invite_url


async def test_mention_becomes_request_and_reply_is_edited_to_full_text(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    inbox = Inbox("hello there, a longer answer")
    async with running(fake, inbox, tmp_path) as adapter:
        inbox.adapter = adapter
        sent = await fake.send_message("what is   a 429?", mention_bot=True)
        await fake.wait_until(lambda: any(m.edits for m in fake.replies_to(sent.id)))
    (req,) = inbox.requests
    assert req.text == "what is a 429?"
    assert req.command is None
    assert req.place.channel == str(CHANNEL_ID) and req.place.thread is None
    assert req.user.id == str(MEMBER_ID) and not req.user.is_admin
    (reply,) = fake.replies_to(sent.id)
    assert reply.content == "hello there, a longer answer"
    assert [v for _, v in reply.versions] == ["hel", "hello there, a longer answer"]
    assert fake.typing, "a typing indicator was shown while working"
    assert not inbox.errors


async def test_unaddressed_messages_and_bots_are_ignored(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path):
        await fake.send_message("no mention here")
        await fake.send_message("from a bot", author=OTHER_BOT_ID, mention_bot=True)
        await fake.send_message("from ourselves", author=BOT_ID, mention_bot=True)
        marker = await fake.send_message("the marker", mention_bot=True)
        await inbox.wait(1)
    assert [r.event_id for r in inbox.requests] == [f"discord:m{marker.id}"]


async def test_configured_bots_are_answered(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    env = {"DISCORD_ALLOW_BOTS": str(OTHER_BOT_ID)}
    async with running(fake, inbox, tmp_path, env=env):
        await fake.send_message("from a bot", author=OTHER_BOT_ID, mention_bot=True)
        await inbox.wait(1)
    assert inbox.requests[0].user.id == str(OTHER_BOT_ID)


async def test_admins_come_from_guild_permissions(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    fake.grant_admin(MEMBER_ID)
    async with running(fake, inbox, tmp_path):
        await fake.send_message("as a manager", mention_bot=True)
        await fake.send_message("as the owner", author=OWNER_ID, mention_bot=True)
        await inbox.wait(2)
    assert all(r.user.is_admin for r in inbox.requests)


async def test_reply_to_bot_is_a_request_and_history_follows_the_chain(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    inbox = Inbox("first answer")
    async with running(fake, inbox, tmp_path) as adapter:
        inbox.adapter = adapter
        image = fake.add_attachment("cat.png", b"\x89PNG fake", "image/png")
        first = await fake.send_message("look at this", mention_bot=True, attachments=[image])
        await fake.wait_until(lambda: any(m.edits for m in fake.replies_to(first.id)))
        (answer,) = fake.replies_to(first.id)
        inbox.answer = None
        await fake.send_message("and then?", reply_to=answer.id)
        await inbox.wait(2)
        turns = await adapter.history(inbox.requests[1])
    assert [(t.role, t.text) for t in turns] == [
        ("user", "look at this"),
        ("assistant", "first answer"),
    ]
    assert turns[0].image_urls == (image["url"],)
    assert inbox.requests[1].text == "and then?"


async def test_thread_history_is_the_thread(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        await fake.send_message("earlier in the thread", channel_id=THREAD_ID)
        await fake.send_message("what did I say?", channel_id=THREAD_ID, mention_bot=True)
        await inbox.wait(1)
        turns = await adapter.history(inbox.requests[0])
    req = inbox.requests[0]
    assert req.place.channel == str(CHANNEL_ID) and req.place.thread == str(THREAD_ID)
    assert [t.text for t in turns] == ["earlier in the thread"]


async def test_voice_message_becomes_audio_attachment_and_downloads(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    inbox = Inbox(None)
    audio = b"OggS" + bytes(5000)
    async with running(fake, inbox, tmp_path) as adapter:
        voice = fake.add_attachment(
            "voice-message.ogg", audio, "audio/ogg", duration=3.5, waveform=bytes(range(32))
        )
        await fake.send_message("", attachments=[voice], flags=VOICE_FLAG)
        await inbox.wait(1)
        (att,) = inbox.requests[0].attachments
        data = await adapter.download(att, 1_000_000)
        with pytest.raises(TooLarge):
            await adapter.download(att, 1000)
    assert inbox.requests[0].text == ""
    assert (att.kind, att.mime, att.duration, att.filename) == (
        "audio",
        "audio/ogg",
        3.5,
        "voice-message.ogg",
    )
    assert data == audio


async def test_download_counts_bytes_when_the_declared_size_lies(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        liar = fake.add_attachment(
            "a.bin", bytes(300_000), "application/octet-stream", declared_size=10
        )
        await fake.send_message("file", mention_bot=True, attachments=[liar])
        await inbox.wait(1)
        (att,) = inbox.requests[0].attachments
        with pytest.raises(TooLarge):
            await adapter.download(att, 100_000)


async def test_fake_rate_limits_speak_discords_headers_and_bodies(fake: FakeDiscord) -> None:
    url = f"{fake.api_base}/channels/{CHANNEL_ID}/messages"
    headers = {"Authorization": f"Bot {fake.token}"}
    remaining = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for i in range(5):
            async with http.post(url, json={"content": f"m{i}"}) as resp:
                assert resp.status == 200
                remaining.append(resp.headers["X-RateLimit-Remaining"])
                assert resp.headers["X-RateLimit-Limit"] == "5"
                assert float(resp.headers["X-RateLimit-Reset-After"]) <= 5.0
        async with http.post(url, json={"content": "one too many"}) as resp:
            assert resp.status == 429
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["Via"]
            body = await resp.json()
    assert remaining == ["4", "3", "2", "1", "0"]
    assert body["global"] is False and 0 < body["retry_after"] <= 5.0
    assert fake.served_429 == 1


async def test_a_long_rate_limit_surfaces_as_platform_rate_limited(tmp_path: Path) -> None:
    inbox = Inbox(None)
    async with FakeDiscord(create_limit=1, window=60.0) as fake:
        async with running(fake, inbox, tmp_path) as adapter:
            await fake.send_message("hi", mention_bot=True)
            await inbox.wait(1)
            req = inbox.requests[0]
            await adapter.reply(req, "first")
            with pytest.raises(PlatformRateLimited) as caught:
                async with asyncio.timeout(10):
                    await adapter.reply(req, "second")
        assert caught.value.retry_after > 30
        # discord.py sent it, saw retry_after > max_ratelimit_timeout and raised at once.
        assert fake.served_429 == 1


async def test_a_raw_429_becomes_platform_rate_limited(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        await fake.send_message("hi", mention_bot=True)
        await inbox.wait(1)
        # A 429 without `Via` (a proxy's, not Discord's) is not retried by discord.py.
        fake.failures[("POST", f"/channels/{CHANNEL_ID}/messages")] = (429, 0, "slow down")
        with pytest.raises(PlatformRateLimited):
            await adapter.reply(inbox.requests[0], "hello")


async def test_missing_permissions_are_explained_in_a_dm(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        await fake.send_message("hi", mention_bot=True)
        await inbox.wait(1)
        fake.failures[("POST", f"/channels/{CHANNEL_ID}/messages")] = (
            403,
            50013,
            "Missing Permissions",
        )
        with pytest.raises(UserFacingError) as caught:
            await adapter.reply(inbox.requests[0], "hello")
    assert "Send Messages" in caught.value.message
    dms = [m for m in fake.bot_messages() if m.channel_id in fake.dm_channels.values()]
    assert len(dms) == 1 and "permission" in dms[0].content


async def test_editing_a_deleted_reply_is_dropped_quietly(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        await fake.send_message("hi", mention_bot=True)
        await inbox.wait(1)
        posted = await adapter.reply(inbox.requests[0], "hello")
        fake.messages[int(posted.id)].deleted = True
        await adapter.edit(posted, "hello again")  # no exception: nothing left to update
        assert fake.messages[int(posted.id)].content == "hello"


async def test_a_deleted_reply_is_gone_and_the_next_one_replies_to_the_question(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        sent = await fake.send_message("hi", mention_bot=True)
        await inbox.wait(1)
        placeholder = await adapter.reply(inbox.requests[0], "⏳ working…")
        await adapter.delete(placeholder)
        await adapter.delete(placeholder)  # already gone: nothing to do
        await adapter.reply(inbox.requests[0], "the answer")
    assert fake.messages[int(placeholder.id)].deleted
    # Not a reply to a deleted message: the chain starts at the question again.
    assert [m.content for m in fake.replies_to(sent.id)] == ["the answer"]
    deletes = [c for c in fake.calls if c[1] == "DELETE"]
    assert [status for *_, status in deletes] == [204, 404]


@pytest.mark.parametrize("shards", ["1", "auto"])
async def test_sharded_clients_connect_through_the_same_seams(
    fake: FakeDiscord, tmp_path: Path, shards: str
) -> None:
    inbox = Inbox("sharded hello")
    env = {"DISCORD_SHARD_COUNT": shards}
    async with running(fake, inbox, tmp_path, env=env) as adapter:
        inbox.adapter = adapter
        sent = await fake.send_message("hi", mention_bot=True)
        await fake.wait_until(lambda: any(m.edits for m in fake.replies_to(sent.id)))
    assert fake.identifies[0]["shard"] == [0, 1]
    asked_gateway = any(path == "/gateway/bot" for _, _, path, _ in fake.calls)
    assert asked_gateway == (shards == "auto")


async def test_a_deleted_channel_is_reported_not_retried(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox(None)
    async with running(fake, inbox, tmp_path) as adapter:
        await fake.send_message("hi", mention_bot=True)
        await inbox.wait(1)
        fake.failures[("POST", f"/channels/{CHANNEL_ID}/messages")] = (404, 10003, "Unknown")
        with pytest.raises(UserFacingError) as caught:
            await adapter.reply(inbox.requests[0], "hello")
    assert "no longer exists" in caught.value.message


async def test_an_answer_in_flight_at_shutdown_is_still_delivered(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    release = asyncio.Event()
    arrived = asyncio.Event()
    adapter_box: list[DiscordAdapter] = []

    async def slow(req: Request) -> None:
        arrived.set()
        await release.wait()
        await adapter_box[0].reply(req, "finished after shutdown began")

    settings = settings_for(fake, tmp_path)
    adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
    adapter_box.append(adapter)
    task = asyncio.create_task(adapter.run(slow))
    async with asyncio.timeout(10):
        await adapter.ready.wait()
        sent = await fake.send_message("hi", mention_bot=True)
        await arrived.wait()
        task.cancel()
        await asyncio.sleep(0.1)
        assert not task.done(), "run() waits for the answer in flight"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [m.content for m in fake.replies_to(sent.id)] == ["finished after shutdown began"]


async def test_direct_messages_need_no_mention(fake: FakeDiscord, tmp_path: Path) -> None:
    inbox = Inbox("hello in private")
    dm = fake.open_dm(MEMBER_ID)
    async with running(fake, inbox, tmp_path) as adapter:
        inbox.adapter = adapter
        sent = await fake.send_message("just talking", channel_id=dm)
        await fake.wait_until(lambda: any(m.edits for m in fake.replies_to(sent.id)))
    (req,) = inbox.requests
    assert req.text == "just talking" and req.place.workspace == "dm"
    assert req.place.channel == str(dm) and not req.user.is_admin
    assert fake.replies_to(sent.id)[0].content == "hello in private"
