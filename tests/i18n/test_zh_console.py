"""The console in zh-CN, as a real subprocess: no English sentence comes from the bot."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.console_harness import console_env
from tests.fakes.gateway import FakeGateway
from tests.i18n.english import english_sentences


async def test_a_zh_cn_console_session_has_no_english_sentence(tmp_path: Path) -> None:
    db = tmp_path / "console.db"
    async with FakeGateway() as fake:
        fake.reply = "这是模型用中文写的回答。"
        env = console_env(fake, db, CHATOPS_LANGUAGE="zh-CN")
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "console"),
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        script = [
            "你好，请介绍一下你自己",
            "/help",
            "/quota",
            "/settings",
            "/model no-such-model",
            "/nonsense",
            "/temperature 9",
            "/translate",
            "/summarize 0",
            "/image",
            "/transcribe",
            "/tools",
            "/language",
            "/feedback up 1",
            "/persona",
        ]
        async with asyncio.timeout(60):
            out, err = await proc.communicate(("\n".join(script) + "\n").encode())
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "这是模型用中文写的回答。" in text and "**命令**" in text
    assert "本频道的配额" in text and "本频道的设置" in text
    assert english_sentences(text) == []


def test_the_check_finds_english_and_leaves_code_alone() -> None:
    assert english_sentences("⚠️ Ask me something, for example: `ask what is 429?`") == [
        "Ask me something, for example"
    ]
    assert english_sentences("• `ask <question>`: 与模型对话 (CHATOPS_QUOTA_TZ, gpt-4o-mini)") == []
