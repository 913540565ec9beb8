"""A streamed chat completion: SSE chunks to text deltas, tool calls, usage and finish reason."""

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


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; `arguments` is its JSON text as written (unchecked)."""

    id: str
    name: str
    arguments: str


class CallParts:
    """Tool-call fragments of one streamed turn, gathered by `index` until the stream ends."""

    __slots__ = ("_calls", "_order")

    def __init__(self) -> None:
        # key -> [id, name, argument fragments...]
        self._calls: dict[object, list[str]] = {}
        self._order: list[object] = []

    def add(self, fragments: object) -> None:
        """One chunk's `delta.tool_calls` list."""
        if not isinstance(fragments, list):
            return
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index", position)
            call_id = fragment.get("id") or ""
            parts = self._calls.get(index)
            if parts is not None and call_id and parts[0] and parts[0] != call_id:
                # Some gateways number every call 0 and tell them apart only by id.
                index = (index, call_id)
                parts = self._calls.get(index)
            if parts is None:
                parts = self._calls[index] = [call_id, ""]
                self._order.append(index)
            elif call_id and not parts[0]:
                parts[0] = call_id
            function = fragment.get("function")
            if isinstance(function, dict):
                name = function.get("name")
                if name and isinstance(name, str):
                    # Names arrive whole in the first fragment; a gateway repeating it
                    # in later fragments must not double it.
                    parts[1] = name if not parts[1] or parts[1] == name else parts[1] + name
                arguments = function.get("arguments")
                if arguments and isinstance(arguments, str):
                    parts.append(arguments)

    def add_whole(self, key: object, call_id: str, name: str, arguments: str) -> None:
        if key not in self._calls:
            self._order.append(key)
        self._calls[key] = [call_id, name, arguments]

    def append(self, key: object, arguments: str) -> None:
        parts = self._calls.get(key)
        if parts is None:
            # A fragment before its item was announced: kept, named when the item ends.
            self._order.append(key)
            parts = self._calls[key] = ["", ""]
        parts.append(arguments)

    def replace(self, key: object, arguments: str) -> None:
        parts = self._calls.get(key)
        if parts is not None:
            del parts[2:]
            parts.append(arguments)

    def calls(self) -> list[ToolCall]:
        found = []
        for number, key in enumerate(self._order):
            call_id, name, *arguments = self._calls[key]
            if name:
                found.append(ToolCall(call_id or f"call_{number}", name, "".join(arguments)))
        return found


class ChatStream:
    """Async iterator of text deltas; `usage` and `finish_reason` are set as the stream ends.

    Iterate it once. Leaving early (break, cancellation) should be followed by `aclose()` or
    use `async with`, so the HTTP connection is released at once rather than at GC time.
    """

    __slots__ = ("_deltas", "api", "finish_reason", "model", "tool_calls", "tools_dropped", "usage")

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None
        # The function calls the model asked for in this turn, once the stream has ended.
        self.tool_calls: list[ToolCall] = []
        # Set when the model or gateway refused `tools` and the request went without them.
        self.tools_dropped = False
        # Which endpoint answered: "chat" (/chat/completions) or "responses" (/responses).
        self.api = "chat"
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
    """Text deltas of an SSE chat completion; sets usage, finish_reason and tool_calls."""
    calls: CallParts | None = None
    async for event in EventSource(response).aiter_sse():
        data = event.data
        if not data:
            continue
        if data == "[DONE]" or data.strip() == "[DONE]":
            break
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
            else:
                # Looked up only in chunks without text: the text path stays as cheap as before.
                fragments = delta.get("tool_calls")
                if fragments:
                    if calls is None:
                        calls = CallParts()
                    calls.add(fragments)
    if calls is not None:
        stream.tool_calls = calls.calls()


def json_answer(raw: bytes, model: str) -> dict[str, Any]:
    """A whole (non-SSE) answer body as a JSON object, or the gateway error it amounts to."""
    try:
        payload = json.loads(raw)
    except ValueError:
        raise GatewayError(
            200, "stream_error", "the gateway answered neither SSE nor JSON", model=model
        ) from None
    if not isinstance(payload, dict):
        raise GatewayError(200, "stream_error", "unexpected answer shape", model=model)
    return payload


def whole_completion(stream: ChatStream, raw: bytes, model: str) -> str:
    """The text of a non-streamed completion (some gateways ignore stream=true)."""
    payload = json_answer(raw, model)
    if "error" in payload:
        raise error_from_event(payload, model=model)
    if payload.get("usage"):
        stream.usage = token_usage(payload["usage"])
    choices = payload.get("choices") or [{}]
    stream.finish_reason = choices[0].get("finish_reason")
    message = choices[0].get("message") or {}
    if message.get("tool_calls"):
        calls = CallParts()
        calls.add(message["tool_calls"])
        stream.tool_calls = calls.calls()
    content = message.get("content")
    return content if isinstance(content, str) else ""


def token_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )
