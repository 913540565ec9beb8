"""Slack adapter in HTTP mode (Events API): signed requests, url_verification, redelivery."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest

from adapters.slack.app import SlackAdapter
from adapters.slack.settings import SlackSettings
from tests.fakes.slack import BOT_USER, FakeSlack, SeenOnce, running, signed_headers
from tests.slack.test_socket import Inbox


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeSlack, SlackAdapter, Inbox, str]]:
    async with FakeSlack() as slack:
        env = slack.env(
            SLACK_SIGNING_SECRET=slack.signing_secret,
            CHATOPS_SLACK_HTTP_PORT="0",
            CHATOPS_SLACK_HTTP_HOST="127.0.0.1",
        )
        del env["SLACK_APP_TOKEN"]
        settings = SlackSettings.from_env(env)
        assert settings is not None and settings.mode == "http"
        adapter, inbox = SlackAdapter(settings, SeenOnce()), Inbox()
        async with running(adapter, inbox):
            yield slack, adapter, inbox, f"http://127.0.0.1:{adapter.http_port}/slack/events"


async def post(
    url: str, body: str, headers: dict[str, str], content_type: str = "application/json"
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={**headers, "Content-Type": content_type}) as resp,
    ):
        return resp.status, await resp.text()


async def test_url_verification_answered(
    served: tuple[FakeSlack, SlackAdapter, Inbox, str],
) -> None:
    slack, _, _, url = served
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})
    status, text = await post(url, body, signed_headers(slack.signing_secret, body))
    assert status == 200 and "c-123" in text


async def test_signed_event_handled_bad_and_stale_rejected(
    served: tuple[FakeSlack, SlackAdapter, Inbox, str],
) -> None:
    slack, adapter, inbox, url = served
    good = slack.user_message("C1", f"<@{BOT_USER}> good")
    body = json.dumps(slack.event_callback({**good, "type": "app_mention"}))
    assert (await post(url, body, signed_headers(slack.signing_secret, body)))[0] == 200

    bad = json.dumps(
        slack.event_callback(
            {**slack.user_message("C1", f"<@{BOT_USER}> bad"), "type": "app_mention"}
        )
    )
    status, _ = await post(url, bad, signed_headers("not-the-secret", bad))
    assert status == 401

    stale = json.dumps(
        slack.event_callback(
            {**slack.user_message("C1", f"<@{BOT_USER}> old"), "type": "app_mention"}
        )
    )
    old = int(time.time()) - 10 * 60
    status, _ = await post(url, stale, signed_headers(slack.signing_secret, stale, old))
    assert status == 401

    await adapter.drained()
    (req,) = await inbox.wait_for(1)
    assert req.text == "good" and len(inbox.requests) == 1


async def test_redelivered_event_answered_once(
    served: tuple[FakeSlack, SlackAdapter, Inbox, str],
) -> None:
    slack, adapter, inbox, url = served
    msg = slack.user_message("C1", f"<@{BOT_USER}> once please")
    body = json.dumps(slack.event_callback({**msg, "type": "app_mention"}, event_id="EvHTTP1"))
    for retry in range(3):
        headers = signed_headers(slack.signing_secret, body)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        assert (await post(url, body, headers))[0] == 200
    await adapter.drained()
    assert len(await inbox.wait_for(1)) == 1


async def test_signed_slash_command_acked_and_dispatched(
    served: tuple[FakeSlack, SlackAdapter, Inbox, str],
) -> None:
    slack, _, inbox, url = served
    body = urlencode(slack.slash_payload("/models", ""))
    status, text = await post(
        url, body, signed_headers(slack.signing_secret, body), "application/x-www-form-urlencoded"
    )
    assert status == 200 and text == ""
    (req,) = await inbox.wait_for(1)
    assert req.command == "models"
