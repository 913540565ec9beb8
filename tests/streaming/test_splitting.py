"""split_message: sizes, preferred boundaries, code fences, CJK and emoji kept whole."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from bot.streaming.splitting import (
    closing_fence,
    is_boundary,
    next_part,
    open_fence,
    plan_parts,
    split_message,
)

FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
# Emoji and other clusters that must never be cut: ZWJ families, flags, skin tones,
# keycaps, variation selectors, combining accents, tag sequences (the Scotland flag).
ATOMS = [
    "👨\u200d👩\u200d👧\u200d👦",
    "🇯🇵",
    "🇺🇸",
    "👍🏽",
    "1\ufe0f\u20e3",
    "❤\ufe0f",
    "e\u0301",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "🧑🏿\u200d💻",
]
CJK = "漢字とかなの文章です。これは長い日本語の文です、区切りが少ない。中文没有空格"


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fences_balanced(part: str) -> bool:
    return len(FENCE_LINE.findall(part)) % 2 == 0


def reassembles(parts: list[str], original: str) -> bool:
    """Whether the parts are the original in order, give or take added fence lines."""

    def readings(part: str) -> list[str]:
        """The slices of the original a part may show: with or without fence lines."""
        first_line = part.split("\n", 1)[0] + "\n"
        found = []
        for opener in [""] + ([first_line] if FENCE_LINE.match(first_line) else []):
            body = part[len(opener) :]
            end_fence = re.search(r"\n?(`{3,}|~{3,})\Z", body)
            closers = [""] + ([end_fence.group(1), end_fence.group(0)] if end_fence else [])
            found += [body[: len(body) - len(c)] for c in closers]
        return found

    def search(i: int, pos: int) -> bool:
        if i == len(parts):
            return pos == len(original)
        return any(
            original.startswith(s, pos) and search(i + 1, pos + len(s)) for s in readings(parts[i])
        )

    return search(0, 0)


def random_text(rng: random.Random, size: int) -> str:
    pieces: list[str] = []
    while sum(map(len, pieces)) < size:
        roll = rng.random()
        if roll < 0.08:
            lang = rng.choice(["python", "js", "", "bash"])
            body = "\n".join(
                " ".join(
                    rng.choice(["x = 1", "print(x)", "return", "if y:", "{"]) for _ in range(3)
                )
                for _ in range(rng.randint(1, 12))
            )
            pieces.append(f"\n```{lang}\n{body}\n```\n")
        elif roll < 0.15:
            pieces.append("\n\n")
        elif roll < 0.2:
            pieces.append("\n")
        elif roll < 0.3:
            pieces.append(CJK[: rng.randint(3, len(CJK))])
        elif roll < 0.45:
            pieces.append(rng.choice(ATOMS))
        elif roll < 0.5:
            pieces.append("x" * rng.randint(20, 90))  # a long unbreakable word
        else:
            pieces.append(rng.choice(["alpha", "beta", "gamma", "delta", "épsilon"]) + " ")
    return "".join(pieces)


def test_short_text_is_one_part_unchanged() -> None:
    assert split_message("hello world", 100) == ["hello world"]
    assert split_message("", 10) == [""]


def test_prefers_paragraph_then_line_then_space() -> None:
    para = "a" * 30 + "\n\n" + "b" * 10 + "\n" + "c c c c"
    assert split_message(para, 45)[0] == "a" * 30 + "\n\n"
    line = "a" * 30 + "\n" + "b b b b b b b b"
    assert split_message(line, 40)[0] == "a" * 30 + "\n"
    words = "one two three four five six seven"
    first = split_message(words, 16)[0]
    assert first == "one two three "


def test_an_early_paragraph_break_does_not_make_a_tiny_part() -> None:
    text = "ab\n\n" + "word " * 40
    parts = split_message(text, 60)
    assert len(parts[0]) > 30


def test_code_fence_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})" for i in range(30))
    text = f"Here is code:\n```python\n{code}\n```\nDone."
    parts = split_message(text, 80)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 80
        assert fences_balanced(part), part
    assert parts[1].startswith("```python\n")
    assert parts[0].endswith("```") or parts[0].endswith("\n")
    assert reassembles(parts, text)


def test_text_before_a_code_block_is_cut_before_the_fence() -> None:
    text = "Intro.\n\nSome text before code.\n```python\n" + "x = 1\n" * 30 + "```\n"
    parts = split_message(text, 80)
    assert parts[0] == "Intro.\n\nSome text before code.\n"
    assert parts[1].startswith("```python\n")


def test_tilde_fences_and_longer_backtick_fences() -> None:
    text = "~~~\n" + "line\n" * 40 + "~~~\n" + "````md\n```inner```\n" + "row\n" * 30 + "````\n"
    parts = split_message(text, 50)
    for part in parts:
        assert len(part) <= 50
    assert any(p.startswith("~~~\n") for p in parts[1:])
    assert any(p.startswith("````md\n") for p in parts[1:])
    assert reassembles(parts, text)


def test_cjk_breaks_after_sentence_ends_and_never_mid_character() -> None:
    text = CJK * 10
    parts = split_message(text, 37)
    assert "".join(parts) == text
    assert all(len(p) <= 37 for p in parts)
    assert sum(p.endswith("。") or p.endswith("、") for p in parts) >= len(parts) // 2


@pytest.mark.parametrize("atom", ATOMS)
def test_emoji_clusters_are_never_cut(atom: str) -> None:
    text = atom * 50
    for max_chars in (7, 13, 50):
        parts = split_message(text, max_chars)
        assert "".join(parts) == text
        assert all(p and p.count(atom) * len(atom) == len(p) for p in parts), parts[:3]


def test_length_is_pluggable_utf16() -> None:
    text = "😀 " * 200
    parts = split_message(text, 25, length=utf16_length)
    assert all(utf16_length(p) <= 25 for p in parts)
    assert all(len(p) < 25 for p in parts)
    assert "".join(parts) == text


def test_a_measure_that_is_not_additive_is_still_respected() -> None:
    # Like Slack's mrkdwn length, where how a cut piece measures depends on where it ends:
    # here a part ending in whitespace measures 15 more.
    def lumpy(text: str) -> int:
        return len(text) + (15 if text[-1:].isspace() else 0)

    text = "see the docs at example.com and then " * 20
    parts = split_message(text, 60, length=lumpy)
    assert all(lumpy(p) <= 60 for p in parts)
    assert "".join(parts) == text


@pytest.mark.parametrize("seed", range(80))
def test_random_texts_keep_every_promise(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng, rng.randint(50, 3000))
    max_chars = rng.choice([40, 64, 120, 500, 2000])
    length = rng.choice([len, utf16_length])
    plan = plan_parts(text, max_chars, length=length)
    parts = [p.text for p in plan]
    assert parts == split_message(text, max_chars, length=length)
    # The parts tile the original exactly.
    assert plan[0].start == 0 and plan[-1].end == len(text)
    assert all(a.end == b.start for a, b in itertools.pairwise(plan))
    for part in plan:
        assert length(part.text) <= max_chars
        assert fences_balanced(part.text), part.text
        # Never an empty reopened block (a cut just before the closing fence).
        assert not re.match(r"(`{3,}|~{3,})[^\n]*\n\1\s*(\n|\Z)", part.text), part.text
        # Nothing cuts a cluster: every atom survives whole inside one part.
    for atom in ATOMS:
        assert sum(p.count(atom) for p in parts) == text.count(atom)
    for part in plan[:-1]:
        cut = part.end
        assert text[cut - 1] != "\u200d" and text[cut] not in "\u200d\ufe0f\u0301\u20e3"
    assert reassembles(parts, text)


def test_min_end_never_cuts_before_shown_text() -> None:
    text = "a" * 10 + "\n\n" + "b" * 60
    unconstrained = next_part(text, 0, 50)
    assert unconstrained.end == 12
    held = next_part(text, 0, 50, min_end=30)
    assert held.end == 50
    words = "a" * 10 + "\n\n" + "b " * 40
    held = next_part(words, 0, 50, min_end=30)
    assert held.end >= 30
    assert held.text.endswith(" ")


def test_open_and_closing_fence() -> None:
    assert open_fence("text\n```py\ncode") == "```py"
    assert open_fence("```py\ncode\n```\nafter") == ""
    assert closing_fence("```py\ncode") == "\n```"
    assert closing_fence("```py\ncode\n") == "```"
    assert closing_fence("plain") == ""


def test_tiny_limits_still_make_progress() -> None:
    text = "```python\n" + "abcdef " * 10 + "\n```"
    parts = split_message(text, 5)
    assert all(len(p) <= 5 for p in parts)
    with pytest.raises(ValueError):
        split_message("x", 0)


def test_is_boundary_on_known_cases() -> None:
    family = ATOMS[0]
    assert not any(is_boundary(family, i) for i in range(1, len(family)))
    flags = "🇯🇵🇺🇸"
    assert [is_boundary(flags, i) for i in range(1, 4)] == [False, True, False]
    assert not is_boundary("a\r\nb", 2)
    assert is_boundary("ab", 1)
