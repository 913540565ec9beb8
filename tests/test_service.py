"""`chatops run` as a real process: platforms chosen from the environment, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fake_discord import FakeDiscord
from tests.fake_gateway import FakeGateway


async def test_run_serves_discord_when_its_token_is_set(tmp_path: Path) -> None:
    async with FakeGateway() as gateway, FakeDiscord() as discord:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
        env |= discord.env(
            WEELINKING_API_KEY=gateway.api_key,
            WEELINKING_BASE_URL=gateway.base_url,
            CHATOPS_DB=str(tmp_path / "bot.db"),
            CHATOPS_SHUTDOWN_GRACE="2",
        )
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
            sent = await discord.send_message("ping from discord", mention_bot=True)

            def answered() -> bool:
                replies = discord.replies_to(sent.id)
                return bool(replies) and replies[-1].content == "You said: ping from discord"

            await discord.wait_until(answered, within=30)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
