"""Language names and codes from Babel's CLDR data: what `translate French` or a locale means."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from babel import Locale, UnknownLocaleError

# Languages whose own names ("français", "日本語") are recognized too, besides the English and
# Chinese names of every language CLDR knows.
_AUTONYMS = (
    *("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt", "ru"),
    *("sv", "th", "tr", "uk", "vi", "zh", "zh_Hans", "zh_Hant"),
)


@dataclass(frozen=True, slots=True)
class Language:
    """A language as a Babel locale identifier ("ja", "zh_Hans_CN") and its English name."""

    code: str
    name: str

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.code)


def language_of(text: str) -> Language | None:
    """The language a code ("ja", "zh-CN", "pt_BR") or a name ("Japanese", "日语") means."""
    word = text.strip().strip(".,:;!?\"'`").lower()
    if not word:
        return None
    code = _names().get(word)
    if code is None and len(word) <= 15 and word.replace("-", "").replace("_", "").isalnum():
        code = word.replace("-", "_")
    if code is None:
        return None
    try:
        locale = Locale.parse(code)
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    return Language(str(locale), locale.get_display_name("en") or str(locale))


@functools.cache
def _names() -> dict[str, str]:
    """Lower-cased language names → codes: English and Chinese names, and some autonyms."""
    names: dict[str, str] = {}
    for display in ("zh_Hans", "en"):  # English wins where both name a language alike
        for code, name in Locale.parse(display).languages.items():
            names[name.lower()] = code
    for code in _AUTONYMS:
        locale = Locale.parse(code)
        own = locale.get_display_name(locale)
        if own:
            names.setdefault(own.lower(), code)
    # What people write rather than CLDR's exact names.
    names.update(
        {"chinese": "zh_Hans", "中文": "zh_Hans", "简体中文": "zh_Hans", "繁體中文": "zh_Hant"}
    )
    return names
