"""Which language the bot speaks: the channel's, the workspace's, the platform's, or English."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from babel import Locale, UnknownLocaleError

from bot.errors import ConfigError
from bot.languages import Language, language_of

VARIABLE = "CHATOPS_LANGUAGE"
# The catalogs shipped (bot/i18n/locales), as Babel locale identifiers.
LANGUAGES = ("en", "zh_CN")
ENGLISH = "en"
_NAMES = {"en": "English", "zh_CN": "简体中文 (zh-CN)"}
# How the model is told which language to answer in.
_MODEL_NAMES = {"en": "English", "zh_CN": "Simplified Chinese"}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("language", default=ENGLISH)


@dataclass(frozen=True, slots=True)
class LanguageDefaults:
    """CHATOPS_LANGUAGE: a default for every workspace, and one per Slack workspace or
    Discord server ("zh-CN", or "zh-CN,T0123=en,4567=zh-CN")."""

    everywhere: str | None = None
    by_workspace: Mapping[str, str] = field(default_factory=dict)

    def for_workspace(self, workspace: str) -> str | None:
        return self.by_workspace.get(workspace, self.everywhere)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LanguageDefaults:
        raw = env.get(VARIABLE, "").strip()
        everywhere: str | None = None
        by_workspace: dict[str, str] = {}
        for entry in filter(None, (part.strip() for part in raw.split(","))):
            workspace, _, value = entry.rpartition("=")
            code = supported(value)
            if code is None:
                raise ConfigError(
                    VARIABLE, f"{value!r} is not a language the bot speaks (en or zh-CN)"
                )
            if workspace.strip():
                by_workspace[workspace.strip()] = code
            else:
                everywhere = code
        return cls(everywhere, by_workspace)


def supported(text: str | None) -> str | None:
    """The catalog for a language code or name ("zh-CN", "zh", "中文", "English"), if any.
    Any Chinese reads Simplified; any English reads English."""
    if not text or not text.strip():
        return None
    language = language_of(text)
    if language is None:
        return None
    base = language.code.split("_")[0]
    if base == "zh":
        return "zh_CN"
    return "en" if base == "en" else None


def resolve(
    channel: str | None, defaults: LanguageDefaults, workspace: str, user_locale: str = ""
) -> str:
    """The channel's `language` setting, else the workspace default (CHATOPS_LANGUAGE), else
    the platform's locale for the person, else English."""
    return (
        supported(channel) or defaults.for_workspace(workspace) or supported(user_locale) or ENGLISH
    )


def current() -> str:
    """The language of the request (or platform event) being handled."""
    return _current.get()


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Everything said inside (and in tasks started inside) is in `language`."""
    token = _current.set(language if language in LANGUAGES else ENGLISH)
    try:
        yield
    finally:
        _current.reset(token)


def language_name(language: str | None = None) -> str:
    """A language's name as the settings view shows it."""
    return _NAMES.get(language or current(), language or current())


def shown_name(language: Language) -> str:
    """A language's name in the language the bot speaks now ("Japanese", "日语")."""
    try:
        return language.locale.get_display_name(Locale.parse(current())) or language.name
    except (UnknownLocaleError, ValueError):
        return language.name


def model_language(language: str | None = None) -> str:
    """A language's English name, for instructions to the model ("Simplified Chinese")."""
    return _MODEL_NAMES.get(language or current(), "English")
