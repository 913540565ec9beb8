"""Finds English sentences in what the bot wrote, leaving code, names and numbers aside."""

from __future__ import annotations

import re

# What is not a sentence in any language: code and commands in backticks, links, user and
# channel mentions, environment variable names, model ids and file names.
_NOT_PROSE = (
    re.compile(r"```.*?```", re.DOTALL),
    re.compile(r"`[^`\n]*`"),
    re.compile(r"<[^>\n]*>"),
    re.compile(r"https?://\S+"),
    re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b"),
    re.compile(r"\b[\w.]*[-_./:][\w.\-/:]*\b"),
)
# Three English words in a row: a sentence, or the bulk of one.
_RUN = re.compile(r"\b[A-Za-z]{2,}(?:[ ,'’]+[A-Za-z]{2,}){2,}\b")


def english_sentences(text: str) -> list[str]:
    """Runs of three or more English words outside code, links and identifiers."""
    for pattern in _NOT_PROSE:
        text = pattern.sub(" ", text)
    return _RUN.findall(text)
