"""Which models a place may use: allow-lists per channel, workspace and operator default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.governance.globs import any_matches, nearest
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
        return "every model the gateway offers (no allow-list)"
    where = {
        "channel": "set for this channel",
        "workspace": "set for this workspace",
        "default": "the service default, CHATOPS_MODELS_ALLOW",
    }[models.source]
    return f"{', '.join(f'`{g}`' for g in models.globs)} ({where})"


def model_refusal(
    model: str, problem: str, models: ModelList, usable: Sequence[str], currency: str = ""
) -> str:
    """Why `model` cannot be used here, with the nearest models that can."""
    if problem == "unpriced":
        head = (
            f"`{model}` has no price in the price table{f' ({currency})' if currency else ''}, "
            "so it cannot be used: spend here is metered."
        )
    else:
        head = f"`{model}` is not allowed in this channel; allowed: {describe(models)}."
    close = nearest(model, usable)
    if not close:
        return f"{head} No model can be used here right now; please ask an admin."
    return f"{head} Nearest allowed: {', '.join(f'`{c}`' for c in close)}."
