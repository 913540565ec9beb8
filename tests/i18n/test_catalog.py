"""The message catalogs: every sentence of the code in English and Chinese, placeholders kept."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from bot.i18n import nt, number, percent, speaking, t
from bot.i18n.catalog import catalog

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"t": None, "nt": (1, 2), "N_": None}


def used_ids() -> set[str | tuple[str, str]]:
    """Every message id the code passes to t(), nt() or N_()."""
    found: set[str | tuple[str, str]] = set()
    for folder in ("bot", "adapters"):
        for _, _, message, _, _ in extract_from_dir(ROOT / folder, keywords=KEYWORDS):
            found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_every_sentence_exists_translated_with_its_placeholders(language: str) -> None:
    shipped = catalog(language)
    missing, empty, broken = [], [], []
    for key in sorted(used_ids(), key=str):
        msgid = key if isinstance(key, str) else key[0]
        message = shipped.get(msgid)
        if message is None:
            missing.append(key)
            continue
        value = message.string
        forms = [value] if isinstance(value, str) else list(value or ())
        if not all(forms):
            empty.append(key)
            continue
        wanted = fields(msgid) | (set() if isinstance(key, str) else fields(key[1]))
        if any(fields(form) - wanted - {"n"} for form in forms):
            broken.append(key)
    assert missing == [], f"{language}: not in the catalog (run scripts/catalog.py)"
    assert empty == [], f"{language}: not translated"
    assert broken == [], f"{language}: a translation names a placeholder the code does not fill"


def test_catalogs_hold_no_sentence_the_code_no_longer_uses() -> None:
    ids = {key if isinstance(key, str) else key[0] for key in used_ids()}
    for language in ("en", "zh_CN"):
        stale = sorted(
            m.id
            for m in catalog(language)
            if m.id and (m.id if isinstance(m.id, str) else m.id[0]) not in ids
        )
        assert stale == [], f"{language}: stale entries (run scripts/catalog.py)"


def test_sentences_numbers_and_plurals_per_language() -> None:
    with speaking("en"):
        assert t("This channel's temperature is now {value}.", value="0.7").startswith("This")
        assert number(1234567) == "1,234,567"
        assert percent(0.75) == "75%"
    with speaking("zh_CN"):
        assert (
            t("This channel's temperature is now {value}.", value="0.7")
            == "本频道的温度现在是 0.7。"
        )
        assert re.search(r"[\u4e00-\u9fff]", t("This list."))
        assert number(1234567) == "1,234,567"
    # Outside any request: English.
    assert t("This list.") == "This list."


def test_plural_forms_follow_the_language() -> None:
    singular, plural = "{n} message", "{n} messages"
    with speaking("en"):
        assert nt(singular, plural, 1) == "1 message"
        assert nt(singular, plural, 2500) == "2,500 messages"
