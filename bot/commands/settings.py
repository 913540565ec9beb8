"""Channel settings commands: settings, persona, temperature, maxtokens, autotranscribe."""

from __future__ import annotations

import math
from dataclasses import replace

from bot.commands import Command
from bot.commands.models import MODEL
from bot.context import Context
from bot.errors import UserFacingError
from bot.i18n import N_, language_name, number, speaking, supported, t
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
            t(
                "Only admins can change this channel's {what}; anyone can see it with `settings`.",
                what=what,
            )
        )


async def _change(ctx: Context, **fields: object) -> ChannelSettings:
    """Apply a change atomically: two admins changing different settings never undo each other."""

    def apply(current: ChannelSettings) -> ChannelSettings:
        return replace(current, **fields)  # type: ignore[arg-type]

    return await ctx.services.store.update_channel_settings(ctx.req.place.channel_key, apply)


def describe(settings: ChannelSettings, ctx: Context) -> str:
    config = ctx.services.config
    default = t("(default)")
    model = f"`{settings.model}`" if settings.model else f"`{config.default_model}` {default}"
    persona = _quote(settings.system_prompt) if settings.system_prompt else t("none")
    temperature = (
        t("model default") if settings.temperature is None else f"{settings.temperature:g}"
    )
    tokens = _cap_text(settings.max_tokens or config.max_reply_tokens)
    tokens_note = "" if settings.max_tokens else " " + default
    language = language_name(settings.language) if settings.language else t("not set")
    return "\n".join(
        [
            t("**Settings for this channel**"),
            t("• model: {value}", value=model),
            t("• persona: {value}", value=persona),
            t("• temperature: {value}", value=temperature),
            t("• max reply tokens: {value}", value=tokens + tokens_note),
            t("• auto-transcribe voice notes: {value}", value=_on_off(settings.auto_transcribe)),
            t("• language: {value}", value=language),
            t(
                "Admins change them with `model`, `persona`, `temperature`, `maxtokens`, "
                "`autotranscribe` and `language`."
            ),
        ]
    )


def _on_off(on: bool) -> str:
    return t("on") if on else t("off")


def _cap_text(cap: int | None) -> str:
    return number(cap) if cap else t("no cap")


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
            t(
                "There is no setting `{name}`; use one of {names}.",
                name=name,
                names=", ".join(f"`{n}`" for n in _SETTERS),
            )
        )
    await setter(replace(ctx, command=name.lower(), args=rest.strip()))


async def run_persona(ctx: Context) -> None:
    text = ctx.args.strip()
    if not text:
        current = (await ctx.settings()).system_prompt
        shown = _quote(current, 1500) if current else t("none (the model's own default)")
        await ctx.reply(t("This channel's persona: {persona}", persona=shown))
        return
    _require_admin(ctx, t("persona"))
    if text.lower() in _DEFAULT_WORDS:
        await _change(ctx, system_prompt=None)
        await ctx.reply(t("This channel's persona is cleared."))
        return
    if len(text) > MAX_PERSONA_CHARS:
        raise UserFacingError(
            t(
                "That persona is {length} characters; keep it under {limit} (it is sent with "
                "every request).",
                length=number(len(text)),
                limit=number(MAX_PERSONA_CHARS),
            )
        )
    await _change(ctx, system_prompt=text)
    await ctx.reply(t("This channel's persona is now {persona}.", persona=_quote(text)))


async def run_temperature(ctx: Context) -> None:
    raw = ctx.args.strip()
    if not raw:
        current = (await ctx.settings()).temperature
        shown = t("the model's default") if current is None else f"{current:g}"
        await ctx.reply(t("This channel's temperature is {value}.", value=shown))
        return
    _require_admin(ctx, t("temperature"))
    if raw.lower() in _DEFAULT_WORDS:
        await _change(ctx, temperature=None)
        await ctx.reply(t("This channel's temperature is back to the model's default."))
        return
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 2:
        raise UserFacingError(
            t(
                "Temperature must be a number from 0 to 2 (got `{value}`): 0 is focused, 1 is "
                "the usual, 2 is wild. `temperature default` clears it.",
                value=raw,
            )
        )
    await _change(ctx, temperature=value)
    shown = f"{value:g}"
    await ctx.reply(t("This channel's temperature is now {value}.", value=shown))


async def run_maxtokens(ctx: Context) -> None:
    raw = ctx.args.strip().replace(",", "").replace("_", "")
    default = ctx.services.config.max_reply_tokens
    if not raw:
        current = (await ctx.settings()).max_tokens
        if current:
            await ctx.reply(
                t("Replies in this channel are capped at {n} tokens.", n=number(current))
            )
        elif default:
            await ctx.reply(
                t(
                    "Replies in this channel are capped at {n} tokens (the default).",
                    n=number(default),
                )
            )
        else:
            await ctx.reply(
                t(
                    "Replies in this channel are not capped: they run to the model's own "
                    "output limit."
                )
            )
        return
    _require_admin(ctx, t("reply cap"))
    if raw.lower() in _DEFAULT_WORDS:
        await _change(ctx, max_tokens=None)
        if default:
            await ctx.reply(
                t(
                    "Replies in this channel are back to the default cap ({n} tokens).",
                    n=number(default),
                )
            )
        else:
            await ctx.reply(t("Replies in this channel are back to the default of no cap."))
        return
    if not raw.isdigit() or not MIN_REPLY_TOKENS <= int(raw) <= MAX_REPLY_TOKENS:
        raise UserFacingError(
            t(
                "The reply cap must be a whole number of tokens from {low} to {high} (got "
                "`{value}`). `maxtokens default` clears it.",
                low=MIN_REPLY_TOKENS,
                high=number(MAX_REPLY_TOKENS),
                value=ctx.args.strip(),
            )
        )
    await _change(ctx, max_tokens=int(raw))
    await ctx.reply(
        t(
            "Replies in this channel are now capped at {n} tokens (the quota reserves this "
            "much per request).",
            n=number(int(raw)),
        )
    )


async def run_language(ctx: Context) -> None:
    raw = ctx.args.strip()
    if not raw:
        chosen = (await ctx.settings()).language
        where = t("set for this channel") if chosen else t("from the workspace or your own")
        await ctx.reply(
            t("I speak {language} here ({where}).", language=language_name(), where=where)
        )
        return
    _require_admin(ctx, t("language"))
    if raw.lower() in _DEFAULT_WORDS:
        await _change(ctx, language=None)
        await ctx.reply(
            t(
                "This channel has no language of its own any more: I follow the workspace's "
                "default or each person's language."
            )
        )
        return
    code = supported(raw)
    if code is None:
        raise UserFacingError(
            t(
                "I can speak English (`en`) or Simplified Chinese (`zh-CN`) here, not `{value}`. "
                "`language default` clears the choice.",
                value=raw,
            )
        )
    await _change(ctx, language=code)
    with speaking(code):
        await ctx.reply(
            t("From now on I speak {language} in this channel.", language=language_name())
        )


async def run_autotranscribe(ctx: Context) -> None:
    raw = ctx.args.strip().lower()
    if not raw:
        on = (await ctx.settings()).auto_transcribe
        await ctx.reply(
            t("Automatic transcription of voice notes is on in this channel.")
            if on
            else t("Automatic transcription of voice notes is off in this channel.")
        )
        return
    _require_admin(ctx, t("auto-transcribe setting"))
    if raw not in _ON + _OFF:
        raise UserFacingError(
            t("Use `autotranscribe on` or `autotranscribe off` (got `{value}`).", value=raw)
        )
    on = raw in _ON
    await _change(ctx, auto_transcribe=on)
    await ctx.reply(
        t("Automatic transcription of voice notes is now on in this channel.")
        if on
        else t("Automatic transcription of voice notes is now off in this channel.")
    )


SETTINGS = Command(
    name="settings",
    summary=N_("Show this channel's model, persona, temperature, reply cap and auto-transcribe."),
    usage="settings [name value]",
    run=run_settings,
    private=True,
)
PERSONA = Command(
    name="persona",
    summary=N_("Show or set (admins) the channel's system prompt; `persona clear` removes it."),
    usage="persona [text|clear]",
    run=run_persona,
)
TEMPERATURE = Command(
    name="temperature",
    summary=N_("Show or set (admins) the sampling temperature, 0 to 2."),
    usage="temperature [0-2|default]",
    run=run_temperature,
)
MAXTOKENS = Command(
    name="maxtokens",
    summary=N_("Show or set (admins) the cap on reply tokens."),
    usage="maxtokens [n|default]",
    run=run_maxtokens,
)
LANGUAGE = Command(
    name="language",
    summary=N_("Show or set (admins) the language the bot speaks in this channel: en or zh-CN."),
    usage="language [en|zh-CN|default]",
    run=run_language,
)
AUTOTRANSCRIBE = Command(
    name="autotranscribe",
    summary=N_("Show or switch (admins) automatic transcription of voice notes."),
    usage="autotranscribe [on|off]",
    run=run_autotranscribe,
)
SETTINGS_COMMANDS = (SETTINGS, PERSONA, TEMPERATURE, MAXTOKENS, AUTOTRANSCRIBE, LANGUAGE)
_SETTERS = {
    c.name: c.run for c in (MODEL, PERSONA, TEMPERATURE, MAXTOKENS, AUTOTRANSCRIBE, LANGUAGE)
}
