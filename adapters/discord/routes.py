"""Names Discord REST calls for metrics by route template, with ids and tokens taken out."""

from __future__ import annotations

import re

from yarl import URL

# Route words are short, lower-case and may hold '@', '-' or '_' ("@me", "@original");
# snowflakes, interaction tokens and emoji are anything else.
_WORD = re.compile(r"[a-z@][a-z@_-]{0,23}")
_VERSION = re.compile(r"/api(?:/v\d+)?")


def discord_route(http_method: str, url: URL) -> str:
    """`PATCH /channels/{id}/messages/{id}` for a message edit; never an id or a token."""
    path = _VERSION.sub("", url.path, count=1) if url.path.startswith("/api") else url.path
    parts = [p if _WORD.fullmatch(p) else "{id}" for p in path.strip("/").split("/") if p]
    return f"{http_method.upper()} /{'/'.join(parts)}"
