"""Channel settings commands: settings, persona, temperature, maxtokens, autotranscribe."""

from __future__ import annotations

import math
from dataclasses import replace

from bot.commands import Command
from bot.commands.models import MODEL
from bot.context import Context
from bot.errors import UserFacingError
from storage.base import ChannelSettings

MAX_PERSONA_CHARS = 4000
# Same bounds as CHATOPS_MAX_REPLY_TOKENS: below 16 replies are cut mid-word.
MIN_REPLY_TOKENS, MAX_REPLY_TOKENS = 16, 200_000
_DEFAULT_WORDS = ("default", "clear", "reset", "none", "off")
_ON = ("on", "yes", "true", "1", "enable", "enabled")
_OFF = ("off", "no", "false", "0", "disable", "disabled")


def _require_admin(ctx: Context, what: str) -> None:
    if not ctx.is_admin:
        raise UserFacingError(
            f"Only admins can change this channel's {what}; anyone can see it with `settings`."
        )


async def _change(ctx: Context, **fields: object) -> ChannelSettings:
    """Apply a change atomically: two admins changing different settings never undo each other."""

    def apply(current: ChannelSettings) -> ChannelSettings:
        return replace(current, **fields)  # type: ignore[arg-type]

    return await ctx.services.store.update_channel_settings(ctx.req.place.channel_key, apply)


def describe(settings: ChannelSettings, ctx: Context) -> str:
    config = ctx.services.config
    model = f"`{settings.model}`" if settings.model else f"`{config.default_model}` (default)"
    persona = _quote(settings.system_prompt) if settings.system_prompt else "none"
    temperature = "model default" if settings.temperature is None else f"{settings.temperature:g}"
    tokens = _cap_text(settings.max_tokens or config.max_reply_tokens)
    tokens_note = "" if settings.max_tokens else " (default)"
    return "\n".join(
        [
            "**Settings for this channel**",
            f"• model: {model}",
            f"• persona: {persona}",
            f"• temperature: {temperature}",
            f"• max reply tokens: {tokens}{tokens_note}",
            f"• auto-transcribe voice notes: {'on' if settings.auto_transcribe else 'off'}",
            "Admins change them with `model`, `persona`, `temperature`, `maxtokens` and "
            "`autotranscribe`.",
        ]
    )


def _cap_text(cap: int | None) -> str:
    return f"{cap:,}" if cap else "no cap"


def _quote(text: str, limit: int = 300) -> str:
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return "“" + " ".join(short.split()) + "”"


async def run_settings(ctx: Context) -> None:
    """`settings` shows; `settings <name> <value>` changes one, for platforms (Slack's
    manifest) that register only `/settings` as a slash command."""
    name, _, rest = ctx.args.strip().partition(" ")
    if not name:
        await ctx.reply(describe(await ctx.settings(), ctx), ephemeral=True)
        return
    setter = _SETTERS.get(name.lower())
    if setter is None:
        raise UserFacingError(
            f"There is no setting `{name}`; use one of {', '.join(f'`{n}`' for n in _SETTERS)}."
        )
    await setter(replace(ctx, command=name.lower(), args=rest.strip()))


async def run_persona(ctx: Context) -> None:
    text = ctx.args.strip()
    if not text:
        current = (await ctx.settings()).system_prompt
        shown = _quote(current, 1500) if current else "none (the model's own default)"
        await ctx.reply(f"This channel's persona: {shown}")
        return
    _require_admin(ctx, "persona")
    if text.lower() in _DEFAULT_WORDS:
        await _change(ctx, system_prompt=None)
        await ctx.reply("This channel's persona is cleared.")
        return
    if len(text) > MAX_PERSONA_CHARS:
        raise UserFacingError(
            f"That persona is {len(text):,} characters; keep it under {MAX_PERSONA_CHARS:,} "
            "(it is sent with every request)."
        )
    await _change(ctx, system_prompt=text)
    await ctx.reply(f"This channel's persona is now {_quote(text)}.")


async def run_temperature(ctx: Context) -> None:
    raw = ctx.args.strip()
    if not raw:
        current = (await ctx.settings()).temperature
        shown = "the model's default" if current is None else f"{current:g}"
        await ctx.reply(f"This channel's temperature is {shown}.")
        return
    _require_admin(ctx, "temperature")
    if raw.lower() in _DEFAULT_WORDS:
        await _change(ctx, temperature=None)
        await ctx.reply("This channel's temperature is back to the model's default.")
        return
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 2:
        raise UserFacingError(
            f"Temperature must be a number from 0 to 2 (got `{raw}`): 0 is focused, "
            "1 is the usual, 2 is wild. `temperature default` clears it."
        )
    await _change(ctx, temperature=value)
    await ctx.reply(f"This channel's temperature is now {value:g}.")


async def run_maxtokens(ctx: Context) -> None:
    raw = ctx.args.strip().replace(",", "").replace("_", "")
    default = ctx.services.config.max_reply_tokens
    if not raw:
        current = (await ctx.settings()).max_tokens
        if current:
            await ctx.reply(f"Replies in this channel are capped at {current:,} tokens.")
        elif default:
            await ctx.reply(
                f"Replies in this channel are capped at {default:,} tokens (the default)."
            )
        else:
            await ctx.reply(
                "Replies in this channel are not capped: they run to the model's own output limit."
            )
        return
    _require_admin(ctx, "reply cap")
    if raw.lower() in _DEFAULT_WORDS:
        await _change(ctx, max_tokens=None)
        shown = f"cap ({default:,} tokens)" if default else "of no cap"
        await ctx.reply(f"Replies in this channel are back to the default {shown}.")
        return
    if not raw.isdigit() or not MIN_REPLY_TOKENS <= int(raw) <= MAX_REPLY_TOKENS:
        raise UserFacingError(
            f"The reply cap must be a whole number of tokens from {MIN_REPLY_TOKENS} to "
            f"{MAX_REPLY_TOKENS:,} (got `{ctx.args.strip()}`). `maxtokens default` clears it."
        )
    await _change(ctx, max_tokens=int(raw))
    await ctx.reply(
        f"Replies in this channel are now capped at {int(raw):,} tokens "
        "(the quota reserves this much per request)."
    )


async def run_autotranscribe(ctx: Context) -> None:
    raw = ctx.args.strip().lower()
    if not raw:
        state = "on" if (await ctx.settings()).auto_transcribe else "off"
        await ctx.reply(f"Automatic transcription of voice notes is {state} in this channel.")
        return
    _require_admin(ctx, "auto-transcribe setting")
    if raw not in _ON + _OFF:
        raise UserFacingError(f"Use `autotranscribe on` or `autotranscribe off` (got `{raw}`).")
    on = raw in _ON
    await _change(ctx, auto_transcribe=on)
    await ctx.reply(
        f"Automatic transcription of voice notes is now {'on' if on else 'off'} in this channel."
    )


SETTINGS = Command(
    name="settings",
    summary="Show this channel's model, persona, temperature, reply cap and auto-transcribe.",
    usage="settings [name value]",
    run=run_settings,
    private=True,
)
PERSONA = Command(
    name="persona",
    summary="Show or set (admins) the channel's system prompt; `persona clear` removes it.",
    usage="persona [text|clear]",
    run=run_persona,
)
TEMPERATURE = Command(
    name="temperature",
    summary="Show or set (admins) the sampling temperature, 0 to 2.",
    usage="temperature [0-2|default]",
    run=run_temperature,
)
MAXTOKENS = Command(
    name="maxtokens",
    summary="Show or set (admins) the cap on reply tokens.",
    usage="maxtokens [n|default]",
    run=run_maxtokens,
)
AUTOTRANSCRIBE = Command(
    name="autotranscribe",
    summary="Show or switch (admins) automatic transcription of voice notes.",
    usage="autotranscribe [on|off]",
    run=run_autotranscribe,
)
SETTINGS_COMMANDS = (SETTINGS, PERSONA, TEMPERATURE, MAXTOKENS, AUTOTRANSCRIBE)
_SETTERS = {c.name: c.run for c in (MODEL, PERSONA, TEMPERATURE, MAXTOKENS, AUTOTRANSCRIBE)}
