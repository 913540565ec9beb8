"""Attached documents in `chatops console` (a real subprocess) against the fake gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.console_harness import start_console
from tests.document_fixtures import big_log, encrypted_pdf, pdf_bytes
from tests.fakes.gateway import FakeGateway, png_bytes
from tests.test_console import _chats

NEEDLE = "payment gateway rejected card token tok_visa_4242 with ERR_CARD_DECLINED"


async def test_console_attachments_are_read_or_refused_plainly(tmp_path: Path) -> None:
    files = {
        "error.log": b"10:00 INFO start\n10:01 ERROR disk /var is full\n",
        "app.log": big_log(3 * 1024 * 1024, NEEDLE),
        "runbook.pdf": pdf_bytes([["Restart with systemctl restart pay"]]),
        "locked.pdf": encrypted_pdf([["secret"]]),
        "notes.txt": png_bytes(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with (tmp_path / "huge.log").open("wb") as huge:
        huge.truncate(200 * 1024 * 1024)  # sparse: 200 MB declared, nothing allocated
    script = "\n".join(
        [
            f"why does this fail? @{tmp_path / 'error.log'}",
            f"why was the card token rejected @{tmp_path / 'app.log'}",
            f"how do I restart? @{tmp_path / 'runbook.pdf'}",
            f"what is in it? @{tmp_path / 'locked.pdf'}",
            f"what is in it? @{tmp_path / 'notes.txt'}",
            f"what is in it? @{tmp_path / 'huge.log'}",
        ]
    )
    async with FakeGateway() as fake:
        proc = await start_console(fake, tmp_path / "console.db", tmp_path)
        async with asyncio.timeout(60):
            out, err = await proc.communicate(script.encode() + b"\n")
        chats = [str(c["messages"][-1]["content"]) for c in _chats(fake)]
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert len(chats) == 3, "the refused files never reached the model"
    assert "10:01 ERROR disk /var is full" in chats[0]
    assert NEEDLE in chats[1] and len(chats[1]) < 40_000
    assert "`app.log`" in text and "too large to read whole" in text
    assert "systemctl restart pay" in chats[2]
    assert "⚠️ I can't read `locked.pdf`: the PDF is encrypted" in text
    assert "⚠️ I can't read `notes.txt`: it is named like text, but it is a PNG image" in text
    assert "⚠️ `huge.log` is 200.0 MB; I read files of up to 25.0 MB" in text
