"""Which models a place may use: allow-lists per channel, workspace and operator default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.governance.globs import any_matches, nearest
from bot.i18n import t
from storage.base import AccessRules

ListSource = Literal["channel", "workspace", "default", "none"]


@dataclass(frozen=True, slots=True)
class ModelList:
    """The allow-list in force in one place. No globs (source "none") allows every model."""

    globs: tuple[str, ...]
    source: ListSource

    def allows(self, model: str) -> bool:
        return not self.globs or any_matches(self.globs, model)


def model_list(default: tuple[str, ...], rules: AccessRules) -> ModelList:
    """The most specific list wins: the channel's, else the workspace's, else the default."""
    channel = rules.patterns("model_allow", channel=True)
    if channel:
        return ModelList(channel, "channel")
    workspace = rules.patterns("model_allow", channel=False)
    if workspace:
        return ModelList(workspace, "workspace")
    if default:
        return ModelList(default, "default")
    return ModelList((), "none")


def describe(models: ModelList) -> str:
    """ "set for this channel: `gpt-4o*`, `deepseek-*`" and the like."""
    if models.source == "none":
        return t("every model the gateway offers (no allow-list)")
    where = {
        "channel": t("set for this channel"),
        "workspace": t("set for this workspace"),
        "default": t("the service default, CHATOPS_MODELS_ALLOW"),
    }[models.source]
    return f"{', '.join(f'`{g}`' for g in models.globs)} ({where})"


def model_refusal(
    model: str, problem: str, models: ModelList, usable: Sequence[str], currency: str = ""
) -> str:
    """Why `model` cannot be used here, with the nearest models that can."""
    if problem == "unpriced" and currency:
        head = t(
            "`{model}` has no price in the price table ({currency}), so it cannot be used: "
            "spend here is metered.",
            model=model,
            currency=currency,
        )
    elif problem == "unpriced":
        head = t(
            "`{model}` has no price in the price table, so it cannot be used: spend here is "
            "metered.",
            model=model,
        )
    else:
        head = t(
            "`{model}` is not allowed in this channel; allowed: {models}.",
            model=model,
            models=describe(models),
        )
    close = nearest(model, usable)
    if not close:
        return head + " " + t("No model can be used here right now; please ask an admin.")
    names = ", ".join(f"`{c}`" for c in close)
    return head + " " + t("Nearest allowed: {names}.", names=names)
