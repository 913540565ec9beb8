"""The console platform: each stdin line is a message in one local channel."""

from __future__ import annotations

import asyncio
import getpass
import itertools
import mimetypes
import os
import stat
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from bot.adapter import Connection, Handler
from bot.dispatch import CHAT_COMMAND, route
from bot.errors import TooLarge
from bot.events import Attachment, AttachmentKind, Limits, Place, Posted, Request, Turn, User
from bot.i18n import LanguageDefaults, resolve, speaking, t
from bot.i18n import number as grouped
from bot.streaming.budgets import Budgets
from bot.streaming.writes import send

# The longest line taken whole (far above any prompt the core accepts by default); a longer one
# is read to its end without being kept and refused, so memory stays bounded on any input.
MAX_LINE_BYTES = 1 << 20
# The dispatcher's mark on error replies: those are not conversation.
NOTICE_PREFIX = "⚠️"

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


def _attachment(word: str) -> Attachment | None:
    """The file `@path` names, or None when the word is not an existing file's path."""
    if not word.startswith("@") or len(word) == 1:
        return None
    try:
        path = Path(word[1:]).expanduser()
        if not path.is_file():
            return None
        size = path.stat().st_size
    except (OSError, RuntimeError):
        # Not a usable path (a name too long for the OS, an unknown ~user): plain text.
        return None
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Attachment(str(path), path.name, mime, size, _kind(mime))


def parse_line(line: str, number: int, user: User) -> Request:
    """`/command args` is a slash command; `@path` attaches an existing file."""
    words, attachments = [], []
    for word in line.split():
        attachment = _attachment(word)
        if attachment is None:
            words.append(word)
        else:
            attachments.append(attachment)
    text = " ".join(words)
    command = None
    if text.startswith("/"):
        first, _, text = text.partition(" ")
        command = first[1:]
    return Request(
        place=Place("console", "local", thread=str(number), name="console"),
        user=user,
        text=text,
        command=command,
        attachments=tuple(attachments),
        event_id=f"console-{number}",
    )


def decode_line(raw: bytes | None) -> tuple[str, str | None]:
    """A line's text, or why it is refused: too long (None), not UTF-8, or holding a NUL."""
    if raw is None:
        return "", t(
            "Your message is too long: the console reads lines of up to {limit} bytes and this "
            "one is longer, so nothing was sent. Please shorten it.",
            limit=grouped(MAX_LINE_BYTES),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return "", t(
            "That line is not valid UTF-8 text (byte 0x{byte} at byte {position}), so nothing "
            "was sent. Please send it as UTF-8.",
            byte=f"{raw[bad.start]:02x}",
            position=grouped(bad.start + 1),
        )
    nul = text.find("\x00")
    if nul >= 0:
        return "", t(
            "That line contains a NUL character (at character {position}), which chat text "
            "cannot carry, so nothing was sent. Please remove it.",
            position=grouped(nul + 1),
        )
    return text, None


def terminal_locale(env: Mapping[str, str]) -> str:
    """The person's language as the terminal says it (LC_ALL, LANG): "zh_CN.UTF-8" → zh_CN."""
    raw = env.get("LC_ALL") or env.get("LC_MESSAGES") or env.get("LANG") or ""
    return raw.split(".")[0].split("@")[0]


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
        budgets: Budgets | None = None,
        languages: LanguageDefaults | None = None,
        locale: str | None = None,
    ) -> None:
        self._stdin = stdin or sys.stdin
        # CHATOPS_LANGUAGE, for the console's own lines (its banner and refusals).
        self._languages = languages or LanguageDefaults()
        # The core's shared budgets: the console's own refusals are paced like every message.
        self._budgets = budgets or Budgets()
        self._out = stdout or sys.stdout
        self._live = self._out.isatty()
        self._uploads = uploads
        self._commands = commands
        name = getpass.getuser()
        own = terminal_locale(os.environ) if locale is None else locale
        self._user = User(name, name, is_admin=True, locale=own)
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
        language = resolve(None, self._languages, "", self._user.locale)
        if self._live:
            with speaking(language):
                banner = t("chatops console: type a question, /help for commands, Ctrl-D to quit.")
            self._write(banner + "\n")
        number = 0
        async for raw in self._lines():
            with speaking(language):
                text, refusal = decode_line(raw)
            if refusal is None and not text.strip():
                continue
            number += 1
            req = parse_line(text.strip(), number, self._user)
            if refusal is not None:
                # Refused here: the line never becomes a request (it was not kept, or is not
                # text); answered like the dispatcher's refusals, and the session goes on.
                await send(self, self._budgets, req, f"{NOTICE_PREFIX} {refusal}")
                self._conclude(req)
                continue
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
        answers = [text for text in texts if not text.startswith(NOTICE_PREFIX)]
        if route(req, self._commands)[0] == CHAT_COMMAND and answers:
            self._turns += [Turn("user", req.text), Turn("assistant", "\n".join(answers))]

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

    async def delete(self, posted: Posted) -> None:
        """Drop a superseded message from the piped transcript (a terminal keeps what it showed)."""
        self._texts.pop(posted.id, None)
        ids = self._by_thread.get(posted.place.thread, [])
        if posted.id in ids:
            ids.remove(posted.id)

    async def upload(self, req: Request, data: bytes, filename: str, text: str = "") -> Posted:
        self._uploads.mkdir(parents=True, exist_ok=True)
        path = self._uploads / f"{req.place.thread}-{filename}"
        await asyncio.to_thread(path.write_bytes, data)
        note = t("[{name} saved to {path}]", name=filename, path=path) + (
            f" {text}" if text else ""
        )
        return await self.reply(req, note)

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes:
        path = Path(attachment.id)
        if attachment.size > max_bytes:
            raise TooLarge(
                t(
                    "{name} is larger than {megabytes} MB.",
                    name=attachment.filename,
                    megabytes=max_bytes // 1_000_000,
                )
            )
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

    async def _lines(self) -> AsyncIterator[bytes | None]:
        """Each stdin line as bytes; None for a line over MAX_LINE_BYTES (read, not kept)."""
        fd = self._stdin.fileno()
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)):
            # Pipe transports refuse regular files and never see the end of a device such as
            # /dev/null; reading either never blocks for long.
            async for line in _file_lines(self._stdin.buffer):
                yield line
            return
        loop = asyncio.get_running_loop()
        # The reader pauses the pipe once it buffers twice the limit: bounded memory.
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self._stdin
        )
        try:
            async for line in _stream_lines(reader):
                yield line
        finally:
            transport.close()


async def _stream_lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes | None]:
    skipping = False  # inside a line over the limit: its bytes are dropped as they come
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as over:
            await reader.readexactly(over.consumed)  # buffered already: drop it, read on
            skipping = True
            continue
        except asyncio.IncompleteReadError as end:
            # End of input; `partial` is a last line without a newline.
            if skipping or end.partial:
                yield None if skipping else end.partial
            return
        yield None if skipping else line
        skipping = False


async def _file_lines(file: BinaryIO) -> AsyncIterator[bytes | None]:
    while line := await asyncio.to_thread(file.readline, MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := await asyncio.to_thread(file.readline, MAX_LINE_BYTES)) and (
                not rest.endswith(b"\n")
            ):
                pass
            yield None
        else:
            yield line
