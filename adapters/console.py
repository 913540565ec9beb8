"""The console platform: each stdin line is a message in one local channel."""

from __future__ import annotations

import asyncio
import getpass
import itertools
import mimetypes
import os
import stat
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TextIO

from bot.adapter import Connection, Handler
from bot.dispatch import CHAT_COMMAND, route
from bot.errors import TooLarge
from bot.events import Attachment, AttachmentKind, Limits, Place, Posted, Request, Turn, User

CONSOLE_LIMITS = Limits(
    max_chars=4000,
    edit_interval=0.05,
    budget_per_second=200.0,
    budget_burst=50,
    budget_scope="platform",
)


def _kind(mime: str) -> AttachmentKind:
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("image/"):
        return "image"
    return "file"


def parse_line(line: str, number: int, user: User) -> Request:
    """`/command args` is a slash command; `@path` attaches an existing file."""
    words, attachments = [], []
    for word in line.split():
        path = Path(word[1:]).expanduser() if word.startswith("@") and len(word) > 1 else None
        if path is not None and path.is_file():
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            attachments.append(
                Attachment(str(path), path.name, mime, path.stat().st_size, _kind(mime))
            )
        else:
            words.append(word)
    text = " ".join(words)
    command = None
    if text.startswith("/"):
        first, _, text = text.partition(" ")
        command = first[1:]
    return Request(
        place=Place("console", "local", thread=str(number)),
        user=user,
        text=text,
        command=command,
        attachments=tuple(attachments),
        event_id=f"console-{number}",
    )


class ConsoleAdapter:
    """Renders streams live on a terminal; prints each reply once, plainly, when piped."""

    name = "console"
    limits = CONSOLE_LIMITS

    def __init__(
        self,
        uploads: Path,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        commands: Sequence[str] = (),
    ) -> None:
        self._stdin = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._live = self._out.isatty()
        self._uploads = uploads
        self._commands = commands
        self._user = User(getpass.getuser(), getpass.getuser(), is_admin=True)
        self._texts: dict[str, str] = {}
        self._by_thread: dict[str | None, list[str]] = {}
        self._turns: list[Turn] = []
        self._shown = ""
        self._ids = itertools.count(1)
        self._reading = False

    async def connection(self) -> Connection:
        """Up while the terminal (or pipe) is read."""
        if self._reading:
            return Connection(True, "reading standard input")
        return Connection(False, "not reading standard input")

    async def run(self, handle: Handler) -> None:
        self._reading = True
        try:
            await self._serve(handle)
        finally:
            self._reading = False

    async def _serve(self, handle: Handler) -> None:
        if self._live:
            self._write("chatops console: type a question, /help for commands, Ctrl-D to quit.\n")
        number = 0
        async for line in self._lines():
            if not line.strip():
                continue
            number += 1
            req = parse_line(line.strip(), number, self._user)
            handling: asyncio.Future[None] = asyncio.ensure_future(handle(req))
            try:
                await asyncio.shield(handling)
            except asyncio.CancelledError:
                # Shutdown: the dispatcher finalizes this reply; print it before leaving.
                await handling
                self._conclude(req)
                raise
            self._conclude(req)

    # Requests are handled one at a time so each line sees the previous answer as context.
    def _conclude(self, req: Request) -> None:
        ids = self._by_thread.pop(req.place.thread, [])
        texts = [self._texts.pop(mid) for mid in ids]
        if self._live:
            self._write("\n")
            self._shown = ""
        else:
            for text in texts:
                self._write(text + "\n")
        if route(req, self._commands)[0] == CHAT_COMMAND and texts:
            self._turns += [Turn("user", req.text), Turn("assistant", "\n".join(texts))]

    async def reply(
        self, req: Request, text: str, *, ephemeral: bool = False, streamed: bool = False
    ) -> Posted:
        mid = str(next(self._ids))
        self._texts[mid] = text
        self._by_thread.setdefault(req.place.thread, []).append(mid)
        self._render(text, new=True)
        return Posted(req.place, mid)

    async def edit(self, posted: Posted, text: str) -> None:
        self._texts[posted.id] = text
        self._render(text, new=False)

    async def finalize(self, posted: Posted) -> None:
        """Nothing to end: a terminal line is final once printed."""

    async def upload(self, req: Request, data: bytes, filename: str, text: str = "") -> Posted:
        self._uploads.mkdir(parents=True, exist_ok=True)
        path = self._uploads / f"{req.place.thread}-{filename}"
        await asyncio.to_thread(path.write_bytes, data)
        note = f"[{filename} saved to {path}]" + (f" {text}" if text else "")
        return await self.reply(req, note)

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes:
        path = Path(attachment.id)
        if attachment.size > max_bytes:
            raise TooLarge(f"{attachment.filename} is larger than {max_bytes // 1_000_000} MB.")
        return await asyncio.to_thread(path.read_bytes)

    async def history(self, req: Request) -> Sequence[Turn]:
        return list(self._turns)

    def _render(self, text: str, *, new: bool) -> None:
        if not self._live:
            return
        if not new and text.startswith(self._shown):
            self._write(text[len(self._shown) :])
        else:
            self._write(("\n" if self._shown else "") + text)
        self._shown = text

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    async def _lines(self) -> AsyncIterator[str]:
        mode = os.fstat(self._stdin.fileno()).st_mode
        if stat.S_ISREG(mode):
            # Pipe transports refuse regular files; reading a file never blocks for long.
            while line := await asyncio.to_thread(self._stdin.readline):
                yield line
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self._stdin
        )
        try:
            while line_bytes := await reader.readline():
                yield line_bytes.decode("utf-8", errors="replace")
        finally:
            transport.close()
