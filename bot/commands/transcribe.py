"""`transcribe`: voice notes and audio files to text in the thread, charged by measured seconds."""

from __future__ import annotations

import re
from dataclasses import replace

from bot.audio.pipeline import (
    AudioError,
    AudioLimits,
    PreparedAudio,
    Standby,
    display_name,
    format_duration,
    prepare_audio,
    transcribe_prepared,
)
from bot.commands import Command
from bot.commands.chat import ASK
from bot.context import Context
from bot.errors import TooLarge, UserFacingError
from bot.events import Attachment
from bot.gateway.client import GatewayError
from bot.i18n import N_, t
from storage.base import Amounts

USAGE = "transcribe [language]"
_LANGUAGE = re.compile(r"^[a-z]{2}$")


def transcribe_command(limits: AudioLimits, standby: Standby | None = None) -> Command:
    """The command, bound to the audio limits read at start-up and, optionally, to a
    Standby (started and closed by the service) that takes ~50 ms off each voice note."""

    async def run(ctx: Context) -> None:
        await run_transcribe(ctx, limits, standby)

    return Command(
        name="transcribe",
        summary=N_("Transcribe an attached voice note or audio file into this thread."),
        usage=USAGE,
        run=run,
    )


TRANSCRIBE = transcribe_command(AudioLimits())


async def run_transcribe(ctx: Context, limits: AudioLimits, standby: Standby | None = None) -> None:
    req = ctx.req
    # The dispatcher routes a bare voice note (no text, no command) here by itself; that
    # path follows the channel's auto-transcribe setting, an explicit request always runs.
    automatic = req.command is None and not req.text.strip()
    if automatic and not (await ctx.settings()).auto_transcribe:
        return
    # A voice note merely posted where the transcription model may not be used is left
    # alone, as with auto-transcribe off; said to the bot, it hears why (metered()).
    policy, model = ctx.services.config.governance, ctx.services.config.transcribe_model
    if automatic and not req.conversational and policy.model_problem(model, await ctx.access()):
        return
    audio = [a for a in req.attachments if a.kind == "audio"]
    # Asked explicitly, any attachment is worth a look: platforms mislabel audio as files.
    chosen = audio or ([] if automatic else list(req.attachments))
    if not chosen:
        raise UserFacingError(
            t("Attach a voice note or audio file to transcribe. Usage: `{usage}`", usage=USAGE)
        )
    first = ctx.args.split()[0].lower() if ctx.args.split() else ""
    language = first if _LANGUAGE.match(first) else None
    if len(chosen) == 1:
        text = await _transcribe_one(ctx, chosen[0], limits, standby, language, named=False)
        if automatic and req.conversational and text:
            # A voice note said to the bot (DM, its thread, a reply) is answered as if typed.
            await ASK.run(replace(ctx, command=ASK.name, args=text))
        return
    for attachment in chosen:
        try:
            await _transcribe_one(ctx, attachment, limits, standby, language, named=True)
        except AudioError as refused:
            # One unreadable file among several should not cost the others their transcript.
            await ctx.reply(f"⚠️ {refused.message}")


async def _transcribe_one(
    ctx: Context,
    attachment: Attachment,
    limits: AudioLimits,
    standby: Standby | None,
    language: str | None,
    *,
    named: bool,
) -> str:
    """Posts the transcript; returns its text ("" when the gateway failed)."""
    prepared = await _download_and_prepare(ctx, attachment, limits, standby)
    model = ctx.services.config.transcribe_model
    seconds = prepared.duration_seconds
    length = format_duration(seconds)
    name = display_name(attachment.filename)
    # Reserved (and so charged) only now: bad files, refusals and downloads cost nothing.
    async with (
        ctx.metered(model, Amounts(requests=1, audio_seconds=seconds)) as meter,
        ctx.stream() as reply,
    ):
        reply.progress(t("🎙️ Transcribing {name} ({length})…", name=name, length=length))

        def on_progress(done: int, total: int) -> None:
            if total > 1:
                piece = min(done + 1, total)
                reply.progress(
                    t(
                        "🎙️ Transcribing {name} ({length}), piece {piece} of {total}…",
                        name=name,
                        length=length,
                        piece=piece,
                        total=total,
                    )
                )

        try:
            text = await transcribe_prepared(
                ctx.services.gateway,
                model,
                prepared,
                concurrency=limits.concurrency,
                on_progress=on_progress,
                language=language,
            )
        except GatewayError as err:
            meter.failed("error")
            await reply.interrupt(err.user_message())
            return ""
        source = f" · {name}" if named else ""
        heading = f"🎙️ **{ctx.req.user.name}** · {length}{source}"
        reply.write(f"{heading}\n{text or t('_(no speech found)_')}")
    return text


async def _download_and_prepare(
    ctx: Context, attachment: Attachment, limits: AudioLimits, standby: Standby | None
) -> PreparedAudio:
    name = display_name(attachment.filename)
    cap = limits.max_download_bytes
    megabytes = f"{cap / 1e6:g}"
    too_large = AudioError(
        t(
            "“{name}” is larger than {megabytes} MB, the most I transcribe; send a shorter or "
            "more compressed recording.",
            name=name,
            megabytes=megabytes,
        )
    )
    # The platform's declared size first, so an oversized file is never fetched at all.
    if attachment.size > cap:
        raise too_large
    try:
        data = await ctx.download(attachment, cap)
    except TooLarge:
        raise too_large from None
    return await prepare_audio(data, attachment.filename, limits=limits, standby=standby)
