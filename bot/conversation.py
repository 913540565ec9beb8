"""Builds the chat messages for a request: system prompt, trimmed history, the new turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.errors import UserFacingError
from bot.events import Turn
from bot.i18n import number, t

# Families the gateway serves with image input; others get text only.
_VISION_PREFIXES = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-5",
    "o3",
    "o4",
    "claude-3",
    "claude-sonnet-4",
    "claude-opus-4",
    "gemini",
    "grok-4",
    "qwen-vl",
    "qwen2.5-vl",
)


def supports_vision(model: str) -> bool:
    return model.lower().startswith(_VISION_PREFIXES)


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning estimate: ~4 characters per token, CJK ~1 per character."""
    if text.isascii():  # the common case, checked in C: a 3 MB log costs no Python loop
        return len(text) // 4 + 4
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    return (len(text) - wide) // 4 + wide + 4


def _message(turn: Turn, vision: bool) -> dict[str, Any]:
    if vision and turn.image_urls and turn.role == "user":
        parts: list[dict[str, Any]] = [{"type": "text", "text": turn.text}]
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in turn.image_urls]
        return {"role": turn.role, "content": parts}
    return {"role": turn.role, "content": turn.text}


def build_messages(
    model: str,
    system_prompt: str | None,
    history: Sequence[Turn],
    prompt: Turn,
    budget_tokens: int,
) -> tuple[list[dict[str, Any]], int]:
    """Messages newest-last within `budget_tokens`, and their estimated prompt tokens.

    The oldest turns are dropped first; the system prompt and the new turn always stay.
    """
    vision = supports_vision(model)
    fixed = estimate_tokens(prompt.text) + (estimate_tokens(system_prompt) if system_prompt else 0)
    if fixed > budget_tokens:
        raise UserFacingError(
            t(
                "Your message is too long (about {tokens} tokens; the limit is {limit}). Please "
                "shorten it.",
                tokens=number(fixed),
                limit=number(budget_tokens),
            )
        )
    kept: list[Turn] = []
    used = fixed
    for turn in reversed(history):
        cost = estimate_tokens(turn.text)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages += [_message(turn, vision) for turn in reversed(kept)]
    messages.append(_message(prompt, vision))
    return messages, used
