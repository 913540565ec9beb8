"""The gateway's error taxonomy: one exception type, how HTTP answers map onto it, what to say."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from bot.i18n import nt, t

# Codes worth another attempt: the same request may well succeed a moment later.
RETRYABLE_CODES = frozenset({"rate_limited", "server_error", "unreachable"})

_KNOWN_CODES = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "model_not_found",
        "invalid_request_error",
        "rate_limited",
        "server_error",
        "unreachable",
        "timeout",
        "stream_error",
    }
)
_MAX_DETAIL = 200


class GatewayError(Exception):
    """A failed gateway call: HTTP status (None if no answer came), taxonomy code, gateway text."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        model: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code} (HTTP {status}): {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.model = model
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    def user_message(self) -> str:
        """One plain sentence that says what happened and what to do."""
        code = self.code
        if code == "invalid_api_key":
            return t("The gateway rejected the API key; an operator must set WEELINKING_API_KEY.")
        if code == "insufficient_quota":
            return t(
                "The gateway account is out of credit; an operator must top it up before this "
                "works again."
            )
        if code == "model_not_found" and self.model:
            return t(
                "The gateway has no model named `{model}`; use `models` to see the available ones.",
                model=self.model,
            )
        if code == "model_not_found":
            return t(
                "The gateway has no model by that name; use `models` to see the available ones."
            )
        if code == "rate_limited":
            if self.retry_after is not None and self.retry_after > 0:
                return nt(
                    "The gateway is rate limiting requests right now; try again in {n} second.",
                    "The gateway is rate limiting requests right now; try again in {n} seconds.",
                    math.ceil(self.retry_after),
                )
            return t("The gateway is rate limiting requests right now; try again in a minute.")
        if code == "server_error":
            return t("The gateway had an internal error; try again in a moment.")
        if code == "unreachable":
            return t(
                "The gateway could not be reached; try again later, and if it keeps failing an "
                "operator should check WEELINKING_BASE_URL."
            )
        if code == "timeout":
            return t(
                "The gateway did not answer in time; try again, perhaps with a shorter request."
            )
        if code == "stream_error":
            return t(
                "The gateway broke off the reply ({detail}); try again.",
                detail=_detail(self.message),
            )
        return t(
            "The gateway refused the request ({detail}); change it and try again.",
            detail=_detail(self.message),
        )


def _detail(message: str) -> str:
    text = " ".join(message.split()).rstrip(".") or t("no details given")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or OpenAI's retry-after-ms."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_fields(payload: Any) -> tuple[str | None, str | None, str | None]:
    """(message, code, type) out of an OpenAI-style error payload, tolerating gateway variants."""
    if not isinstance(payload, dict):
        return None, None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        return None, None, None
    message = error.get("message")
    code = error.get("code")
    kind = error.get("type")
    return (
        str(message) if message is not None else None,
        str(code) if code is not None else None,
        str(kind) if kind is not None else None,
    )


def classify(status: int, code: str | None, kind: str | None, *, parsed: bool) -> str:
    """The taxonomy code for an HTTP error answer.

    Gateways built on one-api/new-api say `insufficient_user_quota` (sometimes with 403), OpenAI
    says `insufficient_quota` with 429, so the body's code wins over the status where it is clear.
    """
    hints = {h.lower() for h in (code, kind) if h}
    if any("insufficient" in h and "quota" in h for h in hints):
        return "insufficient_quota"
    if status == 401 or "invalid_api_key" in hints:
        return "invalid_api_key"
    if "model_not_found" in hints:
        return "model_not_found"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status == 404:
        # A 404 without an OpenAI error body is a wrong base URL, not an unknown model.
        return "model_not_found" if parsed else "invalid_request_error"
    if status == 408:
        return "timeout"
    return "invalid_request_error"


def error_from_answer(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    model: str | None,
    path: str,
) -> GatewayError:
    """Turn a non-2xx HTTP answer into a GatewayError."""
    payload: Any = None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    message, code, kind = error_fields(payload)
    parsed = message is not None or code is not None
    taxonomy = classify(status, code, kind, parsed=parsed)
    if message is None:
        snippet = body[:_MAX_DETAIL].decode("utf-8", "replace").strip()
        message = f"HTTP {status} from {path}" + (f": {snippet}" if snippet else "")
        if status == 404 and not parsed:
            message = f"the gateway has no endpoint {path} (HTTP 404); check WEELINKING_BASE_URL"
        if 300 <= status < 400:
            where = headers.get("location", "elsewhere")
            message = f"the gateway redirected to {where}; set WEELINKING_BASE_URL to that address"
    return GatewayError(
        status,
        taxonomy,
        message,
        model=model,
        retry_after=parse_retry_after(headers),
    )


def error_from_event(payload: Any, *, model: str | None) -> GatewayError:
    """Turn an `{"error": ...}` event inside a 200 stream into a GatewayError."""
    message, code, kind = error_fields(payload)
    taxonomy = "stream_error"
    for hint in (code, kind):
        if hint and hint.lower() in _KNOWN_CODES:
            taxonomy = hint.lower()
            break
        if hint and hint.lower() == "rate_limit_exceeded":
            taxonomy = "rate_limited"
            break
    return GatewayError(
        200, taxonomy, message or "the gateway reported an error mid-stream", model=model
    )
