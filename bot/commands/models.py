"""`models` lists the gateway's models by vendor; `model` shows or sets the channel's model."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from itertools import groupby

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.gateway.client import Gateway, GatewayError, ModelInfo
from storage.base import ChannelSettings

PAGE_SIZE = 60
_RESET_WORDS = ("default", "reset", "clear")


def _parse_listing_args(args: str) -> tuple[str, int]:
    words = args.split()
    page = 1
    if words and words[-1].isdigit():
        page = int(words.pop())
    return " ".join(words).lower(), page


def render_models(models: Sequence[ModelInfo], query: str, page: int, current: str) -> str:
    matches = sorted(
        (m for m in models if query in m.id.lower() or query == m.vendor.lower()),
        key=lambda m: (m.vendor, m.id),
    )
    if not matches:
        raise UserFacingError(f"No model matches `{query}`. Try `models` for the full list.")
    pages = (len(matches) + PAGE_SIZE - 1) // PAGE_SIZE
    if not 1 <= page <= pages:
        raise UserFacingError(f"There {'is' if pages == 1 else 'are'} {pages} page(s).")
    shown = matches[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    heading = f"{len(matches)} models" + (f" matching `{query}`" if query else "")
    lines = [f"**{heading}**, page {page}/{pages}. This channel uses `{current}`."]
    for vendor, group in groupby(shown, key=lambda m: m.vendor):
        lines.append(f"**{vendor}**: " + ", ".join(f"`{m.id}`" for m in group))
    if page < pages:
        lines.append(f"Next page: `models {query + ' ' if query else ''}{page + 1}`")
    return "\n".join(lines)


async def explain_gateway_error(gateway: Gateway, error: GatewayError) -> str:
    """The error's plain sentence; for an unknown model, with the closest model names."""
    if error.code != "model_not_found" or not error.model:
        return error.user_message()
    try:
        return await unknown_model_message(gateway, error.model)
    except GatewayError:
        return error.user_message()


async def unknown_model_message(gateway: Gateway, name: str) -> str:
    ids = [m.id for m in await gateway.models()]
    close = difflib.get_close_matches(name, ids, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
    return f"The gateway has no model `{name}`.{hint} See `models` for the list."


async def run_models(ctx: Context) -> None:
    query, page = _parse_listing_args(ctx.args)
    settings = await ctx.settings()
    current = settings.model or ctx.services.config.default_model
    models = await ctx.services.gateway.models()
    await ctx.reply(render_models(models, query, page, current), ephemeral=True)


async def _set_model(ctx: Context, model: str | None) -> None:
    def apply(current: ChannelSettings) -> ChannelSettings:
        return dataclasses.replace(current, model=model)

    await ctx.services.store.update_channel_settings(ctx.req.place.channel_key, apply)


async def run_model(ctx: Context) -> None:
    settings = await ctx.settings()
    default = ctx.services.config.default_model
    name = ctx.args.strip()
    if not name:
        source = "set for this channel" if settings.model else "the service default"
        await ctx.reply(f"This channel uses `{settings.model or default}` ({source}).")
        return
    if not ctx.is_admin:
        raise UserFacingError("Only admins can change this channel's model.")
    if name.lower() in _RESET_WORDS:
        await _set_model(ctx, None)
        await ctx.reply(f"This channel now uses the default model `{default}`.")
        return
    known = {m.id.lower(): m.id for m in await ctx.services.gateway.models()}
    if name.lower() not in known:
        raise UserFacingError(await unknown_model_message(ctx.services.gateway, name))
    chosen = known[name.lower()]
    await _set_model(ctx, chosen)
    await ctx.reply(f"This channel now uses `{chosen}`.")


MODELS = Command(
    name="models",
    summary="List the gateway's models by vendor, optionally filtered.",
    usage="models [filter] [page]",
    run=run_models,
    private=True,
)
MODEL = Command(
    name="model",
    summary="Show this channel's model, or set it (admins; `model default` to reset).",
    usage="model [name|default]",
    run=run_model,
)
