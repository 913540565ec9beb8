"""Tool-call streaming and the Responses API, against the fake gateway over HTTP and SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.gateway.client import ChatStream, Gateway, GatewayError
from bot.secret import Secret
from tests.fakes.gateway import FakeGateway, ModelTurn, ScriptedCall

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]
ASK: list[dict[str, Any]] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is a cat"},
]


@pytest.fixture
async def gw() -> AsyncIterator[FakeGateway]:
    async with FakeGateway() as fake:
        yield fake


@pytest.fixture(params=["aiohttp", "httpcore"])
async def client(request: pytest.FixtureRequest, gw: FakeGateway) -> AsyncIterator[Gateway]:
    gateway = Gateway(
        gw.base_url,
        Secret(gw.api_key),
        retry_base=0.01,
        transport=request.param,
        responses_models=["gpt-5-pro*", "*-codex"],
    )
    yield gateway
    await gateway.aclose()


async def run(stream: ChatStream) -> str:
    async with asyncio.timeout(10), stream:
        return await stream.read()


async def test_parallel_calls_with_arguments_split_mid_string(
    gw: FakeGateway, client: Gateway
) -> None:
    first = json.dumps({"word": 'naïve "quoted" café'})
    second = json.dumps({"word": "dog", "extra": [1, 2, 3]})
    gw.argument_piece = 3
    gw.turns.append(
        ModelTurn(
            text="Let me check. ",
            calls=(ScriptedCall("lookup", first, "call_a"), ScriptedCall("lookup", second)),
        )
    )
    stream = client.chat("gpt-4o", ASK, tools=TOOLS)
    text = await run(stream)
    assert text == "Let me check. "
    assert stream.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in stream.tool_calls] == [
        ("lookup", {"word": 'naïve "quoted" café'}),
        ("lookup", {"word": "dog", "extra": [1, 2, 3]}),
    ]
    assert stream.tool_calls[0].id == "call_a"
    assert stream.tool_calls[1].id and stream.tool_calls[1].id != "call_a"
    assert gw.chat_bodies()[0]["tools"] == TOOLS


async def test_invalid_json_arguments_arrive_as_written(gw: FakeGateway, client: Gateway) -> None:
    gw.turns.append(ModelTurn(calls=(ScriptedCall("lookup", '{"word": "unterminated'),)))
    stream = client.chat("gpt-4o", ASK, tools=TOOLS)
    assert await run(stream) == ""
    assert stream.tool_calls[0].arguments == '{"word": "unterminated'


async def test_tool_results_go_back_and_the_answer_uses_them(
    gw: FakeGateway, client: Gateway
) -> None:
    messages: list[dict[str, Any]] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a small furry animal"},
    ]
    stream = client.chat("gpt-4o", messages, tools=TOOLS)
    assert await run(stream) == "From the tools: a small furry animal"
    assert stream.tool_calls == []
    assert stream.finish_reason == "stop"


async def test_a_model_refusing_tools_is_asked_again_without_and_remembered(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.refuse_tools.add("deepseek-r1")
    stream = client.chat("deepseek-r1", ASK, tools=TOOLS)
    assert await run(stream) == "You said: what is a cat"
    assert stream.tools_dropped
    bodies = gw.chat_bodies()
    assert ["tools" in b for b in bodies] == [True, False]
    again = client.chat("deepseek-r1", ASK, tools=TOOLS)
    await run(again)
    assert again.tools_dropped
    assert "tools" not in gw.chat_bodies()[-1]
    # Other models keep their tools.
    await run(client.chat("gpt-4o", ASK, tools=TOOLS))
    assert "tools" in gw.chat_bodies()[-1]


async def test_a_400_for_another_reason_does_not_switch_tools_off(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.fail_next(400, "invalid_request_error", times=2, message="context too long")
    with pytest.raises(GatewayError) as caught:
        await run(client.chat("gpt-4o", ASK, tools=TOOLS))
    assert caught.value.code == "invalid_request_error"
    assert "gpt-4o" not in client.refuses_tools
    await run(client.chat("gpt-4o", ASK, tools=TOOLS))
    assert "tools" in gw.chat_bodies()[-1]


async def test_configured_models_stream_through_responses(gw: FakeGateway, client: Gateway) -> None:
    gw.models["gpt-5-pro"] = "openai"
    gw.turns.append(
        ModelTurn(text="Checking.", calls=(ScriptedCall("lookup", '{"word": "cat"}', "c9"),))
    )
    stream = client.chat("gpt-5-pro", ASK, max_tokens=50, temperature=0.5, tools=TOOLS)
    assert await run(stream) == "Checking."
    assert stream.api == "responses"
    assert gw.paths() == ["/v1/responses"]
    assert [(c.id, c.name, c.arguments) for c in stream.tool_calls] == [
        ("c9", "lookup", '{"word": "cat"}')
    ]
    assert stream.finish_reason == "tool_calls"
    assert stream.usage is not None and stream.usage.prompt_tokens == 6
    body = gw.chat_bodies()[0]
    assert body["instructions"] == "be brief"
    assert body["input"] == [{"role": "user", "content": "what is a cat"}]
    assert body["max_output_tokens"] == 50 and body["temperature"] == 0.5
    assert body["tools"] == [{"type": "function", **TOOLS[0]["function"]}]
    # The next round carries the call and its output in the Responses input format.
    follow: list[dict[str, Any]] = [
        *ASK,
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c9",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"word": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c9", "content": "a pet"},
    ]
    answer = client.chat("gpt-5-pro", follow, tools=TOOLS)
    assert await run(answer) == "From the tools: a pet"
    assert answer.finish_reason == "stop"
    assert gw.chat_bodies()[1]["input"][1:] == [
        {"role": "assistant", "content": "Checking."},
        {
            "type": "function_call",
            "call_id": "c9",
            "name": "lookup",
            "arguments": '{"word": "cat"}',
        },
        {"type": "function_call_output", "call_id": "c9", "output": "a pet"},
    ]


async def test_a_model_only_on_responses_is_learned(gw: FakeGateway, client: Gateway) -> None:
    gw.models["o3-deep"] = "openai"
    gw.responses_only.add("o3-deep")
    stream = client.chat("o3-deep", ASK)
    assert await run(stream) == "You said: what is a cat"
    assert stream.api == "responses"
    assert gw.paths() == ["/v1/chat/completions", "/v1/responses"]
    await run(client.chat("o3-deep", ASK))
    assert gw.paths()[-1] == "/v1/responses" and len(gw.paths()) == 3
    assert client.uses_responses("o3-deep") and not client.uses_responses("gpt-4o")


async def test_responses_failure_mid_stream_keeps_the_taxonomy(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.models["x-codex"] = "openai"
    gw.reply = "one two three four five"
    gw.quirks.error_after = 2
    gw.quirks.error_code = "rate_limit_exceeded"
    stream = client.chat("x-codex", ASK)
    seen: list[str] = []
    with pytest.raises(GatewayError) as caught:
        async with asyncio.timeout(10), stream:
            async for delta in stream:
                seen.append(delta)
    assert "".join(seen) == "one two "
    assert caught.value.code == "rate_limited"
    assert caught.value.status == 200


async def test_responses_unknown_model_is_model_not_found(gw: FakeGateway, client: Gateway) -> None:
    with pytest.raises(GatewayError) as caught:
        await run(client.chat("nope-codex", ASK))
    assert caught.value.code == "model_not_found"
    assert gw.paths() == ["/v1/responses"]


async def test_responses_cut_by_max_output_tokens_is_length(
    gw: FakeGateway, client: Gateway
) -> None:
    gw.models["gpt-5-pro"] = "openai"
    gw.reply = "one two three four five"
    stream = client.chat("gpt-5-pro", ASK, max_tokens=3)
    assert await run(stream) == "one two three "
    assert stream.finish_reason == "length"
    assert stream.usage is not None and stream.usage.completion_tokens == 3
