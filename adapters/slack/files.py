"""Private file downloads from Slack's file host (token only sent there) and v2 uploads."""

from __future__ import annotations

import logging
from collections.abc import Collection
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import translate
from bot.errors import TooLarge, UserFacingError
from bot.events import Attachment
from bot.i18n import t
from bot.secret import Secret

log = logging.getLogger("adapters.slack.app")

_CHUNK = 64 * 1024
_HTML_SNIFF = (b"<!doctype html", b"<html")


class ForeignHost(UserFacingError):
    """A file URL pointing somewhere other than Slack's file host; the token stays home."""


def check_host(url: str, allowed_hosts: Collection[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.hostname or "") not in allowed_hosts:
        log.warning("refusing to download a Slack file from host %r", parts.hostname)
        raise ForeignHost(t("That file is not hosted by Slack, so I won't fetch it."))


def _too_large(attachment: Attachment, max_bytes: int) -> TooLarge:
    return TooLarge(
        t(
            "{name} is larger than the {megabytes} MB I can accept; please send a shorter or "
            "smaller file.",
            name=attachment.filename,
            megabytes=max_bytes // (1024 * 1024) or 1,
        )
    )


def _login_page() -> UserFacingError:
    log.error("slack file download returned the sign-in page: the app lacks files:read")
    return UserFacingError(
        t(
            "I can't read files in this workspace: the Slack app is missing the `files:read` "
            "scope. A workspace admin needs to add it under OAuth & Permissions and reinstall."
        )
    )


async def download(
    session: aiohttp.ClientSession,
    attachment: Attachment,
    max_bytes: int,
    *,
    token: Secret,
    allowed_hosts: Collection[str],
) -> bytes:
    """The file's bytes, checking host, declared size, streamed size and Slack's login page."""
    url = str(attachment.native or "")
    check_host(url, allowed_hosts)
    if attachment.size > max_bytes:
        raise _too_large(attachment, max_bytes)
    headers = {"Authorization": f"Bearer {token.reveal()}"}
    # Redirects could carry the token to another host; Slack serves files directly.
    async with session.get(url, headers=headers, allow_redirects=False) as resp:
        if resp.status in (401, 403):
            raise _login_page()
        if resp.status != 200:
            log.warning("slack file download failed: HTTP %s", resp.status)
            raise UserFacingError(
                t("Slack would not give me that file (HTTP {status}).", status=resp.status)
            )
        declared = resp.content_length
        if declared is not None and declared > max_bytes:
            raise _too_large(attachment, max_bytes)
        # Without files:read Slack answers 200 with its HTML sign-in page instead of the file.
        html = resp.content_type == "text/html" and not attachment.mime.startswith("text/html")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            looks_html = html or chunk[:64].lstrip().lower().startswith(_HTML_SNIFF)
            if not chunks and looks_html and not attachment.mime.startswith("text/"):
                raise _login_page()
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(attachment, max_bytes)
            chunks.append(chunk)
    return b"".join(chunks)


async def upload(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str | None,
    data: bytes,
    filename: str,
    comment: str,
) -> str:
    """Upload through files.getUploadURLExternal + POST + completeUploadExternal; the file id."""
    try:
        result = await client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=data,
            filename=filename,
            title=filename,
            initial_comment=comment or None,
        )
    except SlackApiError as err:
        raise translate(err, "files.upload_v2") from err
    file = result.get("file") or {}
    return str(file.get("id", ""))
