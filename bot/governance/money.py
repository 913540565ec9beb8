"""Amounts of money as whole micro-units (millionths of the currency): parsing and display."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from bot.i18n import t
from storage.base import MICRO

# Above this a money limit is a typo, not a budget.
MAX_MONEY = Decimal(1_000_000)
_MONEY = re.compile(r"^[$€£¥]?\s*([0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]{3})?$")


def to_micro(value: Decimal) -> int:
    """`value` in micro-units; ValueError when it has more than six decimals or is negative."""
    micro = value * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{value} has more than six decimals")
    if micro < 0:
        raise ValueError(f"{value} is negative")
    return int(micro)


def parse_money(text: str) -> int:
    """ "5", "$5", "12.50 USD" or "0.25" as micro-units; ValueError says what is wrong."""
    raw = text.strip()
    shown = repr(raw)
    if raw.startswith("-"):
        raise ValueError(t("an amount of money cannot be negative (got {value})", value=shown))
    match = _MONEY.match(raw)
    if match is None:
        raise ValueError(
            t("{value} is not an amount of money; write it like 5, 12.50 or 0.25", value=shown)
        )
    try:
        value = Decimal(match.group(1).replace("_", "").replace(",", ""))
    except InvalidOperation:
        raise ValueError(t("{value} is not an amount of money", value=shown)) from None
    if value > MAX_MONEY:
        raise ValueError(
            t("{value} is absurdly large (at most {limit})", value=shown, limit=f"{MAX_MONEY:,}")
        )
    try:
        return to_micro(value)
    except ValueError:
        raise ValueError(t("{value} has more than six decimals", value=shown)) from None


def format_money(micro: float, currency: str = "") -> str:
    """12.34 USD; amounts under one unit keep up to six decimals (0.00015 USD), so the cost
    of one cheap request does not show as 0.00."""
    value = Decimal(round(micro)) / MICRO
    if value >= 1 or value == 0:
        text = f"{value:,.2f}"
    else:
        text = f"{value:.6f}".rstrip("0")
        if len(text.partition(".")[2]) < 2:
            text = f"{value:.2f}"
    return f"{text} {currency}" if currency else text


def decimal_text(micro: int) -> str:
    """Micro-units as a plain decimal for CSV ("0.001500"): exact, no rounding, no grouping."""
    return f"{Decimal(micro) / MICRO:.6f}"
