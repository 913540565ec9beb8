"""Markdown (as models write it) to Slack mrkdwn, line by line; safe on half-streamed text."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_TASK = re.compile(r"^\[([ xX])\]\s+(.*)$")
_ORDERED = re.compile(r"^(\s*)(\d{1,9})[.)]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")

# Spans that must not be touched by emphasis rules, swapped for placeholders first.
_PROTECTED = re.compile(
    r"(?P<code>`+)(?P<code_body>.+?)(?P=code)"
    r"|!?\[(?P<label>[^\]]*)\]\((?P<url>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|<(?P<auto>https?://[^>\s]+)>"
)
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
# Placeholder delimiters: control characters models never produce.
_HOLD = "\x00"
_BOLD_MARK = "\x01"
_HOLD_REF = re.compile(f"{_HOLD}(\\d+){_HOLD}")

BULLETS = ("•", "◦", "▪")


def escape(text: str) -> str:
    """Slack's three control characters; everything else is literal in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert Markdown to mrkdwn: headings, emphasis, links, lists, quotes, code and tables."""
    out: list[str] = []
    lines = markdown.split("\n")
    fence: str | None = None
    table: list[str] = []

    def flush_table() -> None:
        if table:
            out.append("```")
            out.extend(escape(row.strip()) for row in table if not _TABLE_RULE.match(row))
            out.append("```")
            table.clear()

    for line in lines:
        fence_match = _FENCE.match(line)
        if fence is not None:
            # Slack has no language tags and no nested fences: close on the same marker.
            if fence_match and fence_match.group(1) == fence and not line.strip()[3:].strip():
                out.append("```")
                fence = None
            else:
                out.append(escape(line))
            continue
        if fence_match:
            flush_table()
            fence = fence_match.group(1)
            out.append("```")
            continue
        if _TABLE_ROW.match(line) or (table and _TABLE_RULE.match(line)):
            table.append(line)
            continue
        flush_table()
        out.append(_block_line(line))
    flush_table()
    # An unclosed fence (a reply still streaming) is closed so the tail renders as code.
    if fence is not None:
        out.append("```")
    return "\n".join(out)


def _block_line(line: str) -> str:
    if m := _HEADING.match(line):
        title = _BOLD.sub(r"\2", m.group(1))
        return f"*{inline(title)}*" if title else ""
    if _RULE.match(line):
        return "──────────"
    if m := _BULLET.match(line):
        level = _level(m.group(1))
        item = m.group(2)
        if t := _TASK.match(item):
            box = "☐" if t.group(1) == " " else "☑"
            return f"{'    ' * level}{box} {inline(t.group(2))}"
        return f"{'    ' * level}{BULLETS[level % len(BULLETS)]} {inline(item)}"
    if m := _ORDERED.match(line):
        return f"{'    ' * _level(m.group(1))}{m.group(2)}. {inline(m.group(3))}"
    if m := _QUOTE.match(line):
        # ">" stays raw here: escaped it would no longer start a quote.
        return f"> {_block_line(m.group(1))}".rstrip()
    return inline(line)


def _level(indent: str) -> int:
    return len(indent.replace("\t", "    ")) // 2 if indent else 0


def inline(text: str) -> str:
    """Inline Markdown to mrkdwn: code spans, links, bold, italic, strikethrough."""
    held: list[str] = []

    def hold(match: re.Match[str]) -> str:
        if match.group("code") is not None:
            held.append(f"`{escape(match.group('code_body'))}`")
        elif match.group("url") is not None:
            held.append(_link(match.group("url"), match.group("label")))
        else:
            held.append(_link(match.group("auto"), ""))
        return f"{_HOLD}{len(held) - 1}{_HOLD}"

    text = _PROTECTED.sub(hold, text)
    text = escape(text)
    text = _BOLD_ITALIC.sub(lambda m: f"{_BOLD_MARK}_{m.group(1)}_{_BOLD_MARK}", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = text.replace(_BOLD_MARK, "*")
    return _HOLD_REF.sub(lambda m: held[int(m.group(1))], text)


def _link(url: str, label: str) -> str:
    # Inside <url|label> a "|" or ">" would end the link early.
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    safe_url = safe_url.replace("&", "&amp;")
    label = label.strip()
    if not label or label == url:
        return f"<{safe_url}>"
    return f"<{safe_url}|{escape(label).replace('|', '¦')}>"
