"""A fake OpenAI-compatible gateway on 127.0.0.1: real HTTP and SSE, scripted quirks and faults."""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import functools
import hashlib
import itertools
import json
import re
import signal
import struct
import sys
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.loopback import serve_on_loopback

DEFAULT_KEY = "sk-fake-gateway-test-key-0123456789abcdef"


def _catalogue() -> list[tuple[str, str]]:
    """(id, owned_by) for 200+ plausible models, some owned_by values as one-api reports them."""
    models: list[tuple[str, str]] = []

    def add(owner: str, ids: Iterable[str]) -> None:
        models.extend((model_id, owner) for model_id in ids)

    add(
        "openai",
        [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4o-2024-05-13",
            "gpt-4o-2024-08-06",
            "gpt-4o-2024-11-20",
            "gpt-4o-mini-2024-07-18",
            "chatgpt-4o-latest",
            "gpt-4-turbo",
            "gpt-4-turbo-2024-04-09",
            "gpt-4",
            "gpt-4-0613",
            "gpt-3.5-turbo",
            "gpt-3.5-turbo-0125",
            "gpt-3.5-turbo-1106",
            "gpt-3.5-turbo-16k",
            "gpt-5-chat-latest",
            "gpt-image-1",
            "dall-e-3",
            "dall-e-2",
            "whisper-1",
            "gpt-4o-transcribe",
            "gpt-4o-mini-transcribe",
            "tts-1",
            "tts-1-hd",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "omni-moderation-latest",
        ],
    )
    for family in ("gpt-4.1", "gpt-5"):
        for size in ("", "-mini", "-nano"):
            add("openai", [f"{family}{size}", f"{family}{size}-2025-04-14"])
    for family in ("o1", "o3", "o4"):
        for size in ("", "-mini", "-pro"):
            add("system", [f"{family}{size}", f"{family}{size}-2025-01-31"])
    for tier, dates in (
        ("claude-3-haiku", ["20240307"]),
        ("claude-3-opus", ["20240229"]),
        ("claude-3-5-haiku", ["20241022"]),
        ("claude-3-5-sonnet", ["20240620", "20241022"]),
        ("claude-3-7-sonnet", ["20250219"]),
        ("claude-sonnet-4", ["20250514"]),
        ("claude-opus-4", ["20250514"]),
        ("claude-opus-4-1", ["20250805"]),
    ):
        for date in dates:
            add("anthropic", [f"{tier}-{date}", f"{tier}-{date}-thinking"])
        add("anthropic", [f"{tier}-latest"])
    add("anthropic", ["claude-3.5-sonnet", "claude-instant-1.2", "claude-2.1"])
    for version in ("1.5", "2.0", "2.5"):
        for size in ("pro", "flash", "flash-lite"):
            add("google", [f"gemini-{version}-{size}", f"gemini-{version}-{size}-latest"])
    add("google", ["gemini-2.5-flash-image-preview", "gemini-exp-1206", "imagen-3.0-generate-002"])
    add("google", [f"gemma-3-{size}-it" for size in ("1b", "4b", "12b", "27b")])
    add("xai", ["grok-4-0709", "grok-4", "grok-3", "grok-3-mini", "grok-3-fast", "grok-2-1212"])
    add("xai", ["grok-2-vision-1212", "grok-2-image-1212", "grok-code-fast-1", "grok-beta"])
    add("deepseek", ["deepseek-v3", "deepseek-r1", "deepseek-chat", "deepseek-reasoner"])
    add("deepseek", ["deepseek-v3-0324", "deepseek-r1-0528", "deepseek-v3.1", "deepseek-coder"])
    for name in ("qwen-max", "qwen-plus", "qwen-turbo", "qwen-long"):
        add("alibaba", [name, f"{name}-latest", f"{name}-2025-01-25"])
    for size in ("0.6b", "1.7b", "4b", "8b", "14b", "32b", "30b-a3b", "235b-a22b"):
        add("alibaba", [f"qwen3-{size}"])
    for size in ("7b", "14b", "32b", "72b"):
        add("custom", [f"qwen2.5-{size}-instruct", f"qwen2.5-coder-{size}-instruct"])
    add("alibaba", ["qwq-32b", "qvq-72b-preview", "qwen-vl-max", "qwen-vl-plus"])
    add("moonshot", [f"moonshot-v1-{size}" for size in ("8k", "32k", "128k")])
    add("moonshot", [f"moonshot-v1-{size}-vision-preview" for size in ("8k", "32k", "128k")])
    add("custom", ["kimi-k2-0711-preview", "kimi-k2-turbo-preview", "kimi-latest", "kimi-k2"])
    add("black-forest-labs", ["flux-kontext-pro", "flux-kontext-max", "flux-1.1-pro", "flux-dev"])
    add("meta", ["llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.3-70b-instruct"])
    add("mistral", ["mistral-large-latest", "mistral-small-latest", "codestral-latest"])
    add("deepseek", [f"deepseek-r1-distill-qwen-{size}" for size in ("1.5b", "7b", "14b", "32b")])
    add("google", [f"gemini-2.5-{size}-preview-05-20" for size in ("pro", "flash")])
    add("xai", ["grok-3-latest", "grok-3-mini-fast", "grok-4-fast-reasoning"])
    add("zhipu", ["glm-4", "glm-4-plus", "glm-4-air", "glm-4-flash", "glm-4.5", "glm-4v"])
    add("bytedance", ["doubao-1.5-pro-32k", "doubao-1.5-pro-256k", "doubao-seed-1.6"])
    add("custom", ["yi-large", "ernie-4.0-8k", "hunyuan-turbo", "minimax-m1", "step-2-16k"])
    return models


CATALOGUE: tuple[tuple[str, str], ...] = tuple(_catalogue())


def png_bytes(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (255, 128, 0)) -> bytes:
    """A valid RGB PNG of one colour, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass
class Quirks:
    """What real multi-vendor gateways do to an SSE stream; all off = exactly what OpenAI sends."""

    comments: bool = False  # ": keep-alive" comment lines between events
    empty_choices: bool = False  # extra chunks with "choices": [] and no usage
    role_only_first: bool = False  # first delta {"role": "assistant"} without a content key
    no_space: bool = False  # "data:{...}" without the space after the colon
    crlf: bool = False  # CRLF line endings
    no_done: bool = False  # the stream ends without "data: [DONE]"
    no_usage: bool = False  # never send the usage chunk, even when asked for
    json_reply: bool = False  # ignore stream=true and answer one JSON completion
    fragment: int = 0  # write every event in pieces of this many bytes, 1 ms apart
    error_after: int | None = None  # an {"error": ...} event after this many content chunks
    error_code: str = "server_error"
    error_message: str = "upstream provider failed"
    drop_after: int | None = None  # close the TCP connection after this many content chunks


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """A function call the fake model makes; `arguments` is sent as is (invalid JSON too)."""

    name: str
    arguments: str = "{}"
    id: str = ""


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """One scripted answer to a request that offers tools: some text, then calls (maybe none)."""

    calls: tuple[ScriptedCall, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted failure answer; status 0 closes the connection without answering."""

    status: int
    code: str
    message: str
    error_type: str
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    at: float


@dataclass(frozen=True, slots=True)
class Transcription:
    data: bytes = field(repr=False)
    filename: str
    content_type: str
    model: str
    language: str | None
    response_format: str | None


_DEFAULT_FAULT_TYPES = {
    401: "invalid_request_error",
    404: "invalid_request_error",
    400: "invalid_request_error",
    429: "requests",
}


class FakeGateway:
    """`async with FakeGateway() as gw:` serves on 127.0.0.1; set the knobs, read the records."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_KEY,
        port: int = 0,
        chunk_delay: float = 0.0,
        models: Iterable[tuple[str, str]] = CATALOGUE,
    ) -> None:
        self.api_key = api_key
        self.port = port
        self.chunk_delay = chunk_delay
        self.models: dict[str, str] = dict(models)
        # Knobs.
        self.reply: str | None = None  # None: "You said: <last user text>"
        self.chunks: list[str] | None = None  # exact content chunks (wins over reply)
        self.quirks = Quirks()
        self.image_format = "b64_json"  # or "url": served by this fake under /files/
        self.image_delay = 0.0  # seconds before an image answer (generation takes time)
        self.transcript: str | None = None  # None: a sentence naming the byte count
        # When set, transcriptions are answered only once it is set (a test decides when).
        self.transcript_release: asyncio.Event | None = None
        self.stamp = False  # each content chunk is its send time (time.monotonic()) instead
        # Tool calling: each request that offers `tools` takes the next scripted turn; with
        # none left (or no tools offered) the model answers in text, quoting tool results.
        self.turns: collections.deque[ModelTurn] = collections.deque()
        self.argument_piece = 5  # argument JSON is streamed in pieces this long (mid-string)
        self.refuse_tools: set[str] = set()  # models answering 400 to a request with `tools`
        self.responses_only: set[str] = set()  # models refusing /chat/completions
        self.calls_sent_at: list[float] = []  # monotonic time each turn's last call byte left
        self.embedding_dimension = 256  # hashed word counts: texts sharing words are near
        self.faults: collections.deque[Fault] = collections.deque()
        # Records.
        self.requests: list[RecordedRequest] = []
        # The usage object of every completion answered with one (what a bill would count).
        self.usages: list[dict[str, int]] = []
        self.transcriptions: list[Transcription] = []
        self.downloads: list[Mapping[str, str]] = []  # headers of each /files/ request
        self.transcribed_at: list[float] = []  # time.monotonic() of each transcription answer
        self.files: dict[str, bytes] = {}
        self.active_streams = 0  # SSE responses still being written
        self.peak_streams = 0  # the most written at once
        self._stream_ended = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ lifecycle

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/files/{name}", self._file)
        # A short shutdown: a test ending mid-stream should not wait for the handler to finish.
        self._runner, self.port = await serve_on_loopback(
            app, port=self.port, access_log=None, shutdown_timeout=0.2
        )

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- knobs

    def fail_next(
        self,
        status: int,
        code: str,
        *,
        times: int = 1,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | str | None = None,
    ) -> None:
        """Answer the next `times` API requests with this error (status 0: drop the connection)."""
        fault = Fault(
            status=status,
            code=code,
            message=message or f"scripted failure: {code}",
            error_type=error_type or _DEFAULT_FAULT_TYPES.get(status, code),
            retry_after=None if retry_after is None else str(retry_after),
        )
        self.faults.extend([fault] * times)

    async def streams_finished(self) -> None:
        """Return once no SSE response is being written (bound it with asyncio.timeout)."""
        while self.active_streams:
            self._stream_ended.clear()
            await self._stream_ended.wait()

    def paths(self) -> list[str]:
        """Paths of the API requests received, in order."""
        return [request.path for request in self.requests]

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat requests (both endpoints), in order."""
        return [
            r.json
            for r in self.requests
            if r.path in ("/v1/chat/completions", "/v1/responses") and isinstance(r.json, dict)
        ]

    def embedding_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the embeddings requests, in order."""
        return [
            r.json for r in self.requests if r.path == "/v1/embeddings" and isinstance(r.json, dict)
        ]

    def embedded(self) -> list[str]:
        """Every text sent to /v1/embeddings, in order."""
        return [text for body in self.embedding_bodies() for text in body.get("input") or ()]

    def _turn_for(self, body: dict[str, Any]) -> ModelTurn | None:
        if body.get("tools") and body.get("tool_choice") != "none" and self.turns:
            return self.turns.popleft()
        return None

    def _refusal_for(self, body: dict[str, Any], path: str) -> web.Response | None:
        model = body.get("model")
        if path == "chat" and model in self.responses_only:
            return _error(
                400,
                "This model is only supported in v1/responses and not in v1/chat/completions.",
                "invalid_request_error",
                None,
            )
        if body.get("tools") and model in self.refuse_tools:
            return _error(
                400,
                f"tools is not supported for model {model}",
                "invalid_request_error",
                None,
            )
        return None

    # ------------------------------------------------------------- plumbing

    async def _admit(self, request: web.Request, body: Any) -> web.StreamResponse | None:
        """Record the request, then apply a scripted fault or the key check."""
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                json=body,
                at=time.monotonic(),
            )
        )
        if self.faults:
            fault = self.faults.popleft()
            if fault.status == 0:
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError  # aiohttp: the handler's connection is gone
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return _error(fault.status, fault.message, fault.error_type, fault.code, headers)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401,
                "Incorrect API key provided. You can find your API key in the console.",
                "invalid_request_error",
                "invalid_api_key",
            )
        return None

    def _unknown_model(self, model: Any) -> web.Response | None:
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter", "invalid_request_error", None)
        if model not in self.models:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        return None

    # ----------------------------------------------------------------- chat

    async def _paced(self, piece: str, start: float, index: int) -> str:
        """Piece `index` of a stream begun at `start` (loop time), once it is due."""
        if self.chunk_delay > 0:
            # An absolute schedule, so the pace does not drift with handler overhead.
            wait = start + (index + 1) * self.chunk_delay - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
        if self.stamp:
            # The send time (CLOCK_MONOTONIC, shared by processes on one machine) as the
            # text, so a benchmark can measure write-to-delta latency across processes.
            return f"{time.monotonic():.6f} "
        return piece

    async def _accepted(
        self, request: web.Request, endpoint: str, required: str, shaped: type | tuple[type, ...]
    ) -> dict[str, Any] | web.StreamResponse:
        """The request's JSON body when the key, its `required` field (of type `shaped`), the
        model and any scripted refusal let it through; else the error to answer with."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        refusal = await self._admit(request, body)
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or not isinstance(body.get(required), shaped):
            return _error(
                400, f"'{required}' is a required property", "invalid_request_error", None
            )
        refusal = self._unknown_model(body.get("model")) or self._refusal_for(body, endpoint)
        return body if refusal is None else refusal

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._accepted(request, "chat", "messages", list)
        if isinstance(body, web.StreamResponse):
            return body
        model = str(body["model"])
        turn = self._turn_for(body)
        pieces = self._reply_chunks(body["messages"], turn)
        # Each piece is one token here; like a real model, max_tokens stops the reply there.
        cap = body.get("max_tokens")
        finish = "stop"
        if isinstance(cap, int) and len(pieces) > cap:
            pieces, finish = pieces[:cap], "length"
        usage = {
            "prompt_tokens": _count_words(body["messages"]),
            "completion_tokens": len(pieces),
            "total_tokens": _count_words(body["messages"]) + len(pieces),
        }
        completion_id = f"chatcmpl-fake{next(self._ids)}"
        if not body.get("stream") or self.quirks.json_reply:
            self.usages.append(usage)
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces)},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
            )
        options = body.get("stream_options") or {}
        with_usage = bool(options.get("include_usage")) and not self.quirks.no_usage
        self.active_streams += 1
        self.peak_streams = max(self.peak_streams, self.active_streams)
        try:
            return await self._stream(
                request, completion_id, model, pieces, finish, usage, with_usage, turn
            )
        except ConnectionResetError:
            # The client left early (it broke out of the stream): not the fake's problem.
            raise asyncio.CancelledError from None
        finally:
            self.active_streams -= 1
            self._stream_ended.set()

    def _reply_chunks(self, messages: list[Any], turn: ModelTurn | None = None) -> list[str]:
        if turn is not None:
            return re.findall(r"\s*\S+\s*", turn.text) if turn.text else []
        if self.chunks is not None:
            return list(self.chunks)
        text = self.reply
        if text is None:
            results = _tool_results(messages)
            if results:
                # The answer is built on the tools' results, as a real model's would be.
                text = "From the tools: " + "; ".join(results)
            else:
                last = next(
                    (
                        m
                        for m in reversed(messages)
                        if isinstance(m, dict) and m.get("role") == "user"
                    ),
                    {},
                )
                text = f"You said: {_text_of(last.get('content'))}"
        return re.findall(r"\s*\S+\s*", text) or [text]

    async def _stream(
        self,
        request: web.Request,
        completion_id: str,
        model: str,
        pieces: list[str],
        finish: str,
        usage: dict[str, int],
        with_usage: bool,
        turn: ModelTurn | None = None,
    ) -> web.StreamResponse:
        quirks = self.quirks
        newline = "\r\n" if quirks.crlf else "\n"
        prefix = "data:" if quirks.no_space else "data: "
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        created = int(time.time())

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
                **extra,
            }
            # Raw UTF-8 as OpenAI sends it, not \u escapes.
            return f"{prefix}{json.dumps(chunk, ensure_ascii=False)}{newline}{newline}".encode()

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        comment = f": keep-alive{newline}{newline}".encode() if quirks.comments else b""

        async def send(data: bytes) -> None:
            # Pieces split lines, CRLF pairs and UTF-8 sequences across network reads.
            size = quirks.fragment or len(data)
            for offset in range(0, len(data), size):
                await response.write(data[offset : offset + size])
                if quirks.fragment:
                    await asyncio.sleep(0.001)

        if quirks.empty_choices:
            # Azure-style prompt-filter chunk before anything else.
            await send(event([], prompt_filter_results=[]))
        first = (
            {"role": "assistant"}
            if quirks.role_only_first
            else {"role": "assistant", "content": ""}
        )
        await send(comment + event([choice(first)]))
        start = asyncio.get_running_loop().time()
        for index, piece in enumerate(pieces):
            if quirks.drop_after is not None and index == quirks.drop_after:
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError
            if quirks.error_after is not None and index == quirks.error_after:
                error = {
                    "error": {
                        "message": quirks.error_message,
                        "type": quirks.error_code,
                        "code": quirks.error_code,
                    }
                }
                await send(f"{prefix}{json.dumps(error)}{newline}{newline}".encode())
                await response.write_eof()
                return response
            piece = await self._paced(piece, start, index)
            data = event([choice({"content": piece})])
            if quirks.comments:
                data = comment + data
            if quirks.empty_choices and index % 2:
                data += event([])
            await send(data)
        if turn is not None and turn.calls:
            finish = "tool_calls"
            await send(b"".join(event([choice(d)]) for d in self._call_deltas(turn)))
            self.calls_sent_at.append(time.monotonic())
        tail = event([choice({}, finish)])
        if with_usage:
            tail += event([], usage=usage)
            self.usages.append(usage)
        if not quirks.no_done:
            tail += f"{prefix}[DONE]{newline}{newline}".encode()
        await send(tail)
        await response.write_eof()
        return response

    def _call_deltas(self, turn: ModelTurn) -> list[dict[str, Any]]:
        """Tool-call deltas as OpenAI streams them: id and name first, then the arguments
        in small pieces (cut mid-string), one call after another by `index`."""
        deltas: list[dict[str, Any]] = []
        for index, call in enumerate(turn.calls):
            call_id = call.id or f"call_{next(self._ids)}"
            head = {"name": call.name, "arguments": ""}
            deltas.append(
                {
                    "tool_calls": [
                        {"index": index, "id": call_id, "type": "function", "function": head}
                    ]
                }
            )
            step = max(1, self.argument_piece)
            for offset in range(0, len(call.arguments), step):
                piece = call.arguments[offset : offset + step]
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        return deltas

    # ------------------------------------------------------------ responses

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        # A Responses input is a string or a list of items.
        body = await self._accepted(request, "responses", "input", (str, list))
        if isinstance(body, web.StreamResponse):
            return body
        model = str(body["model"])
        messages = _responses_as_messages(body["input"])
        if body.get("instructions"):
            messages.insert(0, {"role": "system", "content": str(body["instructions"])})
        turn = self._turn_for(body)
        pieces = self._reply_chunks(messages, turn)
        cap = body.get("max_output_tokens")
        incomplete = isinstance(cap, int) and len(pieces) > cap
        if incomplete:
            pieces = pieces[:cap]
        usage = {
            "input_tokens": _count_words(messages),
            "output_tokens": len(pieces),
            "total_tokens": _count_words(messages) + len(pieces),
        }
        self.active_streams += 1
        self.peak_streams = max(self.peak_streams, self.active_streams)
        try:
            return await self._response_stream(request, model, pieces, usage, turn, incomplete)
        except ConnectionResetError:
            raise asyncio.CancelledError from None
        finally:
            self.active_streams -= 1
            self._stream_ended.set()

    async def _response_stream(
        self,
        request: web.Request,
        model: str,
        pieces: list[str],
        usage: dict[str, int],
        turn: ModelTurn | None,
        incomplete: bool = False,
    ) -> web.StreamResponse:
        """The /v1/responses event stream: typed events, usage in response.completed (or in
        response.incomplete when max_output_tokens cut the answer)."""
        quirks = self.quirks
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        response_id = f"resp_fake{next(self._ids)}"
        numbers = itertools.count()
        shell: dict[str, Any] = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "status": "in_progress",
            "output": [],
            "usage": None,
        }

        def event(kind: str, **fields: Any) -> bytes:
            data = {"type": kind, "sequence_number": next(numbers), **fields}
            return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

        await response.write(event("response.created", response=shell))
        message_id = f"msg_{next(self._ids)}"
        output: list[dict[str, Any]] = []
        start = asyncio.get_running_loop().time()
        if pieces:
            item = {"id": message_id, "type": "message", "role": "assistant", "content": []}
            await response.write(event("response.output_item.added", output_index=0, item=item))
        for index, piece in enumerate(pieces):
            if quirks.drop_after is not None and index == quirks.drop_after:
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError
            if quirks.error_after is not None and index == quirks.error_after:
                failed = {
                    **shell,
                    "status": "failed",
                    "error": {"code": quirks.error_code, "message": quirks.error_message},
                }
                await response.write(event("response.failed", response=failed))
                await response.write_eof()
                return response
            piece = await self._paced(piece, start, index)
            await response.write(
                event(
                    "response.output_text.delta",
                    item_id=message_id,
                    output_index=0,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
            )
        if pieces:
            text = "".join(pieces)
            part = {"type": "output_text", "text": text, "annotations": []}
            done = {"id": message_id, "type": "message", "role": "assistant", "content": [part]}
            output.append(done)
            await response.write(event("response.output_item.done", output_index=0, item=done))
        for call in turn.calls if turn is not None else ():
            position = len(output)
            item_id = f"fc_{next(self._ids)}"
            call_id = call.id or f"call_{next(self._ids)}"
            added = {
                "id": item_id,
                "type": "function_call",
                "call_id": call_id,
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
            data = event("response.output_item.added", output_index=position, item=added)
            step = max(1, self.argument_piece)
            for offset in range(0, len(call.arguments), step):
                data += event(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=position,
                    delta=call.arguments[offset : offset + step],
                )
            finished = {**added, "arguments": call.arguments, "status": "completed"}
            data += event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=position,
                arguments=call.arguments,
            )
            data += event("response.output_item.done", output_index=position, item=finished)
            output.append(finished)
            await response.write(data)
            self.calls_sent_at.append(time.monotonic())
        if incomplete:
            cut = {
                **shell,
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "output": output,
                "usage": usage,
            }
            await response.write(event("response.incomplete", response=cut))
        else:
            completed = {**shell, "status": "completed", "output": output, "usage": usage}
            await response.write(event("response.completed", response=completed))
        await response.write_eof()
        return response

    # --------------------------------------------------------------- images

    async def _images(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        refusal = await self._admit(request, body)
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or not body.get("prompt"):
            return _error(400, "'prompt' is a required property", "invalid_request_error", None)
        refusal = self._unknown_model(body.get("model"))
        if refusal is not None:
            return refusal
        if self.image_delay:
            await asyncio.sleep(self.image_delay)
        digest = hashlib.sha256(str(body["prompt"]).encode()).digest()
        items = []
        for index in range(int(body.get("n") or 1)):
            image = png_bytes(rgb=(digest[0], digest[1], (digest[2] + index) % 256))
            if self.image_format == "url":
                name = f"img-{next(self._ids)}.png"
                self.files[name] = image
                items.append({"url": f"{self.root_url}/files/{name}"})
            else:
                items.append({"b64_json": base64.b64encode(image).decode()})
        return web.json_response({"created": int(time.time()), "data": items})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append(dict(request.headers))
        image = self.files.get(request.match_info["name"])
        if image is None:
            raise web.HTTPNotFound()
        return web.Response(body=image, content_type="image/png")

    # -------------------------------------------------------- transcription

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        fields: dict[str, str] = {}
        upload: tuple[bytes, str, str] | None = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "file":
                    upload = (
                        bytes(await part.read()),
                        part.filename or "",
                        part.headers.get("Content-Type", ""),
                    )
                elif part.name:
                    fields[part.name] = await part.text()
        refusal = await self._admit(request, fields)
        if refusal is not None:
            return refusal
        if upload is None:
            return _error(400, "'file' is a required property", "invalid_request_error", None)
        refusal = self._unknown_model(fields.get("model"))
        if refusal is not None:
            return refusal
        data, filename, content_type = upload
        self.transcriptions.append(
            Transcription(
                data=data,
                filename=filename,
                content_type=content_type,
                model=fields["model"],
                language=fields.get("language"),
                response_format=fields.get("response_format"),
            )
        )
        if self.transcript_release is not None:
            await self.transcript_release.wait()
        text = self.transcript
        if text is None:
            text = f"Heard {len(data)} bytes of audio from {filename}."
        self.transcribed_at.append(time.monotonic())
        if fields.get("response_format") == "text":
            return web.Response(text=text, content_type="text/plain")
        return web.json_response({"text": text})

    # ----------------------------------------------------------- embeddings

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        refusal = await self._admit(request, body)
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or "input" not in body:
            return _error(400, "'input' is a required property", "invalid_request_error", None)
        refusal = self._unknown_model(body.get("model"))
        if refusal is not None:
            return refusal
        inputs = body["input"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(text, str) and text for text in inputs)
        ):
            return _error(400, "'input' must be non-empty strings", "invalid_request_error", None)
        items = []
        for index, text in enumerate(inputs):
            vector = hashed_embedding(text, self.embedding_dimension)
            if body.get("encoding_format") == "base64":
                packed = struct.pack(f"<{len(vector)}f", *vector)
                embedding: Any = base64.b64encode(packed).decode()
            else:
                embedding = vector
            items.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(_WORD.findall(text)) or 1 for text in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": items,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # --------------------------------------------------------------- models

    async def _models(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._admit(request, None)
        if refusal is not None:
            return refusal
        data = [
            {"id": model_id, "object": "model", "created": 1700000000, "owned_by": owner}
            for model_id, owner in self.models.items()
        ]
        return web.json_response({"object": "list", "data": data})


_WORD = re.compile(r"[a-z0-9_]+")


@functools.lru_cache(maxsize=65536)
def _slot(word: str, dimension: int) -> tuple[int, float]:
    digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % dimension, 1.0 if digest[4] & 1 else -1.0


def hashed_embedding(text: str, dimension: int = 256) -> list[float]:
    """Counts of the text's words hashed into `dimension` signed slots, unit length: texts that
    share words point the same way, so the nearest chunk is the one that says what was asked."""
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower()):
        slot, sign = _slot(word, dimension)
        vector[slot] += sign
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector] if norm else [1.0] + [0.0] * (dimension - 1)


def _error(
    status: int,
    message: str,
    error_type: str,
    code: str | None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _tool_results(messages: list[Any]) -> list[str]:
    """The tool results after the last user message (what the model is to answer from)."""
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") == "user":
            break
        if message.get("role") == "tool":
            results.append(_text_of(message.get("content")))
    return results[::-1]


def _responses_as_messages(items: Any) -> list[dict[str, Any]]:
    """Responses input items as chat messages, enough for the fake's answers and counts."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":
            messages.append({"role": "tool", "content": str(item.get("output", ""))})
        elif item.get("type") == "function_call":
            messages.append({"role": "assistant", "content": ""})
        elif item.get("role"):
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
            messages.append({"role": str(item["role"]), "content": content})
    return messages


def _count_words(messages: list[Any]) -> int:
    return sum(
        len(_text_of(message.get("content")).split())
        for message in messages
        if isinstance(message, dict)
    )


async def _serve(port: int, key: str, delay: float, stamp: bool) -> None:
    gateway = FakeGateway(api_key=key, port=port, chunk_delay=delay)
    gateway.stamp = stamp
    await gateway.start()
    print(gateway.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await gateway.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=DEFAULT_KEY)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--stamp", action="store_true", help="chunks carry their send time")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.key, args.delay, args.stamp))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
