"""The typed context a command runs with: its request, arguments and capabilities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bot.adapter import Adapter
from bot.errors import UserFacingError
from bot.events import Attachment, Posted, Request
from bot.gateway.errors import GatewayError
from bot.governance.models import model_refusal
from bot.ops.scope import mark_visible
from bot.quota.meter import Meter, metered
from bot.services import Services
from bot.streaming.reply import StreamingReply
from bot.streaming.writes import send, upload
from storage.base import AccessRules, Amounts, ChannelSettings, Charge


@dataclass(slots=True)
class Context:
    req: Request
    # The command's name as routed, and the text after it.
    command: str
    args: str
    services: Services
    adapter: Adapter
    # The access rules of this request's workspace and channel, read once (see access()).
    rules: AccessRules | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        """Platform admins, plus anyone on the CHATOPS_ADMINS allowlist (user id or name)."""
        user = self.req.user
        admins = self.services.config.admins
        return user.is_admin or user.id in admins or user.name in admins

    async def access(self) -> AccessRules:
        """The request's access rules, read from the store on first use: a change made by an
        admin anywhere applies from the next request on, on every replica."""
        if self.rules is None:
            place = self.req.place
            self.rules = await self.services.store.access_rules(
                place.platform, place.workspace, place.channel
            )
        return self.rules

    async def usable_models(self) -> list[str]:
        """Ids of the gateway's models this place may use (allowed and, with prices, priced)."""
        policy, rules = self.services.config.governance, await self.access()
        models = await self.services.gateway.models()
        return [m.id for m in models if not policy.model_problem(m.id, rules)]

    async def check_model(self, model: str) -> None:
        """Refuse a model this place may not use, naming the nearest ones it may."""
        policy, rules = self.services.config.governance, await self.access()
        problem = policy.model_problem(model, rules)
        if not problem:
            return
        try:
            usable = await self.usable_models()
        except GatewayError:
            usable = []  # the refusal still stands; it only lacks suggestions
        raise UserFacingError(
            model_refusal(model, problem, policy.model_list(rules), usable, policy.currency)
        )

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

    @asynccontextmanager
    async def metered(
        self,
        model: str,
        estimate: Amounts,
        *,
        size: str | None = None,
        quality: str | None = None,
        follow_up: bool = False,
    ) -> AsyncIterator[Meter]:
        """Check that this place may use `model`, then hold `estimate` (and its cost at the
        model's price) against the quota until the call is settled. Every gateway call goes
        through here, so chat, images, transcription and tool rounds all obey the policy."""
        await self.check_model(model)
        place, user = self.req.place, self.req.user
        rates = self.services.config.governance.rates(model, size=size, quality=quality)
        charge = Charge(
            place.platform,
            place.channel_key,
            user.id,
            self.command,
            model,
            user_name=user.name,
            rates=rates,
            follow_up=follow_up,
        )
        async with metered(self.services.store, charge, estimate) as meter:
            yield meter
