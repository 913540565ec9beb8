"""Slack adapter over Socket Mode against the fake Slack: inbound events, replies, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.slack.app import SlackAdapter
from adapters.slack.errors import SlackProblem
from adapters.slack.settings import SlackSettings
from bot.errors import PlatformRateLimited
from bot.events import Request
from storage.sqlite.store import SqliteStore
from tests.fakes.slack import BOT_ID, BOT_USER, TEAM, FakeSlack, SeenOnce, running


class Inbox:
    """A handler that records each Request and signals its arrival."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.arrived = asyncio.Condition()

    async def __call__(self, req: Request) -> None:
        async with self.arrived:
            self.requests.append(req)
            self.arrived.notify_all()

    async def wait_for(self, count: int) -> list[Request]:
        async with asyncio.timeout(5), self.arrived:
            await self.arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def make_adapter(slack: FakeSlack, **env: str) -> SlackAdapter:
    # These tests cover posting and editing; native streams are in test_slack_stream.py.
    env = {"CHATOPS_SLACK_NATIVE_STREAM": "false", **env}
    settings = SlackSettings.from_env(slack.env(**env))
    assert settings is not None
    return SlackAdapter(settings, SeenOnce())


@pytest.fixture
async def live(slack: FakeSlack) -> AsyncIterator[tuple[SlackAdapter, Inbox]]:
    adapter = make_adapter(slack)
    inbox = Inbox()
    async with running(adapter, inbox):
        yield adapter, inbox


async def deliver(slack: FakeSlack, event: dict[str, object], **kw: object) -> None:
    """Send an Events API envelope and wait for the adapter's ack."""
    eid = await slack.send("events_api", slack.event_callback(event, **kw))  # type: ignore[arg-type]
    await slack.wait_ack(eid)


async def test_mention_becomes_request_in_its_thread(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    adapter, inbox = live
    msg = slack.user_message("C1", f"<@{BOT_USER}> what is   2+2?")
    # Slack sends both an app_mention and a message event for a mention.
    await deliver(slack, {**msg, "type": "app_mention"})
    await deliver(slack, msg)
    await adapter.drained()
    (req,) = await inbox.wait_for(1)
    assert req.text == "what is 2+2?"
    assert req.command is None
    assert (req.place.platform, req.place.channel, req.place.thread) == ("slack", "C1", msg["ts"])
    assert req.place.workspace == TEAM
    assert req.user.id == "U1" and req.user.name == "ada" and not req.user.is_admin
    assert len(inbox.requests) == 1


async def test_admin_flag_and_user_cache(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    _, inbox = live
    for _ in range(2):
        msg = slack.user_message("C1", f"<@{BOT_USER}> hi", user="UADMIN")
        await deliver(slack, {**msg, "type": "app_mention"})
    reqs = await inbox.wait_for(2)
    assert all(r.user.is_admin for r in reqs)
    assert slack.user_info_calls == 1


async def test_dm_and_thread_follow_up(slack: FakeSlack, live: tuple[SlackAdapter, Inbox]) -> None:
    adapter, inbox = live
    dm = slack.user_message("D1", "hello there", channel_type="im")
    await deliver(slack, dm)
    (req,) = await inbox.wait_for(1)
    assert req.text == "hello there" and req.place.channel == "D1"

    # A thread the bot has not spoken in: a message without a mention is not for us.
    parent = slack.user_message("C1", "people talking")
    await deliver(slack, slack.user_message("C1", "more talk", thread_ts=parent["ts"]))
    await adapter.drained()
    assert len(inbox.requests) == 1

    # After the bot answers in a thread, follow-ups there need no mention.
    mention = slack.user_message("C2", f"<@{BOT_USER}> start")
    await deliver(slack, {**mention, "type": "app_mention"})
    first = (await inbox.wait_for(2))[1]
    await adapter.reply(first, "answer")
    follow = slack.user_message("C2", "and then?", thread_ts=mention["ts"])
    await deliver(slack, follow)
    third = (await inbox.wait_for(3))[2]
    assert third.text == "and then?" and third.place.thread == mention["ts"]


async def test_thread_follow_up_after_restart_is_recognised(slack: FakeSlack) -> None:
    parent = slack.user_message("C1", f"<@{BOT_USER}> hi")
    slack.messages["C1"]["1.5"] = {"user": BOT_USER, "bot_id": BOT_ID, "text": "hello", "ts": "1.5"}
    slack.messages["C1"]["1.5"]["thread_ts"] = parent["ts"]
    adapter, inbox = make_adapter(slack), Inbox()
    async with running(adapter, inbox):
        await deliver(slack, slack.user_message("C1", "again", thread_ts=parent["ts"]))
        (req,) = await inbox.wait_for(1)
    assert req.text == "again"


async def test_bots_ignored_unless_allowed(slack: FakeSlack) -> None:
    for allow, expected in (("false", 0), ("true", 1)):
        adapter, inbox = make_adapter(slack, CHATOPS_SLACK_ALLOW_BOTS=allow), Inbox()
        async with running(adapter, inbox):
            other = slack.user_message("C1", f"<@{BOT_USER}> ping", user="UOTHERBOT", bot_id="B2")
            await deliver(slack, {**other, "type": "app_mention"})
            own = slack.user_message(
                "D1", "my own", user=BOT_USER, bot_id=BOT_ID, channel_type="im"
            )
            await deliver(slack, own)
            await adapter.drained()
        assert len(inbox.requests) == expected


async def test_redelivered_event_is_handled_once(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    adapter, inbox = live
    msg = {**slack.user_message("C1", f"<@{BOT_USER}> once"), "type": "app_mention"}
    body = slack.event_callback(msg, event_id="EvSAME")
    for attempt in range(3):
        await slack.wait_ack(await slack.send("events_api", body, retry_attempt=attempt))
    await adapter.drained()
    assert len(await inbox.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("command", "text", "name", "args"),
    [
        ("/ask", "why is the sky blue", "ask", "why is the sky blue"),
        ("/image", "a red fox", "image", "a red fox"),
        ("/quota", "", "quota", ""),
        ("/chatops", "model gpt-4o", "model", "gpt-4o"),
        ("/chatops", "", "help", ""),
    ],
)
async def test_slash_commands_acked_then_dispatched(
    slack: FakeSlack,
    live: tuple[SlackAdapter, Inbox],
    command: str,
    text: str,
    name: str,
    args: str,
) -> None:
    _, inbox = live
    eid = await slack.send("slash_commands", slack.slash_payload(command, text))
    # Slack's deadline for the ack is 3 s; this is the protocol's bound, not a benchmark.
    await slack.wait_ack(eid, within=3.0)
    (req,) = await inbox.wait_for(1)
    assert (req.command, req.text) == (name, args)
    assert req.place.thread is None


async def test_transcribe_shortcut(slack: FakeSlack, live: tuple[SlackAdapter, Inbox]) -> None:
    adapter, inbox = live
    clip = slack.add_file("clip.mp4", "video/mp4", b"....", subtype="slack_audio")
    msg = slack.user_message("C1", "", files=[clip])
    await slack.wait_ack(
        await slack.send("interactive", slack.shortcut_payload("transcribe", "C1", msg))
    )
    (req,) = await inbox.wait_for(1)
    assert req.command == "transcribe" and req.place.thread == msg["ts"]
    assert [a.kind for a in req.attachments] == ["audio"]

    plain = slack.user_message("C1", "no audio here")
    await slack.wait_ack(
        await slack.send("interactive", slack.shortcut_payload("transcribe", "C1", plain))
    )
    await adapter.drained()
    assert len(inbox.requests) == 1
    assert "no audio clip" in slack.responses[-1][1]["text"]


async def test_reply_edit_and_rollover_in_thread(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    adapter, inbox = live
    msg = slack.user_message("C1", f"<@{BOT_USER}> go")
    await deliver(slack, {**msg, "type": "app_mention"})
    (req,) = await inbox.wait_for(1)
    posted = await adapter.reply(req, "**partial**")
    await adapter.edit(posted, "## Done\nSee [docs](https://example.com/a?b=1&c=2)")
    second = await adapter.reply(req, "more")
    thread = slack.thread("C1", msg["ts"])
    assert [m["text"] for m in thread[1:]] == [
        "*Done*\nSee <https://example.com/a?b=1&amp;c=2|docs>",
        "more",
    ]
    assert posted.place.thread == second.place.thread == msg["ts"]


async def test_slash_reply_quotes_invocation_and_threads_rollover(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    adapter, inbox = live
    await slack.wait_ack(
        await slack.send("slash_commands", slack.slash_payload("/ask", "hi <there>"))
    )
    (req,) = await inbox.wait_for(1)
    first = await adapter.reply(req, "one")
    await adapter.edit(first, "one, edited")
    second = await adapter.reply(req, "two")
    top = slack.messages["C1"][first.id]
    assert top["text"] == "<@U1>: `/ask hi &lt;there&gt;`\none, edited"
    assert "thread_ts" not in top
    assert slack.messages["C1"][second.id]["thread_ts"] == first.id


async def test_slash_thread_follow_up_sees_the_question(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    adapter, inbox = live
    await slack.wait_ack(await slack.send("slash_commands", slack.slash_payload("/ask", "why?")))
    (req,) = await inbox.wait_for(1)
    answer = await adapter.reply(req, "**because**")
    follow = slack.user_message("C1", "and then?", thread_ts=answer.id)
    await deliver(slack, follow)
    second = (await inbox.wait_for(2))[1]
    turns = await adapter.history(second)
    assert [(t.role, t.text) for t in turns] == [("user", "why?"), ("assistant", "*because*")]


async def test_ephemeral_routes(slack: FakeSlack, live: tuple[SlackAdapter, Inbox]) -> None:
    adapter, inbox = live
    msg = slack.user_message("C1", f"<@{BOT_USER}> quota")
    await deliver(slack, {**msg, "type": "app_mention"})
    await slack.wait_ack(await slack.send("slash_commands", slack.slash_payload("/help", "")))
    event_req, slash_req = sorted(await inbox.wait_for(2), key=lambda r: r.command or "")
    await adapter.reply(event_req, "only you", ephemeral=True)
    await adapter.reply(slash_req, "*help*", ephemeral=True)
    eph = [w for w in slack.writes if w.method == "chat.postEphemeral"]
    assert [(w.user, w.text, w.thread_ts) for w in eph] == [("U1", "only you", msg["ts"])]
    assert slack.responses[-1][1] == {
        "response_type": "ephemeral",
        "text": "_help_",
        "replace_original": False,
    }


async def test_status_set_while_working_and_disabled_when_unavailable(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    adapter, inbox = live
    await deliver(slack, {**slack.user_message("C1", f"<@{BOT_USER}> a"), "type": "app_mention"})
    await inbox.wait_for(1)
    await adapter.drained()
    # The handler posted nothing, so the adapter clears the status itself.
    assert [s["status"] for s in slack.statuses] == ["is thinking…", ""]
    slack.status_supported = False
    for i in range(2):
        msg = slack.user_message("C1", f"<@{BOT_USER}> {i}")
        await deliver(slack, {**msg, "type": "app_mention"})
        await inbox.wait_for(2 + i)
        await adapter.drained()
    calls = [c for c in slack.calls if c[1] == "assistant.threads.setStatus"]
    assert len(calls) == 3  # set and clear, one missing_scope, then no more tries


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        ("not_in_channel", "/invite"),
        ("is_archived", "archived"),
        ("missing_scope", "`chat:write`"),
        ("token_revoked", "SLACK_BOT_TOKEN"),
    ],
)
async def test_platform_errors_explained(slack: FakeSlack, error: str, phrase: str) -> None:
    adapter = make_adapter(slack)
    slack.errors["chat.postMessage"] = error
    from tests.memory_adapter import make_request

    req = make_request(channel="C9", thread="1.1", platform="slack")
    with pytest.raises(SlackProblem) as caught:
        await adapter.reply(req, "hi")
    assert caught.value.code == error and phrase in caught.value.message
    await adapter.aclose()


async def test_server_errors_retried_once_then_explained(slack: FakeSlack) -> None:
    from tests.memory_adapter import make_request

    adapter = make_adapter(slack)
    req = make_request(channel="C1", thread="1.1", platform="slack")
    slack.server_errors["chat.postMessage"] = 1
    await adapter.reply(req, "after one 503")
    slack.server_errors["chat.postMessage"] = 2
    with pytest.raises(SlackProblem) as caught:
        await adapter.reply(req, "after two 503s")
    assert caught.value.code == "server_error" and "503" in caught.value.message
    assert [m["text"] for m in slack.bot_messages("C1")] == ["after one 503"]
    await adapter.aclose()


async def test_429_surfaces_with_retry_after_and_no_hidden_retry(slack: FakeSlack) -> None:
    from tests.memory_adapter import make_request

    slack.update_burst = 2
    adapter = make_adapter(slack)
    req = make_request(channel="C1", thread="1.1", platform="slack")
    posted = await adapter.reply(req, "v0")
    await adapter.edit(posted, "v1")
    await adapter.edit(posted, "v2")
    with pytest.raises(PlatformRateLimited) as caught:
        await adapter.edit(posted, "v3")
    assert caught.value.retry_after >= 1
    assert slack.rate_limited["chat.update"] == 1
    assert len([c for c in slack.calls if c[1] == "chat.update"]) == 3
    assert slack.messages["C1"][posted.id]["text"] == "v2"
    await adapter.aclose()


async def test_socket_reconnects_after_slack_closes_it(
    slack: FakeSlack, live: tuple[SlackAdapter, Inbox]
) -> None:
    _, inbox = live
    await slack.drop_connections()
    await slack.wait_connected(within=10.0)
    await deliver(
        slack, {**slack.user_message("C1", f"<@{BOT_USER}> back?"), "type": "app_mention"}
    )
    (req,) = await inbox.wait_for(1)
    assert req.text == "back?"
    opened = [c for c in slack.calls if c[1] == "apps.connections.open"]
    assert len(opened) == 2


async def test_redelivery_after_restart_is_not_answered_again(
    slack: FakeSlack, tmp_path: Path
) -> None:
    settings = SlackSettings.from_env(slack.env())
    assert settings is not None
    msg = {**slack.user_message("C1", f"<@{BOT_USER}> once"), "type": "app_mention"}
    body = slack.event_callback(msg, event_id="EvRESTART")
    seen: list[int] = []
    for attempt in range(2):  # the second run is a restarted process with the same database
        store = await SqliteStore.open(tmp_path / "chatops.db")
        adapter, inbox = SlackAdapter(settings, store.first_delivery), Inbox()
        try:
            async with running(adapter, inbox):
                await slack.wait_ack(await slack.send("events_api", body, retry_attempt=attempt))
                await adapter.drained()
        finally:
            await store.close()
        seen.append(len(inbox.requests))
    assert seen == [1, 0]
