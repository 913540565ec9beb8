"""Where the bot answers: channel allow and block lists, direct messages, the refusal."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from bot.events import Place
from bot.i18n import t
from storage.base import AccessRules

BlockedReply = Literal["notice", "silent"]
Refused = Literal["", "blocked", "not_allowed", "dms_off"]


@dataclass(frozen=True, slots=True)
class ChannelDefaults:
    """The operator's defaults (CHATOPS_CHANNELS_*, CHATOPS_DMS, CHATOPS_BLOCKED_REPLY)."""

    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    dms: bool = True
    blocked_reply: BlockedReply = "notice"


@dataclass(frozen=True, slots=True)
class ChannelLists:
    """The allow and block lists in force in one workspace, and where each came from."""

    allow: tuple[str, ...]
    block: tuple[str, ...]
    allow_source: Literal["workspace", "default"]
    block_source: Literal["workspace", "default"]


def lists_for(defaults: ChannelDefaults, rules: AccessRules) -> ChannelLists:
    """A workspace's own list replaces the operator's default of the same kind."""
    allow = rules.patterns("channel_allow", channel=False)
    block = rules.patterns("channel_block", channel=False)
    return ChannelLists(
        allow=allow or defaults.allow,
        block=block or defaults.block,
        allow_source="workspace" if allow else "default",
        block_source="workspace" if block else "default",
    )


def names_channel(entry: str, place: Place) -> bool:
    """Whether a list entry names this channel: its id, its name (with or without '#'), a
    glob over either (`proj-*`), or `platform:id` to keep an entry to one platform."""
    wanted = entry.strip().lower()
    platform, sep, rest = wanted.partition(":")
    if sep:
        if platform != place.platform.lower():
            return False
        wanted = rest
    wanted = wanted.removeprefix("#")
    if not wanted:
        return False
    candidates = [place.channel.lower()]
    if place.name:
        candidates.append(place.name.lower().removeprefix("#"))
    return any(fnmatchcase(c, wanted) for c in candidates)


def verdict(defaults: ChannelDefaults, place: Place, rules: AccessRules) -> Refused:
    """ "" when the bot may answer here, else why not. Block beats allow; a direct message is
    governed by CHATOPS_DMS (and an explicit block), not by the channel allow list."""
    if place.direct and not defaults.dms:
        return "dms_off"
    lists = lists_for(defaults, rules)
    if any(names_channel(e, place) for e in lists.block):
        return "blocked"
    if place.direct:
        return ""
    if lists.allow and not any(names_channel(e, place) for e in lists.allow):
        return "not_allowed"
    return ""


def refusal_text(reason: Refused) -> str:
    """The one short, polite line a refused request gets."""
    if reason == "dms_off":
        return t(
            "Sorry, I don't take direct messages here. Please mention me in a channel where "
            "I'm enabled."
        )
    return t(
        "Sorry, I'm not enabled in this channel, so I won't answer here. Please ask in a "
        "channel where I am (admins can change this with `channels`)."
    )
