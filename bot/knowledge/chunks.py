"""Documents split into chunks by lines and paragraphs, each keeping where it came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.i18n import number as grouped
from bot.i18n import t
from bot.knowledge.extract import Document

# About 400 tokens of English: small enough that a relevant line decides its chunk's vector,
# large enough that a 3 MB log makes ~2,000 chunks rather than 30,000.
TARGET_CHARS = 1600
MAX_CHARS = 2400


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document: its text and position (lines of a file or of a PDF page)."""

    name: str
    text: str
    first_line: int
    last_line: int
    page: int | None = None
    index: int = 0  # order in the document

    @property
    def position(self) -> str:
        if self.first_line == self.last_line:
            lines = t("line {line}", line=grouped(self.first_line))
        else:
            lines = t(
                "lines {first}-{last}", first=grouped(self.first_line), last=grouped(self.last_line)
            )
        if self.page is None:
            return lines
        return t("page {page}, {lines}", page=self.page, lines=lines)


def _pieces(line: str) -> Iterator[str]:
    """A line longer than MAX_CHARS cut into pieces (minified JSON, a base64 blob)."""
    if len(line) <= MAX_CHARS:
        yield line
        return
    for start in range(0, len(line), TARGET_CHARS):
        yield line[start : start + TARGET_CHARS]


def chunk(document: Document) -> list[Chunk]:
    """Consecutive lines up to TARGET_CHARS, cut at a blank line when one comes late enough."""
    chunks: list[Chunk] = []
    for section in document.sections:
        # (first line, last line, text) of each chunk of this section.
        spans: list[tuple[int, int, str]] = []
        lines: list[str] = []
        size = 0
        first = 1
        numbered = section.text.splitlines()
        for number, line in enumerate(numbered, start=1):
            for part, piece in enumerate(_pieces(line)):
                if lines and size + len(piece) > MAX_CHARS:
                    # The lines so far end before this one, unless its own pieces began them.
                    spans.append((first, number if part else number - 1, "\n".join(lines)))
                    lines, size = [], 0
                if not lines:
                    first = number
                lines.append(piece)
                size += len(piece) + 1
            if size >= TARGET_CHARS or (not line.strip() and size >= TARGET_CHARS // 2):
                spans.append((first, number, "\n".join(lines)))
                lines, size = [], 0
        if lines:
            spans.append((first, len(numbered), "\n".join(lines)))
        for first_line, last_line, text in spans:
            if text.strip():
                chunks.append(
                    Chunk(
                        document.name,
                        text.strip("\n"),
                        first_line,
                        last_line,
                        section.page,
                        len(chunks),
                    )
                )
    return chunks
