"""The typed context a command runs with: its request, arguments and capabilities."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bot.adapter import Adapter
from bot.events import Attachment, Posted, Request
from bot.ops.scope import mark_visible
from bot.quota.meter import Meter, metered
from bot.services import Services
from bot.streaming.reply import StreamingReply
from bot.streaming.writes import send, upload
from storage.base import Amounts, ChannelSettings, Charge


@dataclass(slots=True)
class Context:
    req: Request
    # The command's name as routed, and the text after it.
    command: str
    args: str
    services: Services
    adapter: Adapter

    @property
    def is_admin(self) -> bool:
        """Platform admins, plus anyone on the CHATOPS_ADMINS allowlist (user id or name)."""
        user = self.req.user
        admins = self.services.config.admins
        return user.is_admin or user.id in admins or user.name in admins

    async def settings(self) -> ChannelSettings:
        return await self.services.store.channel_settings(self.req.place.channel_key)

    async def reply(self, text: str, *, ephemeral: bool = False) -> Posted:
        """A one-shot message, through the place's post budget (429s waited out)."""
        posted = await send(
            self.adapter, self.services.budgets, self.req, text, ephemeral=ephemeral
        )
        mark_visible()
        return posted

    def stream(self) -> StreamingReply:
        return StreamingReply(self.adapter, self.req, self.services.budgets)

    async def upload(self, data: bytes, filename: str, text: str = "") -> Posted:
        """A file as a new message, through the post budget like any other message."""
        posted = await upload(self.adapter, self.services.budgets, self.req, data, filename, text)
        mark_visible()
        return posted

    async def download(self, attachment: Attachment, max_bytes: int) -> bytes:
        return await self.adapter.download(attachment, max_bytes)

    def metered(self, model: str, estimate: Amounts) -> AbstractAsyncContextManager[Meter]:
        place, user = self.req.place, self.req.user
        charge = Charge(
            place.platform, place.channel_key, user.id, self.command, model, user_name=user.name
        )
        return metered(self.services.store, charge, estimate)
