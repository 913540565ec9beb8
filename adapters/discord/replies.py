"""Posting, editing and uploading answers on Discord, with its errors turned into ours."""

from __future__ import annotations

import io
import logging
from typing import Any

import discord

from adapters.discord.origin import Origin
from bot.errors import PlatformRateLimited, UserFacingError
from bot.i18n import N_, t

log = logging.getLogger(__name__)

# Discord JSON error codes we act on.
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
MISSING_ACCESS = 50001
CANNOT_DM = 50007
INVALID_WEBHOOK_TOKEN = 50027
MISSING_PERMISSIONS = 50013
_EXPIRED = {UNKNOWN_WEBHOOK, UNKNOWN_INTERACTION, INVALID_WEBHOOK_TOKEN}

# Model output must never ping @everyone, roles or users.
NO_PINGS = discord.AllowedMentions.none()


def _retry_after(exc: discord.HTTPException) -> float:
    """Seconds to wait from a raw 429 (one discord.py did not retry, e.g. without `Via`)."""
    headers = getattr(exc.response, "headers", {}) or {}
    for name in ("Retry-After", "X-RateLimit-Reset-After"):
        try:
            return max(float(headers[name]), 0.0)
        except (KeyError, TypeError, ValueError):
            continue
    return 5.0


def _permission_problem(action: str) -> str:
    return t(
        "I don't have permission to {action} here. A server admin can give me View Channel, "
        "Send Messages, Send Messages in Threads, Attach Files and Read Message History in this "
        "channel.",
        action=t(action),
    )


class Poster:
    """Where each answer of a request goes: an interaction's follow-ups or channel messages."""

    def __init__(self, upload_limit_default: int = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES):
        self.upload_limit_default = upload_limit_default

    async def send(
        self,
        origin: Origin,
        text: str,
        *,
        ephemeral: bool = False,
        file: tuple[bytes, str] | None = None,
    ) -> discord.Message:
        try:
            if origin.interaction_alive():
                try:
                    return await self._send_interaction(
                        origin, text, ephemeral=ephemeral, file=file
                    )
                except (discord.NotFound, discord.HTTPException) as exc:
                    if exc.code not in _EXPIRED:
                        raise
                    log.info("interaction token expired (%s); continuing as messages", exc.code)
                    origin.interaction_ttl = 0.0
            return await self._send_channel(origin, text, ephemeral=ephemeral, file=file)
        except discord.RateLimited as exc:
            # Only past max_ratelimit_timeout: discord.py sleeps through shorter waits itself.
            raise PlatformRateLimited(exc.retry_after) from exc
        except discord.HTTPException as exc:
            raise await self._translate(origin, exc, N_("send messages")) from exc

    async def edit(
        self,
        origin: Origin,
        message: discord.Message,
        text: str,
        view: discord.ui.View | None = None,
    ) -> None:
        """Edit one of our messages to `text` (and give it `view`'s components, if any)."""
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        try:
            if isinstance(message, discord.WebhookMessage | discord.InteractionMessage):
                if origin.interaction_alive():
                    try:
                        await message.edit(content=text, allowed_mentions=NO_PINGS, **extra)
                        return
                    except discord.HTTPException as exc:
                        if exc.code not in _EXPIRED:
                            raise
                        origin.interaction_ttl = 0.0
                if message.flags.ephemeral:
                    log.info(
                        "ephemeral message %s outlived its interaction; edit dropped", message.id
                    )
                    return
                # A follow-up is an ordinary message of our bot user once the token is gone.
                partial = origin.channel_partial(message.id)
                await partial.edit(content=text, allowed_mentions=NO_PINGS, **extra)
                return
            await message.edit(content=text, allowed_mentions=NO_PINGS, **extra)
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_MESSAGE:
                # Someone deleted our answer; nothing left to update and nobody to tell.
                log.info("message %s was deleted; edit dropped", message.id)
                return
            raise await self._translate(origin, exc, N_("edit my messages")) from exc
        except discord.RateLimited as exc:
            raise PlatformRateLimited(exc.retry_after) from exc
        except discord.HTTPException as exc:
            raise await self._translate(origin, exc, N_("edit my messages")) from exc

    async def delete(self, origin: Origin, message: discord.Message) -> None:
        """Delete one of our messages (an interaction's while its token lives, else by id)."""
        try:
            if isinstance(message, discord.WebhookMessage | discord.InteractionMessage):
                if origin.interaction_alive():
                    await message.delete()
                    return
                if message.flags.ephemeral:
                    log.info("ephemeral message %s outlived its interaction; kept", message.id)
                    return
                await origin.channel_partial(message.id).delete()
                return
            await message.delete()
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_MESSAGE:
                log.info("message %s was already deleted", message.id)
                return
            raise await self._translate(origin, exc, N_("delete my messages")) from exc
        except discord.RateLimited as exc:
            raise PlatformRateLimited(exc.retry_after) from exc
        except discord.HTTPException as exc:
            raise await self._translate(origin, exc, N_("delete my messages")) from exc

    async def _send_interaction(
        self, origin: Origin, text: str, *, ephemeral: bool, file: tuple[bytes, str] | None
    ) -> discord.Message:
        interaction = origin.interaction
        assert interaction is not None
        files = [discord.File(io.BytesIO(file[0]), file[1])] if file else []
        if not origin.original_used:
            origin.original_used = True
            if ephemeral and not origin.deferred_ephemeral:
                # The first follow-up inherits the defer's visibility: drop the public
                # "thinking…" message so this one can be private.
                await interaction.delete_original_response()
            else:
                return await interaction.edit_original_response(
                    content=text, attachments=files, allowed_mentions=NO_PINGS
                )
        return await interaction.followup.send(
            text, ephemeral=ephemeral, files=files, wait=True, allowed_mentions=NO_PINGS
        )

    async def _send_channel(
        self, origin: Origin, text: str, *, ephemeral: bool, file: tuple[bytes, str] | None
    ) -> discord.Message:
        files = [discord.File(io.BytesIO(file[0]), file[1])] if file else []
        if ephemeral and origin.interaction is not None:
            # Private output after the interaction expired: the user's DMs are the only
            # private place left.
            return await origin.author.send(text, files=files, allowed_mentions=NO_PINGS)
        anchor = origin.last_posted or origin.message
        reference = anchor.to_reference(fail_if_not_exists=False) if anchor is not None else None
        kwargs: dict[str, Any] = {"allowed_mentions": NO_PINGS, "files": files}
        if reference is not None:
            kwargs["reference"] = reference
            kwargs["mention_author"] = False
        return await origin.channel.send(text, **kwargs)

    async def _translate(
        self, origin: Origin, exc: discord.HTTPException, action: str
    ) -> Exception:
        """Log the cause; return what the core should see (and tell the user if we can)."""
        status, code = exc.status, exc.code
        if isinstance(
            exc, discord.RateLimited
        ):  # pragma: no cover - a subclass of DiscordException only
            return PlatformRateLimited(exc.retry_after)
        if status == 429:
            retry = _retry_after(exc)
            log.warning(
                "Discord 429 not retried by discord.py (code %s); retry in %.2fs", code, retry
            )
            return PlatformRateLimited(retry)
        if status == 403 and code in (MISSING_PERMISSIONS, MISSING_ACCESS):
            message = _permission_problem(action)
            log.warning(
                "Discord refused to %s in channel %s: %s (%s)", action, _cid(origin), exc.text, code
            )
            await self._explain_privately(origin, message)
            return UserFacingError(message)
        if status == 404 and code == UNKNOWN_CHANNEL:
            log.warning("channel %s is gone (10003); answer dropped", _cid(origin))
            return UserFacingError(t("That channel no longer exists."))
        if status >= 500:
            log.error("Discord server error %s while trying to %s: %s", status, action, exc.text)
            return UserFacingError(
                t(
                    "Discord had a server error ({status}) while I tried to {action}; try again "
                    "in a minute.",
                    status=status,
                    action=t(action),
                )
            )
        log.error("Discord refused to %s: HTTP %s code %s: %s", action, status, code, exc.text)
        return UserFacingError(
            t("Discord refused to {action} (error {code}).", action=t(action), code=code or status)
        )

    async def _explain_privately(self, origin: Origin, message: str) -> None:
        """A user cannot see an answer we may not post: say why in a DM, once."""
        if origin.explained or origin.interaction_alive():
            return
        origin.explained = True
        try:
            await origin.author.send(message, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info(
                "could not DM %s about missing permissions either (%s)", origin.author.id, exc.code
            )


def _cid(origin: Origin) -> str:
    return str(getattr(origin.channel, "id", "?"))
