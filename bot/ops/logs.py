"""Log lines as text (the default) or one JSON object per line (CHATOPS_LOG_FORMAT=json), both
carrying the request's id, platform and command, and both with every secret masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from bot.ops.scope import current
from bot.ops.settings import LogFormat

MASK = "***"
# Credentials by their shape, for ones the service was not told about (a token in a
# library's error text): Slack bot/user/app tokens, sk- API keys, Bearer headers, and
# Discord bot tokens (three dot-separated base64url parts).
_TOKEN_SHAPES = re.compile(
    r"xox[a-z]-[0-9A-Za-z-]{8,}"
    r"|xapp-[0-9A-Za-z-]{8,}"
    r"|\bsk-[0-9A-Za-z_-]{12,}"
    r"|(?<=Bearer )[0-9A-Za-z._~+/-]{8,}=*"
    r"|\b[MNO][0-9A-Za-z_-]{20,30}\.[0-9A-Za-z_-]{6}\.[0-9A-Za-z_-]{20,}"
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"


class Redactor:
    """Replaces each known secret, and anything shaped like a credential, with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole. Very short
        # values would mask ordinary words; real credentials are far longer.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _TOKEN_SHAPES.sub(MASK, text)


class RequestFields(logging.Filter):
    """Stamps each record with the request it was logged for (bot/ops/scope.py), if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = current()
        if scope is None:
            record.request_id = record.platform = record.command = None
            record.request = ""
        else:
            record.request_id, record.platform, record.command = (
                scope.id,
                scope.platform,
                scope.command,
            )
            record.request = f" [{scope.id} {scope.platform} {scope.command}]"
        return True


class TextFormatter(logging.Formatter):
    """`2026-05-01 12:00:00,000 INFO bot.dispatch [3f2a… slack ask]: message`."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request"):
            record.request = ""
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and request_id, platform,
    command for lines logged while handling a request; exception when one is attached."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        for field in ("request_id", "platform", "command"):
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self._redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = self._redact(record.exc_text)
        if record.stack_info:
            line["stack"] = self._redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


def configure_logging(
    level: str,
    log_format: LogFormat,
    secrets: Iterable[str],
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every logger's records to `stream` (stderr) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestFields())
    redact = Redactor(secrets)
    handler.setFormatter(JsonFormatter(redact) if log_format == "json" else TextFormatter(redact))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Python's warnings would otherwise be bare text lines among the JSON ones.
    logging.captureWarnings(True)
    return handler
