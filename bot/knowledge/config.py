"""Knowledge settings from the environment: embedding model, file size cap, memory retention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.envvars import number
from bot.errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"


@dataclass(frozen=True, slots=True)
class KnowledgeConfig:
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    # Largest attachment read as a document (CHATOPS_FILE_MAX_MB).
    file_max_bytes: int = 25 * 1024 * 1024
    # Channel memory entries older than this are pruned (CHATOPS_MEMORY_RETENTION_DAYS).
    retention_days: int = 90

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KnowledgeConfig:
        model = env.get("CHATOPS_EMBEDDING_MODEL", "").strip() or DEFAULT_EMBEDDING_MODEL
        if any(ch.isspace() for ch in model):
            raise ConfigError("CHATOPS_EMBEDDING_MODEL", f"{model!r} contains white space")
        megabytes = number(env, "CHATOPS_FILE_MAX_MB", 25, 0.01, 1024)
        days = number(env, "CHATOPS_MEMORY_RETENTION_DAYS", 90, 1, 36500)
        if days != int(days):
            raise ConfigError("CHATOPS_MEMORY_RETENTION_DAYS", f"{days:g} is not a whole number")
        return cls(model, int(megabytes * 1024 * 1024), int(days))
