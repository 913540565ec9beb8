"""Replicas for tests and benchmarks: real `chatops run` processes in Slack HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, FakeSlack, signed_headers
from tests.postgres import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Replica:
    """One `chatops run` process; `url` is its Slack Events endpoint in HTTP mode."""

    process: asyncio.subprocess.Process
    url: str = ""
    stderr: bytes = field(default=b"", repr=False)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(30):
            _, self.stderr = await self.process.communicate()
        assert self.process.returncode is not None
        return self.process.returncode


async def start(env: Mapping[str, str], cwd: Path) -> Replica:
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Replica(process)


def service_env(gateway: FakeGateway, db: str, **extra: str) -> dict[str, str]:
    return {
        "WEELINKING_API_KEY": gateway.api_key,
        "WEELINKING_BASE_URL": gateway.base_url,
        "CHATOPS_DB": db,
        "CHATOPS_SHUTDOWN_GRACE": "5",
        **extra,
    }


@contextlib.asynccontextmanager
async def slack_replicas(
    count: int, slack: FakeSlack, gateway: FakeGateway, db: str, root: Path, **extra: str
) -> AsyncIterator[list[Replica]]:
    """`count` replicas in Slack HTTP mode (Events API), each on its own port, all ready."""
    replicas: list[Replica] = []
    try:
        for i in range(count):
            port = free_port()
            env = slack.env(
                SLACK_SIGNING_SECRET=slack.signing_secret,
                CHATOPS_SLACK_HTTP_HOST="127.0.0.1",
                CHATOPS_SLACK_HTTP_PORT=str(port),
            )
            del env["SLACK_APP_TOKEN"]
            replica = await start({**service_env(gateway, db, **extra), **env}, root / f"r{i}")
            replica.url = f"http://127.0.0.1:{port}/slack/events"
            replicas.append(replica)
        async with asyncio.timeout(60):
            await asyncio.gather(*(until_listening(slack, r) for r in replicas))
        yield replicas
    finally:
        for replica in replicas:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await replica.stop()


@contextlib.asynccontextmanager
async def socket_replicas(
    count: int, slack: FakeSlack, gateway: FakeGateway, db: str, root: Path
) -> AsyncIterator[list[Replica]]:
    """`count` replicas in Slack Socket Mode, each with its own connection, all connected."""
    replicas: list[Replica] = []
    try:
        for i in range(count):
            replicas.append(
                await start({**service_env(gateway, db), **slack.env()}, root / f"s{i}")
            )
        async with asyncio.timeout(60):
            while slack.connections < count:
                for replica in replicas:
                    if replica.process.returncode is not None:
                        await replica.stop()
                        raise AssertionError(f"a replica exited: {replica.stderr.decode()[-2000:]}")
                await asyncio.sleep(0.1)
        yield replicas
    finally:
        for replica in replicas:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await replica.stop()


async def until_listening(slack: FakeSlack, replica: Replica) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "up", "token": "t"})
    while True:
        if replica.process.returncode is not None:
            await replica.stop()
            raise AssertionError(f"a replica exited: {replica.stderr.decode()[-2000:]}")
        with contextlib.suppress(aiohttp.ClientError):
            if (await deliver(replica, body, slack.signing_secret))[0] == 200:
                return
        await asyncio.sleep(0.1)


async def deliver(replica: Replica, body: str, secret: str, *, retry: int = 0) -> tuple[int, str]:
    """POST a signed Events API request, as Slack does (a retry says so in its headers)."""
    headers = {**signed_headers(secret, body), "Content-Type": "application/json"}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(replica.url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


def mention(slack: FakeSlack, channel: str, text: str, event_id: str) -> tuple[str, str]:
    """A mention stored in the fake; returns its ts and the Events API body delivering it."""
    msg = slack.user_message(channel, f"<@{BOT_USER}> {text}")
    body = json.dumps(slack.event_callback({**msg, "type": "app_mention"}, event_id=event_id))
    return msg["ts"], body
