"""`chatops run` with an operations port, against the fake gateway and the fake Slack: real
HTTP requests to /healthz, /readyz and /metrics while the service works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, TEAM, FakeSlack
from tests.ops_harness import (
    Scrape,
    get,
    readyz,
    running_service,
    scrape,
    service_env,
    wait_metrics,
    wait_readyz,
)

JSON = dict[str, Any]


def _env(gateway: FakeGateway, slack: FakeSlack, db: Path, **extra: str) -> dict[str, str]:
    return service_env(
        {
            "WEELINKING_API_KEY": gateway.api_key,
            "WEELINKING_BASE_URL": gateway.base_url,
            "CHATOPS_SHUTDOWN_GRACE": "2",
            **slack.env(),
            **extra,
        },
        db,
    )


async def test_readyz_follows_the_slack_socket_and_the_database(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with FakeGateway() as gateway, FakeSlack() as slack:
        # Slack keeps the bot waiting for its websocket URL: not connected yet.
        slack.hold_connections()
        async with running_service(_env(gateway, slack, db), tmp_path) as service:
            status, body = await readyz(service.base)
            assert status == 503, body
            assert body["parts"]["slack"]["ok"] is False
            assert body["parts"]["database"]["ok"] is True
            assert (await get(f"{service.base}/healthz"))[0] == 200

            slack.release_connections()
            body = await wait_readyz(service.base, 200)
            assert body["parts"]["slack"] == {
                "ok": True,
                "detail": "Socket Mode connected",
                "required": True,
            }

            # Slack drops the socket and is unreachable for a while.
            slack.hold_connections()
            await slack.drop_connections()
            body = await wait_readyz(service.base, 503)
            assert body["parts"]["slack"]["ok"] is False
            assert (await get(f"{service.base}/healthz"))[0] == 200
            slack.release_connections()
            await wait_readyz(service.base, 200)

            # The database file is moved away: the open connection would still "work".
            moved = tmp_path / "elsewhere.db"
            db.rename(moved)
            body = await wait_readyz(service.base, 503)
            assert body["parts"]["database"]["ok"] is False
            assert "bot.db" in body["parts"]["database"]["detail"]
            assert body["parts"]["slack"]["ok"] is True
            moved.rename(db)
            await wait_readyz(service.base, 200)
            assert (await scrape(service.base)).value("chatops_ready") == 1
    assert service.returncode == 0, "\n".join(service.lines[-30:])


async def _mention(slack: FakeSlack, text: str) -> tuple[JSON, JSON]:
    """Post a mention over Socket Mode; returns (the message, the envelope's payload)."""
    msg = slack.user_message("C1", f"<@{BOT_USER}> {text}")
    body = slack.event_callback({**msg, "type": "app_mention"})
    await slack.wait_ack(await slack.send("events_api", body))
    return msg, body


async def _answered(slack: FakeSlack, msg: JSON, words: str) -> None:
    def done() -> bool:
        return any(words in str(m.get("text")) for m in slack.thread("C1", msg["ts"]))

    await slack.wait_until(done, within=20)


def _delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def _calls_seen_by(slack: FakeSlack) -> dict[str, int]:
    seen: dict[str, int] = {}
    for _, method, _ in slack.calls:
        seen[method] = seen.get(method, 0) + 1
    return seen


def _calls_counted(got: Scrape) -> dict[str, int]:
    counted: dict[str, int] = {}
    for (name, labels), value in got.samples.items():
        if name == "chatops_platform_api_calls_total" and ("platform", "slack") in labels:
            method = dict(labels)["method"]
            counted[method] = counted.get(method, 0) + int(value)
    return counted


async def test_counters_move_by_exactly_what_the_fakes_saw(tmp_path: Path) -> None:
    async with FakeGateway() as gateway, FakeSlack() as slack:
        env = _env(gateway, slack, tmp_path / "bot.db", CHATOPS_LOG_FORMAT="json")
        async with running_service(env, tmp_path) as service:
            base = service.base
            await wait_readyz(base, 200)
            before = await scrape(base)

            mentions = [await _mention(slack, f"question {n}") for n in range(3)]
            for n, (msg, _) in enumerate(mentions):
                await _answered(slack, msg, f"You said: question {n}")
            after = await wait_metrics(
                base, lambda s: _delta(s, before, "chatops_requests_total") >= 3
            )
            ok = {"platform": "slack", "command": "ask"}
            assert _delta(after, before, "chatops_requests_total") == 3
            assert _delta(after, before, "chatops_requests_total", outcome="ok", **ok) == 3
            assert _delta(after, before, "chatops_first_visible_seconds_count", **ok) == 3
            assert _delta(after, before, "chatops_final_text_seconds_count", **ok) == 3
            model = {"model": "gpt-4o-mini"}
            assert len(gateway.usages) == 3
            assert after.value("chatops_tokens_total", direction="in", **model) == sum(
                u["prompt_tokens"] for u in gateway.usages
            )
            assert after.value("chatops_tokens_total", direction="out", **model) == sum(
                u["completion_tokens"] for u in gateway.usages
            )
            chat = {"endpoint": "chat/completions"}
            assert after.value("chatops_gateway_requests_total", code="ok", **chat) == 3

            # Every Web API call the fake Slack answered, counted once under its method.
            after = await wait_metrics(base, lambda s: _calls_counted(s) == _calls_seen_by(slack))
            assert _calls_counted(after)["chat.startStream"] == 3

            # Labels never carry a channel, user, message or event id.
            ids = {"C1", "U1", TEAM, BOT_USER}
            ids |= {msg["ts"] for msg, _ in mentions} | {body["event_id"] for _, body in mentions}
            assert not ids & after.label_values()
            allowed = {"platform", "command", "outcome", "model", "direction", "endpoint"}
            allowed |= {"status", "code", "method", "metric", "window", "scope", "kind", "le"}
            allowed |= {"version", "python"}
            assert after.label_names() <= allowed

            # Slack delivers the first mention again: ignored, and counted as such.
            _, first = mentions[0]
            await slack.wait_ack(await slack.send("events_api", first, retry_attempt=1))
            after = await wait_metrics(
                base, lambda s: s.value("chatops_redeliveries_ignored_total") >= 1
            )
            assert after.value("chatops_redeliveries_ignored_total", platform="slack") == 1
            assert _delta(after, before, "chatops_requests_total") == 3

            # A gateway 503 is retried once, inside the request.
            gateway.fail_next(503, "server_error")
            msg, _ = await _mention(slack, "again")
            await _answered(slack, msg, "You said: again")
            after = await wait_metrics(
                base, lambda s: _delta(s, before, "chatops_requests_total") >= 4
            )
            retried = {"endpoint": "chat/completions", "code": "server_error"}
            assert after.value("chatops_gateway_retries_total", **retried) == 1
            assert after.value("chatops_gateway_requests_total", status="503", **retried) == 1

            # A rejected key: the reply says so, /readyz shows it (still ready), then clears.
            gateway.fail_next(401, "invalid_api_key")
            msg, _ = await _mention(slack, "with a bad key")
            await _answered(slack, msg, "rejected the API key")
            after = await wait_metrics(
                base, lambda s: _delta(s, before, "chatops_requests_total") >= 5
            )
            assert after.value("chatops_requests_total", outcome="interrupted", **ok) == 1
            assert after.value("chatops_gateway_key_rejected") == 1
            status, body = await readyz(base)
            assert status == 200 and body["parts"]["gateway"]["ok"] is False
            assert "WEELINKING_API_KEY" in body["parts"]["gateway"]["detail"]
            msg, _ = await _mention(slack, "key fixed")
            await _answered(slack, msg, "You said: key fixed")
            status, body = await readyz(base)
            assert body["parts"]["gateway"]["ok"] is True

    assert service.returncode == 0, "\n".join(service.lines[-30:])
    lines = [json.loads(line) for line in service.lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    retry = [x for x in lines if "retry 1/3" in x["message"]]
    assert len(retry) == 1
    assert retry[0]["platform"] == "slack" and retry[0]["command"] == "ask"
    assert len(retry[0]["request_id"]) == 12
    # No secret anywhere in the log.
    text = "\n".join(service.lines)
    for secret in (gateway.api_key, slack.bot_token, slack.app_token):
        assert secret not in text
