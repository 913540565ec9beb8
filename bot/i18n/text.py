"""t() and nt(): the current language's sentence for a message id, with numbers formatted."""

from __future__ import annotations

import functools

from babel import Locale
from babel.numbers import NumberPattern, parse_pattern

from bot.i18n.catalog import translations
from bot.i18n.language import current


def t(message: str, **values: object) -> str:
    """`message` (the English sentence, the catalog's id) in the current language, with
    `{name}` placeholders filled in."""
    text = translations(current()).gettext(message)
    return text.format(**values) if values else text


def N_(message: str) -> str:
    """Mark a sentence kept in data (a command's summary) for the catalog; t() it when shown."""
    return message


def nt(singular: str, plural: str, n: float, **values: object) -> str:
    """The sentence for `n` things, in the plural form the current language uses for n;
    `{n}` is n as a number written the language's way."""
    text = translations(current()).ngettext(singular, plural, int(n))
    return text.format(n=number(n), **values)


def number(value: float, decimals: int = 0) -> str:
    """A number with the current language's digit grouping: 12,345 (en), 12,345 (zh-CN)."""
    pattern = _pattern("#,##0" + ("." + "0" * decimals if decimals else ""))
    return str(pattern.apply(value, _locale(current())))


def percent(share: float) -> str:
    """A share as a whole percentage: 75%."""
    return str(_pattern("#,##0%").apply(share, _locale(current())))


# Parsed once: Babel would parse the locale and the pattern again for every number.
@functools.cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


@functools.cache
def _pattern(pattern: str) -> NumberPattern:
    return parse_pattern(pattern)
