"""A streamed chat completion: SSE chunks to text deltas, usage and finish reason."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import EventSource

from bot.gateway.errors import GatewayError, error_from_event


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int


class ChatStream:
    """Async iterator of text deltas; `usage` and `finish_reason` are set as the stream ends.

    Iterate it once. Leaving early (break, cancellation) should be followed by `aclose()` or
    use `async with`, so the HTTP connection is released at once rather than at GC time.
    """

    __slots__ = ("_deltas", "finish_reason", "model", "usage")

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None
        self._deltas: AsyncGenerator[str, None] | None = None

    def __aiter__(self) -> AsyncGenerator[str, None]:
        # Hand out the generator itself: no extra Python frame per chunk.
        assert self._deltas is not None
        return self._deltas

    async def __anext__(self) -> str:
        assert self._deltas is not None
        return await self._deltas.__anext__()

    async def read(self) -> str:
        """The whole reply as one string."""
        return "".join([delta async for delta in self])

    async def aclose(self) -> None:
        if self._deltas is not None:
            await self._deltas.aclose()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ChatStream(model={self.model!r}, finish_reason={self.finish_reason!r})"


async def sse_deltas(
    stream: ChatStream, response: httpx.Response, model: str
) -> AsyncGenerator[str, None]:
    """Text deltas of an SSE chat completion; sets stream.usage and stream.finish_reason."""
    async for event in EventSource(response).aiter_sse():
        data = event.data
        if not data:
            continue
        if data == "[DONE]" or data.strip() == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            detail = data[:200] if event.event == "error" else f"unreadable chunk {data[:80]!r}"
            raise GatewayError(200, "stream_error", detail, model=model) from None
        if not isinstance(chunk, dict):
            continue
        if event.event == "error" or "error" in chunk:
            raise error_from_event(chunk, model=model)
        usage = chunk.get("usage")
        if usage:
            stream.usage = token_usage(usage)
        choices = chunk.get("choices")
        if not choices:
            continue
        choice = choices[0]
        if not isinstance(choice, dict):
            continue
        finish = choice.get("finish_reason")
        if finish:
            stream.finish_reason = str(finish)
        delta = choice.get("delta")
        if delta:
            text = delta.get("content")
            # Reasoning models also stream `reasoning_content`; only the answer is shown.
            if text and isinstance(text, str):
                yield text


def whole_completion(stream: ChatStream, raw: bytes, model: str) -> str:
    """The text of a non-streamed completion (some gateways ignore stream=true)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        raise GatewayError(
            200, "stream_error", "the gateway answered neither SSE nor JSON", model=model
        ) from None
    if not isinstance(payload, dict):
        raise GatewayError(200, "stream_error", "unexpected answer shape", model=model)
    if "error" in payload:
        raise error_from_event(payload, model=model)
    if payload.get("usage"):
        stream.usage = token_usage(payload["usage"])
    choices = payload.get("choices") or [{}]
    stream.finish_reason = choices[0].get("finish_reason")
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


def token_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )
