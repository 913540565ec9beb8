"""Built-in tools from the bot's own abilities: images, models, quota, settings, transcription."""

from __future__ import annotations

from dataclasses import replace
from itertools import groupby
from typing import Any

from bot.audio.pipeline import display_name, format_duration, prepare_audio, transcribe_prepared
from bot.commands.image import MAX_IMAGES, image_extension
from bot.commands.memory import format_hits, search_channel
from bot.commands.settings import describe
from bot.context import Context
from bot.errors import TooLarge
from bot.events import Attachment
from bot.i18n import N_, t
from bot.quota.view import format_quota
from bot.tools.tool import Tool, ToolError
from storage.base import Amounts

# Most model ids a list_models answer carries (the gateway has 200+).
MAX_LISTED = 120
SIZE_PATTERN = r"^(auto|\d{3,4}x\d{3,4})$"


async def generate_image(ctx: Context, args: dict[str, Any]) -> str:
    prompt = str(args["prompt"]).strip()
    if not prompt:
        raise ToolError(t("the prompt is empty"), "invalid")
    size = str(args.get("size") or "1024x1024")
    count = int(args.get("n") or 1)
    model = ctx.services.config.image_model
    # Charged as the `image` command is: one request, the images made, on the image quota.
    images_ctx = replace(ctx, command="image")
    estimate = Amounts(requests=1, images=count)
    async with images_ctx.metered(model, estimate, size=size) as meter:
        images = await ctx.services.gateway.image(model, prompt, size=size, n=count)
        meter.actual = Amounts(requests=1, images=len(images))
    names = []
    for index, data in enumerate(images, start=1):
        name = f"image-{index}.{image_extension(data)}"
        await ctx.upload(data, name, text=f"“{prompt}”")
        names.append(name)
    return (
        f"Generated {len(images)} image(s) with {model} ({size}) and posted them in the "
        f"conversation as {', '.join(names)}; the user can already see them."
    )


async def list_models(ctx: Context, args: dict[str, Any]) -> str:
    query = str(args.get("filter") or "").strip().lower()
    settings = await ctx.settings()
    current = settings.model or ctx.services.config.default_model
    # Only what this channel may use (its model allow-list, and prices when metered).
    policy, rules = ctx.services.config.governance, await ctx.access()
    models = [
        m
        for m in await ctx.services.gateway.models()
        if (not query or query in m.id.lower() or query == m.vendor.lower())
        and not policy.model_problem(m.id, rules)
    ]
    if not models:
        return f"No model matches {query!r}. This channel uses {current}."
    models.sort(key=lambda m: (m.vendor, m.id))
    shown = models[:MAX_LISTED]
    lines = [f"{len(models)} models" + (f" matching {query!r}" if query else "") + "."]
    for vendor, group in groupby(shown, key=lambda m: m.vendor):
        lines.append(f"{vendor}: " + ", ".join(m.id for m in group))
    if len(models) > len(shown):
        lines.append(f"(first {len(shown)} shown; pass a filter to narrow the list)")
    lines.append(f"This channel uses {current}.")
    return "\n".join(lines)


async def channel_quota(ctx: Context, args: dict[str, Any]) -> str:
    status = await ctx.services.store.quota_status(ctx.req.place.channel_key)
    return format_quota(status, ctx.services.clock(), ctx.services.config.governance.currency)


async def channel_settings(ctx: Context, args: dict[str, Any]) -> str:
    return describe(await ctx.settings(), ctx)


async def search_channel_memory(ctx: Context, args: dict[str, Any]) -> str:
    question = str(args["query"]).strip()
    if not question:
        raise ToolError(t("the query is empty"), "invalid")
    hits = await search_channel(ctx, question)
    if not hits:
        return f"Nothing in this channel's memory matches {question!r}."
    return (
        "Passages from this channel's memory, nearest first (cite the links when you use them):\n"
        + format_hits(hits)
    )


def _audio(ctx: Context) -> list[Attachment]:
    return [a for a in ctx.req.attachments if a.kind == "audio"]


async def transcribe_attachment(ctx: Context, args: dict[str, Any]) -> str:
    wanted = str(args["id"])
    audio = _audio(ctx)
    found = next((a for a in audio if wanted in (a.id, a.filename)), None)
    if found is None:
        known = ", ".join(f"{a.id} ({a.filename})" for a in audio) or "none"
        raise ToolError(
            t(
                "there is no audio attachment {wanted}; the ones here: {known}",
                wanted=repr(wanted),
                known=known,
            )
        )
    limits = ctx.services.config.audio
    cap = limits.max_download_bytes
    name = display_name(found.filename)
    if found.size > cap:
        raise ToolError(_too_large(name, cap))
    try:
        data = await ctx.download(found, cap)
    except TooLarge:
        raise ToolError(_too_large(name, cap)) from None
    prepared = await prepare_audio(data, found.filename, limits=limits)
    model = ctx.services.config.transcribe_model
    seconds = prepared.duration_seconds
    audio_ctx = replace(ctx, command="transcribe")
    async with audio_ctx.metered(model, Amounts(requests=1, audio_seconds=seconds)) as meter:
        text = await transcribe_prepared(
            ctx.services.gateway, model, prepared, concurrency=limits.concurrency
        )
        meter.actual = Amounts(requests=1, audio_seconds=seconds)
    return f"Transcript of {name} ({format_duration(seconds)}):\n{text or '(no speech found)'}"


def builtin_tools(ctx: Context) -> list[Tool]:
    """The built-ins for this request (transcription only when it carries audio)."""
    config = ctx.services.config
    tools = [
        Tool.make(
            "generate_image",
            "Generate images from a text prompt and post them into this conversation "
            "(charged to the channel's image quota).",
            {
                "type": "object",
                "properties": {
                    "prompt": {"type": "string", "minLength": 1, "maxLength": 4000},
                    "size": {
                        "type": "string",
                        "pattern": SIZE_PATTERN,
                        "description": "WIDTHxHEIGHT such as 1024x1024, 1536x1024, 1024x1536",
                    },
                    "n": {"type": "integer", "minimum": 1, "maximum": MAX_IMAGES},
                },
                "required": ["prompt"],
                "additionalProperties": False,
            },
            generate_image,
            doing=N_("generating an image"),
            timeout=config.tools.image_timeout,
        ),
        Tool.make(
            "list_models",
            "List the models this channel may use, optionally filtered by a substring or vendor.",
            {
                "type": "object",
                "properties": {"filter": {"type": "string", "maxLength": 100}},
                "additionalProperties": False,
            },
            list_models,
            doing=N_("listing models"),
        ),
        Tool.make(
            "channel_quota",
            "This channel's usage against its quota limits, with resets and top users.",
            {"type": "object", "properties": {}, "additionalProperties": False},
            channel_quota,
            doing=N_("reading the channel's quota"),
        ),
        Tool.make(
            "channel_settings",
            "This channel's settings: model, persona, temperature, reply cap, auto-transcribe.",
            {"type": "object", "properties": {}, "additionalProperties": False},
            channel_settings,
            doing=N_("reading the channel's settings"),
        ),
    ]
    memory = ctx.services.memory
    if memory is not None and memory.watching(ctx.req.place.channel_key):
        tools.append(
            Tool.make(
                "search_channel",
                "Search what people said earlier in this channel (its memory): messages, "
                "files and answers, with who said it, when, and a link.",
                {
                    "type": "object",
                    "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 1000}},
                    "required": ["query"],
                    "additionalProperties": False,
                },
                search_channel_memory,
                doing=N_("searching the channel's memory"),
            )
        )
    audio = _audio(ctx)
    if audio:
        listed = "; ".join(f"id {a.id!r}: {a.filename}" for a in audio)
        tools.append(
            Tool.make(
                "transcribe_attachment",
                f"Transcribe an audio attachment of this conversation. Attachments: {listed}.",
                {
                    "type": "object",
                    "properties": {"id": {"type": "string", "enum": [a.id for a in audio]}},
                    "required": ["id"],
                    "additionalProperties": False,
                },
                transcribe_attachment,
                doing=N_("transcribing an attachment"),
                timeout=max(config.tools.timeout, config.audio.tool_timeout_seconds * 2),
            )
        )
    return tools


def _too_large(name: str, cap: int) -> str:
    megabytes = f"{cap / 1e6:g}"
    return t(
        "{name} is larger than {megabytes} MB, the most I transcribe",
        name=name,
        megabytes=megabytes,
    )


BUILTIN_NAMES = (
    "generate_image",
    "list_models",
    "channel_quota",
    "channel_settings",
    "transcribe_attachment",
    "search_channel",
)
