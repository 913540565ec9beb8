"""What /readyz answers: the database answers and every configured platform is connected."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.adapter import Adapter
from bot.ops.metrics import Metrics
from storage.base import Store

log = logging.getLogger(__name__)

# A part that takes longer than this to answer is reported as not answering (so a probe
# with a timeout of a few seconds always gets an answer).
CHECK_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Part:
    """One line of the readiness report."""

    name: str
    ok: bool
    detail: str
    # False for parts shown to humans that do not decide readiness (the gateway key).
    required: bool = True


@dataclass(frozen=True, slots=True)
class Report:
    parts: tuple[Part, ...]

    @property
    def ready(self) -> bool:
        return all(part.ok for part in self.parts if part.required)

    def as_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "parts": {
                part.name: {"ok": part.ok, "detail": part.detail, "required": part.required}
                for part in self.parts
            },
        }


class Readiness:
    """Asks each part in turn; also keeps the state gauges of `metrics` current."""

    def __init__(
        self,
        store: Store,
        adapters: Sequence[Adapter],
        metrics: Metrics,
        *,
        timeout: float = CHECK_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._adapters = list(adapters)
        self._metrics = metrics
        self._timeout = timeout
        self._clock = clock
        # Set when shutdown starts: a draining service takes no new work.
        self.stopping = False

    async def check(self) -> Report:
        # Side by side: a probe waits for the slowest part, not for the sum of them.
        parts = list(
            await asyncio.gather(self._database(), *(self._platform(a) for a in self._adapters))
        )
        parts.append(self._gateway())
        if self.stopping:
            parts.append(Part("service", False, "shutting down; finishing replies in flight"))
        report = Report(tuple(parts))
        self._metrics.ready.set(report.ready)
        return report

    async def _database(self) -> Part:
        try:
            async with asyncio.timeout(self._timeout):
                await self._store.ping()
        except TimeoutError:
            part = Part("database", False, f"no answer within {self._timeout:g} s")
        except Exception as exc:
            part = Part("database", False, str(exc) or type(exc).__name__)
        else:
            part = Part("database", True, "answers")
        self._metrics.database_up.set(part.ok)
        return part

    async def _platform(self, adapter: Adapter) -> Part:
        try:
            async with asyncio.timeout(self._timeout):
                state = await adapter.connection()
        except TimeoutError:
            part = Part(adapter.name, False, f"no state within {self._timeout:g} s")
        except Exception as exc:
            log.warning("%s: connection state unavailable", adapter.name, exc_info=True)
            part = Part(adapter.name, False, f"state unavailable: {type(exc).__name__}")
        else:
            part = Part(adapter.name, state.up, state.detail)
        self._metrics.platform_connected.labels(adapter.name).set(part.ok)
        return part

    def _gateway(self) -> Part:
        # Shown, not required: a rejected key needs an operator, and a replica taken out of
        # rotation would never see the gateway accept the key again.
        since = self._metrics.key_rejected_at
        if since is None:
            return Part("gateway", True, "API key not rejected", required=False)
        ago = max(0.0, self._clock() - since)
        return Part(
            "gateway",
            False,
            f"the gateway rejected WEELINKING_API_KEY (401) {ago:.0f} s ago and has not "
            "accepted it since",
            required=False,
        )
