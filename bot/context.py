"""The typed context a command runs with: its request, arguments and capabilities."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bot.adapter import Adapter
from bot.errors import PlatformRateLimited
from bot.events import Attachment, Posted, Request
from bot.ops.scope import mark_visible
from bot.quota.meter import Meter, metered
from bot.services import Services
from bot.streaming.reply import StreamingReply
from storage.base import Amounts, ChannelSettings, Charge

UPLOAD_ATTEMPTS = 3
MAX_UPLOAD_WAIT = 30.0


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
        posted = await self.adapter.reply(self.req, text, ephemeral=ephemeral)
        mark_visible()
        return posted

    def stream(self) -> StreamingReply:
        return StreamingReply(self.adapter, self.req, self.services.budgets)

    async def upload(self, data: bytes, filename: str, text: str = "") -> Posted:
        # Uploads are rare and precious (an image already paid for): wait out a 429 or two.
        for _ in range(UPLOAD_ATTEMPTS - 1):
            try:
                posted = await self.adapter.upload(self.req, data, filename, text)
                break
            except PlatformRateLimited as limited:
                await asyncio.sleep(min(limited.retry_after, MAX_UPLOAD_WAIT))
        else:
            posted = await self.adapter.upload(self.req, data, filename, text)
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
