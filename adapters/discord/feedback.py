"""👍/👎 buttons on Discord replies: persistent (dynamic) components that outlive restarts."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

# custom_id of each button: the vote and the reply's key (the ledger row of its answer).
TEMPLATE = r"chatops:fb:(?P<vote>up|down):(?P<key>[0-9]+)"

OnVote = Callable[[discord.Interaction[Any], str, str], Awaitable[None]]


class FeedbackButtons:
    """The two buttons of one reply, and the class the client recognizes them by after any
    restart (discord.py's dynamic items); clicks go to `on_vote(interaction, vote, key)`."""

    def __init__(self, on_vote: OnVote) -> None:
        class Button(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
            def __init__(self, vote: str, key: str) -> None:
                super().__init__(
                    discord.ui.Button(
                        style=discord.ButtonStyle.secondary,
                        emoji="👍" if vote == "up" else "👎",
                        custom_id=f"chatops:fb:{vote}:{key}",
                    )
                )
                self.vote, self.key = vote, key

            @classmethod
            async def from_custom_id(
                cls,
                interaction: discord.Interaction[Any],
                item: discord.ui.Item[Any],
                match: re.Match[str],
                /,
            ) -> Button:
                return cls(match["vote"], match["key"])

            async def callback(self, interaction: discord.Interaction[Any]) -> None:
                await on_vote(interaction, self.vote, self.key)

        self._button = Button
        self.item_class: type[discord.ui.DynamicItem[Any]] = Button

    def view(self, key: str) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        for vote in ("up", "down"):
            view.add_item(self._button(vote, key))
        return view
