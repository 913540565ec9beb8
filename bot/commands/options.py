"""Leading options of `summarize` and `translate`: a count, `share`, a target language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.i18n import current, model_language
from bot.languages import Language, language_of

if TYPE_CHECKING:
    from bot.context import Context

# Words that ask for output everyone in the channel sees (the default is the asker alone).
SHARE_WORDS = frozenset({"share", "shared", "public", "分享", "公开"})
# Words that may come before a language: "translate to French".
_TO_WORDS = frozenset({"to", "into", "in", "译成", "翻译成", "成"})


@dataclass(frozen=True, slots=True)
class Options:
    number: int | None = None
    share: bool = False
    language: Language | None = None
    # What follows the options (the text to translate).
    rest: str = ""

    def language_for(self, ctx: Context, *, personal: bool = False) -> Language:
        """The language to write in: the one asked for; else, when `personal`, the one the
        platform says the asker reads; else the one the bot speaks here."""
        if self.language is not None:
            return self.language
        if personal and (own := language_of(ctx.req.user.locale)) is not None:
            return own
        return Language(current(), model_language())


def wants_share(args: str) -> bool:
    """Whether a command's arguments ask for a shared answer (decided before it runs)."""
    return bool(parse_options(args, numbers=True, languages=True).share)


def parse_options(args: str, *, numbers: bool = False, languages: bool = False) -> Options:
    """Options from the start of `args`, in any order; the rest is left as it was written."""
    number: int | None = None
    share = False
    language: Language | None = None
    rest = args.strip()
    while rest:
        word, _, after = rest.partition(" ")
        key = word.lower().rstrip(":,")
        if key in SHARE_WORDS and not share:
            share = True
        elif numbers and number is None and key.isdigit():
            number = int(key)
        elif languages and language is None and (found := _language(word, after)) is not None:
            language, after = found
        else:
            break
        rest = after.strip()
    return Options(number, share, language, rest)


def _language(word: str, after: str) -> tuple[Language, str] | None:
    """A language at the start: a name ("French", "Simplified Chinese", "日语"), or a code where
    it cannot be an ordinary word: alone, before a colon. "to" / "into" may come first."""
    if word.lower() in _TO_WORDS and after.strip():
        target, _, rest = after.strip().partition(" ")
        return _named(target, rest)
    return _named(word, after)


def _named(word: str, after: str) -> tuple[Language, str] | None:
    second, _, beyond = after.partition(" ")
    two = language_of(f"{word} {second}") if second else None
    if two is not None and not _is_code(word):
        return two, beyond
    language = language_of(word)
    if language is None:
        return None
    if _is_code(word.rstrip(":")) and not (word.endswith(":") or not after.strip()):
        return None
    return language, after


def _is_code(word: str) -> bool:
    """Short ASCII identifiers ("it", "de", "pt-BR") that are also everyday words."""
    head = word.replace("-", "_").split("_")[0]
    return head.isascii() and head.isalpha() and len(head) <= 3
