"""Model id globs (`gpt-4o*`, `claude-*-haiku*`) and the nearest names to a wrong one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from bot.i18n import t


def glob_matches(glob: str, model: str) -> bool:
    """Shell-style glob over the whole id, case-insensitive (gateways differ in case)."""
    return fnmatchcase(model.lower(), glob.lower())


def any_matches(globs: Iterable[str], model: str) -> bool:
    return any(glob_matches(g, model) for g in globs)


def check_glob(glob: str) -> str | None:
    """Why a text is not a usable model glob, or None."""
    if not glob or any(ch.isspace() for ch in glob):
        return t("a model glob is one word without spaces, like gpt-4o* or deepseek-*")
    if len(glob) > 200:
        return t("a model glob is at most 200 characters")
    return None


def nearest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The `n` candidates most like `name` (always some, when there are candidates)."""
    wanted = name.lower()

    def likeness(candidate: str) -> tuple[float, str]:
        lowered = candidate.lower()
        # A shared start ("gpt-4" for "gpt-4o-maxi") counts for more than letters in common.
        prefix = len(_common_prefix(wanted, lowered)) / max(len(wanted), 1)
        ratio = difflib.SequenceMatcher(None, wanted, lowered).ratio()
        return (-(ratio + prefix), candidate)

    return sorted(dict.fromkeys(candidates), key=likeness)[:n]


def _common_prefix(a: str, b: str) -> str:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return a[:size]
