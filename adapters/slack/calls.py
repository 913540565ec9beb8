"""Names Slack Web API calls for metrics: the method ("chat.update"), never ids or tokens."""

from __future__ import annotations

import re

from yarl import URL

_METHOD = re.compile(r"[a-zA-Z]+(?:\.[a-zA-Z]+)+")


def slack_method(http_method: str, url: URL) -> str:
    """`chat.postMessage` for …/api/chat.postMessage; "other" for file transfers and the like."""
    _, api, method = url.path.rpartition("/api/")
    if api and _METHOD.fullmatch(method):
        return method
    return "other"
