"""The hooks the core calls at its seams; `Silent` records nothing (the ops port is off)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from storage.base import Amounts

Stage = Literal["first_visible", "final"]


class Telemetry(Protocol):
    """What the service reports while it works; bot/ops/metrics.py makes Prometheus of it.

    Every label passed here comes from a small fixed set (platform and command names, the
    gateway's error taxonomy, API method names, model ids): never a channel, user or message.
    """

    def request_done(self, platform: str, command: str, outcome: str) -> None: ...

    def latency(self, stage: Stage, platform: str, command: str, seconds: float) -> None: ...

    def quota_refused(self, metric: str, window: str, scope: str) -> None: ...

    def used(self, model: str, amounts: Amounts) -> None: ...

    def gateway_answer(self, endpoint: str, status: int | None, code: str) -> None: ...

    def gateway_retry(self, endpoint: str, code: str) -> None: ...

    def platform_call(self, platform: str, method: str, status: int | None) -> None: ...

    def redelivery_ignored(self, platform: str) -> None: ...


class Silent:
    """Telemetry that records nothing."""

    def request_done(self, platform: str, command: str, outcome: str) -> None:
        pass

    def latency(self, stage: Stage, platform: str, command: str, seconds: float) -> None:
        pass

    def quota_refused(self, metric: str, window: str, scope: str) -> None:
        pass

    def used(self, model: str, amounts: Amounts) -> None:
        pass

    def gateway_answer(self, endpoint: str, status: int | None, code: str) -> None:
        pass

    def gateway_retry(self, endpoint: str, code: str) -> None:
        pass

    def platform_call(self, platform: str, method: str, status: int | None) -> None:
        pass

    def redelivery_ignored(self, platform: str) -> None:
        pass


FirstDelivery = Callable[[str], Awaitable[bool]]


def counting_redeliveries(
    first_delivery: FirstDelivery, platform: str, telemetry: Telemetry
) -> FirstDelivery:
    """Store.first_delivery as an adapter uses it, counting the redeliveries it ignores."""

    async def first(event_id: str) -> bool:
        fresh = await first_delivery(event_id)
        if not fresh:
            telemetry.redelivery_ignored(platform)
        return fresh

    return first
