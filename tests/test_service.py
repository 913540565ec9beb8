"""`chatops run` as a real process: platforms chosen from the environment, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, FakeSlack


async def test_run_serves_slack_and_discord_side_by_side(tmp_path: Path) -> None:
    async with FakeGateway() as gateway, FakeDiscord() as discord, FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
        env |= discord.env() | slack.env()
        env |= {
            "WEELINKING_API_KEY": gateway.api_key,
            "WEELINKING_BASE_URL": gateway.base_url,
            "CHATOPS_DB": str(tmp_path / "bot.db"),
            "CHATOPS_SHUTDOWN_GRACE": "2",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(30):
                await discord.ready.wait()
            await slack.wait_connected(within=30)
            sent = await discord.send_message("ping from discord", mention_bot=True)
            msg = slack.user_message("C1", f"<@{BOT_USER}> ping from slack")
            await slack.send("events_api", slack.event_callback({**msg, "type": "app_mention"}))

            def discord_answered() -> bool:
                replies = discord.replies_to(sent.id)
                return bool(replies) and replies[-1].content == "You said: ping from discord"

            def slack_answered() -> bool:
                texts = [m["text"] for m in slack.thread("C1", msg["ts"])]
                return "You said: ping from slack" in texts

            await discord.wait_until(discord_answered, within=30)
            await slack.wait_until(slack_answered, within=30)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
