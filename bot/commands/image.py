"""`image`: generate images with the gateway and upload them, showing progress meanwhile."""

from __future__ import annotations

import asyncio
import re
import time

from bot.commands import Command
from bot.commands.models import explain_gateway_error
from bot.context import Context
from bot.errors import UserFacingError
from bot.gateway.client import GatewayError
from bot.i18n import N_, nt, number, t
from bot.streaming.reply import StreamingReply
from storage.base import Amounts

QUALITIES = ("auto", "low", "medium", "high", "standard", "hd")
MAX_IMAGES = 4
_SIZE = re.compile(r"^(\d{3,4})x(\d{3,4})$")
_OPTION = re.compile(r"^(?:--)?(size|quality|n|count|model)(?:=(.*))?$", re.IGNORECASE)
USAGE = "image [size=1024x1024] [quality=high] [n=1-4] [model=flux-kontext-pro] <prompt>"


def parse_image_args(args: str, default_model: str) -> tuple[str, str, str | None, int, str]:
    """(prompt, size, quality, count, model) from `key=value` or `--key value` options."""
    size, quality, count, model = "1024x1024", None, 1, default_model
    words = args.split()
    prompt_words: list[str] = []
    i = 0
    while i < len(words):
        match = _OPTION.match(words[i])
        if match is None or (match.group(2) is None and not words[i].startswith("--")):
            prompt_words.append(words[i])
            i += 1
            continue
        key, value = match.group(1).lower(), match.group(2)
        if value is None:
            if i + 1 >= len(words):
                raise UserFacingError(
                    t("`--{option}` needs a value. Usage: `{usage}`", option=key, usage=USAGE)
                )
            value = words[i + 1]
            i += 1
        i += 1
        if key == "size":
            dims = _SIZE.match(value)
            if value != "auto" and (
                dims is None or not all(256 <= int(d) <= 4096 for d in dims.groups())
            ):
                raise UserFacingError(
                    t(
                        "`{value}` is not an image size; use WIDTHxHEIGHT such as 1024x1024, "
                        "1536x1024 or 1024x1536.",
                        value=value,
                    )
                )
            size = value
        elif key == "quality":
            if value.lower() not in QUALITIES:
                raise UserFacingError(
                    t("Quality must be one of {values}.", values=", ".join(QUALITIES))
                )
            quality = value.lower()
        elif key in ("n", "count"):
            if not value.isdigit() or not 1 <= int(value) <= MAX_IMAGES:
                raise UserFacingError(t("The image count must be 1 to {n}.", n=MAX_IMAGES))
            count = int(value)
        else:
            model = value
    prompt = " ".join(prompt_words).strip()
    if not prompt:
        raise UserFacingError(t("Describe the image you want. Usage: `{usage}`", usage=USAGE))
    return prompt, size, quality, count, model


def image_extension(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "png"


async def _show_elapsed(reply: StreamingReply, what: str, started: float) -> None:
    while True:
        await asyncio.sleep(2)
        seconds = number(time.monotonic() - started)
        reply.progress(t("🎨 {what}… {seconds} s", what=what, seconds=seconds))


async def run_image(ctx: Context) -> None:
    prompt, size, quality, count, model = parse_image_args(
        ctx.args, ctx.services.config.image_model
    )
    what = nt(
        "Generating {n} image with {model}",
        "Generating {n} images with {model}",
        count,
        model=model,
    )
    async with (
        ctx.metered(model, Amounts(requests=1, images=count), size=size, quality=quality) as meter,
        ctx.stream() as reply,
    ):
        started = time.monotonic()
        reply.progress(t("🎨 {what}…", what=what))
        ticker = asyncio.create_task(_show_elapsed(reply, what, started))
        try:
            images = await ctx.services.gateway.image(
                model, prompt, size=size, quality=quality, n=count
            )
        except GatewayError as err:
            meter.failed("error")
            await reply.interrupt(await explain_gateway_error(ctx.services.gateway, err))
            return
        finally:
            ticker.cancel()
        meter.actual = Amounts(requests=1, images=len(images))
        for index, data in enumerate(images, start=1):
            await ctx.upload(data, f"image-{index}.{image_extension(data)}", text=f"“{prompt}”")
        elapsed = number(time.monotonic() - started)
        reply.write(
            nt(
                "🎨 {n} image for “{prompt}” ({model}, {size}, {seconds} s)",
                "🎨 {n} images for “{prompt}” ({model}, {size}, {seconds} s)",
                len(images),
                prompt=prompt,
                model=model,
                size=size,
                seconds=elapsed,
            )
        )
        await reply.finish()


IMAGE = Command(
    name="image",
    summary=N_("Generate images (gpt-image-1, flux-kontext-pro, …) and post them here."),
    usage=USAGE,
    run=run_image,
)
