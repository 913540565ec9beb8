"""The Responses API (/v1/responses): chat requests in its input format, its stream as deltas."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import httpx
from httpx_sse import EventSource

from bot.gateway.errors import GatewayError, error_from_event
from bot.gateway.stream import CallParts, ChatStream, TokenUsage, json_answer

# What OpenAI (and gateways relaying it) answer on /chat/completions for a model such as
# gpt-5-pro or *-codex: "This model is only supported in v1/responses and not in
# v1/chat/completions."
_ONLY_RESPONSES = re.compile(r"v1/responses|responses api|responses endpoint", re.IGNORECASE)
# Response error codes as the taxonomy names them (see errors.py).
_FAILED_CODES = {
    "server_error": "server_error",
    "rate_limit_exceeded": "rate_limited",
    "vector_store_timeout": "timeout",
}


def only_on_responses(error: GatewayError) -> bool:
    """Whether a /chat/completions refusal says the model answers only on /v1/responses."""
    return (
        error.status is not None
        and 400 <= error.status < 500
        and error.code in ("invalid_request_error", "model_not_found")
        and bool(_ONLY_RESPONSES.search(error.message))
    )


def matches(model: str, patterns: Iterable[str]) -> bool:
    """Whether a model id matches one of the glob patterns (case-insensitive)."""
    name = model.lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def responses_body(chat: dict[str, Any]) -> dict[str, Any]:
    """A /chat/completions body (messages, tools, max_tokens) as a /responses body."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for message in chat.get("messages", ()):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            instructions.append(_plain(content))
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id", ""),
                    "output": _plain(content),
                }
            )
        elif role == "assistant":
            text = _plain(content)
            if text:
                items.append({"role": "assistant", "content": text})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "arguments": function.get("arguments", ""),
                    }
                )
        else:
            items.append({"role": "user", "content": _user_content(content)})
    body: dict[str, Any] = {"model": chat["model"], "input": items, "stream": True}
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    if "temperature" in chat:
        body["temperature"] = chat["temperature"]
    if "max_tokens" in chat:
        body["max_output_tokens"] = chat["max_tokens"]
    if chat.get("tools"):
        # Responses tools are flat: no nested "function" object.
        body["tools"] = [
            {"type": "function", **tool["function"]}
            for tool in chat["tools"]
            if tool.get("type") == "function"
        ]
        if isinstance(chat.get("tool_choice"), str):
            body["tool_choice"] = chat["tool_choice"]
    return body


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _user_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            parts.append({"type": "input_image", "image_url": url})
    return parts


async def responses_deltas(
    stream: ChatStream, response: httpx.Response, model: str
) -> AsyncGenerator[str, None]:
    """Text deltas of a /responses event stream; sets usage, finish_reason and tool_calls."""
    stream.api = "responses"
    calls: CallParts | None = None
    async for event in EventSource(response).aiter_sse():
        data = event.data
        if not data:
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            if data.strip() == "[DONE]":
                break
            raise GatewayError(
                200, "stream_error", f"unreadable event {data[:80]!r}", model=model
            ) from None
        if not isinstance(chunk, dict):
            continue
        kind = chunk.get("type") or event.event
        if kind == "response.output_text.delta":
            text = chunk.get("delta")
            if text and isinstance(text, str):
                yield text
        elif kind == "response.function_call_arguments.delta":
            if calls is None:
                calls = CallParts()
            calls.append(chunk.get("item_id") or chunk.get("output_index"), str(chunk["delta"]))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = chunk.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                if calls is None:
                    calls = CallParts()
                # The finished item carries the whole arguments: trusted over the fragments.
                calls.add_whole(
                    item.get("id") or chunk.get("output_index"),
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
        elif kind == "response.function_call_arguments.done":
            if calls is not None and isinstance(chunk.get("arguments"), str):
                calls.replace(chunk.get("item_id") or chunk.get("output_index"), chunk["arguments"])
        elif kind in ("response.completed", "response.incomplete"):
            _finished(stream, chunk.get("response"))
            break
        elif kind == "response.failed":
            raise _failure(chunk.get("response"), model)
        elif kind == "error" or (kind is None and "error" in chunk):
            raise error_from_event(chunk, model=model)
    if calls is not None:
        stream.tool_calls = calls.calls()
        if stream.tool_calls and stream.finish_reason == "stop":
            stream.finish_reason = "tool_calls"


def whole_response(stream: ChatStream, raw: bytes, model: str) -> str:
    """The text of a non-streamed /responses answer (a gateway that ignored stream=true)."""
    stream.api = "responses"
    payload = json_answer(raw, model)
    if payload.get("status") == "failed":
        raise _failure(payload, model)
    if payload.get("error"):
        raise error_from_event(payload, model=model)
    _finished(stream, payload)
    texts: list[str] = []
    calls = CallParts()
    for index, item in enumerate(payload.get("output") or ()):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            calls.add_whole(
                index,
                str(item.get("call_id") or ""),
                str(item.get("name") or ""),
                str(item.get("arguments") or ""),
            )
        for part in item.get("content") or ():
            if isinstance(part, dict) and part.get("type") == "output_text":
                texts.append(str(part.get("text") or ""))
    stream.tool_calls = calls.calls()
    if stream.tool_calls:
        stream.finish_reason = "tool_calls"
    return "".join(texts)


def _finished(stream: ChatStream, response: Any) -> None:
    if not isinstance(response, dict):
        stream.finish_reason = "stop"
        return
    usage = response.get("usage")
    if isinstance(usage, dict):
        stream.usage = TokenUsage(
            prompt_tokens=int(usage.get("input_tokens") or 0),
            completion_tokens=int(usage.get("output_tokens") or 0),
        )
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        # The Chat Completions names, so callers need not know which API answered.
        stream.finish_reason = "length" if reason == "max_output_tokens" else str(reason)
    else:
        stream.finish_reason = "stop"


def _failure(response: Any, model: str) -> GatewayError:
    error = response.get("error") if isinstance(response, dict) else None
    if not isinstance(error, dict):
        return GatewayError(200, "stream_error", "the response failed", model=model)
    code = str(error.get("code") or "")
    message = str(error.get("message") or "the response failed")
    return GatewayError(200, _FAILED_CODES.get(code, "stream_error"), message, model=model)
