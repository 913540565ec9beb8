"""Routes each normalized request to a command and keeps every failure a plain sentence."""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Collection, Mapping
from datetime import timedelta

from bot.adapter import Adapter, Handler
from bot.commands import Command
from bot.context import Context
from bot.errors import PlatformRateLimited, UserFacingError
from bot.events import Request
from bot.gateway.client import GatewayError
from bot.governance.channels import refusal_text as channel_refusal
from bot.i18n import resolve, speaking, t
from bot.ops.scope import RequestScope, request_scope
from bot.quota.view import refusal_text
from bot.services import Services
from bot.streaming.writes import send
from storage.base import DatabaseUnavailable, QuotaExceeded

log = logging.getLogger(__name__)

CHAT_COMMAND = "ask"
VOICE_COMMAND = "transcribe"
# Admins may run these where the bot is refused, so a channel blocked by mistake can be
# opened again from inside it.
GOVERNANCE_COMMANDS = frozenset({"channels"})
# A refused channel hears the refusal at most this often (a slash command's private one
# is always sent: Discord would show "thinking…" forever otherwise).
NOTICE_EVERY = timedelta(hours=1)


def route(req: Request, names: Collection[str]) -> tuple[str, str]:
    """(command name, argument text) for a request, by the rules in DESIGN.md."""
    text = req.text.strip()
    if req.command:
        return req.command.strip().lstrip("/").lower(), text
    first, _, rest = text.partition(" ")
    if first.lower() in names:
        return first.lower(), rest.strip()
    if not text and any(a.kind == "audio" for a in req.attachments):
        return VOICE_COMMAND, ""
    return CHAT_COMMAND, text


class Dispatcher:
    """Runs each request as its own task; on shutdown drains them within a grace period."""

    def __init__(self, services: Services, commands: Mapping[str, Command]) -> None:
        self._services = services
        self._commands = commands
        # Names a message's first word may run (hidden ones come only from buttons).
        self._typed = frozenset(n for n, c in commands.items() if not c.hidden)
        self._inflight: set[asyncio.Task[None]] = set()
        self._accepting = True

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def handler_for(self, adapter: Adapter) -> Handler:
        async def handle(req: Request) -> None:
            if not self._accepting:
                with (
                    request_scope(req.place.platform, "none", self._services.telemetry) as scope,
                    speaking(self._language(req, None)),
                ):
                    scope.outcome = "restarting"
                    await self._tell(
                        adapter, req, t("The bot is restarting; please try again in a minute.")
                    )
                return
            task = asyncio.create_task(self._process(adapter, req))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            # Shielded so an adapter cancelling its listener does not cut a reply short;
            # shutdown goes through drain() instead.
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task.cancelled() and current is not None and not current.cancelling():
                    return  # drain() cut the request short; it is already finalized
                raise

        return handle

    async def drain(self, grace: float) -> None:
        """Stop taking requests, let in-flight ones finish for `grace` s, then cut them short."""
        self._accepting = False
        pending = set(self._inflight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            # Cancelled replies finalize their text and settle usage; bound that too.
            await asyncio.wait(pending, timeout=max(grace, 10.0))

    def _language(self, req: Request, channel: str | None) -> str:
        defaults = self._services.config.language
        return resolve(channel, defaults, req.place.workspace, req.user.locale)

    async def _channel_language(self, req: Request) -> str:
        """The request's language: the channel's setting first (one settings read)."""
        try:
            settings = await self._services.store.channel_settings(req.place.channel_key)
        except Exception:
            # The answer still goes out, in the workspace's or the reader's language.
            log.warning("no channel settings for the language of a request", exc_info=True)
            return self._language(req, None)
        return self._language(req, settings.language)

    async def _process(self, adapter: Adapter, req: Request) -> None:
        # Everything said for this request (and by the tasks it starts) is in its language.
        with speaking(await self._channel_language(req)):
            await self._routed(adapter, req)

    async def _routed(self, adapter: Adapter, req: Request) -> None:
        name, args = route(req, self._typed)
        command = self._commands.get(name)
        # The scope gives log lines a request id and counts the outcome; an unknown name is
        # the user's own words, never a metric label.
        label = name if command is not None else "unknown"
        with request_scope(req.place.platform, label, self._services.telemetry) as scope:
            await self._run(adapter, req, name, args, command, scope)

    async def _run(
        self,
        adapter: Adapter,
        req: Request,
        name: str,
        args: str,
        command: Command | None,
        scope: RequestScope,
    ) -> None:
        ctx = Context(req, name, args, self._services, adapter)
        try:
            # Where the bot does not answer, nothing else happens: not even "unknown command".
            if not await self._admitted(ctx):
                scope.outcome = "refused_place"
                return
            if command is None:
                scope.outcome = "unknown_command"
                await self._tell(adapter, req, _unknown_command(name, self._commands.keys()))
                return
            await command.run(ctx)
        except asyncio.CancelledError:
            raise
        except UserFacingError as exc:
            scope.outcome = "user_error"
            await self._tell(adapter, req, exc.message)
        except QuotaExceeded as exc:
            scope.outcome = "quota"
            currency = self._services.config.governance.currency
            await self._tell(adapter, req, refusal_text(exc, currency))
        except GatewayError as exc:
            scope.outcome = "gateway_error"
            log.warning("gateway error in %s: %s %s", name, exc.status, exc.code)
            await self._tell(adapter, req, exc.user_message())
        except DatabaseUnavailable as exc:
            log.warning("%s: %s", name, exc)
            await self._tell(adapter, req, exc.user_message)
        except PlatformRateLimited:
            scope.outcome = "platform_rate_limited"
            log.warning("%s: %s gave up after platform rate limits", adapter.name, name)
        except Exception:
            scope.outcome = "error"
            # The request id: every log line of this request carries it (CHATOPS_LOG_FORMAT).
            ref = scope.id
            log.exception("command %s failed (ref %s)", name, ref)
            await self._tell(
                adapter,
                req,
                t(
                    "Something went wrong on our side (ref {ref}); it has been logged. Please "
                    "try again.",
                    ref=ref,
                ),
            )

    async def _admitted(self, ctx: Context) -> bool:
        """Whether the bot answers here; a refused request never reaches a command (so never
        the gateway) and gets at most one polite line per channel per hour, or none."""
        services, req = self._services, ctx.req
        policy = services.config.governance
        reason = policy.verdict(req.place, await ctx.access())
        if not reason:
            return True
        if ctx.command in GOVERNANCE_COMMANDS and ctx.is_admin:
            return True
        log.info("refused in %s: %s", req.place.channel_key, reason)
        # A slash command is answered privately every time (the platform shows "thinking…"
        # until it is); a voice note merely posted in a channel was not said to the bot.
        said = req.command is None and (req.conversational or bool(req.text.strip()))
        if req.command is not None or (
            said
            and policy.channels.blocked_reply == "notice"
            and await services.store.claim_notice(
                f"refusal:{req.place.channel_key}", every=NOTICE_EVERY, now=services.clock()
            )
        ):
            await self._tell(ctx.adapter, req, channel_refusal(reason))
        return False

    async def _tell(self, adapter: Adapter, req: Request, text: str) -> None:
        """An error reply: private for slash commands, in the conversation otherwise.

        Through the place's post budget like every message, so a burst of refusals in one
        channel is paced instead of answered with 429s, and a 429 is waited out.
        """
        try:
            await send(
                adapter,
                self._services.budgets,
                req,
                f"⚠️ {text}",
                ephemeral=req.command is not None,
            )
        except PlatformRateLimited:
            log.error(
                "%s: an error reply in %s was kept out by rate limits", adapter.name, req.place
            )
        except Exception:
            log.exception("%s: could not deliver an error reply", adapter.name)


def _unknown_command(name: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3)
    # A pasted blob after a slash is not echoed back whole.
    shown = name if len(name) <= 40 else name[:39] + "…"
    if close:
        names = ", ".join(f"`{c}`" for c in close)
        return t(
            "I don't know the command `{name}`. Did you mean {names}? Try `help`.",
            name=shown,
            names=names,
        )
    return t("I don't know the command `{name}`. Try `help`.", name=shown)
