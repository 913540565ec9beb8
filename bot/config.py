"""Service configuration read once from environment variables (12-factor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bot.audio.limits import AudioLimits
from bot.envvars import number
from bot.errors import ConfigError
from bot.governance.policy import Policy, policy_from_env
from bot.i18n.language import LanguageDefaults
from bot.knowledge.config import KnowledgeConfig
from bot.quota.config import quota_config_from_env
from bot.secret import Secret
from bot.tools.config import ToolsConfig
from storage.base import QuotaConfig
from storage.opener import is_postgres, scheme_of
from storage.postgres.store import DEFAULT_POOL_SIZE

DEFAULT_BASE_URL = "https://api.weelinking.com/v1"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class Config:
    api_key: Secret
    base_url: str = DEFAULT_BASE_URL
    db_path: Path = Path("data/chatops.db")
    # CHATOPS_DB as a postgresql:// URL (shared by replicas); None: the SQLite file db_path.
    db_url: Secret | None = None
    db_pool_size: int = DEFAULT_POOL_SIZE
    default_model: str = "gpt-4o-mini"
    image_model: str = "gpt-image-1"
    transcribe_model: str = "whisper-1"
    # Reply cap sent as max_tokens unless a channel sets its own. None sends none: replies run
    # to the model's own output limit.
    max_reply_tokens: int | None = None
    # Output tokens the quota holds for an uncapped reply, settled with the real usage after.
    reply_tokens_estimate: int = 1024
    # Rough token budget for the conversation history sent with each chat request.
    context_tokens: int = 6000
    # Seconds in-flight replies get to finish after SIGTERM before they are cut short.
    shutdown_grace: float = 20.0
    admins: frozenset[str] = field(default_factory=frozenset)
    log_level: str = "INFO"
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    audio: AudioLimits = field(default_factory=AudioLimits)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    # CHATOPS_LANGUAGE: the language the bot speaks where a channel chose none.
    language: LanguageDefaults = field(default_factory=LanguageDefaults)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    governance: Policy = field(default_factory=Policy)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        key = env.get("WEELINKING_API_KEY", "").strip()
        if not key:
            raise ConfigError(
                "WEELINKING_API_KEY", "not set; create a key in the weelinking console"
            )
        default_model = _name(env, "CHATOPS_DEFAULT_MODEL", "gpt-4o-mini")
        quota = quota_config_from_env(env)
        governance = policy_from_env(env)
        governance.check_default("CHATOPS_DEFAULT_MODEL", default_model)
        if governance.prices is None:
            for (metric, window), value in quota.limits.items():
                if metric == "cost" and value is not None:
                    raise ConfigError(
                        f"CHATOPS_QUOTA_COST_{window.upper()}",
                        "a spend limit needs a price table: set CHATOPS_PRICES",
                    )
        return cls(
            api_key=Secret(key),
            base_url=_url(env, "WEELINKING_BASE_URL", DEFAULT_BASE_URL),
            db_path=_db_path(env),
            db_url=_db_url(env),
            db_pool_size=int(number(env, "CHATOPS_DB_POOL_SIZE", DEFAULT_POOL_SIZE, 1, 200)),
            default_model=default_model,
            image_model=_name(env, "CHATOPS_IMAGE_MODEL", "gpt-image-1"),
            transcribe_model=_name(env, "CHATOPS_TRANSCRIBE_MODEL", "whisper-1"),
            max_reply_tokens=_optional_count(env, "CHATOPS_MAX_REPLY_TOKENS", 16, 200_000),
            reply_tokens_estimate=int(
                number(env, "CHATOPS_REPLY_TOKENS_ESTIMATE", 1024, 1, 200_000)
            ),
            context_tokens=int(number(env, "CHATOPS_CONTEXT_TOKENS", 6000, 256, 2_000_000)),
            shutdown_grace=number(env, "CHATOPS_SHUTDOWN_GRACE", 20.0, 0, 600),
            admins=frozenset(
                part.strip() for part in env.get("CHATOPS_ADMINS", "").split(",") if part.strip()
            ),
            log_level=_choice(env, "CHATOPS_LOG_LEVEL", "INFO", LOG_LEVELS),
            quota=quota,
            audio=AudioLimits.from_env(env),
            tools=ToolsConfig.from_env(env),
            language=LanguageDefaults.from_env(env),
            knowledge=KnowledgeConfig.from_env(env),
            governance=governance,
        )

    @property
    def database(self) -> str | Path:
        """What to open: the PostgreSQL URL, else the SQLite file."""
        return self.db_url.reveal() if self.db_url is not None else self.db_path


def _db_path(env: Mapping[str, str]) -> Path:
    raw = env.get("CHATOPS_DB", "").strip()
    return Path("data/chatops.db") if not raw or "://" in raw else Path(raw)


def _db_url(env: Mapping[str, str]) -> Secret | None:
    """CHATOPS_DB when it is a PostgreSQL URL; refuses other URLs (no folder named 'mysql:')."""
    raw = env.get("CHATOPS_DB", "").strip()
    scheme = scheme_of(raw)
    if scheme is None:
        return None
    if not is_postgres(raw):
        raise ConfigError(
            "CHATOPS_DB",
            f"{scheme}:// is not supported; give a SQLite file path or a "
            "postgresql://user:password@host:5432/database URL",
        )
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        # Never echo the URL: it usually carries the password.
        raise ConfigError(
            "CHATOPS_DB", "is not a valid postgresql:// URL (check the port)"
        ) from None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ConfigError("CHATOPS_DB", "names no database; end the URL with /<database>")
    return Secret(raw)


def _optional_count(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """A whole number in [low, high]; unset or blank gives None."""
    if not env.get(name, "").strip():
        return None
    return int(number(env, name, low, low, high))


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(name, f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if any(ch.isspace() for ch in value):
        raise ConfigError(name, f"{value!r} contains white space; give a model id")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().upper() or default
    if value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")
    return value
