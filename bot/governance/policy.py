"""The governance policy: where the bot answers, which models a place may use, their prices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.envvars import flag
from bot.errors import ConfigError
from bot.events import Place
from bot.governance.channels import BlockedReply, ChannelDefaults, Refused, verdict
from bot.governance.globs import any_matches, check_glob, glob_matches
from bot.governance.models import ModelList, model_list
from bot.governance.prices import VARIABLE as PRICES_VARIABLE
from bot.governance.prices import PriceTable, load_prices
from storage.base import AccessRules, Rates

ModelProblem = Literal["", "not_allowed", "unpriced"]


@dataclass(frozen=True, slots=True)
class Policy:
    channels: ChannelDefaults = field(default_factory=ChannelDefaults)
    # CHATOPS_MODELS_ALLOW: the allow-list where no workspace or channel sets one.
    models_allow: tuple[str, ...] = ()
    # None: no price table, so spend is not metered (every cost is 0).
    prices: PriceTable | None = None

    @property
    def currency(self) -> str:
        return self.prices.currency if self.prices is not None else ""

    def verdict(self, place: Place, rules: AccessRules) -> Refused:
        return verdict(self.channels, place, rules)

    def model_list(self, rules: AccessRules) -> ModelList:
        return model_list(self.models_allow, rules)

    def model_problem(self, model: str, rules: AccessRules) -> ModelProblem:
        """Why `model` may not be used where `rules` apply; "" when it may. With a price
        table, a model it does not price is not usable either: no spend goes unmetered."""
        if not self.model_list(rules).allows(model):
            return "not_allowed"
        if self.prices is not None and self.prices.price_of(model) is None:
            return "unpriced"
        return ""

    def rates(self, model: str, *, size: str | None = None, quality: str | None = None) -> Rates:
        """The rates a request to `model` is charged at (zero without a price table)."""
        if self.prices is None:
            return Rates()
        return self.prices.rates(model, size=size, quality=quality) or Rates(self.currency)

    def check_default(self, variable: str, model: str) -> None:
        """The service default chat model must itself be usable (start-up, one clear line)."""
        if self.models_allow and not any_matches(self.models_allow, model):
            raise ConfigError(
                variable,
                f"{model!r} is not allowed by CHATOPS_MODELS_ALLOW "
                f"({', '.join(self.models_allow)}); allow it or choose another default",
            )
        if self.prices is not None and self.prices.price_of(model) is None:
            raise ConfigError(
                variable,
                f"{model!r} has no price in {self.prices.source} ({PRICES_VARIABLE}); "
                "add an entry for it",
            )

    def unusable_defaults(self, models: Mapping[str, str]) -> list[str]:
        """Warnings for the image and transcription defaults no place can use by default."""
        return [
            f"{variable}={model!r} is {'not allowed' if problem == 'not_allowed' else 'unpriced'}"
            " by default; that feature is off unless a workspace or channel allows it"
            for variable, model in models.items()
            if (problem := self.model_problem(model, AccessRules()))
        ]

    def check_known(self, model_ids: Sequence[str]) -> None:
        """Every glob of CHATOPS_MODELS_ALLOW and of the price table must match a model the
        gateway lists (checked at start-up when the list can be fetched)."""
        for glob in self.models_allow:
            if not any(glob_matches(glob, m) for m in model_ids):
                raise ConfigError(
                    "CHATOPS_MODELS_ALLOW",
                    f"{glob!r} matches no model the gateway lists; fix the name or remove it",
                )
        if self.prices is not None:
            self.prices.check_known(model_ids)


def policy_from_env(env: Mapping[str, str]) -> Policy:
    """CHATOPS_CHANNELS_ALLOW/_BLOCK, CHATOPS_DMS, CHATOPS_BLOCKED_REPLY, CHATOPS_MODELS_ALLOW
    and CHATOPS_PRICES."""
    reply = env.get("CHATOPS_BLOCKED_REPLY", "").strip().lower() or "notice"
    if reply not in ("notice", "silent"):
        raise ConfigError("CHATOPS_BLOCKED_REPLY", f"{reply!r} is not notice or silent")
    blocked_reply: BlockedReply = "silent" if reply == "silent" else "notice"
    channels = ChannelDefaults(
        allow=_entries(env, "CHATOPS_CHANNELS_ALLOW"),
        block=_entries(env, "CHATOPS_CHANNELS_BLOCK"),
        dms=flag(env, "CHATOPS_DMS", default=True),
        blocked_reply=blocked_reply,
    )
    models = _entries(env, "CHATOPS_MODELS_ALLOW")
    for glob in models:
        problem = check_glob(glob)
        if problem:
            raise ConfigError("CHATOPS_MODELS_ALLOW", f"{glob!r}: {problem}")
    path = env.get(PRICES_VARIABLE, "").strip()
    return Policy(channels, models, load_prices(path) if path else None)


def _entries(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma- or space-separated list; each entry at most 200 characters."""
    raw = env.get(name, "").replace(",", " ").split()
    for entry in raw:
        if len(entry) > 200:
            raise ConfigError(name, f"{entry[:40]!r}… is too long for a list entry")
    return tuple(dict.fromkeys(raw))
