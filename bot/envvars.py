"""Parsers for environment variables that raise ConfigError naming the variable."""

from __future__ import annotations

from collections.abc import Mapping

from bot.errors import ConfigError

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number in [low, high]; unset or blank gives `default`."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(name, f"{raw} is outside {low:g}..{high:g}")
    return value


def flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    """true/false, yes/no, on/off or 1/0; unset or blank gives `default`."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(name, f"expected true or false, got {raw!r}")


def port(env: Mapping[str, str], name: str) -> int | None:
    """A TCP port 0-65535; unset or blank gives None (the listener is off)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise ConfigError(name, f"{value} is outside 0..65535")
    return value
