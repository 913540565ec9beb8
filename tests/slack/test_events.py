"""Normalising Slack payloads: which messages are for the bot, mentions, commands, users."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.events import (
    Identity,
    classify_message,
    echo_line,
    slash_command,
    split_echo,
    strip_mention,
    user_from_info,
)

ME = Identity(user_id="UBOT", bot_id="BBOT", team_id="T1")
CLIP = {"id": "F1", "subtype": "slack_audio", "mimetype": "audio/webm", "url_private": "x"}


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"user": "U1", "text": "hi", "ts": "1", "channel_type": "im"}, "dm"),
        ({"user": "U1", "text": "<@UBOT> hi", "ts": "1", "channel_type": "im"}, "dm"),
        ({"user": "U1", "text": "<@UBOT> hi", "ts": "2", "thread_ts": "1"}, None),
        ({"user": "U1", "text": "more", "ts": "2", "thread_ts": "1"}, "thread"),
        ({"user": "U1", "text": "top level chatter", "ts": "1"}, None),
        ({"user": "U1", "text": "", "ts": "1", "files": [CLIP], "subtype": "file_share"}, "clip"),
        ({"user": "U1", "text": "caption", "ts": "1", "files": [CLIP]}, None),
        ({"user": "UBOT", "text": "mine", "ts": "1", "channel_type": "im"}, None),
        ({"bot_id": "BBOT", "text": "mine", "ts": "1", "subtype": "bot_message"}, None),
        ({"bot_id": "B2", "user": "U2", "text": "x", "ts": "1", "channel_type": "im"}, None),
        ({"subtype": "message_changed", "ts": "1", "channel_type": "im"}, None),
        ({"subtype": "channel_join", "user": "U1", "ts": "1", "channel_type": "im"}, None),
    ],
)
def test_classify_message(event: dict[str, Any], kind: str | None) -> None:
    assert classify_message(event, ME, allow_bots=False) == kind


def test_other_bots_allowed_when_configured() -> None:
    event = {"bot_id": "B2", "user": "U2", "text": "x", "ts": "1", "channel_type": "im"}
    assert classify_message(event, ME, allow_bots=True) == "dm"
    own = {"bot_id": "BBOT", "text": "x", "ts": "1", "channel_type": "im"}
    assert classify_message(own, ME, allow_bots=True) is None


def test_strip_mention() -> None:
    assert strip_mention("<@UBOT>   image  a cat", "UBOT") == "image a cat"
    assert strip_mention("hey <@UBOT|chatops>, and <@U2>", "UBOT") == "hey , and <@U2>"


@pytest.mark.parametrize(
    ("command", "text", "parsed"),
    [
        ("/ask", " why? ", ("ask", "why?")),
        ("/chatops", "IMAGE a cat", ("image", "a cat")),
        ("/chatops", "", ("help", "")),
        ("/Models", "gpt", ("models", "gpt")),
    ],
)
def test_slash_command(command: str, text: str, parsed: tuple[str, str]) -> None:
    assert slash_command(command, text) == parsed


def test_user_from_info() -> None:
    owner = user_from_info("U1", {"is_owner": True, "profile": {"display_name": "Ada"}})
    assert owner.is_admin and owner.name == "Ada"
    plain = user_from_info("U2", {"real_name": "Bob", "profile": {"display_name": ""}})
    assert not plain.is_admin and plain.name == "Bob"


def test_echo_line_round_trip() -> None:
    line = echo_line("U1", "/ask is a<b & `c`?")
    assert line == "<@U1>: `/ask is a&lt;b &amp; 'c'?`\n"
    assert split_echo(line + "the answer") == ("is a<b & 'c'?", "the answer")
    assert split_echo("no echo here") == (None, "no echo here")
