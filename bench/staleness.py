"""How stale streamed text is, measured and as Slack's limits allow, for the Slack benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from adapters.slack.app import LIMITS
from adapters.slack.stream import APPENDS_BURST, STREAMS_BURST
from tests.fakes.slack import DELETE_BURST, DELETE_PER_SECOND, UPDATE_BURST, UPDATE_PER_SECOND

SAMPLE_EVERY = 0.02


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def samples(
    t0: float, seen: Sequence[tuple[float, int]], *, tokens: int, delay: float
) -> list[float]:
    """Every SAMPLE_EVERY s while a reply streams (token k leaves the model at t0 + (k+1) *
    delay): how long the oldest token not yet shown has been out, 0 when all are shown.
    `seen`: (time, tokens shown) of each write, in time order."""
    emit = [t0 + (k + 1) * delay for k in range(tokens)]
    out: list[float] = []
    t, i, shown = emit[0], 0, 0
    while t <= emit[-1]:
        while i < len(seen) and seen[i][0] <= t:
            shown = max(shown, seen[i][1])
            i += 1
        emitted = int((t - t0) / delay)
        out.append(t - emit[shown] if shown < min(emitted, tokens) else 0.0)
        t += SAMPLE_EVERY
    return out


def allowed(conversations: int, *, tokens: int, delay: float) -> float:
    """Staleness p95 that a scheduler knowing every stream's length in advance would reach
    with the writes the Slack adapter declares: STREAMS_BURST native streams at once whose
    appends (APPENDS_BURST at once) can show text every edit interval; every other reply
    posts its first text and shares chat.update's burst (LIMITS) in evenly spaced frames; the
    finals go out as new messages (posts are per channel), costing no chat.update."""
    stream = tokens * delay
    interval = LIMITS.edit_interval
    native = min(conversations, STREAMS_BURST)
    edited = conversations - native
    most = int(stream / interval)
    native_frames = min(most, APPENDS_BURST // max(native, 1))
    plans = [native_frames] * native
    share, extra = divmod(LIMITS.budget_burst, edited) if edited else (0, 0)
    plans += [min(most, share + (1 if i < extra else 0)) for i in range(edited)]
    out: list[float] = []
    for frames in plans:
        seen = [(delay, 1)]  # the first post, with the first token
        for j in range(1, frames + 1):
            at = stream * j / (frames + 1)
            seen.append((at, int(at / delay)))
        seen.append((stream, tokens))
        out += samples(0.0, seen, tokens=tokens, delay=delay)
    return pct(out, 0.95)


def tidy_floor(conversations: int, stream: float) -> float:
    """Earliest time every reply is final with nothing superseded left, under Slack's published
    limits (token buckets): each reply that was not a native stream needs one chat.update (its
    final) or chat.delete (of its first frame, its final posted anew) once it ends."""
    edited = max(0, conversations - STREAMS_BURST)
    beyond = max(0, edited - int(UPDATE_BURST + DELETE_BURST))
    return stream + (beyond / (UPDATE_PER_SECOND + DELETE_PER_SECOND) if beyond else 0.0)


def ratio(measured: float, limit: float) -> str:
    return "—" if math.isnan(limit) or limit <= 0 else f"{measured / limit:.2f}x"
