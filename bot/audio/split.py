"""Where to cut a long recording: in silences near even lengths, at fixed lengths as fallback."""

from __future__ import annotations

import math
import re

Span = tuple[float, float]

_START = re.compile(rb"silence_start: (-?[\d.]+)")
_END = re.compile(rb"silence_end: (-?[\d.]+)")
# Cuts only go into silences at least half a target length from the previous cut, so no
# piece comes out tiny.
_MIN_FRACTION = 0.5
# A "10-minute" recording measures 600.02 s; that is not worth a third piece.
SLACK = 0.05


def parse_silences(log: bytes, duration: float) -> list[Span]:
    """(start, end) of each silence in ffmpeg silencedetect's log output."""
    spans: list[Span] = []
    start: float | None = None
    for line in log.splitlines():
        if (match := _START.search(line)) is not None:
            start = max(float(match.group(1)), 0.0)
        elif (match := _END.search(line)) is not None and start is not None:
            spans.append((start, float(match.group(1))))
            start = None
    if start is not None:
        # Silence running to the end of the file logs no end.
        spans.append((start, duration))
    return spans


def plan_pieces(duration: float, silences: list[Span], max_piece: float) -> list[Span]:
    """Spans covering [0, duration] in order, each at most `max_piece` long.

    Each cut goes in the middle of the silence nearest to an even split of what is left;
    with no silence in reach it falls back to the even split point itself.
    """
    if duration <= max_piece + SLACK:
        return [(0.0, duration)]
    middles = sorted((a + b) / 2 for a, b in silences)
    pieces: list[Span] = []
    start = 0.0
    while duration - start > max_piece + SLACK:
        left = duration - start
        target = left / math.ceil((left - SLACK) / max_piece)
        low, high = start + target * _MIN_FRACTION, start + max_piece
        ideal = start + target
        reachable = [m for m in middles if low <= m <= high]
        cut = min(reachable, key=lambda m: abs(m - ideal)) if reachable else ideal
        pieces.append((start, cut))
        start = cut
    pieces.append((start, duration))
    return pieces
