"""`chatops console` as a real subprocess against the fake gateway, with piped stdin/stdout."""

from __future__ import annotations

import asyncio
import io
import signal
import sqlite3
from pathlib import Path
from typing import Any, Literal

import pytest

from adapters.console import MAX_LINE_BYTES, ConsoleAdapter
from bot.events import Request
from tests.console_harness import start_console
from tests.fakes.gateway import FakeGateway


def _ledger(db: Path) -> list[tuple[str, str, int, int, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT command, model, tokens_in, images, status FROM ledger ORDER BY id"
        ).fetchall()


async def test_piped_session_prints_plain_replies_and_records_ledger(tmp_path: Path) -> None:
    db = tmp_path / "console.db"
    async with FakeGateway() as fake:
        proc = await start_console(fake, db, tmp_path)
        script = "hello there\n/image a small orange square\n/models deepseek\n/nonsense\n"
        async with asyncio.timeout(60):
            out, err = await proc.communicate(script.encode())
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "\x1b" not in text  # no terminal control codes when piped
    assert "You said: hello there" in text
    assert "image-1.png saved to" in text
    assert "`deepseek-v3`" in text
    assert "I don't know the command `nonsense`" in text
    # The second turn saw the first as context: the console keeps its session's turns.
    rows = _ledger(db)
    assert [(r[0], r[4]) for r in rows] == [("ask", "ok"), ("image", "ok")]
    assert rows[1][3] == 1
    saved = list((db.parent / "uploads").iterdir())
    assert len(saved) == 1 and saved[0].read_bytes().startswith(b"\x89PNG")


async def test_session_turns_are_context(tmp_path: Path) -> None:
    db = tmp_path / "console.db"
    async with FakeGateway() as fake:
        proc = await start_console(fake, db, tmp_path)
        async with asyncio.timeout(60):
            await proc.communicate(b"my name is Ada\nwhat is my name?\n")
        chats = [r.json for r in fake.requests if r.path.endswith("/chat/completions")]
    assert [m["content"] for m in chats[1]["messages"]] == [
        "my name is Ada",
        "You said: my name is Ada",
        "what is my name?",
    ]


async def test_sigterm_finishes_the_reply_with_its_text_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "console.db"
    async with FakeGateway(chunk_delay=0.05) as fake:
        fake.chunks = [f"w{i} " for i in range(400)]
        proc = await start_console(fake, db, tmp_path)
        assert proc.stdin is not None
        proc.stdin.write(b"tell me a long story\n")
        await proc.stdin.drain()
        async with asyncio.timeout(30):
            while not fake.active_streams:  # noqa: ASYNC110 - the fake exposes a counter only
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert text.startswith("w0 w1") and "stopped before this reply was finished" in text
    [row] = _ledger(db)
    assert row[0] == "ask" and row[4] == "cancelled"


def _chats(fake: FakeGateway) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path.endswith("/chat/completions")]


async def test_a_200000_character_line_is_refused_and_the_next_question_answered(
    tmp_path: Path,
) -> None:
    db = tmp_path / "console.db"
    async with FakeGateway() as fake:
        proc = await start_console(fake, db, tmp_path)
        async with asyncio.timeout(60):
            out, err = await proc.communicate(b"a" * 200_000 + b"\nwhat is 2+2?\n")
        chats = _chats(fake)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "⚠️ Your message is too long (about 50,004 tokens; the limit is 6,000). Please shorten it.",
        "You said: what is 2+2?",
    ]
    # The refused line never reached the model, not even as context for the next question.
    assert [c["messages"] for c in chats] == [[{"role": "user", "content": "what is 2+2?"}]]


@pytest.mark.parametrize("source", ["pipe", "file"])
async def test_unreadable_lines_are_refused_one_by_one_and_the_session_goes_on(
    tmp_path: Path, source: Literal["pipe", "file"]
) -> None:
    lines = [
        b"x" * (3 * MAX_LINE_BYTES),  # past what the console keeps in memory
        b"caf\xe9 au lait",  # Latin-1, not UTF-8
        b"nul\x00byte",
        b"@" + b"d" * 300,  # a file name too long for the OS is just text
        b"/" + b"c" * 5000,  # an unknown command is not echoed back whole
        b"still here",  # the last line has no newline
    ]
    script = b"\n".join(lines)
    db = tmp_path / "console.db"
    async with FakeGateway() as fake:
        if source == "file":
            (tmp_path / "input.txt").write_bytes(script)
            with (tmp_path / "input.txt").open("rb") as stdin:
                proc = await start_console(fake, db, tmp_path, stdin)
            async with asyncio.timeout(60):
                out, err = await proc.communicate()
        else:
            proc = await start_console(fake, db, tmp_path)
            async with asyncio.timeout(60):
                out, err = await proc.communicate(script)
        chats = _chats(fake)
    assert proc.returncode == 0, err.decode()
    answers = out.decode().splitlines()
    expected = [
        f"⚠️ Your message is too long: the console reads lines of up to {MAX_LINE_BYTES:,} bytes",
        "⚠️ That line is not valid UTF-8 text (byte 0xe9 at byte 4), so nothing was sent.",
        "⚠️ That line contains a NUL character (at character 4),",
        "You said: @ddd",
        "⚠️ I don't know the command `ccc",
        "You said: still here",
    ]
    assert len(answers) == len(expected), answers
    for answer, start in zip(answers, expected, strict=True):
        assert answer.startswith(start), (answer[:200], start)
    assert len(answers[4]) < 100
    assert [c["messages"][-1]["content"] for c in chats] == ["@" + "d" * 300, "still here"]


async def test_a_deleted_message_is_left_out_of_the_piped_transcript(tmp_path: Path) -> None:
    # In process: stdin a real file, stdout a pipe-like buffer (not a terminal).
    lines = tmp_path / "in.txt"
    lines.write_text("transcribe this\n")
    out = io.StringIO()
    with lines.open() as stdin:
        console = ConsoleAdapter(tmp_path / "uploads", stdin=stdin, stdout=out)

        async def handle(req: Request) -> None:
            placeholder = await console.reply(req, "⏳ Transcribing…")
            await console.reply(req, "the transcript")
            await console.delete(placeholder)

        async with asyncio.timeout(10):
            await console.run(handle)
    assert out.getvalue() == "the transcript\n"


async def test_stdin_from_dev_null_ends_the_session_at_once(tmp_path: Path) -> None:
    # A character device that is not a terminal: a pipe transport never sees its end.
    async with FakeGateway() as fake:
        proc = await start_console(
            fake, tmp_path / "console.db", tmp_path, asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out == b""
