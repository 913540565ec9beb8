"""Tool settings from the environment: rounds, timeouts, MCP servers, Responses models."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.envvars import number
from bot.errors import ConfigError

MCP_VARIABLE = "CHATOPS_MCP_CONFIG"
# Server names become part of function names the model calls (^[a-zA-Z0-9_-]{1,64}$).
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One MCP server: a stdio command, or a streamable-HTTP URL."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        return self.url or self.command


def load_servers(path: Path) -> tuple[ServerSpec, ...]:
    """The servers of an MCP config file: {"servers": {name: {command, args, env, cwd} or
    {url, headers}}} ("mcpServers" is accepted too, as other MCP clients write it)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(MCP_VARIABLE, f"cannot read {path}: {e}") from None
    except ValueError as e:
        raise ConfigError(MCP_VARIABLE, f"{path} is not JSON: {e}") from None
    servers = (
        payload.get("servers", payload.get("mcpServers")) if isinstance(payload, dict) else None
    )
    if not isinstance(servers, dict):
        raise ConfigError(MCP_VARIABLE, f'{path} has no "servers" object')
    return tuple(_server(path, name, entry) for name, entry in servers.items())


def _server(path: Path, name: str, entry: Any) -> ServerSpec:
    def bad(problem: str) -> ConfigError:
        return ConfigError(MCP_VARIABLE, f"{path}: server {name!r} {problem}")

    if not _SERVER_NAME.match(name):
        raise bad("needs a name of lowercase letters, digits, - or _ (at most 24)")
    if not isinstance(entry, dict):
        raise bad("must be an object")
    strings = {key: entry.get(key) for key in ("env", "headers") if entry.get(key) is not None}
    for key, value in strings.items():
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad(f'has "{key}" that is not an object of strings')
    command, url = entry.get("command"), entry.get("url")
    if bool(command) == bool(url):
        raise bad('needs exactly one of "command" (stdio) or "url" (streamable HTTP)')
    if url:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise bad(f"has {url!r}, not an http(s) URL")
        return ServerSpec(name, url=str(url), headers=dict(entry.get("headers") or {}))
    args = entry.get("args") or []
    if not isinstance(command, str) or not isinstance(args, list):
        raise bad('needs "command" as a string and "args" as a list')
    return ServerSpec(
        name,
        command=command,
        args=tuple(str(a) for a in args),
        env=dict(entry.get("env") or {}),
        cwd=str(entry["cwd"]) if entry.get("cwd") else None,
    )


@dataclass(frozen=True, slots=True)
class ToolsConfig:
    # Rounds of tool calls in one reply before the model must answer in text.
    rounds: int = 5
    # Seconds one tool call may take (an image takes longer: see image_timeout).
    timeout: float = 30.0
    image_timeout: float = 180.0
    # The MCP servers listed in CHATOPS_MCP_CONFIG.
    mcp_servers: tuple[ServerSpec, ...] = ()
    # Glob patterns of models streamed through /v1/responses.
    responses_models: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ToolsConfig:
        raw_path = env.get(MCP_VARIABLE, "").strip()
        servers: tuple[ServerSpec, ...] = ()
        if raw_path:
            path = Path(raw_path).expanduser()
            if not path.is_file():
                raise ConfigError(MCP_VARIABLE, f"{raw_path!r} is not a readable file")
            servers = load_servers(path)
        patterns = tuple(
            p.strip() for p in env.get("CHATOPS_RESPONSES_MODELS", "").split(",") if p.strip()
        )
        for pattern in patterns:
            if any(ch.isspace() for ch in pattern):
                raise ConfigError("CHATOPS_RESPONSES_MODELS", f"{pattern!r} contains white space")
        rounds = number(env, "CHATOPS_TOOL_ROUNDS", 5, 0, 50)
        if rounds != int(rounds):
            raise ConfigError("CHATOPS_TOOL_ROUNDS", f"{rounds:g} is not a whole number")
        return cls(
            rounds=int(rounds),
            timeout=number(env, "CHATOPS_TOOL_TIMEOUT", 30.0, 1, 3600),
            mcp_servers=servers,
            responses_models=patterns,
        )
