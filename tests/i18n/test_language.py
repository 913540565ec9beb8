"""Which language the bot speaks: channel setting, CHATOPS_LANGUAGE, the platform, English."""

from __future__ import annotations

import pytest

from bot.config import Config
from bot.errors import ConfigError
from bot.i18n import LanguageDefaults, resolve, supported


def test_the_chain_channel_then_workspace_then_platform_then_english() -> None:
    defaults = LanguageDefaults.from_env({"CHATOPS_LANGUAGE": "zh-CN,T2=en"})
    assert resolve("en", defaults, "T1", "zh-CN") == "en"  # the channel's choice wins
    assert resolve(None, defaults, "T1", "en-US") == "zh_CN"  # the default for every workspace
    assert resolve(None, defaults, "T2", "zh-CN") == "en"  # this workspace's own default
    none = LanguageDefaults()
    assert resolve(None, none, "T1", "zh-CN") == "zh_CN"  # Slack's user locale
    assert resolve(None, none, "T1", "zh-TW") == "zh_CN"  # any Chinese reads Simplified
    assert resolve(None, none, "T1", "fr") == "en"  # no French catalog: English
    assert resolve(None, none, "T1") == "en"


@pytest.mark.parametrize(
    ("text", "code"),
    [("zh-CN", "zh_CN"), ("zh_CN", "zh_CN"), ("中文", "zh_CN"), ("Chinese", "zh_CN"), ("EN", "en")],
)
def test_language_names_and_codes(text: str, code: str) -> None:
    assert supported(text) == code


@pytest.mark.parametrize("raw", ["klingon", "fr", "T1=de", "zh-CN,T1="])
def test_a_language_the_bot_cannot_speak_stops_start_up(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"WEELINKING_API_KEY": "sk-x", "CHATOPS_LANGUAGE": raw})
    assert caught.value.variable == "CHATOPS_LANGUAGE"
