"""Slack configuration read from the environment: tokens, connection mode, API base URL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bot import envvars
from bot.envvars import flag
from bot.errors import ConfigError
from bot.secret import Secret

DEFAULT_API_URL = "https://slack.com/api/"
# Where Slack serves url_private / url_private_download; the bot token is sent nowhere else.
SLACK_FILE_HOSTS = frozenset({"files.slack.com"})

Mode = Literal["socket", "http"]
PROMPTS_VARIABLE = "CHATOPS_SLACK_SUGGESTED_PROMPTS"
# Slack shows at most four suggested prompts in an assistant thread.
MAX_PROMPTS = 4


@dataclass(frozen=True, slots=True)
class Prompt:
    """A suggested prompt of an assistant thread: the button's title, and what it sends."""

    title: str
    message: str


@dataclass(frozen=True, slots=True)
class SlackSettings:
    bot_token: Secret
    app_token: Secret = field(default_factory=lambda: Secret(""))
    signing_secret: Secret = field(default_factory=lambda: Secret(""))
    http_port: int | None = None
    http_host: str = "0.0.0.0"
    http_path: str = "/slack/events"
    # Always ends in "/": slack_sdk joins method names onto it ("…/api/" + "chat.update").
    api_url: str = DEFAULT_API_URL
    allow_bots: bool = False
    assistant_status: bool = True
    # Stream thread replies with chat.startStream/appendStream/stopStream where available.
    native_stream: bool = True
    # Suggested prompts for new assistant threads by workspace id ("*": every other one);
    # none configured: the bot's defaults, drawn from its commands.
    suggested_prompts: Mapping[str, tuple[Prompt, ...]] = field(default_factory=dict)

    def prompts_for(self, team: str) -> tuple[Prompt, ...] | None:
        """The configured prompts for a workspace; None: use the defaults."""
        return self.suggested_prompts.get(team, self.suggested_prompts.get("*"))

    @property
    def mode(self) -> Mode:
        """HTTP (Events API) when a signing secret and a port are set, else Socket Mode."""
        return "http" if self.signing_secret and self.http_port is not None else "socket"

    @property
    def file_hosts(self) -> frozenset[str]:
        """Hosts the bot token may be sent to for downloads: Slack's file host and the API's."""
        host = urlsplit(self.api_url).hostname or ""
        return SLACK_FILE_HOSTS | {host}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SlackSettings | None:
        """Settings from the environment; None when no Slack credentials are set at all."""
        bot = environ.get("SLACK_BOT_TOKEN", "").strip()
        app = environ.get("SLACK_APP_TOKEN", "").strip()
        secret = environ.get("SLACK_SIGNING_SECRET", "").strip()
        if not bot and not app and not secret:
            return None
        if not bot:
            raise ConfigError("SLACK_BOT_TOKEN", "is required when Slack is configured")
        if not bot.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN", "must be a bot token starting with xoxb-")
        if app and not app.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN", "must be an app-level token starting with xapp-")
        port = envvars.port(environ, "CHATOPS_SLACK_HTTP_PORT")
        if port is not None and not secret:
            raise ConfigError(
                "SLACK_SIGNING_SECRET", "is required for HTTP mode (CHATOPS_SLACK_HTTP_PORT is set)"
            )
        if not (secret and port is not None) and not app:
            raise ConfigError(
                "SLACK_APP_TOKEN",
                "is required for Socket Mode (or set SLACK_SIGNING_SECRET and "
                "CHATOPS_SLACK_HTTP_PORT for HTTP mode)",
            )
        path = environ.get("CHATOPS_SLACK_HTTP_PATH", "/slack/events").strip() or "/slack/events"
        if not path.startswith("/"):
            raise ConfigError("CHATOPS_SLACK_HTTP_PATH", "must start with /")
        return cls(
            bot_token=Secret(bot),
            app_token=Secret(app),
            signing_secret=Secret(secret),
            http_port=port,
            http_host=environ.get("CHATOPS_SLACK_HTTP_HOST", "0.0.0.0").strip() or "0.0.0.0",
            http_path=path,
            api_url=_api_url(environ.get("SLACK_API_URL", "").strip()),
            allow_bots=flag(environ, "CHATOPS_SLACK_ALLOW_BOTS", default=False),
            assistant_status=flag(environ, "CHATOPS_SLACK_ASSISTANT_STATUS", default=True),
            native_stream=flag(environ, "CHATOPS_SLACK_NATIVE_STREAM", default=True),
            suggested_prompts=parse_prompts(environ.get(PROMPTS_VARIABLE, "").strip()),
        )


def parse_prompts(raw: str) -> dict[str, tuple[Prompt, ...]]:
    """A JSON list of prompts (every workspace) or an object of lists by workspace id ("*":
    the rest). A prompt is a string (title and message alike) or {"title", "message"}."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(PROMPTS_VARIABLE, f"is not valid JSON ({e.msg})") from None
    if isinstance(value, list):
        return {"*": _prompts(value, "the list")}
    if isinstance(value, dict):
        return {str(team): _prompts(items, f"workspace {team}") for team, items in value.items()}
    raise ConfigError(PROMPTS_VARIABLE, "must be a JSON list, or an object of lists by workspace")


def _prompts(items: Any, where: str) -> tuple[Prompt, ...]:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_PROMPTS:
        raise ConfigError(PROMPTS_VARIABLE, f"{where}: give 1 to {MAX_PROMPTS} prompts in a list")
    out = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(Prompt(item.strip(), item.strip()))
        elif isinstance(item, dict) and all(
            isinstance(item.get(k), str) and item[k].strip() for k in ("title", "message")
        ):
            out.append(Prompt(item["title"].strip(), item["message"].strip()))
        else:
            raise ConfigError(
                PROMPTS_VARIABLE,
                f"{where}: each prompt is a text or an object with a title and a message",
            )
    return tuple(out)


def _api_url(raw: str) -> str:
    if not raw:
        return DEFAULT_API_URL
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("SLACK_API_URL", f"must be an http(s) URL, got {raw!r}")
    return raw if raw.endswith("/") else raw + "/"
