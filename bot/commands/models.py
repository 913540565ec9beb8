"""`models` lists the gateway's models by vendor; `model` shows or sets the channel's model."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Awaitable, Callable, Collection, Sequence
from itertools import groupby

from bot.commands import Command
from bot.context import Context
from bot.errors import UserFacingError
from bot.events import Place
from bot.gateway.client import Gateway, GatewayError, ModelInfo
from bot.i18n import N_, nt, t
from bot.services import Services
from storage.base import ChannelSettings

PAGE_SIZE = 60
_RESET_WORDS = ("default", "reset", "clear")


def _parse_listing_args(args: str) -> tuple[str, int]:
    words = args.split()
    page = 1
    if words and words[-1].isdigit():
        page = int(words.pop())
    return " ".join(words).lower(), page


def render_models(
    models: Sequence[ModelInfo],
    query: str,
    page: int,
    current: str,
    *,
    barred: Collection[str] = (),
    show_barred: bool = False,
) -> str:
    """One page of the listing. Models in `barred` may not be used here: hidden, or (for
    admins, `show_barred`) listed with a ⛔ mark."""
    matches = sorted(
        (
            m
            for m in models
            if (query in m.id.lower() or query == m.vendor.lower())
            and (show_barred or m.id not in barred)
        ),
        key=lambda m: (m.vendor, m.id),
    )
    if not matches:
        if barred and not show_barred:
            raise UserFacingError(
                t(
                    "No model this channel may use matches `{query}`. Try `models` for the list.",
                    query=query,
                )
            )
        raise UserFacingError(
            t("No model matches `{query}`. Try `models` for the full list.", query=query)
        )
    pages = (len(matches) + PAGE_SIZE - 1) // PAGE_SIZE
    if not 1 <= page <= pages:
        raise UserFacingError(nt("There is {n} page.", "There are {n} pages.", pages))
    shown = matches[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    heading = _heading(len(matches), query, usable_only=bool(barred) and not show_barred)
    lines = [
        t(
            "**{heading}**, page {page}/{pages}. This channel uses `{model}`.",
            heading=heading,
            page=page,
            pages=pages,
            model=current,
        )
    ]
    if show_barred and barred:
        lines.append(t("⛔ marks models this channel may not use (only admins see them)."))
    for vendor, group in groupby(shown, key=lambda m: m.vendor):
        lines.append(
            f"**{vendor}**: "
            + ", ".join(f"⛔`{m.id}`" if m.id in barred else f"`{m.id}`" for m in group)
        )
    if page < pages:
        command = f"models {query + ' ' if query else ''}{page + 1}"
        lines.append(t("Next page: `{command}`", command=command))
    return "\n".join(lines)


def _heading(count: int, query: str, *, usable_only: bool) -> str:
    if usable_only and query:
        return nt(
            "{n} model this channel may use matching `{query}`",
            "{n} models this channel may use matching `{query}`",
            count,
            query=query,
        )
    if usable_only:
        return nt("{n} model this channel may use", "{n} models this channel may use", count)
    if query:
        return nt(
            "{n} model matching `{query}`", "{n} models matching `{query}`", count, query=query
        )
    return nt("{n} model", "{n} models", count)


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
    if close:
        return t(
            "The gateway has no model `{name}`. Did you mean {names}? See `models` for the list.",
            name=name,
            names=", ".join(f"`{c}`" for c in close),
        )
    return t("The gateway has no model `{name}`. See `models` for the list.", name=name)


def usable_model_ids(services: Services) -> Callable[[Place], Awaitable[list[str]]]:
    """Model ids a place may use, read per call (for Discord's autocomplete)."""

    async def ids(place: Place) -> list[str]:
        rules = await services.store.access_rules(place.platform, place.workspace, place.channel)
        policy = services.config.governance
        return [
            m.id for m in await services.gateway.models() if not policy.model_problem(m.id, rules)
        ]

    return ids


async def run_models(ctx: Context) -> None:
    query, page = _parse_listing_args(ctx.args)
    settings = await ctx.settings()
    current = settings.model or ctx.services.config.default_model
    models = await ctx.services.gateway.models()
    policy, rules = ctx.services.config.governance, await ctx.access()
    barred = {m.id for m in models if policy.model_problem(m.id, rules)}
    text = render_models(models, query, page, current, barred=barred, show_barred=ctx.is_admin)
    await ctx.reply(text, ephemeral=True)


async def _set_model(ctx: Context, model: str | None) -> None:
    def apply(current: ChannelSettings) -> ChannelSettings:
        return dataclasses.replace(current, model=model)

    await ctx.services.store.update_channel_settings(ctx.req.place.channel_key, apply)


async def run_model(ctx: Context) -> None:
    settings = await ctx.settings()
    default = ctx.services.config.default_model
    name = ctx.args.strip()
    if not name:
        current = settings.model or default
        if settings.model:
            text = t("This channel uses `{model}` (set for this channel).", model=current)
        else:
            text = t("This channel uses `{model}` (the service default).", model=current)
        policy = ctx.services.config.governance
        if policy.model_problem(current, await ctx.access()):
            text += " " + t(
                "It may not be used here any more: an admin can pick another with `model`."
            )
        await ctx.reply(text)
        return
    if not ctx.is_admin:
        raise UserFacingError(t("Only admins can change this channel's model."))
    if name.lower() in _RESET_WORDS:
        await ctx.check_model(default)
        await _set_model(ctx, None)
        await ctx.reply(t("This channel now uses the default model `{model}`.", model=default))
        return
    known = {m.id.lower(): m.id for m in await ctx.services.gateway.models()}
    if name.lower() not in known:
        raise UserFacingError(await unknown_model_message(ctx.services.gateway, name))
    chosen = known[name.lower()]
    await ctx.check_model(chosen)
    await _set_model(ctx, chosen)
    await ctx.reply(t("This channel now uses `{model}`.", model=chosen))


MODELS = Command(
    name="models",
    summary=N_("List the gateway's models by vendor, optionally filtered."),
    usage="models [filter] [page]",
    run=run_models,
    private=True,
)
MODEL = Command(
    name="model",
    summary=N_("Show this channel's model, or set it (admins; `model default` to reset)."),
    usage="model [name|default]",
    run=run_model,
)
