"""Split long replies into platform-sized parts without breaking code fences, graphemes or words."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

Length = Callable[[str], int]

# A fence line: up to three spaces, then ``` or ~~~ (three or more), then an info string.
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)
# CJK text has no spaces; a sentence or clause end is the next best place to break it.
_CJK_BREAKS = frozenset("。！？；：，、」』）】")
_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class Part:
    """One message's worth of a long text.

    `text` is what the message shows: `opener + source[start:end] + closer`, where opener and
    closer are fence lines added so that a code block cut in two stays a code block.
    """

    text: str
    start: int
    end: int
    # The fence line (with its newline) the next part must start with; "" outside a fence.
    reopen: str = ""


def split_message(text: str, max_chars: int, *, length: Length = len) -> list[str]:
    """Parts of `text`, each at most `max_chars` as measured by `length`."""
    return [p.text for p in plan_parts(text, max_chars, length=length)]


def plan_parts(text: str, max_chars: int, *, length: Length = len) -> list[Part]:
    """Like split_message, with each part's place in `text` (the parts tile it exactly)."""
    parts: list[Part] = []
    start, opener = 0, ""
    while True:
        part = next_part(text, start, max_chars, opener=opener, length=length)
        parts.append(part)
        if part.end >= len(text):
            return parts
        start, opener = part.end, part.reopen


def next_part(
    text: str,
    start: int,
    max_chars: int,
    *,
    opener: str = "",
    min_end: int | None = None,
    length: Length = len,
) -> Part:
    """The part that begins at `text[start]` (shown after `opener`).

    Breaks at the last paragraph, then line, then sentence (CJK), then space boundary that
    fits; a boundary in the second half of the room is preferred over an earlier one, so parts
    are not needlessly short. `min_end` forbids cutting before that index (a streaming
    message must not lose text it already showed).
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    if length(opener + text[start:]) <= max_chars:
        return Part(opener + text[start:], start, len(text))
    reserve = 0
    while reserve < max_chars:
        part = _cut(text, start, max_chars, opener, min_end, length, reserve=reserve)
        if part is not None and length(part.text) <= max_chars:
            return part
        # A closing fence did not fit, or the measure is not additive (Slack's mrkdwn
        # length: a half link measures longer than a whole one): leave more room.
        reserve = max(2 * reserve, length("\n```"), 1)
    # Room too small even for fence lines: a plain cut.
    part = _cut(text, start, max_chars, "", min_end, length, reserve=0, fences=False)
    assert part is not None
    return part


def open_fence(text: str, start: int = 0, end: int | None = None, opener: str = "") -> str:
    """The fence line still open at `end` (scanning from `start` after `opener`), or ""."""
    state = _fence_from_line(opener.rstrip("\n")) if opener else None
    end = len(text) if end is None else end
    for m in _FENCE_LINE.finditer(text, start, end):
        marker, info = m.group(1), m.group(2)
        if state is None:
            if not (marker[0] == "`" and "`" in info):
                state = (marker, m.group(0).lstrip(" "))
        elif marker[0] == state[0][0] and len(marker) >= len(state[0]) and not info.strip():
            state = None
    return "" if state is None else state[1]


def closing_fence(text: str) -> str:
    """What to append to `text` so that a code block left open at its end is closed."""
    line = open_fence(text)
    if not line:
        return ""
    parsed = _fence_from_line(line)
    fence = parsed[0] if parsed else "```"
    return fence if text.endswith("\n") else "\n" + fence


def is_boundary(text: str, i: int) -> bool:
    """Whether a cut at index i keeps every user-perceived character (grapheme) whole.

    Covers what chat text contains: combining marks, ZWJ emoji sequences, variation
    selectors, skin tones, flags (regional indicator pairs), tag sequences, keycaps, Hangul
    jamo, CR LF and (for strings decoded with surrogatepass) surrogate pairs.
    """
    if i <= 0 or i >= len(text):
        return True
    a, b = text[i - 1], text[i]
    if a == "\r" and b == "\n":
        return False
    if "\ud800" <= a <= "\udbff" and "\udc00" <= b <= "\udfff":
        return False
    if _ZWJ in (a, b):
        return False
    cb = ord(b)
    if (
        0xFE00 <= cb <= 0xFE0F
        or 0xE0100 <= cb <= 0xE01EF
        or 0x1F3FB <= cb <= 0x1F3FF
        or 0xE0020 <= cb <= 0xE007F
    ):
        return False
    if unicodedata.category(b) in ("Mn", "Me", "Mc"):
        return False
    if _is_regional(a) and _is_regional(b):
        run = 0
        j = i - 1
        while j >= 0 and _is_regional(text[j]):
            run += 1
            j -= 1
        # Flags are pairs: a cut after an odd count of indicators splits one.
        return run % 2 == 0
    return not _hangul_joins(ord(a), cb)


def _cut(
    text: str,
    start: int,
    max_chars: int,
    opener: str,
    min_end: int | None,
    length: Length,
    *,
    reserve: int,
    fences: bool = True,
) -> Part | None:
    room = max_chars - reserve
    hi = _fit(text, start, room, opener, length)
    if hi <= start:
        if fences and opener:
            return None
        hi = _next_grapheme(text, start)
    floor = start if min_end is None else min(max(min_end, start), hi)
    cut = _choose(text, start, hi, floor, opener, soft=min_end is None)
    if not fences:
        return Part(text[start:cut], start, cut)
    line = open_fence(text, start, cut, opener)
    if not line:
        return Part(opener + text[start:cut], start, cut)
    parsed = _fence_from_line(line)
    fence = parsed[0] if parsed else "```"
    closer = fence if text[cut - 1] == "\n" else "\n" + fence
    shown = opener + text[start:cut] + closer
    if length(shown) > max_chars:
        return None
    return Part(shown, start, cut, reopen=line + "\n")


def _fit(text: str, start: int, room: int, opener: str, length: Length) -> int:
    """Largest end such that opener + text[start:end] measures at most `room`."""
    if length is len:
        return min(len(text), start + room - len(opener))
    lo, hi = start, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(opener + text[start:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _choose(text: str, start: int, hi: int, floor: int, opener: str, *, soft: bool) -> int:
    """Best cut in (floor, hi]: paragraph, line, sentence, space, else the last grapheme edge."""
    if soft:
        # Prefer a boundary in the second half of the room (a code block may start from a
        # quarter on, so it is not split needlessly); only then settle for an early one.
        half, quarter = start + (hi - start) // 2, start + (hi - start) // 4
        for lower, fence_lower in ((half, quarter), (start, start)):
            cut = _best_boundary(text, start, hi, lower, fence_lower, opener)
            if cut is not None:
                return cut
    else:
        cut = _best_boundary(text, start, hi, floor, floor, opener)
        if cut is not None:
            return cut
    cut = hi
    while cut > max(floor, start) and not (is_boundary(text, cut) and _fence_safe(text, cut)):
        cut -= 1
    if cut <= start:
        cut = hi
        while cut > start + 1 and not is_boundary(text, cut):
            cut -= 1
    return cut


def _best_boundary(
    text: str, start: int, hi: int, lower: int, fence_lower: int, opener: str
) -> int | None:
    classes = (
        (_after("\n\n"), lower),
        (_before_fence(opener), fence_lower),
        (_after("\n"), lower),
        (_after_cjk, lower),
        (_after(" "), lower),
    )
    for find, above in classes:
        cut = find(text, start, hi)
        while cut is not None and cut > above:
            if (
                cut > start
                and is_boundary(text, cut)
                and _fence_safe(text, cut)
                and not _closes_next(text, start, cut, opener)
            ):
                return cut
            cut = find(text, start, cut - 1)
        # None above `above` in this class: try the next class.
    return None


def _after(sep: str) -> Callable[[str, int, int], int | None]:
    def find(text: str, start: int, hi: int) -> int | None:
        k = text.rfind(sep, start, hi)
        return None if k < 0 else k + len(sep)

    return find


def _before_fence(opener: str) -> Callable[[str, int, int], int | None]:
    def find(text: str, start: int, hi: int) -> int | None:
        """The start of the last fence line in range that opens a code block."""
        found = None
        is_open = bool(opener)
        for m in _FENCE_LINE.finditer(text, start, hi):
            if not is_open and m.start() > start:
                found = m.start()
            is_open = not is_open
        return found

    return find


def _after_cjk(text: str, start: int, hi: int) -> int | None:
    for k in range(hi - 1, start - 1, -1):
        if text[k] in _CJK_BREAKS:
            return k + 1
    return None


def _fence_safe(text: str, cut: int) -> bool:
    """A cut must not fall inside a fence line (or right before its newline)."""
    line_start = text.rfind("\n", 0, cut) + 1
    line_end = text.find("\n", cut)
    line_end = len(text) if line_end < 0 else line_end
    if line_start == cut:
        return True
    return _FENCE_LINE.match(text, line_start, line_end) is None


def _closes_next(text: str, start: int, cut: int, opener: str) -> bool:
    """A cut just before the fence line that closes the open block would leave the next
    part an empty reopened block."""
    m = _FENCE_LINE.match(text, cut)
    if m is None or m.group(2).strip():
        return False
    return bool(open_fence(text, start, cut, opener))


def _next_grapheme(text: str, start: int) -> int:
    end = start + 1
    while end < len(text) and not is_boundary(text, end):
        end += 1
    return end


def _fence_from_line(line: str) -> tuple[str, str] | None:
    m = _FENCE_LINE.match(line)
    return None if m is None else (m.group(1), line)


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _hangul_joins(a: int, b: int) -> bool:
    lead, vowel, trail = (0x1100, 0x115F), (0x1160, 0x11A7), (0x11A8, 0x11FF)

    def within(c: int, r: tuple[int, int]) -> bool:
        return r[0] <= c <= r[1]

    if within(a, lead):
        return within(b, lead) or within(b, vowel)
    if within(a, vowel):
        return within(b, vowel) or within(b, trail)
    return within(a, trail) and within(b, trail)
