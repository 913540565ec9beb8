"""Quota metering around one gateway call: reserve, then settle or release exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from bot.ops.scope import quota_refused, settled
from storage.base import Amounts, Charge, QuotaExceeded, Reservation, Status, Store


@dataclass(slots=True)
class Meter:
    """What a command reports about the call it metered."""

    estimate: Amounts
    # Real usage when the gateway reported it; the estimate is charged otherwise.
    actual: Amounts | None = None
    status: Status = "ok"
    # The ledger row this call is charged on (tool calls made on its answer point at it).
    ledger_id: int = 0

    def failed(self, status: Status = "error", used: Amounts | None = None) -> None:
        """Mark the call failed; `used` is what was consumed anyway (a partial stream)."""
        self.status = status
        self.actual = used


def priced(charge: Charge, amounts: Amounts) -> Amounts:
    """`amounts` with their cost at the charge's rates (the ones held at reservation)."""
    return replace(amounts, cost=charge.rates.cost(amounts))


@asynccontextmanager
async def metered(store: Store, charge: Charge, estimate: Amounts) -> AsyncIterator[Meter]:
    """Reserve on entry (QuotaExceeded propagates), settle or release on exit.

    Cost is reserved and settled like tokens, both at the rates in `charge`: a price change
    while the call runs does not change what it is charged.
    """
    try:
        reservation = await store.reserve(charge, priced(charge, estimate))
    except QuotaExceeded as refusal:
        # Counted here, where every refusal passes (the tool loop answers some itself).
        quota_refused(refusal)
        raise
    meter = Meter(estimate, ledger_id=reservation.id)
    try:
        yield meter
    except BaseException as exc:
        status: Status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
        # Shielded: a second cancellation during shutdown must not leave the hold in place.
        await asyncio.shield(_close(store, reservation, meter.actual, status))
        settled(charge.model, meter.actual)
        raise
    if meter.status == "ok":
        await store.settle(reservation, priced(charge, meter.actual or estimate), "ok")
        settled(charge.model, meter.actual or estimate)
    else:
        await _close(store, reservation, meter.actual, meter.status)
        settled(charge.model, meter.actual, failed=True)


async def _close(
    store: Store, reservation: Reservation, used: Amounts | None, status: Status
) -> None:
    if used is None:
        await store.release(reservation, status)
    else:
        await store.settle(reservation, priced(reservation.charge, used), status)
