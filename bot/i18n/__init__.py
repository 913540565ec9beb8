"""The bot's own words in the reader's language: t() and nt() over gettext catalogs (Babel)."""

from bot.i18n.language import (
    LANGUAGES,
    LanguageDefaults,
    current,
    language_name,
    model_language,
    resolve,
    shown_name,
    speaking,
    supported,
)
from bot.i18n.text import N_, nt, number, percent, t

__all__ = [
    "LANGUAGES",
    "N_",
    "LanguageDefaults",
    "current",
    "language_name",
    "model_language",
    "nt",
    "number",
    "percent",
    "resolve",
    "shown_name",
    "speaking",
    "supported",
    "t",
]
