"""SlackSettings.from_env: modes, validation, and secrets kept out of repr."""

from __future__ import annotations

import pytest

from adapters.slack.settings import DEFAULT_API_URL, SlackSettings
from bot.errors import ConfigError

BOT = "xoxb-123-secretvalue"
APP = "xapp-1-secretvalue"


def test_no_credentials_means_no_slack() -> None:
    assert SlackSettings.from_env({"DISCORD_TOKEN": "x"}) is None


def test_socket_mode_defaults() -> None:
    s = SlackSettings.from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP})
    assert s is not None
    assert s.mode == "socket" and s.api_url == DEFAULT_API_URL
    assert s.file_hosts == {"files.slack.com", "slack.com"}
    assert not s.allow_bots and s.assistant_status and s.native_stream
    assert "secretvalue" not in repr(s)


def test_http_mode_and_api_url_trailing_slash() -> None:
    s = SlackSettings.from_env(
        {
            "SLACK_BOT_TOKEN": BOT,
            "SLACK_SIGNING_SECRET": "sig-secretvalue",
            "CHATOPS_SLACK_HTTP_PORT": "3000",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
            "CHATOPS_SLACK_ALLOW_BOTS": "yes",
            "CHATOPS_SLACK_NATIVE_STREAM": "off",
        }
    )
    assert s is not None
    assert not s.native_stream
    assert s.mode == "http" and s.http_port == 3000
    assert s.api_url == "http://127.0.0.1:9/api/"
    assert "127.0.0.1" in s.file_hosts and s.allow_bots
    assert "secretvalue" not in repr(s)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SLACK_APP_TOKEN": APP}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token", "SLACK_APP_TOKEN": APP}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xoxb-wrong"}, "SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": BOT}, "SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": BOT, "CHATOPS_SLACK_HTTP_PORT": "80"}, "SLACK_SIGNING_SECRET"),
        (
            {"SLACK_BOT_TOKEN": BOT, "SLACK_SIGNING_SECRET": "s", "CHATOPS_SLACK_HTTP_PORT": "x"},
            "CHATOPS_SLACK_HTTP_PORT",
        ),
        (
            {
                "SLACK_BOT_TOKEN": BOT,
                "SLACK_SIGNING_SECRET": "s",
                "CHATOPS_SLACK_HTTP_PORT": "70000",
            },
            "CHATOPS_SLACK_HTTP_PORT",
        ),
        (
            {"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP, "SLACK_API_URL": "ftp://x"},
            "SLACK_API_URL",
        ),
        (
            {"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP, "CHATOPS_SLACK_ALLOW_BOTS": "maybe"},
            "CHATOPS_SLACK_ALLOW_BOTS",
        ),
        (
            {"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": APP, "CHATOPS_SLACK_NATIVE_STREAM": "2"},
            "CHATOPS_SLACK_NATIVE_STREAM",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SlackSettings.from_env(env)
    assert caught.value.variable == variable
    assert "secretvalue" not in str(caught.value)
