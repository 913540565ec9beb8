"""The gateway client against the fake gateway over real HTTP and SSE on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.errors import TooLarge
from bot.gateway.client import MAX_AUDIO_BYTES, Gateway, GatewayError, Timeouts, TokenUsage
from bot.gateway.models import vendor_for
from bot.secret import Secret
from tests.fakes.gateway import CATALOGUE, FakeGateway, Quirks, png_bytes

MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there my friend"},
]
EXPECTED = ["You ", "said: ", "hello ", "there ", "my ", "friend"]
MAX_RETRIES = 3


class Sleeps:
    """Records the delays the client asked for, without waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def gw() -> AsyncIterator[FakeGateway]:
    async with FakeGateway() as fake:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


MakeGateway = Callable[..., Gateway]


# Every test runs over both transports: aiohttp (the default) and httpx's own (the fallback).
@pytest.fixture(params=["aiohttp", "httpcore"])
async def make(request: pytest.FixtureRequest, sleeps: Sleeps) -> AsyncIterator[MakeGateway]:
    made: list[Gateway] = []

    def factory(base_url: str, key: str, **options: Any) -> Gateway:
        options.setdefault("retry_base", 0.01)
        options.setdefault("sleep", sleeps)
        options["transport"] = request.param
        gateway = Gateway(base_url, Secret(key), **options)
        made.append(gateway)
        return gateway

    yield factory
    for gateway in made:
        await gateway.aclose()


@pytest.fixture
def client(gw: FakeGateway, make: MakeGateway) -> Gateway:
    return make(gw.base_url, gw.api_key, max_retries=MAX_RETRIES)


async def collect(gateway: Gateway, model: str = "gpt-4o") -> tuple[list[str], TokenUsage | None]:
    async with asyncio.timeout(10):
        stream = gateway.chat(model, MESSAGES)
        deltas = [delta async for delta in stream]
        return deltas, stream.usage


async def collect_until_error(gateway: Gateway) -> tuple[list[str], GatewayError]:
    deltas: list[str] = []
    async with asyncio.timeout(10):
        with pytest.raises(GatewayError) as caught:
            async for delta in gateway.chat("gpt-4o", MESSAGES):
                deltas.append(delta)
    return deltas, caught.value


# ------------------------------------------------------------------ chat streaming


async def test_chat_streams_deltas_usage_and_finish_reason(
    gw: FakeGateway, client: Gateway
) -> None:
    async with asyncio.timeout(10):
        stream = client.chat("gpt-4o", MESSAGES, temperature=0.2, max_tokens=50)
        deltas = [delta async for delta in stream]
    assert deltas == EXPECTED
    assert stream.usage == TokenUsage(prompt_tokens=6, completion_tokens=6)
    assert stream.finish_reason == "stop"
    (request,) = gw.requests
    assert request.headers["Authorization"] == f"Bearer {gw.api_key}"
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.json["temperature"] == 0.2
    assert request.json["max_tokens"] == 50
    assert request.json["messages"] == MESSAGES


QUIRKS = {
    "comments": Quirks(comments=True),
    "empty_choices": Quirks(empty_choices=True),
    "role_only_first": Quirks(role_only_first=True),
    "no_space": Quirks(no_space=True),
    "crlf": Quirks(crlf=True),
    "no_done": Quirks(no_done=True),
    "all": Quirks(
        comments=True,
        empty_choices=True,
        role_only_first=True,
        no_space=True,
        crlf=True,
        no_done=True,
    ),
}
# What each quirk puts on the wire, so a fake that stopped sending it would fail here.
WIRE_MARKS = {
    "comments": b"\n: keep-alive\n",
    "empty_choices": b'"choices": [], "prompt_filter_results"',
    "role_only_first": b'"delta": {"role": "assistant"}, "logprobs"',
    "no_space": b'data:{"id"',
    "crlf": b"}\r\n\r\ndata: {",
}


@pytest.mark.parametrize("name", sorted(QUIRKS))
async def test_chat_tolerates_quirk(gw: FakeGateway, client: Gateway, name: str) -> None:
    gw.quirks = QUIRKS[name]
    deltas, usage = await collect(client)
    assert deltas == EXPECTED
    assert usage == TokenUsage(prompt_tokens=6, completion_tokens=6)
    assert len(gw.requests) == 1


@pytest.mark.parametrize("name", sorted(WIRE_MARKS))
async def test_fake_really_sends_quirk(gw: FakeGateway, name: str) -> None:
    gw.quirks = QUIRKS[name]
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient() as http, asyncio.timeout(10):
        response = await http.post(
            f"{gw.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {gw.api_key}"},
        )
    assert WIRE_MARKS[name] in response.content
    assert response.content.rstrip().endswith(b"[DONE]")


async def test_events_split_across_network_reads(gw: FakeGateway, client: Gateway) -> None:
    # 5-byte pieces split "\r\n" pairs and the 3- and 4-byte UTF-8 sequences below.
    gw.quirks = Quirks(crlf=True, no_space=True, comments=True, fragment=5)
    gw.chunks = ["日本", "語 🎉", " done"]
    deltas, usage = await collect(client)
    assert deltas == ["日本", "語 🎉", " done"]
    assert usage == TokenUsage(prompt_tokens=6, completion_tokens=3)


async def test_stream_without_done_just_ends(gw: FakeGateway) -> None:
    gw.quirks = Quirks(no_done=True)
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient() as http, asyncio.timeout(10):
        raw = await http.post(
            f"{gw.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {gw.api_key}"},
        )
    assert b"[DONE]" not in raw.content


async def test_missing_usage_leaves_usage_none(gw: FakeGateway, client: Gateway) -> None:
    gw.quirks = Quirks(no_usage=True)
    deltas, usage = await collect(client)
    assert deltas == EXPECTED
    assert usage is None


async def test_json_answer_to_a_stream_request_is_one_delta(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.quirks = Quirks(json_reply=True)
    deltas, usage = await collect(client)
    assert deltas == ["".join(EXPECTED)]
    assert usage == TokenUsage(prompt_tokens=6, completion_tokens=6)


async def test_scripted_reply_and_unicode_chunks(gw: FakeGateway, client: Gateway) -> None:
    gw.chunks = ["日本", "語 🎉", "", " done"]
    deltas, _ = await collect(client)
    assert deltas == ["日本", "語 🎉", " done"]


# ------------------------------------------------------------ errors inside 200


async def test_error_event_mid_stream_raises_after_partial_text(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.quirks = Quirks(error_after=2, error_code="server_error", error_message="upstream died")
    deltas, error = await collect_until_error(client)
    assert deltas == EXPECTED[:2]
    assert (error.status, error.code, error.message) == (200, "server_error", "upstream died")
    assert len(gw.requests) == 1  # text already reached the caller: never repeated


async def test_unknown_error_code_mid_stream_is_stream_error(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.quirks = Quirks(error_after=1, error_code="upstream_weirdness")
    deltas, error = await collect_until_error(client)
    assert deltas == EXPECTED[:1]
    assert error.code == "stream_error"
    assert "try again" in error.user_message()


async def test_retryable_error_event_before_any_text_is_retried(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.quirks = Quirks(error_after=0, error_code="server_error")
    deltas, error = await collect_until_error(client)
    assert deltas == []
    assert error.code == "server_error"
    assert len(gw.requests) == MAX_RETRIES + 1


async def test_connection_dropped_mid_stream(gw: FakeGateway, client: Gateway) -> None:
    gw.quirks = Quirks(drop_after=3)
    deltas, error = await collect_until_error(client)
    assert deltas == EXPECTED[:3]
    assert (error.status, error.code) == (200, "stream_error")
    assert len(gw.requests) == 1


async def test_connection_dropped_before_any_text_is_retried(
    gw: FakeGateway, client: Gateway, sleeps: Sleeps
) -> None:
    gw.quirks = Quirks(drop_after=0)
    deltas, error = await collect_until_error(client)
    assert deltas == []
    assert error.code == "unreachable"
    assert len(gw.requests) == MAX_RETRIES + 1
    assert len(sleeps.delays) == MAX_RETRIES


async def test_read_timeout_between_chunks(gw: FakeGateway, make: MakeGateway) -> None:
    gw.chunk_delay = 2.0
    gateway = make(gw.base_url, gw.api_key, timeouts=Timeouts(chat_read=0.2))
    deltas, error = await collect_until_error(gateway)
    assert deltas == []
    assert (error.status, error.code) == (None, "timeout")
    assert len(gw.requests) == 1  # a slow model is not made slower by asking twice


async def test_leaving_a_slow_stream_early_releases_it(gw: FakeGateway, client: Gateway) -> None:
    gw.chunk_delay = 0.05
    gw.reply = " ".join(["word"] * 400)  # 20 s of stream
    async with asyncio.timeout(5):
        async with client.chat("gpt-4o", MESSAGES) as stream:
            async for _ in stream:
                break
        # The fake notices the closed connection at its next write, 50 ms later.
        await gw.streams_finished()
        gw.chunk_delay = 0
        deltas, _ = await collect(client)  # the client is still usable
    assert len(deltas) == 400


async def test_more_concurrent_streams_than_an_http_pool_default(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.chunk_delay = 0.02
    gw.reply = " ".join(["word"] * 100)  # 2 s per stream: they all overlap
    async with asyncio.timeout(30):
        replies = await asyncio.gather(
            *(client.chat("gpt-4o", MESSAGES).read() for _ in range(150))
        )
    assert set(replies) == {gw.reply}
    assert gw.peak_streams == 150  # httpx's default pool (100) would have queued 50 of them


# ------------------------------------------------------------- HTTP error classes


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "invalid_api_key", "invalid_api_key"),
        (429, "insufficient_quota", "insufficient_quota"),
        (403, "insufficient_user_quota", "insufficient_quota"),  # one-api / new-api style
        (404, "model_not_found", "model_not_found"),
        (400, "invalid_request_error", "invalid_request_error"),
        (422, "unprocessable", "invalid_request_error"),
    ],
)
async def test_errors_that_are_never_retried(
    gw: FakeGateway, client: Gateway, sleeps: Sleeps, status: int, code: str, expected: str
) -> None:
    gw.fail_next(status, code, times=5, message="scripted")
    deltas, error = await collect_until_error(client)
    assert deltas == []
    assert (error.status, error.code, error.message) == (status, expected, "scripted")
    assert len(gw.requests) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "rate_limit_exceeded"), (500, "server_error"), (502, "bad_gateway"), (0, "drop")],
)
async def test_transient_errors_are_retried_then_succeed(
    gw: FakeGateway, client: Gateway, sleeps: Sleeps, status: int, code: str
) -> None:
    gw.fail_next(status, code, times=2)
    deltas, _ = await collect(client)
    assert deltas == EXPECTED
    assert len(gw.requests) == 3
    assert len(sleeps.delays) == 2


async def test_retries_are_bounded_and_back_off_exponentially(
    gw: FakeGateway, client: Gateway, sleeps: Sleeps
) -> None:
    gw.fail_next(503, "server_error", times=10)
    _, error = await collect_until_error(client)
    assert (error.status, error.code) == (503, "server_error")
    assert len(gw.requests) == MAX_RETRIES + 1
    # Equal jitter over base 0.01 s: attempt k waits within [0.01·2^k / 2, 0.01·2^k].
    assert len(sleeps.delays) == MAX_RETRIES
    for attempt, delay in enumerate(sleeps.delays):
        assert 0.01 * 2**attempt / 2 <= delay <= 0.01 * 2**attempt


async def test_retry_after_is_honoured(gw: FakeGateway, client: Gateway, sleeps: Sleeps) -> None:
    gw.fail_next(429, "rate_limit_exceeded", retry_after=2)
    deltas, _ = await collect(client)
    assert deltas == EXPECTED
    assert len(sleeps.delays) == 1
    assert sleeps.delays[0] >= 2


async def test_long_retry_after_is_reported_not_waited(
    gw: FakeGateway, client: Gateway, sleeps: Sleeps
) -> None:
    gw.fail_next(429, "rate_limit_exceeded", retry_after=120)
    _, error = await collect_until_error(client)
    assert (error.code, error.retry_after) == ("rate_limited", 120)
    assert sleeps.delays == []
    assert "120 seconds" in error.user_message()


async def test_unknown_model_is_model_not_found(gw: FakeGateway, client: Gateway) -> None:
    async with asyncio.timeout(10):
        with pytest.raises(GatewayError) as caught:
            await client.chat("gpt-17-ultra", MESSAGES).read()
    error = caught.value
    assert (error.status, error.code, error.model) == (404, "model_not_found", "gpt-17-ultra")
    assert "`gpt-17-ultra`" in error.user_message()
    assert "`models`" in error.user_message()
    assert len(gw.requests) == 1


async def test_wrong_key(gw: FakeGateway, make: MakeGateway) -> None:
    _, error = await collect_until_error(make(gw.base_url, "sk-wrong"))
    assert (error.status, error.code) == (401, "invalid_api_key")
    assert error.user_message() == (
        "The gateway rejected the API key; an operator must set WEELINKING_API_KEY."
    )
    assert len(gw.requests) == 1


async def test_wrong_base_url_is_not_called_an_unknown_model(
    gw: FakeGateway, make: MakeGateway
) -> None:
    _, error = await collect_until_error(make(gw.root_url, gw.api_key))  # missing /v1
    assert (error.status, error.code) == (404, "invalid_request_error")
    assert "WEELINKING_BASE_URL" in error.message


async def test_unreachable_gateway_is_retried_then_reported(
    make: MakeGateway, sleeps: Sleeps
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more: connections are refused.
    gateway = make(f"http://127.0.0.1:{port}/v1", "k")
    _, error = await collect_until_error(gateway)
    with pytest.raises(GatewayError) as caught:
        async with asyncio.timeout(10):
            await gateway.models()
    assert (error.status, error.code) == (None, "unreachable")
    assert caught.value.code == "unreachable"
    assert len(sleeps.delays) == 2 * 3
    assert "WEELINKING_BASE_URL" in error.user_message()


# ------------------------------------------------------------------------- images


async def test_image_b64_json(gw: FakeGateway, client: Gateway) -> None:
    async with asyncio.timeout(10):
        images = await client.image("gpt-image-1", "an orange cat", quality="hd", n=2)
    assert len(images) == 2
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert images[0] != images[1]
    (request,) = gw.requests
    assert request.path == "/v1/images/generations"
    assert request.json == {
        "model": "gpt-image-1",
        "prompt": "an orange cat",
        "n": 2,
        "size": "1024x1024",
        "quality": "hd",
    }


async def test_image_url_is_downloaded_without_the_key(gw: FakeGateway, client: Gateway) -> None:
    gw.image_format = "url"
    async with asyncio.timeout(10):
        b64_client_images = await client.image("flux-kontext-pro", "a red fox")
    assert len(gw.downloads) == 1
    assert "Authorization" not in gw.downloads[0]
    assert gw.api_key not in str(gw.downloads[0])
    assert gw.requests[0].headers["Authorization"] == f"Bearer {gw.api_key}"
    assert b64_client_images[0] in gw.files.values()


async def test_image_errors(gw: FakeGateway, client: Gateway, sleeps: Sleeps) -> None:
    gw.fail_next(500, "server_error")
    async with asyncio.timeout(10):
        images = await client.image("flux-kontext-max", "a lighthouse")
        with pytest.raises(GatewayError) as caught:
            await client.image("no-such-image-model", "a lighthouse")
    assert images[0].startswith(b"\x89PNG")
    assert len(sleeps.delays) == 1
    assert caught.value.code == "model_not_found"


def test_png_is_well_formed() -> None:
    data = png_bytes(2, 3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert int.from_bytes(data[16:20], "big") == 2
    assert data.endswith(b"IEND\xaeB`\x82")


# ------------------------------------------------------------------ transcription


async def test_transcription_is_a_multipart_upload(gw: FakeGateway, client: Gateway) -> None:
    audio = bytes(range(256)) * 40
    async with asyncio.timeout(10):
        text = await client.transcribe("whisper-1", audio, "voice.ogg", language="de")
    assert text == f"Heard {len(audio)} bytes of audio from voice.ogg."
    (upload,) = gw.transcriptions
    assert upload.data == audio
    assert (upload.filename, upload.content_type) == ("voice.ogg", "audio/ogg")
    assert (upload.model, upload.language, upload.response_format) == ("whisper-1", "de", "json")
    assert gw.requests[0].headers["Content-Type"].startswith("multipart/form-data")


async def test_transcription_without_language_and_with_mime(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.transcript = "  hello world  "
    async with asyncio.timeout(10):
        text = await client.transcribe("whisper-1", b"RIFF....", "clip", mime="audio/wav")
    assert text == "hello world"
    (upload,) = gw.transcriptions
    assert (upload.language, upload.content_type) == (None, "audio/wav")


async def test_transcription_over_25_mb_is_refused_unsent(gw: FakeGateway, client: Gateway) -> None:
    with pytest.raises(TooLarge) as caught:
        await client.transcribe("whisper-1", b"\0" * (MAX_AUDIO_BYTES + 1), "long.mp3")
    assert "25 MB" in caught.value.message
    assert gw.requests == []


async def test_transcription_retries_a_server_error(
    gw: FakeGateway, client: Gateway, sleeps: Sleeps
) -> None:
    gw.fail_next(502, "bad_gateway")
    async with asyncio.timeout(10):
        await client.transcribe("whisper-1", b"abc", "a.mp3")
    assert len(gw.requests) == 2
    assert gw.transcriptions[0].data == b"abc"  # the multipart body was sent again, whole


# ------------------------------------------------------------------------- models


async def test_models_are_listed_with_vendors(client: Gateway) -> None:
    async with asyncio.timeout(10):
        models = await client.models()
    assert len(models) == len(CATALOGUE) >= 200
    by_id = {model.id: model for model in models}
    expected = {
        "gpt-4o": "openai",
        "gpt-image-1": "openai",
        "whisper-1": "openai",
        "claude-sonnet-4-20250514": "anthropic",
        "gemini-2.5-pro": "google",
        "grok-4-0709": "xai",
        "deepseek-v3": "deepseek",
        "qwen-max": "qwen",
        "qwen2.5-72b-instruct": "qwen",
        "moonshot-v1-8k": "moonshot",
        "kimi-k2": "moonshot",
        "flux-kontext-pro": "other",
    }
    assert {name: by_id[name].vendor for name in expected} == expected
    assert by_id["o3-mini"].owned_by == "system"
    assert [model.id for model in models] == sorted(by_id)


@pytest.mark.parametrize(
    ("model_id", "owned_by", "vendor"),
    [
        ("anthropic/claude-3.5-sonnet", "openrouter", "anthropic"),
        ("my-finetune", "alibaba", "qwen"),
        ("my-finetune", "custom", "other"),
        ("o4-mini", "", "openai"),
        ("DeepSeek-R1", "", "deepseek"),
    ],
)
def test_vendor_for(model_id: str, owned_by: str, vendor: str) -> None:
    assert vendor_for(model_id, owned_by) == vendor


async def test_model_list_is_cached_for_its_ttl(gw: FakeGateway, make: MakeGateway) -> None:
    now = [1000.0]
    gateway = make(gw.base_url, gw.api_key, models_ttl=300, clock=lambda: now[0])
    async with asyncio.timeout(10):
        first = await gateway.models()
        await asyncio.gather(*(gateway.models() for _ in range(5)))
        now[0] += 299
        await gateway.models()
        assert gw.paths() == ["/v1/models"]
        gw.models.pop("gpt-4o")
        now[0] += 2
        second = await gateway.models()
        assert gw.paths() == ["/v1/models"] * 2
        # A failed refresh of a retryable kind serves the stale list.
        now[0] += 301
        gw.fail_next(503, "server_error", times=10)
        stale = await gateway.models()
    assert len(first) == len(second) + 1
    assert stale == second


# ---------------------------------------------------------------- secret hygiene


async def test_key_never_appears_in_repr_errors_or_logs(
    gw: FakeGateway, client: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw.fail_next(500, "server_error")
    gw.fail_next(400, "invalid_request_error", message=f"bad key {gw.api_key} in request")
    async with asyncio.timeout(10):
        _, error = await collect_until_error(client)
        deltas, _ = await collect(client)
        await client.models()
    assert deltas == EXPECTED
    assert caplog.records  # the retry and httpx's own request lines were logged
    assert "retry 1/3" in caplog.text
    assert gw.api_key not in caplog.text
    assert gw.api_key not in repr(client)
    assert gw.api_key not in str(error)
    assert gw.api_key not in error.message
    assert gw.api_key not in error.user_message()
    assert "bad key *** in request" in error.message


# --------------------------------------------------------------- user messages


def test_user_messages_say_what_to_do() -> None:
    messages = {
        code: GatewayError(None, code, "detail text.", model="m1", retry_after=None).user_message()
        for code in (
            "invalid_api_key",
            "insufficient_quota",
            "model_not_found",
            "invalid_request_error",
            "rate_limited",
            "server_error",
            "unreachable",
            "timeout",
            "stream_error",
        )
    }
    assert "out of credit" in messages["insufficient_quota"]
    assert "`m1`" in messages["model_not_found"]
    assert "(detail text)" in messages["invalid_request_error"]
    assert "a minute" in messages["rate_limited"]
    for text in messages.values():
        assert text.endswith(".")
        assert text.count(". ") == 0  # one sentence
    assert len(set(messages.values())) == len(messages)


# ------------------------------------------------------------------- standalone


async def test_fake_runs_standalone() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.gateway",
        "--port",
        "0",
        "--key",
        "sk-standalone",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(15):
            assert process.stdout is not None
            base_url = (await process.stdout.readline()).decode().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            async with Gateway(base_url, Secret("sk-standalone")) as gateway:
                deltas = [delta async for delta in gateway.chat("qwen-max", MESSAGES)]
            assert deltas == EXPECTED
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            code = await process.wait()
    assert code == 0


async def test_timeouts_are_sized_per_call(gw: FakeGateway, make: MakeGateway) -> None:
    assert (Timeouts().connect, Timeouts().chat_read, Timeouts().image) == (10, 60, 180)
    gw.image_delay = 0.5
    patient = make(gw.base_url, gw.api_key, timeouts=Timeouts(chat_read=0.1, image=5))
    hasty = make(gw.base_url, gw.api_key, timeouts=Timeouts(chat_read=5, image=0.1))
    async with asyncio.timeout(10):
        images = await patient.image("gpt-image-1", "slow")  # chat's 0.1 s does not apply
        with pytest.raises(GatewayError) as caught:
            await hasty.image("gpt-image-1", "slow")
    assert images[0].startswith(b"\x89PNG")
    assert (caught.value.status, caught.value.code) == (None, "timeout")
    assert len(gw.requests) == 2  # a timed-out generation is not paid for twice
