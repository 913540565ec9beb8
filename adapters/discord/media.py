"""Attachment bytes in and out of Discord: bounded downloads and images fitted to upload limits."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from bot.errors import TooLarge, UserFacingError
from bot.i18n import t

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _too_large(size: int, limit: int) -> str:
    return t("That file is {size}; the limit is {limit}.", size=_mib(size), limit=_mib(limit))


async def download(session: aiohttp.ClientSession, url: str, size: int, max_bytes: int) -> bytes:
    """Fetch an attachment from the CDN; refuse before (declared size) and during (bytes seen)."""
    if size > max_bytes:
        raise TooLarge(_too_large(size, max_bytes))
    received = bytearray()
    async with session.get(url) as resp:
        if resp.status != 200:
            raise UserFacingError(
                t(
                    "Discord's file server answered {status} for that attachment; it may have "
                    "been deleted. Upload it again and retry.",
                    status=resp.status,
                )
            )
        declared = resp.content_length
        if declared is not None and declared > max_bytes:
            raise TooLarge(_too_large(declared, max_bytes))
        async for chunk in resp.content.iter_chunked(_CHUNK):
            received += chunk
            # The CDN's word and the message's word are both claims; count what arrives.
            if len(received) > max_bytes:
                raise TooLarge(t("That file is over the {limit} limit.", limit=_mib(max_bytes)))
    return bytes(received)


async def _ffmpeg_jpeg(data: bytes, max_side: int, quality: int) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-vf",
        f"scale='min({max_side},iw)':'min({max_side},ih)':force_original_aspect_ratio=decrease",
        "-frames:v",
        "1",
        "-q:v",
        str(quality),
        "-f",
        "image2",
        "-c:v",
        "mjpeg",
        "pipe:1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(data)
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"ffmpeg could not re-encode the image: {err.decode(errors='replace')}")
    return out


async def fit_upload(data: bytes, filename: str, limit: int) -> tuple[bytes, str]:
    """Return the file as is when it fits, else a smaller JPEG of an image, else say so."""
    if len(data) <= limit:
        return data, filename
    is_image = filename.lower().rsplit(".", 1)[-1] in {"png", "jpg", "jpeg", "webp", "gif", "bmp"}
    if is_image:
        stem = filename.rsplit(".", 1)[0]
        for max_side, quality in ((2048, 3), (1536, 5), (1024, 7), (768, 10)):
            try:
                smaller = await _ffmpeg_jpeg(data, max_side, quality)
            except (RuntimeError, OSError) as exc:
                log.warning("downscaling %s failed: %s", filename, exc)
                break
            if len(smaller) <= limit:
                log.info(
                    "re-encoded %s from %d to %d bytes for a %d-byte upload limit",
                    filename,
                    len(data),
                    len(smaller),
                    limit,
                )
                return smaller, f"{stem}.jpg"
    raise UserFacingError(
        t(
            "The file is {size}, over this server's {limit} upload limit, and I could not make "
            "it smaller.",
            size=_mib(len(data)),
            limit=_mib(limit),
        )
    )
