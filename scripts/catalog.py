"""Update the message catalogs (bot/i18n/locales/*/chatops.po) from the t()/nt() calls in code.

Run `.venv/bin/python scripts/catalog.py` after adding or changing a sentence: new ids are
added (English filled in, Chinese left empty for a translator), ids no longer used are
dropped, existing translations are kept. tests/i18n checks that nothing is left empty.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "bot" / "i18n" / "locales"
DOMAIN = "chatops"
KEYWORDS = {"t": None, "nt": (1, 2), "N_": None}
SOURCES = ("bot", "adapters")


def extracted() -> dict[str | tuple[str, str], None]:
    """Every message id in the code, in order of first appearance (plurals as pairs)."""
    found: dict[str | tuple[str, str], None] = {}
    for folder in SOURCES:
        for _, _, message, _, _ in extract_from_dir(ROOT / folder, keywords=KEYWORDS):
            key = message if isinstance(message, str) else (message[0], message[1])
            found.setdefault(key, None)
    return found


def update(language: str, ids: dict[str | tuple[str, str], None]) -> tuple[int, int]:
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    old = Catalog(locale=language, domain=DOMAIN)
    if path.exists():
        with path.open("rb") as f:
            old = read_po(f, locale=language, domain=DOMAIN)
    # The header keeps its dates, so updating without changes changes nothing.
    new = Catalog(
        locale=language,
        domain=DOMAIN,
        project="chatops-bot",
        version="1",
        copyright_holder="the chatops-bot authors",
        msgid_bugs_address="",
        last_translator="the chatops-bot authors",
        language_team=f"{language} <>",
        creation_date=old.creation_date,
        revision_date=old.creation_date,
        charset="utf-8",
        fuzzy=False,
    )
    missing = 0
    for key in ids:
        msgid = key if isinstance(key, str) else key[0]
        before = old.get(msgid)
        if language == "en":
            # English is the source language: its sentences are the ids themselves.
            string: str | tuple[str, ...] = key
        elif before is not None and before.string and before.id == key:
            string = before.string
        else:
            nplurals = new.num_plurals
            string = "" if isinstance(key, str) else ("",) * nplurals
            missing += 1
        new.add(key, string)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, new, width=100, no_location=True, sort_output=True, omit_header=False)
    return len(ids), missing


def main() -> int:
    ids = extracted()
    for language in ("en", "zh_CN"):
        total, missing = update(language, ids)
        print(f"{language}: {total} messages, {missing} to translate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
