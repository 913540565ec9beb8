"""Text out of an attachment by its detected type and encoding, or a plain reason it has none."""

from __future__ import annotations

import codecs
import io
import logging
import warnings
from dataclasses import dataclass

import charset_normalizer
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from bot.errors import UserFacingError
from bot.i18n import N_, t

log = logging.getLogger(__name__)

WHAT_I_READ = N_(
    "I read text files (plain text, Markdown, source code, logs, CSV, JSON, YAML, HTML) and PDFs."
)

# Leading bytes of formats that are never text, and how to name them to a person.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", N_("a PNG image")),
    (b"\xff\xd8\xff", N_("a JPEG image")),
    (b"GIF87a", N_("a GIF image")),
    (b"GIF89a", N_("a GIF image")),
    (b"BM", N_("a BMP image")),
    (b"PK\x03\x04", N_("a ZIP archive (Word, Excel and PowerPoint files are ZIP archives too)")),
    (b"\x1f\x8b", N_("gzip-compressed data")),
    (b"BZh", N_("bzip2-compressed data")),
    (b"\xfd7zXZ\x00", N_("xz-compressed data")),
    (b"7z\xbc\xaf\x27\x1c", N_("a 7-Zip archive")),
    (b"Rar!\x1a\x07", N_("a RAR archive")),
    (b"\x7fELF", N_("a compiled program")),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", N_("an old-style Office document")),
    (b"SQLite format 3\x00", N_("an SQLite database")),
    (b"OggS", N_("Ogg audio")),
    (b"ID3", N_("MP3 audio")),
    (b"fLaC", N_("FLAC audio")),
    (b"\x1aE\xdf\xa3", N_("a WebM/Matroska video")),
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml"})
# How far into a file its kind and encoding are judged (the rest is decoded the same way).
_SNIFF_BYTES = 64 * 1024


class Unreadable(UserFacingError):
    """An attachment with no text to give: its message names the file and why."""


@dataclass(frozen=True, slots=True)
class Section:
    """A run of a document's text: a whole text file, or one page of a PDF."""

    text: str
    page: int | None = None


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    kind: str  # "text", "HTML" or "PDF"
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


def _binary_kind(head: bytes) -> str | None:
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return t(what)
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        riff = {
            b"WEBP": N_("a WebP image"),
            b"WAVE": N_("WAV audio"),
            b"AVI ": N_("an AVI video"),
        }
        return t(riff[head[8:12]])
    if head[4:8] == b"ftyp":
        return t("an MP4/QuickTime video or audio file")
    return None


def extract(data: bytes, name: str, mime: str = "") -> Document:
    """The document's text; raises Unreadable with a sentence for the user when it has none.

    CPU-bound (PDF parsing, charset detection): call it in a worker thread.
    """
    head = data[:_SNIFF_BYTES]
    if head.lstrip()[:5] == b"%PDF-":
        return _pdf(data, name)
    what = _binary_kind(head)
    if what is not None:
        if _looks_named_text(name):
            problem = t(
                "I can't read `{name}`: it is named like text, but it is {what}, not text.",
                name=name,
                what=what,
            )
        else:
            problem = t("I can't read `{name}`: it is {what}, not text.", name=name, what=what)
        raise Unreadable(f"{problem} {t(WHAT_I_READ)}")
    text = decode(data, name)
    if _extension(name) in _HTML_EXTENSIONS or "html" in mime or _starts_html(text):
        return Document(name, "HTML", (Section(html_text(text)),))
    return Document(name, "text", (Section(text),))


def _looks_named_text(name: str) -> bool:
    return _extension(name) in {"txt", "log", "md", "csv", "json", "yaml", "yml", "text"}


def _starts_html(text: str) -> bool:
    start = text.lstrip()[:100].lower()
    return start.startswith(("<!doctype html", "<html"))


def decode(data: bytes, name: str) -> str:
    """Bytes as text by their BOM, as UTF-8, or by detected encoding; never fails on a bad byte."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        # NUL bytes without a UTF-16/32 BOM: binary data, not text in any common encoding.
        problem = t("I can't read `{name}`: it holds binary data, not text.", name=name)
        raise Unreadable(f"{problem} {t(WHAT_I_READ)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as bad:
        if bad.start >= len(data) - 3 and bad.reason == "unexpected end of data":
            return data.decode("utf-8", errors="replace")  # a cut-off last character
    best = _likeliest(charset_normalizer.from_bytes(head))
    if best is None or best.encoding is None:
        problem = t(
            "I can't read `{name}`: it is not text in any encoding I can recognise.", name=name
        )
        raise Unreadable(f"{problem} {t(WHAT_I_READ)}")
    log.debug("%s decoded as %s", name, best.encoding)
    return data.decode(best.encoding, errors="replace")


# Among encodings charset-normalizer finds equally likely (short text often fits many), the
# most common on the machines people save files on.
_COMMON = ("utf_8", "cp1252", "latin_1", "cp1250", "shift_jis", "gb18030", "euc_kr", "big5")


def _likeliest(
    matches: charset_normalizer.CharsetMatches,
) -> charset_normalizer.CharsetMatch | None:
    found = list(matches)
    if not found:
        return None
    best = found[0]
    tied = {m.encoding: m for m in found if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    return next((tied[name] for name in _COMMON if name in tied), best)


def html_text(markup: str) -> str:
    """The readable text of an HTML page: no scripts or styles, one block per line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _pdf(data: bytes, name: str) -> Document:
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        log.info("%s: not a readable PDF: %s", name, exc)
        raise Unreadable(t("I can't read `{name}`: it is a damaged PDF.", name=name)) from None
    if encrypted:
        try:
            opened = bool(reader.decrypt(""))  # some PDFs are encrypted with an empty password
        except Exception:  # a cipher pypdf cannot handle is as closed as a wrong password
            opened = False
        if not opened:
            raise Unreadable(
                t(
                    "I can't read `{name}`: the PDF is encrypted (password-protected). Send a "
                    "copy without a password, or paste the text.",
                    name=name,
                )
            )
    sections = []
    try:
        pages = list(reader.pages)
    except (PdfReadError, ValueError, KeyError) as exc:
        log.info("%s: its pages cannot be read: %s", name, exc)
        raise Unreadable(t("I can't read `{name}`: it is a damaged PDF.", name=name)) from None
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one broken page should not cost the others
            log.info("%s: page %d has no readable text: %s", name, number, exc)
            text = ""
        if text.strip():
            sections.append(Section(text.strip(), page=number))
    if not sections:
        raise Unreadable(
            t(
                "I can't read `{name}`: its pages are images (a scan?) with no text layer. Send "
                "a PDF with selectable text, or paste the text.",
                name=name,
            )
        )
    return Document(name, "PDF", tuple(sections))
