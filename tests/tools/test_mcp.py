"""MCP servers as tools: a real server process (stdio and streamable HTTP) behind the core."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.events import User
from bot.tools.config import ServerSpec, ToolsConfig, load_servers
from bot.tools.mcp import McpServers
from tests.core_harness import Core, running_core
from tests.fakes.gateway import ModelTurn, ScriptedCall
from tests.memory_adapter import make_request

ADMIN = User("U0", "admin", is_admin=True)
DEMO = ServerSpec("demo", command=sys.executable, args=("-m", "tests.tools.mcp_server"))


@asynccontextmanager
async def core_with(
    tmp_path: Path, *specs: ServerSpec, tool_timeout: float = 30.0
) -> AsyncIterator[Core]:
    async with running_core(tmp_path, tools=ToolsConfig(timeout=tool_timeout)) as core:
        core.adapter.limits = replace(core.adapter.limits, max_chars=4000)
        servers = McpServers(specs)
        async with asyncio.timeout(30):
            await servers.start()
        core.services.mcp = servers
        try:
            yield core
        finally:
            await servers.close()


def final_text(core: Core) -> str:
    return list(core.adapter.messages.values())[-1]


def call(name: str, **arguments: object) -> ScriptedCall:
    return ScriptedCall(name, json.dumps(arguments))


async def test_stdio_server_tools_in_a_chat_with_failures_and_a_restart(tmp_path: Path) -> None:
    async with core_with(tmp_path, DEMO, tool_timeout=2.0) as core:
        # Off until an admin switches the server on.
        await core.send(make_request("hello"))
        offered = [t["function"]["name"] for t in core.gateway.chat_bodies()[-1]["tools"]]
        assert not any(name.startswith("demo__") for name in offered)
        await core.send(make_request("tools enable demo", user=ADMIN))
        await core.send(make_request("tools"))
        assert "MCP server `demo`: on: demo.lookup, demo.add, demo.wait" in final_text(core)

        core.gateway.turns.append(
            ModelTurn(calls=(call("demo__lookup", word="cat"), call("demo__wait", seconds=0.4)))
        )
        await core.send(make_request("define cat"))
        text = final_text(core)
        assert text.startswith("From the tools: cat: a demo definition")
        assert "waited 0.4 s" in text
        assert text.endswith("_🔧 used: demo.lookup, demo.wait_")
        frames = [f for mid in core.adapter.streamed_ids for f in core.adapter.history_of(mid)]
        assert any("🔧 demo.wait …" in frame for frame in frames)

        # An error result, a call past its timeout, and the server dying mid-call.
        core.gateway.turns.extend(
            [
                ModelTurn(calls=(call("demo__broken"), call("demo__wait", seconds=30))),
                ModelTurn(calls=(call("demo__die"),)),
            ]
        )
        await core.send(make_request("break things"))
        second_round = core.gateway.chat_bodies()[-2]["messages"]
        told = " ".join(m["content"] for m in second_round if m["role"] == "tool")
        assert "the demo backend is on fire" in told
        assert "demo.wait did not finish within 2 seconds" in told
        text = final_text(core)
        assert "Error: the demo tool server stopped during the call" in text
        assert text.endswith("demo.broken (failed), demo.wait (failed), demo.die (failed)_")

        # The next use starts the server again.
        core.gateway.turns.append(ModelTurn(calls=(call("demo__add", a=2, b=3),)))
        await core.send(make_request("add"))
        assert final_text(core).startswith("From the tools: 5")
        outcomes = [(c.tool, c.outcome) for c in await core.store.tool_calls()]
        assert sorted(outcomes[2:5]) == [
            ("demo.broken", "error"),
            ("demo.die", "error"),
            ("demo.wait", "timeout"),
        ]
        assert outcomes[-1] == ("demo.add", "ok")


async def test_a_server_down_at_start_up_is_a_plain_note(tmp_path: Path) -> None:
    gone = ServerSpec("gone", command=str(tmp_path / "no-such-server"))
    async with core_with(tmp_path, gone) as core:
        await core.send(make_request("tools enable gone", user=ADMIN))
        await core.send(make_request("tools"))
        assert "MCP server `gone`: on (unavailable:" in final_text(core)
        await core.send(make_request("hello"))
        text = final_text(core)
        assert text.startswith("You said: hello")
        assert "⚠️ the gone tools are unavailable" in text
        ledger = await core.store.ledger()
        assert [r.status for r in ledger] == ["ok"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_streamable_http_server(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.tools.mcp_server",
        "--http-port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        spec = ServerSpec("web", url=f"http://127.0.0.1:{port}/mcp")
        async with core_with(tmp_path, spec) as core:
            await core.send(make_request("tools enable web", user=ADMIN))
            core.gateway.turns.append(ModelTurn(calls=(call("web__add", a=20, b=22),)))
            await core.send(make_request("add over http"))
            assert final_text(core).startswith("From the tools: 42")
    finally:
        process.terminate()
        await process.wait()


def write(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def test_config_file_is_read_and_bad_ones_name_the_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "mcpServers": {
                "jira": {"command": "jira-mcp", "args": ["--ro"], "env": {"TOKEN": "t"}},
                "search": {"url": "https://mcp.example.test/mcp", "headers": {"X-Key": "k"}},
            }
        },
    )
    jira, search = load_servers(path)
    assert (jira.name, jira.command, jira.args, dict(jira.env)) == (
        "jira",
        "jira-mcp",
        ("--ro",),
        {"TOKEN": "t"},
    )
    assert (search.url, dict(search.headers)) == ("https://mcp.example.test/mcp", {"X-Key": "k"})
    assert "t" not in repr(jira) and "k'" not in repr(search)  # secrets stay out of repr
    config = ToolsConfig.from_env({"CHATOPS_MCP_CONFIG": str(path)})
    assert [s.name for s in config.mcp_servers] == ["jira", "search"]
    for bad, says in [
        ("{not json", "is not JSON"),
        ({"servers": []}, 'no "servers" object'),
        ({"servers": {"Bad Name": {"command": "x"}}}, "needs a name"),
        ({"servers": {"a": {"command": "x", "url": "http://h/"}}}, "exactly one of"),
        ({"servers": {"a": {"url": "ftp://h/"}}}, "not an http(s) URL"),
        ({"servers": {"a": {"command": "x", "env": {"K": 1}}}}, '"env" that is not'),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_servers(write(tmp_path, bad))
        assert caught.value.variable == "CHATOPS_MCP_CONFIG"
        assert says in caught.value.problem
    with pytest.raises(ConfigError, match="not a readable file"):
        ToolsConfig.from_env({"CHATOPS_MCP_CONFIG": str(tmp_path / "missing.json")})
    with pytest.raises(ConfigError, match="whole number"):
        ToolsConfig.from_env({"CHATOPS_TOOL_ROUNDS": "2.5"})
