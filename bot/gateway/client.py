"""Client for the OpenAI-compatible model gateway: streamed chat, images, transcription, models."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from bot.errors import TooLarge
from bot.gateway.errors import GatewayError, error_from_answer
from bot.gateway.models import ModelInfo, vendor_for
from bot.gateway.responses import (
    matches,
    only_on_responses,
    responses_body,
    responses_deltas,
    whole_response,
)
from bot.gateway.stream import (
    ChatStream,
    TokenUsage,
    ToolCall,
    sse_deltas,
    whole_completion,
)
from bot.gateway.transport import TransportName, make_transport
from bot.i18n import t
from bot.ops.telemetry import Silent, Telemetry
from bot.secret import Secret

__all__ = [
    "MAX_AUDIO_BYTES",
    "ChatStream",
    "Embeddings",
    "Gateway",
    "GatewayError",
    "ModelInfo",
    "Timeouts",
    "TokenUsage",
    "ToolCall",
]

log = logging.getLogger(__name__)

# The gateway (like OpenAI) refuses transcription uploads above 25 MB.
MAX_AUDIO_BYTES = 25 * 1024 * 1024
# A generated image fetched from a `url` answer; far above any real PNG/JPEG/WebP result.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
# Embeddings: inputs per request (OpenAI takes up to 2,048 and 300k tokens), requests at once.
EMBED_BATCH = 96
EMBED_BATCH_CHARS = 400_000
EMBED_CONCURRENCY = 4

_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "mpga": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "wav": "audio/wav",
    "webm": "audio/webm",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "flac": "audio/flac",
}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per call; for chat `chat_read` is the longest silence allowed between two chunks."""

    connect: float = 10.0
    chat_read: float = 60.0
    image: float = 180.0  # image generation can take two minutes or more
    transcribe: float = 120.0
    models: float = 30.0
    download: float = 60.0
    embeddings: float = 60.0

    def http(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(read, connect=min(self.connect, read))


Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One vector per input, in input order, and the tokens the gateway counted."""

    vectors: list[npt.NDArray[np.float32]]
    tokens: int


class Gateway:
    """One client over one httpx.AsyncClient, with the retry policy of the gateway manual."""

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        max_retries: int = 3,
        retry_base: float = 0.5,
        retry_cap: float = 8.0,
        max_retry_after: float = 30.0,
        models_ttl: float = 300.0,
        timeouts: Timeouts | None = None,
        max_connections: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        transport: TransportName | httpx.AsyncBaseTransport = "aiohttp",
        responses_models: Iterable[str] = (),
        telemetry: Telemetry | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Models streamed through /responses: configured glob patterns, and models that
        # /chat/completions said it does not serve (learned, kept for the process's life).
        self.responses_models = tuple(responses_models)
        self.responses_learned: set[str] = set()
        # Models (or a gateway in front of them) that refused a request carrying `tools`.
        self.refuses_tools: set[str] = set()
        self._key = api_key
        self._max_retries = max_retries
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._max_retry_after = max_retry_after
        self._models_ttl = models_ttl
        self._timeouts = timeouts or Timeouts()
        self._clock = clock
        self._sleep = sleep
        # Every answer (each attempt) and every retry, by endpoint and code, for metrics.
        self._telemetry = telemetry or Silent()
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {api_key.reveal()}"},
            timeout=self._timeouts.http(self._timeouts.chat_read),
            # Hundreds of concurrent streams are normal for a bot: httpx's default pool of 100
            # connections would queue them (see gateway_transport for the choice of transport).
            transport=(
                make_transport(transport, max_connections)
                if isinstance(transport, str)
                else transport
            ),
        )
        # Image URLs point at other hosts (CDNs): fetched by a client that holds no credentials.
        self._downloads: httpx.AsyncClient | None = None
        self._models: tuple[ModelInfo, ...] | None = None
        self._models_expiry = 0.0
        self._models_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Gateway(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._downloads is not None:
            await self._downloads.aclose()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---------------------------------------------------------------- chat

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: Sequence[dict[str, Any]] = (),
        tool_choice: str | None = None,
    ) -> ChatStream:
        """Start a streamed chat completion; nothing is sent until the stream is iterated.

        `messages` and `tools` are in the Chat Completions format whichever endpoint answers:
        models that need /responses get them translated. The stream's `tool_calls` says
        what the model asked for once it has ended.
        """
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        stream = ChatStream(model)
        if tools:
            if model in self.refuses_tools:
                stream.tools_dropped = True
            else:
                body["tools"] = list(tools)
                if tool_choice is not None:
                    body["tool_choice"] = tool_choice
        stream._deltas = self._chat_deltas(stream, body)
        return stream

    def uses_responses(self, model: str) -> bool:
        """Whether chat with `model` goes through /responses."""
        return model in self.responses_learned or matches(model, self.responses_models)

    async def _chat_deltas(
        self, stream: ChatStream, body: dict[str, Any]
    ) -> AsyncGenerator[str, None]:
        model: str = body["model"]
        attempt = 0
        while True:
            delivered = False
            responses = self.uses_responses(model)
            endpoint = "responses" if responses else "chat/completions"
            try:
                async with self._client.stream(
                    "POST",
                    endpoint,
                    json=responses_body(body) if responses else body,
                    headers={"Accept": "text/event-stream"},
                    timeout=self._timeouts.http(self._timeouts.chat_read),
                ) as response:
                    if response.status_code >= 300:
                        raise await self._answer_error(response, model)
                    if stream.tools_dropped and model not in self.refuses_tools:
                        log.warning("%s refused tools; chatting without them from now on", model)
                        self.refuses_tools.add(model)
                    content_type = response.headers.get("content-type", "")
                    if "text/event-stream" not in content_type:
                        # Some gateways ignore stream=true and answer with one JSON completion.
                        raw = await response.aread()
                        text = (
                            whole_response(stream, raw, model)
                            if responses
                            else whole_completion(stream, raw, model)
                        )
                        self._answered(endpoint, response.status_code)
                        if text:
                            delivered = True
                            yield text
                        return
                    deltas = responses_deltas if responses else sse_deltas
                    async for text in deltas(stream, response, model):
                        delivered = True
                        yield text
                    self._answered(endpoint, response.status_code)
                    return
            except GatewayError as error:
                failure = self._redacted(error)
            except httpx.HTTPError as exc:
                # A connection that died before anything reached the caller counts as
                # unreachable: as safe to repeat as a refused connection.
                failure = self._transport_error(exc, model, streaming=delivered)
            self._answered(endpoint, failure.status, failure.code)
            if not delivered and not responses and only_on_responses(failure):
                log.info("%s answers only on /responses; streaming it from there", model)
                self.responses_learned.add(model)
                continue
            if not delivered and failure.status == 400 and "tools" in body:
                # Remembered only once the request without tools is accepted: a 400 for
                # another reason fails again and tools stay on for the next request.
                body = {k: v for k, v in body.items() if k not in ("tools", "tool_choice")}
                stream.tools_dropped = True
                continue
            if delivered or not self._may_retry(failure, attempt):
                raise failure
            await self._pause(failure, attempt, endpoint)
            attempt += 1

    # -------------------------------------------------------------- images

    async def image(
        self,
        model: str,
        prompt: str,
        *,
        size: str = "1024x1024",
        quality: str | None = None,
        n: int = 1,
    ) -> list[bytes]:
        """Generate images; returns the encoded image files (PNG/JPEG/WebP as the gateway sends)."""
        body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "size": size}
        if quality is not None:
            body["quality"] = quality
        response = await self._send(
            self._client,
            "POST",
            "images/generations",
            model=model,
            limit=self._timeouts.http(self._timeouts.image),
            json=body,
        )
        payload = _json_object(response, model)
        items = payload.get("data")
        if not isinstance(items, list) or not items:
            raise GatewayError(
                response.status_code, "server_error", "the answer held no image", model=model
            )
        images: list[bytes] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("b64_json"):
                images.append(_decode_base64(str(item["b64_json"]), model))
            elif item.get("url"):
                images.append(await self._fetch_image(str(item["url"]), model))
        if not images:
            raise GatewayError(
                response.status_code, "server_error", "the answer held no image", model=model
            )
        return images

    async def _fetch_image(self, url: str, model: str) -> bytes:
        if url.startswith("data:"):
            return _decode_base64(url, model)
        if not url.startswith(("https://", "http://")):
            raise GatewayError(200, "server_error", "the image URL is not http(s)", model=model)
        if self._downloads is None:
            self._downloads = httpx.AsyncClient(
                timeout=self._timeouts.http(self._timeouts.download), follow_redirects=True
            )
        attempt = 0
        while True:
            try:
                image = await self._download(self._downloads, url, model)
                self._answered("image_download", 200)
                return image
            except httpx.HTTPError as exc:
                failure = self._transport_error(exc, model, streaming=False)
            except GatewayError as error:
                failure = error
            self._answered("image_download", failure.status, failure.code)
            refused = failure.status is not None and 400 <= failure.status < 500
            if refused or not self._may_retry(failure, attempt):
                raise failure
            await self._pause(failure, attempt, "image_download")
            attempt += 1

    async def _download(self, client: httpx.AsyncClient, url: str, model: str) -> bytes:
        async with client.stream("GET", url) as response:
            if response.status_code >= 300:
                code = "rate_limited" if response.status_code == 429 else "server_error"
                raise GatewayError(
                    response.status_code,
                    code,
                    f"downloading the generated image failed (HTTP {response.status_code})",
                    model=model,
                )
            parts: list[bytes] = []
            size = 0
            async for part in response.aiter_bytes():
                size += len(part)
                if size > MAX_IMAGE_BYTES:
                    raise GatewayError(
                        200, "server_error", "the generated image is too large", model=model
                    )
                parts.append(part)
            return b"".join(parts)

    # ------------------------------------------------------- transcription

    async def transcribe(
        self,
        model: str,
        data: bytes,
        filename: str,
        *,
        mime: str | None = None,
        language: str | None = None,
    ) -> str:
        """Transcribe one audio file (at most MAX_AUDIO_BYTES; larger raises TooLarge unsent)."""
        if len(data) > MAX_AUDIO_BYTES:
            raise TooLarge(
                t(
                    "The audio file is {size} MB but the gateway accepts at most {limit} MB; send "
                    "a shorter or more compressed recording.",
                    size=f"{len(data) / 1048576:.1f}",
                    limit=MAX_AUDIO_BYTES // 1048576,
                )
            )
        if mime is None:
            mime = _AUDIO_TYPES.get(filename.rpartition(".")[2].lower(), "application/octet-stream")
        fields = {"model": model, "response_format": "json"}
        if language:
            fields["language"] = language
        response = await self._send(
            self._client,
            "POST",
            "audio/transcriptions",
            model=model,
            limit=self._timeouts.http(self._timeouts.transcribe),
            data=fields,
            # A file object is streamed in chunks (and rewound for a retry); raw bytes would be
            # copied whole into the multipart body, doubling peak memory for a 24 MB upload.
            files={"file": (filename, io.BytesIO(data), mime)},
        )
        if "json" not in response.headers.get("content-type", ""):
            return response.text.strip()
        payload = _json_object(response, model)
        text = payload.get("text")
        if not isinstance(text, str):
            raise GatewayError(
                response.status_code, "server_error", "the answer held no text", model=model
            )
        return text.strip()

    # ---------------------------------------------------------- embeddings

    async def embeddings(
        self,
        model: str,
        inputs: Sequence[str],
        *,
        batch: int = EMBED_BATCH,
        concurrency: int = EMBED_CONCURRENCY,
    ) -> Embeddings:
        """Embed `inputs` (none empty) in batches, at most `concurrency` requests at once.

        Each batch gets the retry policy; a batch that still fails cancels the others and its
        GatewayError is raised.
        """
        vectors: list[npt.NDArray[np.float32] | None] = [None] * len(inputs)
        tokens = 0
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(start: int, texts: list[str]) -> None:
            nonlocal tokens
            async with gate:
                found, used = await self._embed_batch(model, texts)
            vectors[start : start + len(texts)] = found
            tokens += used

        try:
            async with asyncio.TaskGroup() as group:
                for start, texts in _batches(inputs, batch, EMBED_BATCH_CHARS):
                    group.create_task(one(start, texts))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return Embeddings([v for v in vectors if v is not None], tokens)

    async def _embed_batch(
        self, model: str, texts: list[str]
    ) -> tuple[list[npt.NDArray[np.float32]], int]:
        # base64: a quarter of the bytes of a JSON float list, and what OpenAI's own SDK asks for;
        # gateways that ignore it and send floats are read too.
        body = {"model": model, "input": texts, "encoding_format": "base64"}
        response = await self._send(
            self._client,
            "POST",
            "embeddings",
            model=model,
            limit=self._timeouts.http(self._timeouts.embeddings),
            json=body,
        )
        payload = _json_object(response, model)
        items = payload.get("data")
        if not isinstance(items, list) or len(items) != len(texts):
            count = len(items) if isinstance(items, list) else 0
            raise GatewayError(
                response.status_code,
                "server_error",
                f"the embeddings answer held {count} vectors for {len(texts)} inputs",
                model=model,
            )
        ordered = sorted(
            (item for item in items if isinstance(item, dict)),
            key=lambda item: int(item.get("index", 0)),
        )
        vectors = [_vector(item.get("embedding"), model) for item in ordered]
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) > 1:
            raise GatewayError(
                response.status_code,
                "server_error",
                "the embeddings answer is malformed",
                model=model,
            )
        usage = payload.get("usage")
        used = 0
        if isinstance(usage, dict):
            used = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return vectors, used

    # -------------------------------------------------------------- models

    async def models(self) -> list[ModelInfo]:
        """The gateway's models sorted by id, cached for `models_ttl` seconds."""
        if self._models is not None and self._clock() < self._models_expiry:
            return list(self._models)
        async with self._models_lock:
            # Another caller may have refreshed the list while this one waited for the lock.
            if self._models is not None and self._clock() < self._models_expiry:
                return list(self._models)
            try:
                response = await self._send(
                    self._client,
                    "GET",
                    "models",
                    model=None,
                    limit=self._timeouts.http(self._timeouts.models),
                )
            except GatewayError as error:
                if self._models is not None and error.retryable:
                    log.warning("model list refresh failed (%s); serving the cached list", error)
                    return list(self._models)
                raise
            payload = response.json() if response.content else None
            items = payload.get("data") if isinstance(payload, dict) else payload
            infos = {
                str(item["id"]): ModelInfo(
                    id=str(item["id"]),
                    owned_by=str(item.get("owned_by") or ""),
                    vendor=vendor_for(str(item["id"]), str(item.get("owned_by") or "")),
                )
                for item in items or ()
                if isinstance(item, dict) and item.get("id")
            }
            self._models = tuple(sorted(infos.values(), key=lambda info: info.id))
            self._models_expiry = self._clock() + self._models_ttl
            return list(self._models)

    def forget_models(self) -> None:
        """Drop the cached model list so the next models() call asks the gateway."""
        self._models = None

    # ------------------------------------------------------ shared helpers

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        model: str | None,
        limit: httpx.Timeout,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request with the retry policy; returns a 2xx response with its body read."""
        attempt = 0
        while True:
            try:
                response = await client.request(method, url, timeout=limit, **kwargs)
            except httpx.HTTPError as exc:
                failure = self._transport_error(exc, model, streaming=False)
            else:
                if response.status_code < 300:
                    self._answered(url, response.status_code)
                    return response
                failure = await self._answer_error(response, model)
            self._answered(url, failure.status, failure.code)
            if not self._may_retry(failure, attempt):
                raise failure
            await self._pause(failure, attempt, url)
            attempt += 1

    def _answered(self, endpoint: str, status: int | None, code: str = "ok") -> None:
        self._telemetry.gateway_answer(endpoint, status, code)

    def _may_retry(self, error: GatewayError, attempt: int) -> bool:
        if not error.retryable or attempt >= self._max_retries:
            return False
        # A long Retry-After is better reported ("try again in N s") than waited out silently.
        return error.retry_after is None or error.retry_after <= self._max_retry_after

    async def _pause(self, error: GatewayError, attempt: int, what: str) -> None:
        ceiling = min(self._retry_cap, self._retry_base * 2**attempt)
        # Equal jitter: grows exponentially yet spreads clients that failed together.
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        self._telemetry.gateway_retry(what, error.code)
        log.warning(
            "gateway %s failed (%s); retry %d/%d in %.2fs",
            what,
            error,
            attempt + 1,
            self._max_retries,
            delay,
        )
        await self._sleep(delay)

    async def _answer_error(self, response: httpx.Response, model: str | None) -> GatewayError:
        body = await response.aread()
        error = error_from_answer(
            response.status_code,
            body,
            response.headers,
            model=model,
            path=response.request.url.path,
        )
        return self._redacted(error)

    def _transport_error(
        self, exc: httpx.HTTPError, model: str | None, *, streaming: bool
    ) -> GatewayError:
        """Map an httpx failure; `streaming` means part of a reply already reached the caller."""
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            error = GatewayError(None, "unreachable", f"connect timed out: {detail}", model=model)
        elif isinstance(exc, httpx.TimeoutException):
            error = GatewayError(None, "timeout", detail, model=model)
        elif streaming and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            error = GatewayError(
                200, "stream_error", f"the connection closed mid-reply: {detail}", model=model
            )
        else:
            # Refused connections, DNS failures, and keep-alive connections the server had
            # already closed: none of them reached the model, so repeating is safe.
            error = GatewayError(None, "unreachable", detail, model=model)
        return self._redacted(error)

    def _redacted(self, error: GatewayError) -> GatewayError:
        # Some gateways echo the key they were sent in their error text.
        key = self._key.reveal()
        if key and key in error.message:
            error.message = error.message.replace(key, "***")
            error.args = (str(error.args[0]).replace(key, "***"),)
        return error


def _json_object(response: httpx.Response, model: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise GatewayError(
            response.status_code, "server_error", "the gateway answered non-JSON", model=model
        )
    return payload


def _batches(inputs: Sequence[str], size: int, max_chars: int) -> Iterable[tuple[int, list[str]]]:
    """(offset, inputs) runs of at most `size` inputs and about `max_chars` characters."""
    start, chars = 0, 0
    batch: list[str] = []
    for index, text in enumerate(inputs):
        if batch and (len(batch) >= size or chars + len(text) > max_chars):
            yield start, batch
            start, batch, chars = index, [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield start, batch


def _vector(raw: Any, model: str) -> npt.NDArray[np.float32]:
    if isinstance(raw, str):
        data = _decode_base64(raw, model)
        if len(data) % 4:
            raise GatewayError(200, "server_error", "an embedding is not float32 data", model=model)
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    if isinstance(raw, list) and raw:
        try:
            return np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            pass
    raise GatewayError(200, "server_error", "an embedding is missing or malformed", model=model)


def _decode_base64(text: str, model: str) -> bytes:
    # Some gateways send a data: URL where OpenAI sends bare base64.
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raise GatewayError(
            200, "server_error", "the image data is not base64", model=model
        ) from None
