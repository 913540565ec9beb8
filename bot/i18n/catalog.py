"""The message catalogs: gettext .po files, compiled in memory with Babel when first used."""

from __future__ import annotations

import functools
import io
from importlib import resources

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DOMAIN = "chatops"


@functools.cache
def catalog(language: str) -> Catalog:
    """The parsed .po file of a language ("en", "zh_CN"), as shipped in the package."""
    source = resources.files("bot.i18n") / "locales" / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with source.open("rb") as raw:
        return read_po(raw, locale=language, domain=DOMAIN)


@functools.cache
def translations(language: str) -> Translations:
    """A language's compiled catalog: .po files ship as they are, no build step compiles them."""
    compiled = io.BytesIO()
    write_mo(compiled, catalog(language))
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)
