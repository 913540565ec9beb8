"""Entry point: read configuration, wire the service together, run until told to stop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dotenv import load_dotenv

from adapters.api_calls import api_call_trace
from adapters.console import ConsoleAdapter
from adapters.discord.client import DiscordAdapter
from adapters.discord.routes import discord_route
from adapters.discord.settings import DiscordSettings
from adapters.slack.app import SlackAdapter
from adapters.slack.calls import slack_method
from adapters.slack.settings import SlackSettings
from bot.adapter import Adapter, Observed
from bot.audio.pipeline import check_ffmpeg
from bot.audio.standby import Standby
from bot.commands import Command
from bot.commands.models import usable_model_ids
from bot.commands.table import command_table
from bot.commands.transcribe import transcribe_command
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.errors import ConfigError
from bot.gateway.client import Gateway, GatewayError
from bot.knowledge.memory import ChannelMemory
from bot.ops.logs import configure_logging
from bot.ops.metrics import Metrics
from bot.ops.readiness import Readiness
from bot.ops.server import OpsServer
from bot.ops.settings import OpsSettings
from bot.ops.telemetry import Silent, Telemetry, counting_redeliveries
from bot.quota.cli import quota_cli
from bot.services import Services, utc_now
from bot.streaming.budgets import Budgets
from bot.tools.mcp import McpServers
from storage.base import DatabaseUnusable
from storage.opener import open_store
from storage.postgres.store import PostgresStore

log = logging.getLogger("chatops")
# How long start-up waits for the gateway's model list to check model globs against.
STARTUP_CHECK_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class Platforms:
    """Which chat platforms the environment configures (validated before anything starts)."""

    slack: SlackSettings | None
    discord: DiscordSettings | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Platforms:
        return cls(slack=SlackSettings.from_env(env), discord=DiscordSettings.from_env(env))

    def build(self, services: Services, table: Mapping[str, Command]) -> list[Adapter]:
        adapters: list[Adapter] = []
        store, telemetry = services.store, services.telemetry
        if self.slack is not None:
            adapters.append(
                SlackAdapter(
                    self.slack,
                    counting_redeliveries(store.first_delivery, "slack", telemetry),
                    services.budgets,
                    trace=api_call_trace("slack", slack_method, telemetry),
                    languages=services.config.language,
                )
            )
        if self.discord is not None:
            adapters.append(
                DiscordAdapter(
                    self.discord,
                    commands=table,
                    models=usable_model_ids(services),
                    first_delivery=counting_redeliveries(
                        store.first_delivery, "discord", telemetry
                    ),
                    http_trace=api_call_trace("discord", discord_route, telemetry),
                )
            )
        return adapters

    def secrets(self) -> list[str]:
        """The platform credentials, for the log redactor."""
        values = []
        if self.slack is not None:
            values += [self.slack.bot_token, self.slack.app_token, self.slack.signing_secret]
        if self.discord is not None:
            values.append(self.discord.token)
        return [secret.reveal() for secret in values]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatops", description=__doc__)
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("run", help="run every configured platform (the console when none is)")
    sub.add_parser("console", help="chat on this terminal; scriptable through pipes")
    sub.add_parser("quota", help="show, set or export quota (`chatops quota --help`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A .env file is a convenience for local runs; real environment variables win.
    load_dotenv(override=False)
    if argv[:1] == ["quota"]:
        # The operator CLI needs only the database, not the gateway key.
        return asyncio.run(quota_cli(argv[1:]))
    args = _parser().parse_args(argv)
    try:
        config = Config.from_env(os.environ)
        platforms = Platforms.from_env(os.environ)
        ops = OpsSettings.from_env(os.environ)
    except ConfigError as exc:
        return _refuse(exc)
    configure_logging(
        config.log_level, ops.log_format, [config.api_key.reveal(), *platforms.secrets()]
    )
    # httpx logs every request at INFO: noise in a chat console and in production logs.
    logging.getLogger("httpx").setLevel(
        max(logging.WARNING, logging.getLevelName(config.log_level))
    )
    if args.action == "console":
        platforms = Platforms(slack=None, discord=None)
    try:
        return asyncio.run(serve(config, platforms, ops))
    except (ConfigError, DatabaseUnusable) as exc:
        # Found only when opening it: a database that is newer, foreign, unreachable or
        # refuses our login (said without the password).
        return _refuse(exc)


def _refuse(exc: ConfigError | DatabaseUnusable) -> int:
    print(f"chatops: configuration error: {exc.variable}: {exc.problem}", file=sys.stderr)
    return 2


async def serve(config: Config, platforms: Platforms, ops: OpsSettings | None = None) -> int:
    problem = await check_ffmpeg(config.audio)
    if problem:
        # Chat and images work without ffmpeg; only voice notes need it.
        log.warning("%s", problem)
    async with Standby() as standby:
        return await _serve(config, platforms, ops or OpsSettings(), standby)


async def check_governance(config: Config, gateway: Gateway) -> None:
    """Model globs (CHATOPS_MODELS_ALLOW, the price table) must each match a model the gateway
    lists; ConfigError names the first that does not. An unreachable gateway skips the check
    (the bot may start before the network does), with a warning."""
    policy = config.governance
    if policy.models_allow or policy.prices is not None:
        try:
            async with asyncio.timeout(STARTUP_CHECK_TIMEOUT):
                ids = [m.id for m in await gateway.models()]
        except (GatewayError, TimeoutError) as exc:
            log.warning("could not check model globs against the gateway's model list: %s", exc)
        else:
            policy.check_known(ids)
    defaults = {
        "CHATOPS_IMAGE_MODEL": config.image_model,
        "CHATOPS_TRANSCRIBE_MODEL": config.transcribe_model,
    }
    for line in policy.unusable_defaults(defaults):
        log.warning("%s", line)


async def _serve(config: Config, platforms: Platforms, ops: OpsSettings, standby: Standby) -> int:
    # Metrics are kept only when something can read them.
    metrics = Metrics() if ops.port is not None else None
    telemetry: Telemetry = metrics or Silent()
    store = await open_store(config.database, config.quota, pool_size=config.db_pool_size)
    gateway = Gateway(
        config.base_url,
        config.api_key,
        responses_models=config.tools.responses_models,
        telemetry=telemetry,
    )
    # A server that is down at start-up is logged and tried again when a channel uses it.
    mcp = McpServers(config.tools.mcp_servers) if config.tools.mcp_servers else None
    memory = ChannelMemory(store, gateway, config.knowledge, clock=utc_now)
    # Replicas on one PostgreSQL share the platform budgets that count writes per app.
    shared = store.budgets() if isinstance(store, PostgresStore) else None
    try:
        await check_governance(config, gateway)
        if mcp is not None:
            await mcp.start()
        await memory.start()
        services = Services(
            config,
            gateway,
            store,
            Budgets(shared=shared),
            mcp=mcp,
            telemetry=telemetry,
            memory=memory,
        )
        return await _run_platforms(config, platforms, ops, metrics, standby, services)
    finally:
        await memory.close()
        if mcp is not None:
            await mcp.close()
        await gateway.aclose()
        await store.close()


async def _run_platforms(
    config: Config,
    platforms: Platforms,
    ops: OpsSettings,
    metrics: Metrics | None,
    standby: Standby,
    services: Services,
) -> int:
    table = command_table(transcribe_command(config.audio, standby))
    dispatcher = Dispatcher(services, table)
    adapters = platforms.build(services, table) or [
        ConsoleAdapter(
            config.db_path.parent / "uploads",
            commands=list(table),
            budgets=services.budgets,
            languages=config.language,
        )
    ]
    if services.memory is not None:
        # Channel messages of memory-enabled channels reach the indexer, never the dispatcher.
        for adapter in adapters:
            if isinstance(adapter, Observed):
                adapter.observer = services.memory.intake(adapter)
    # Up before the platforms connect, so /readyz can say they have not yet.
    readiness: Readiness | None = None
    server: OpsServer | None = None
    if metrics is not None and ops.port is not None:
        metrics.watch(in_flight=lambda: dispatcher.inflight, budgets=services.budgets.spare)
        readiness = Readiness(services.store, adapters, metrics)
        server = OpsServer(readiness, metrics, ops.host, ops.port)
        try:
            await server.start()
        except OSError as exc:
            problem = f"cannot listen on {ops.host}:{ops.port}: {exc.strerror or exc}"
            raise ConfigError("CHATOPS_OPS_PORT", problem) from None
    try:
        return await _until_stopped(config, dispatcher, adapters, readiness)
    finally:
        if server is not None:
            await server.close()


async def _until_stopped(
    config: Config,
    dispatcher: Dispatcher,
    adapters: list[Adapter],
    readiness: Readiness | None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    runs = [asyncio.create_task(a.run(dispatcher.handler_for(a)), name=a.name) for a in adapters]
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*runs, stopping], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in runs if t in done and not t.cancelled() and t.exception()]
    for task in failed:
        log.error("%s stopped: %s", task.get_name(), task.exception())
    if readiness is not None:
        readiness.stopping = True
    if stop.is_set():
        log.info("signal received; finishing in-flight replies")
    # Stop taking new requests, then give in-flight replies their grace period.
    for task in runs:
        task.cancel()
    stopping.cancel()
    await dispatcher.drain(config.shutdown_grace)
    await asyncio.gather(*runs, return_exceptions=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
