"""The price table (CHATOPS_PRICES): TOML mapping model globs to prices, strictly checked."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.governance.globs import check_glob, glob_matches
from bot.governance.money import to_micro
from storage.base import Rates

VARIABLE = "CHATOPS_PRICES"
PRICE_KEYS = ("input", "output", "image", "audio_minute")
ENTRY_KEYS = (*PRICE_KEYS, "image_by")
# Dearer than this per unit is a typo (a price per token written where per million is meant).
MAX_PRICE = Decimal(100_000)
_SIZE = re.compile(r"^(\d{3,4}x\d{3,4}|auto)$")
QUALITIES = ("auto", "low", "medium", "high", "standard", "hd")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


class PriceError(ConfigError):
    """A bad price file: one line naming the file and the entry."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(VARIABLE, f"{path}: {problem}")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The prices of the models one glob matches, in micro-units."""

    glob: str
    input: int = 0
    output: int = 0
    image: int = 0
    audio_minute: int = 0
    # (size or "", quality or "") → price per image; the most specific entry wins.
    image_by: tuple[tuple[tuple[str, str], int], ...] = ()

    def image_price(self, size: str | None, quality: str | None) -> int:
        table = dict(self.image_by)
        s, q = (size or "").lower(), (quality or "").lower()
        for key in ((s, q), ("", q), (s, "")):
            if key in table:
                return table[key]
        return self.image


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by model glob, e.g.

    ```toml
    currency = "USD"
    [models."gpt-4o-mini*"]
    input = 0.15         # per million input tokens
    output = 0.60        # per million output tokens
    [models."gpt-image-1"]
    image = 0.04         # per image
    image_by = { "high" = 0.17, "1536x1024 high" = 0.25 }   # per size and/or quality
    [models."whisper-1"]
    audio_minute = 0.006
    ```

    The first glob (in file order) that matches a model prices it. Prices are read as
    decimals and kept in micro-units (storage.base.MICRO): no float rounding reaches a bill.
    """

    source: str  # the file, for messages
    currency: str
    entries: tuple[ModelPrice, ...]

    def price_of(self, model: str) -> ModelPrice | None:
        """The first entry whose glob matches `model`."""
        for entry in self.entries:
            if glob_matches(entry.glob, model):
                return entry
        return None

    def rates(
        self, model: str, *, size: str | None = None, quality: str | None = None
    ) -> Rates | None:
        """What one request to `model` is charged at; None when the table does not price it."""
        entry = self.price_of(model)
        if entry is None:
            return None
        return Rates(
            currency=self.currency,
            input=entry.input,
            output=entry.output,
            image=entry.image_price(size, quality),
            audio_minute=entry.audio_minute,
        )

    def check_known(self, model_ids: Sequence[str]) -> None:
        """Every glob must match a model the gateway lists: a typo would price nothing."""
        for entry in self.entries:
            if not any(glob_matches(entry.glob, m) for m in model_ids):
                raise PriceError(
                    self.source,
                    f"{_entry(entry.glob)} matches no model the gateway lists; fix the name "
                    "or remove the entry",
                )


def load_prices(path: str) -> PriceTable:
    """Read and check the price file at `path`; PriceError names the file and the entry."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PriceError(path, f"cannot read the price file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise PriceError(path, "is not UTF-8 text") from None
    return parse_prices(text, path)


def parse_prices(text: str, source: str) -> PriceTable:
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        raise PriceError(source, f"not valid TOML: {e}") from None
    unknown = [k for k in data if k not in ("currency", "models")]
    if unknown:
        raise PriceError(
            source,
            f'unknown key {unknown[0]!r} at the top (expected currency and [models."glob"])',
        )
    currency = data.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise PriceError(source, 'currency must be a three-letter code such as currency = "USD"')
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise PriceError(source, 'no [models."glob"] entries; add at least one')
    entries = tuple(_entry_of(source, glob, body) for glob, body in models.items())
    return PriceTable(source=source, currency=currency.upper(), entries=entries)


def _entry(glob: str) -> str:
    return f'[models."{glob}"]'


def _entry_of(source: str, glob: str, body: Any) -> ModelPrice:
    where = _entry(glob)
    problem = check_glob(glob)
    if problem:
        raise PriceError(source, f"{where}: {problem}")
    if not isinstance(body, dict):
        raise PriceError(source, f"{where}: must be a table of prices, e.g. input = 0.15")
    unknown = [k for k in body if k not in ENTRY_KEYS]
    if unknown:
        raise PriceError(
            source, f"{where}: unknown key {unknown[0]!r} (use {', '.join(ENTRY_KEYS)})"
        )
    if not body:
        raise PriceError(source, f"{where}: has no price (use {', '.join(PRICE_KEYS)})")
    prices = {k: _price(source, f"{where} {k}", body[k]) for k in PRICE_KEYS if k in body}
    image_by = _image_by(source, where, body.get("image_by", {}))
    return ModelPrice(glob=glob, image_by=image_by, **prices)


def _price(source: str, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PriceError(source, f"{where}: {value!r} is not a number")
    amount = Decimal(value)
    if not amount.is_finite():
        raise PriceError(source, f"{where}: {value} is not a finite number")
    if amount < 0:
        raise PriceError(source, f"{where}: {value} is negative")
    if amount > MAX_PRICE:
        raise PriceError(source, f"{where}: {value} is implausibly high (at most {MAX_PRICE})")
    try:
        return to_micro(amount)
    except ValueError:
        raise PriceError(source, f"{where}: {value} has more than six decimals") from None


def _image_by(source: str, where: str, table: Any) -> tuple[tuple[tuple[str, str], int], ...]:
    if not isinstance(table, Mapping):
        raise PriceError(source, f'{where} image_by: must be a table like {{ "high" = 0.17 }}')
    found: list[tuple[tuple[str, str], int]] = []
    for key, value in table.items():
        size = quality = ""
        for word in str(key).lower().split():
            if _SIZE.match(word) and not size:
                size = word
            elif word in QUALITIES and not quality:
                quality = word
            else:
                raise PriceError(
                    source,
                    f"{where} image_by {key!r}: name a size (1024x1024), a quality "
                    f"({', '.join(QUALITIES)}) or both",
                )
        if not (size or quality):
            raise PriceError(source, f"{where} image_by {key!r}: name a size or a quality")
        found.append(((size, quality), _price(source, f"{where} image_by {key!r}", value)))
    return tuple(found)
