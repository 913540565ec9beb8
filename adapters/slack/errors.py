"""Slack Web API failures turned into the core's errors, logged once with their cause."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.errors import PlatformRateLimited, UserFacingError
from bot.i18n import t

log = logging.getLogger("adapters.slack.app")

# Codes after which the bot token is useless until an admin acts.
AUTH_CODES = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
NOT_MEMBER_CODES = frozenset({"not_in_channel", "channel_not_found"})


class SlackProblem(UserFacingError):
    """A Slack error with a sentence for the user; `code` is Slack's error string."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def status_of(err: SlackApiError) -> int | None:
    resp = err.response
    # AsyncSlackResponse has status_code; a raw aiohttp response (non-JSON body) has status.
    status = getattr(resp, "status_code", None) or getattr(resp, "status", None)
    return status if isinstance(status, int) else None


def retry_after(err: SlackApiError, default: float = 1.0) -> float:
    headers: Mapping[str, Any] = getattr(err.response, "headers", None) or {}
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(float(raw), 0.0) if raw is not None else default
    except (TypeError, ValueError):
        return default


def code_of(err: SlackApiError) -> str:
    data = getattr(err.response, "data", None)
    if isinstance(data, Mapping):
        return str(data.get("error") or "")
    return ""


def is_server_error(err: SlackApiError) -> bool:
    status = status_of(err)
    return status is not None and status >= 500


def translate(err: SlackApiError, method: str) -> Exception:
    """The exception the core should see for a failed `method` call; logs the cause."""
    status = status_of(err)
    code = code_of(err)
    if status == 429 or code == "ratelimited":
        wait = retry_after(err)
        log.info("slack %s rate limited; Retry-After %.1fs", method, wait)
        return PlatformRateLimited(wait)
    if status is not None and status >= 500:
        log.warning("slack %s failed with HTTP %s", method, status)
        return SlackProblem(
            "server_error",
            t(
                "Slack is having trouble right now (HTTP {status}); please try again in a minute.",
                status=status,
            ),
            status=status,
        )
    if code in NOT_MEMBER_CODES:
        log.warning("slack %s: %s (the bot is not a member of the channel)", method, code)
        return SlackProblem(
            code,
            t("I'm not a member of this channel. Invite me with `/invite @chatops` and try again."),
            status=status,
        )
    if code == "is_archived":
        log.warning("slack %s: channel is archived", method)
        return SlackProblem(
            code, t("This channel is archived, so I can't post in it."), status=status
        )
    if code == "missing_scope":
        data = getattr(err.response, "data", None)
        needed = str(data.get("needed", "")) if isinstance(data, Mapping) else ""
        log.error("slack %s: missing scope %s", method, needed or "(unknown)")
        if needed:
            text = t(
                "The Slack app is missing the `{scope}` permission. A workspace admin needs to "
                "add it under OAuth & Permissions and reinstall the app.",
                scope=needed,
            )
        else:
            text = t(
                "The Slack app is missing a permission it needs. A workspace admin needs to add "
                "it under OAuth & Permissions and reinstall the app."
            )
        return SlackProblem(code, text, status=status)
    if code in AUTH_CODES:
        log.error("slack %s: the bot token was rejected (%s); reinstall or rotate it", method, code)
        return SlackProblem(
            code,
            t(
                "Slack rejected the bot's token. An admin needs to reinstall the app or update "
                "SLACK_BOT_TOKEN."
            ),
            status=status,
        )
    if code == "msg_too_long":
        log.warning("slack %s: message too long", method)
        return SlackProblem(code, t("That reply was too long for Slack."), status=status)
    log.warning("slack %s failed: HTTP %s %s", method, status, code or "(no error code)")
    return SlackProblem(
        code or "unknown", t("Slack refused the request ({code}).", code=code or status)
    )
