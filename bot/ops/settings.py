"""Operations settings from the environment: the ops port and the log format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.envvars import port
from bot.errors import ConfigError

LogFormat = Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class OpsSettings:
    # None: no operations port (and no metrics kept).
    port: int | None = None
    host: str = "127.0.0.1"
    log_format: LogFormat = "text"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpsSettings:
        raw = env.get("CHATOPS_LOG_FORMAT", "").strip().lower() or "text"
        if raw not in ("text", "json"):
            raise ConfigError("CHATOPS_LOG_FORMAT", f"{raw!r} is not one of text, json")
        log_format: LogFormat = "json" if raw == "json" else "text"
        host = env.get("CHATOPS_OPS_HOST", "").strip() or "127.0.0.1"
        if any(ch.isspace() or ch == "/" for ch in host):
            raise ConfigError("CHATOPS_OPS_HOST", f"{host!r} is not a host name or address")
        return cls(port=port(env, "CHATOPS_OPS_PORT"), host=host, log_format=log_format)
