"""What people wrote, as a transcript for the model: who said what, trimmed to a token budget."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.conversation import estimate_tokens
from bot.events import Said

# A message longer than this is cut in the transcript: one pasted log must not crowd out
# everyone else's words.
MAX_MESSAGE_CHARS = 4000
# Phrases that point at the channel the user is looking at (Slack assistant threads).
_THIS_CHANNEL = re.compile(
    r"\b(this|the current|current|that) (channel|conversation|discussion)\b|\bin here\b"
    r"|这个频道|本频道|该频道|此频道|当前频道|这个群|这个对话|这里的讨论",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Transcript:
    """Messages rendered one per line, and how many of the oldest did not fit."""

    text: str
    kept: int
    dropped: int
    tokens: int


def fit(messages: Sequence[Said], budget_tokens: int, bot_name: str = "assistant") -> Transcript:
    """The newest messages that fit `budget_tokens`, oldest first; the oldest go first."""
    lines: list[str] = []
    used = 0
    for said in reversed(messages):
        line = _line(said, bot_name)
        cost = estimate_tokens(line)
        if used + cost > budget_tokens:
            break
        lines.append(line)
        used += cost
    lines.reverse()
    return Transcript("\n".join(lines), len(lines), len(messages) - len(lines), used)


def _line(said: Said, bot_name: str) -> str:
    text = " ".join(said.text.split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + " […]"
    author = bot_name if said.bot else (said.author or "someone")
    return f"[{author}] {text}"


def about_this_channel(question: str) -> bool:
    """Whether a question refers to the channel the user is looking at."""
    return _THIS_CHANNEL.search(question) is not None
