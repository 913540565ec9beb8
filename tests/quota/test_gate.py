"""The quota gate under concurrency (several connections, several processes) and across a crash."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from datetime import UTC, datetime, timedelta

import pytest

from storage.base import Amounts, Charge, QuotaConfig, QuotaExceeded, Reservation
from storage.opener import open_store

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _sums(rows: list[Amounts]) -> dict[str, float]:
    return {
        "requests": sum(a.requests for a in rows),
        "tokens": sum(a.tokens for a in rows),
        "images": sum(a.images for a in rows),
        "audio_seconds": sum(a.audio_seconds for a in rows),
        "cost": sum(a.cost for a in rows),
    }


@pytest.mark.parametrize(
    ("limit", "estimate", "allowed"),
    [
        ((("requests", "day"), 37), Amounts(tokens_in=10, tokens_out=20), 37),
        ((("tokens", "month"), 10_000), Amounts(tokens_in=100, tokens_out=200), 33),
        ((("audio_seconds", "day"), 600), Amounts(audio_seconds=45.5), 13),
    ],
)
async def test_exactly_the_allowed_number_get_through(
    store_at: str,
    limit: tuple[tuple[str, str], float],
    estimate: Amounts,
    allowed: int,
) -> None:
    quota = QuotaConfig(limits={limit[0]: limit[1]})  # type: ignore[dict-item]
    # Four stores on one database (four SQLite connections and threads, or four PostgreSQL
    # pools): the gate must hold across connections, not only among one store's tasks.
    stores = [await open_store(store_at, quota) for _ in range(4)]
    rng = random.Random(7)
    outcomes: list[Reservation | QuotaExceeded] = []

    async def one(i: int) -> None:
        charge = Charge("slack", "slack:C1", f"U{i % 9}", "ask", f"m{i % 3}")
        try:
            outcomes.append(await stores[i % 4].reserve(charge, estimate, now=T0))
        except QuotaExceeded as e:
            outcomes.append(e)

    try:
        async with asyncio.timeout(40):
            await asyncio.gather(*(one(i) for i in range(240)))
            won = [o for o in outcomes if isinstance(o, Reservation)]
            assert len(won) == allowed
            assert all(o.resets_at > T0 for o in outcomes if isinstance(o, QuotaExceeded))

            # Finish them concurrently too: most settle below the estimate, some fail.
            async def finish(i: int, r: Reservation) -> None:
                if i % 5 == 0:
                    await stores[i % 4].release(r)
                else:
                    scale = rng.random()
                    actual = Amounts(
                        tokens_in=int(r.estimate.tokens_in * scale),
                        tokens_out=int(r.estimate.tokens_out * scale),
                        audio_seconds=r.estimate.audio_seconds,
                    )
                    await stores[i % 4].settle(r, actual)

            await asyncio.gather(*(finish(i, r) for i, r in enumerate(won)))
            ledger = await stores[0].ledger()
            status = await stores[1].quota_status("slack:C1", now=T0)
    finally:
        for store in stores:
            await store.close()

    assert len(ledger) == 240  # one row per request, refused ones included
    assert sum(1 for r in ledger if r.status == "refused") == 240 - allowed
    assert sum(1 for r in ledger if r.status == "error") == len(range(0, allowed, 5))
    charged = _sums([r.amounts for r in ledger])
    for window in status.windows:
        assert dict(window.used) == pytest.approx(charged)


CHILD = r"""
import asyncio, sys
from datetime import datetime
from storage.base import Amounts, Charge, QuotaConfig
from storage.opener import open_store

async def main() -> None:
    quota = QuotaConfig(limits={("requests", "day"): 2, ("tokens", "day"): 1000})
    store = await open_store(sys.argv[1], quota)
    charge = Charge("slack", "slack:C1", "U-crash", "ask", "gpt-4o")
    now = datetime.fromisoformat(sys.argv[2])
    reservation = await store.reserve(charge, Amounts(tokens_in=100, tokens_out=400), now=now)
    print(reservation.id, flush=True)
    await asyncio.sleep(600)  # holding the reservation when the parent kills us

asyncio.run(main())
"""


async def test_a_killed_process_leaves_a_hold_that_expires(store_at: str) -> None:
    path = store_at
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), T0.isoformat(), stdout=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            assert child.stdout is not None
            line = await child.stdout.readline()
        held_id = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            assert await child.wait() == -signal.SIGKILL

    quota = QuotaConfig(limits={("requests", "day"): 2, ("tokens", "day"): 1000})
    store = await open_store(path, quota)
    try:
        charge = Charge("slack", "slack:C1", "U1", "ask", "gpt-4o")
        est = Amounts(tokens_in=100, tokens_out=400)
        # The dead process still holds 500 tokens and one request until the TTL passes.
        first = await store.reserve(charge, est, now=T0 + timedelta(minutes=1))
        with pytest.raises(QuotaExceeded) as info:
            await store.reserve(charge, est, now=T0 + timedelta(minutes=2))
        assert info.value.used in (2, 1000)
        await store.settle(first, Amounts(tokens_in=50, tokens_out=50))
        # After the TTL the budget is whole again: 1000 - 100 leaves room for the estimate.
        later = T0 + timedelta(minutes=10, seconds=1)
        second = await store.reserve(charge, est, now=later)
        await store.settle(second, Amounts(tokens_in=100, tokens_out=100))
        rows = {r.id: r for r in await store.ledger()}
        status = await store.quota_status("slack:C1", now=later)
    finally:
        await store.close()
    assert rows[held_id].status == "expired" and rows[held_id].amounts == Amounts()
    assert rows[held_id].estimate.tokens == 500
    day = status.windows[0].used
    assert (day["requests"], day["tokens"]) == (2, 300)
    assert sum(r.amounts.tokens for r in rows.values()) == 300
    assert status.pending == 0
