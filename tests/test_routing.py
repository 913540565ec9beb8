"""Routing rules and argument parsing that need no network."""

from __future__ import annotations

import pytest

from bot.commands.image import parse_image_args
from bot.commands.table import command_table
from bot.conversation import build_messages
from bot.dispatch import route
from bot.errors import UserFacingError
from bot.events import Attachment, Place, Request, Turn, User

NAMES = list(command_table())


def _req(text: str, command: str | None = None, audio: bool = False) -> Request:
    attachments = (Attachment("a1", "memo.ogg", "audio/ogg", 10, "audio"),) if audio else ()
    return Request(Place("t", "C1"), User("U1", "u"), text, command, attachments)


@pytest.mark.parametrize(
    ("text", "command", "audio", "expected"),
    [
        ("a cat", "image", False, ("image", "a cat")),
        ("", "/Models", False, ("models", "")),
        ("image a red bicycle", None, False, ("image", "a red bicycle")),
        ("what is an image?", None, False, ("ask", "what is an image?")),
        ("", None, True, ("transcribe", "")),
        ("explain this", None, True, ("ask", "explain this")),
        ("summarize 20", None, False, ("summarize", "20")),
    ],
)
def test_route(text: str, command: str | None, audio: bool, expected: tuple[str, str]) -> None:
    assert route(_req(text, command, audio), NAMES) == expected


def test_image_options_in_both_spellings() -> None:
    assert parse_image_args("size=1536x1024 n=2 a fox in snow", "gpt-image-1") == (
        "a fox in snow",
        "1536x1024",
        None,
        2,
        "gpt-image-1",
    )
    prompt, _, quality, _, model = parse_image_args(
        "--quality high --model flux-kontext-pro a fox", "gpt-image-1"
    )
    assert (prompt, quality, model) == ("a fox", "high", "flux-kontext-pro")


@pytest.mark.parametrize(
    "args", ["", "size=1024x1024", "size=big a fox", "n=9 a fox", "quality=ultra a fox", "--n"]
)
def test_image_bad_arguments_explain_themselves(args: str) -> None:
    with pytest.raises(UserFacingError):
        parse_image_args(args, "gpt-image-1")


def test_history_is_trimmed_oldest_first() -> None:
    history = [Turn("user", f"turn {i} " + "x" * 400) for i in range(20)]
    messages, used = build_messages("gpt-4o", "be brief", history, Turn("user", "now?"), 600)
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[-1] == {"role": "user", "content": "now?"}
    kept = [m["content"] for m in messages[1:-1]]
    assert 0 < len(kept) < 20
    assert kept[-1].startswith("turn 19")  # the newest turns survive
    assert used <= 600


def test_prompt_over_budget_is_refused() -> None:
    with pytest.raises(UserFacingError, match="too long"):
        build_messages("gpt-4o", None, [], Turn("user", "x" * 10_000), 500)


def test_images_only_for_vision_models() -> None:
    turn = Turn("user", "what is this?", ("data:image/png;base64,AAAA",))
    vision, _ = build_messages("gpt-4o", None, [], turn, 1000)
    text_only, _ = build_messages("deepseek-v3", None, [], turn, 1000)
    assert isinstance(vision[-1]["content"], list)
    assert text_only[-1]["content"] == "what is this?"
