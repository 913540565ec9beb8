"""Where the bot answers, in the core: fake gateway over HTTP, real SQLite, memory adapter."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from bot.commands.table import command_table
from bot.dispatch import Dispatcher
from bot.events import Attachment, Place, Request, User
from bot.governance.channels import ChannelDefaults
from bot.governance.policy import Policy
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.core_harness import ANCHOR, LIMITS, Core, running_core
from tests.memory_adapter import MemoryAdapter

MEMBER = User("U1", "member")
ADMIN = User("U0", "admin", is_admin=True)


class Clock:
    """Injected time: the test moves it; nothing sleeps."""

    def __init__(self, now: datetime = ANCHOR) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def said(
    text: str,
    *,
    channel: str = "C1",
    name: str = "general",
    direct: bool = False,
    command: str | None = None,
    user: User = MEMBER,
    attachments: tuple[Attachment, ...] = (),
) -> Request:
    """A request said to the bot (a mention, a DM, or a slash command)."""
    return Request(
        place=Place("slack", channel, None, "T1", name=name, direct=direct),
        user=user,
        text=text,
        command=command,
        attachments=attachments,
        conversational=command is None and bool(text),
    )


def policy(**channels: object) -> Policy:
    return Policy(channels=ChannelDefaults(**channels))  # type: ignore[arg-type]


def replies(core: Core) -> list[str]:
    return [e.text for e in core.adapter.events if e.kind == "reply"]


def gateway_calls(core: Core) -> list[str]:
    return [p for p in core.gateway.paths() if not p.endswith("/models")]


async def test_a_blocked_channel_never_reaches_the_gateway_and_hears_one_refusal_an_hour(
    tmp_path: Path,
) -> None:
    clock = Clock()
    async with running_core(tmp_path, clock=clock, governance=policy(block=("#general",))) as core:
        for text in ("hello?", "anyone there?", "image a cat"):
            await core.send(said(text))
        assert gateway_calls(core) == []
        (refusal,) = replies(core)
        assert refusal.startswith("⚠️ Sorry, I'm not enabled in this channel")
        clock.now += timedelta(minutes=59)
        await core.send(said("still nothing?"))
        assert len(replies(core)) == 1, "at most one refusal an hour"
        clock.now += timedelta(minutes=2)
        await core.send(said("and now?"))
        assert len(replies(core)) == 2, "an hour on, one more"
        # Another channel is not affected, and its answer really goes to the gateway.
        await core.send(said("hi", channel="C2", name="random"))
        assert gateway_calls(core) == ["/v1/chat/completions"]
        assert replies(core)[-1].startswith("You said: hi")
        # A refused request charges nothing: only the other channel's answer is ledgered.
        assert [r.charge.channel for r in await core.store.ledger()] == ["slack:C2"]


async def test_slash_commands_are_refused_privately_every_time(tmp_path: Path) -> None:
    async with running_core(tmp_path, governance=policy(block=("C1",))) as core:
        await core.send(said("a cat", command="image"))
        await core.send(said("hi", command="ask"))
        events = [e for e in core.adapter.events if e.kind == "reply"]
        assert [e.ephemeral for e in events] == [True, True]
        assert gateway_calls(core) == []


async def test_an_allow_list_keeps_the_bot_to_its_channels(tmp_path: Path) -> None:
    async with running_core(tmp_path, governance=policy(allow=("ops-*", "C7"))) as core:
        await core.send(said("hi", channel="C1", name="ops-alerts"))
        await core.send(said("hi", channel="C7", name="anything"))
        await core.send(said("hi", channel="C3", name="random"))
        assert len(gateway_calls(core)) == 2
        assert replies(core)[-1].startswith("⚠️ Sorry, I'm not enabled")


async def test_direct_messages_can_be_switched_off(tmp_path: Path) -> None:
    async with running_core(tmp_path, governance=policy(dms=False, allow=("general",))) as core:
        await core.send(said("hi", channel="D1", name="", direct=True))
        assert gateway_calls(core) == []
        assert replies(core) == [
            "⚠️ Sorry, I don't take direct messages here. Please mention me in a channel where "
            "I'm enabled."
        ]
    async with running_core(tmp_path, governance=policy(allow=("general",))) as core:
        # DMs on (the default): the channel allow list does not apply to them.
        await core.send(said("hi", channel="D1", name="", direct=True))
        assert gateway_calls(core) == ["/v1/chat/completions"]


async def test_silent_mode_and_posted_voice_notes_get_no_refusal(tmp_path: Path) -> None:
    voice = Attachment("F1", "memo.ogg", "audio/ogg", 10, "audio")
    async with running_core(
        tmp_path, governance=policy(block=("general",), blocked_reply="silent")
    ) as core:
        await core.send(said("hello?"))
        assert replies(core) == []
        await core.send(said("x", command="ask"))
        assert len(replies(core)) == 1, "a slash command still hears why, privately"
    async with running_core(tmp_path, governance=policy(block=("general",))) as core:
        # A voice note merely posted in the channel was not said to the bot.
        await core.send(said("", attachments=(voice,)))
        assert replies(core) == [] and gateway_calls(core) == []


async def test_admins_change_the_lists_and_every_replica_applies_them_at_once(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path) as core:
        # A second replica: its own store and dispatcher on the same database.
        store = await SqliteStore.open(tmp_path / "chatops.db", clock=core.services.clock)
        services = Services(
            core.services.config, core.services.gateway, store, Budgets(), clock=store_clock()
        )
        other = MemoryAdapter(limits=LIMITS)
        replica = Dispatcher(services, command_table()).handler_for(other)
        try:
            await core.send(said("block #general C9", command="channels"))
            assert "Only admins can change where the bot answers" in replies(core)[-1]
            await core.send(said("block here", command="channels", user=ADMIN))
            view = replies(core)[-1]
            assert "never in: `C1`" in view and "I do not answer here: it is blocked" in view
            await replica(said("hi there"))
            assert other.events[0].text.startswith("⚠️ Sorry, I'm not enabled")
            # The admin can still open the channel again from inside it.
            await core.send(said("remove C1", command="channels", user=ADMIN))
            assert "This channel, #general (C1): I answer here." in replies(core)[-1]
            await replica(said("hi again"))
            assert other.events[-1].text.startswith("You said: hi again")
            # An allow list: every channel not on it is refused, on both replicas.
            await core.send(said("allow #ops", command="channels", user=ADMIN))
            assert "only in: `#ops` (set for this workspace)" in replies(core)[-1]
            await replica(said("hello?", channel="C2", name="random"))
            assert other.events[-1].text.startswith("⚠️ Sorry, I'm not enabled")
            await core.send(said("clear", command="channels", user=ADMIN))
            assert "allowed: every channel" in replies(core)[-1]
        finally:
            await store.close()


def store_clock() -> Clock:
    return Clock(ANCHOR + timedelta(hours=2))
