"""Writes that must happen: wait for their budget, retry platform 429s after Retry-After."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.adapter import Adapter
from bot.errors import PlatformRateLimited
from bot.events import Posted, Request
from bot.streaming.budgets import Budgets, EditBudget

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a one-shot message (a refusal, command output, a notice) may take to get through
# rate limits before its caller hears PlatformRateLimited. A streamed reply's final text has
# no such deadline: it always goes out (see StreamingReply).
FINAL_DEADLINE = 60.0


class Overdue(TimeoutError):
    """Rate limits kept a required write out until its deadline (not a network timeout)."""


async def required(
    call: Callable[[], Awaitable[T]],
    budget: EditBudget,
    deadline: float | None = None,
    *,
    have_token: bool = False,
) -> T:
    """Take a token from `budget` (unless the caller holds one), then `call()`; on a 429,
    block the budget's whole scope for Retry-After and try again, until `deadline`
    (loop time; Overdue past it), or for as long as it takes when `deadline` is None."""
    loop = asyncio.get_running_loop()
    while True:
        if have_token:
            have_token = False
        else:
            try:
                async with asyncio.timeout_at(deadline):
                    await budget.acquire()
            except TimeoutError:
                raise Overdue from None
        try:
            return await call()
        except PlatformRateLimited as e:
            # The penalty makes the next acquire wait out Retry-After for the whole scope.
            budget.penalize(e.retry_after)
            if deadline is not None and loop.time() + e.retry_after > deadline:
                raise Overdue from e
            log.info("platform 429; retrying in %.2f s", e.retry_after)


async def send(
    adapter: Adapter,
    budgets: Budgets,
    req: Request,
    text: str,
    *,
    ephemeral: bool = False,
    within: float = FINAL_DEADLINE,
) -> Posted:
    """A one-shot message (refusal, error, command output) through the place's post budget.

    Raises PlatformRateLimited when rate limits kept it out for `within` seconds.
    """
    budget = budgets.for_posts(adapter.limits, req.place)
    return await _within(
        lambda: adapter.reply(req, text, ephemeral=ephemeral), budget, within, adapter, req
    )


async def upload(
    adapter: Adapter,
    budgets: Budgets,
    req: Request,
    data: bytes,
    filename: str,
    text: str = "",
    *,
    within: float = FINAL_DEADLINE,
) -> Posted:
    """A file (with its comment) as a new message, through the place's post budget."""
    budget = budgets.for_posts(adapter.limits, req.place)
    return await _within(
        lambda: adapter.upload(req, data, filename, text), budget, within, adapter, req
    )


async def _within(
    call: Callable[[], Awaitable[Posted]],
    budget: EditBudget,
    within: float,
    adapter: Adapter,
    req: Request,
) -> Posted:
    deadline = asyncio.get_running_loop().time() + within
    try:
        return await required(call, budget, deadline)
    except Overdue:
        log.warning(
            "%s: a message to %s was kept out by rate limits for %.0f s",
            adapter.name,
            req.place.channel_key,
            within,
        )
        raise PlatformRateLimited(budget.eta()) from None
