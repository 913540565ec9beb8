"""The request being handled, in a context variable: its id, platform and command for the log
lines it causes, and its timings and outcome for the metrics."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from bot.ops.telemetry import Silent, Telemetry
from storage.base import Amounts, QuotaExceeded


@dataclass(slots=True)
class RequestScope:
    """One request from the dispatcher's point of view."""

    id: str
    platform: str
    # The routed command's name; "unknown" for names not in the command table.
    command: str
    telemetry: Telemetry
    started: float  # time.monotonic() when the dispatcher took the request
    outcome: str = "ok"
    visible: bool = False


_current: ContextVar[RequestScope | None] = ContextVar("chatops_request", default=None)


def current() -> RequestScope | None:
    """The request this code runs for (tasks started inside it inherit it), if any."""
    return _current.get()


def new_request_id() -> str:
    return secrets.token_hex(6)


@contextmanager
def request_scope(
    platform: str, command: str, telemetry: Telemetry | None = None
) -> Iterator[RequestScope]:
    """Run a request's work inside a scope; reports its outcome and latency when it ends.

    The outcome is what the body set (`scope.outcome`), "cancelled" or "error" when an
    exception leaves the block.
    """
    scope = RequestScope(
        new_request_id(), platform, command, telemetry or Silent(), time.monotonic()
    )
    token = _current.set(scope)
    try:
        yield scope
    except asyncio.CancelledError:
        scope.outcome = "cancelled"
        raise
    except BaseException:
        scope.outcome = "error"
        raise
    finally:
        _current.reset(token)
        if scope.visible:
            # The request's work ends once its final text is delivered (streamed replies
            # await their last edit), so its end is when the user sees the whole answer.
            scope.telemetry.latency("final", platform, command, time.monotonic() - scope.started)
        scope.telemetry.request_done(platform, command, scope.outcome)


def mark_visible() -> None:
    """The current request's first text reached the platform (later calls do nothing)."""
    scope = _current.get()
    if scope is not None and not scope.visible:
        scope.visible = True
        scope.telemetry.latency(
            "first_visible", scope.platform, scope.command, time.monotonic() - scope.started
        )


def quota_refused(refusal: QuotaExceeded) -> None:
    """A reservation of the current request was refused by a quota limit: count it."""
    scope = _current.get()
    if scope is not None:
        scope.telemetry.quota_refused(refusal.metric, refusal.window, refusal.scope)


def settled(model: str, used: Amounts | None, *, failed: bool = False) -> None:
    """A metered call of the current request was settled: count what it was charged.

    `failed`: the command caught the call's failure itself and told the user (a reply cut
    off by a gateway error), so the request ends normally but is not a success.
    """
    scope = _current.get()
    if scope is None:
        return
    if used is not None:
        scope.telemetry.used(model, used)
    if failed and scope.outcome == "ok":
        scope.outcome = "interrupted"
