"""QuotaConfig from the environment and the limit parser shared by commands and the CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.errors import ConfigError
from bot.quota.config import parse_limit, parse_metric, parse_window, quota_config_from_env


def test_defaults_are_unlimited_in_utc() -> None:
    config = quota_config_from_env({})
    assert config.tz.key == "UTC"
    assert config.default_limit("tokens", "day") is None
    assert config.user_share is None
    assert config.reservation_ttl == timedelta(minutes=10)


def test_every_metric_and_window_from_the_environment() -> None:
    config = quota_config_from_env(
        {
            "CHATOPS_QUOTA_REQUESTS_DAY": "200",
            "CHATOPS_QUOTA_TOKENS_DAY": "250k",
            "CHATOPS_QUOTA_TOKENS_MONTH": "5M",
            "CHATOPS_QUOTA_IMAGES_MONTH": "1_000",
            "CHATOPS_QUOTA_AUDIO_SECONDS_DAY": "2h",
            "CHATOPS_QUOTA_AUDIO_SECONDS_MONTH": "unlimited",
            "CHATOPS_QUOTA_TZ": "America/New_York",
            "CHATOPS_QUOTA_USER_SHARE": "25%",
            "CHATOPS_QUOTA_RESERVATION_TTL": "900",
        }
    )
    assert config.limits == {
        ("requests", "day"): 200,
        ("tokens", "day"): 250_000,
        ("tokens", "month"): 5_000_000,
        ("images", "month"): 1000,
        ("audio_seconds", "day"): 7200,
        ("audio_seconds", "month"): None,
    }
    assert config.tz.key == "America/New_York"
    assert config.user_share == 0.25
    assert config.reservation_ttl == timedelta(seconds=900)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CHATOPS_QUOTA_TOKENS_DAY", "-5", "negative"),
        ("CHATOPS_QUOTA_TOKENS_DAY", "lots", "not a limit"),
        ("CHATOPS_QUOTA_IMAGES_MONTH", "2.5", "whole numbers"),
        ("CHATOPS_QUOTA_REQUESTS_MONTH", "1e30", "not a limit"),
        ("CHATOPS_QUOTA_REQUESTS_MONTH", "999999999999999", "absurdly large"),
        ("CHATOPS_QUOTA_TZ", "Mars/Olympus", "unknown time zone"),
        ("CHATOPS_QUOTA_USER_SHARE", "150%", "share"),
        ("CHATOPS_QUOTA_USER_SHARE", "0", "share"),
        ("CHATOPS_QUOTA_RESERVATION_TTL", "5", "between 60 and 86400"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        quota_config_from_env({variable: value})
    assert info.value.variable == variable
    assert says in info.value.problem


@pytest.mark.parametrize(
    ("metric", "text", "value"),
    [
        ("tokens", "1,500", 1500),
        ("tokens", "0", 0),
        ("requests", "Unlimited", None),
        ("audio_seconds", "90", 90),
        ("audio_seconds", "1.5h", 5400),
        ("audio_seconds", "30 min", 1800),
        ("images", "2k", 2000),
    ],
)
def test_parse_limit(metric: str, text: str, value: float | None) -> None:
    assert parse_limit(metric, text) == value  # type: ignore[arg-type]


def test_names_and_aliases() -> None:
    assert parse_metric("Audio") == "audio_seconds"
    assert parse_window("daily") == "day"
    with pytest.raises(ValueError, match="unknown metric 'dollars'"):
        parse_metric("dollars")
    with pytest.raises(ValueError, match="use day or month"):
        parse_window("week")
