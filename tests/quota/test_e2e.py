"""Quota end to end: `chatops console` processes with env limits, restarts, and the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.fakes.gateway import FakeGateway

ZONE = "Europe/Berlin"
# The sessions below take seconds; a run starting this close to midnight waits it out first.
MIDNIGHT_MARGIN = 90.0


def _env(fake: FakeGateway, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    return env | {
        "WEELINKING_API_KEY": fake.api_key,
        "WEELINKING_BASE_URL": fake.base_url,
        "CHATOPS_DB": db,
        "CHATOPS_SHUTDOWN_GRACE": "0.5",
        "CHATOPS_QUOTA_REQUESTS_DAY": "2",
        "CHATOPS_QUOTA_TZ": ZONE,
    }


async def _run(argv: list[str], env: dict[str, str], stdin: str, cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode == 0, err.decode()
    return out.decode()


def seconds_to_midnight(zone: ZoneInfo, now: datetime) -> float:
    """Seconds from `now` to the next midnight in `zone`."""
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), zone)
    return midnight.timestamp() - now.timestamp()


async def clear_of_midnight(zone: ZoneInfo, margin: float) -> None:
    """Return when the day in `zone` cannot roll over within `margin` s (waits at most that)."""
    left = seconds_to_midnight(zone, datetime.now(zone))
    if left < margin:
        async with asyncio.timeout(margin + 10):
            await asyncio.sleep(left + 1)


def test_seconds_to_midnight_in_a_zone() -> None:
    berlin = ZoneInfo(ZONE)
    assert seconds_to_midnight(berlin, datetime(2027, 12, 31, 23, 58, 30, tzinfo=berlin)) == 90
    # The day the clocks go back is 25 hours long: from 1:00 it is 24 h to midnight.
    assert seconds_to_midnight(berlin, datetime(2026, 10, 25, 1, 0, tzinfo=berlin)) == 24 * 3600
    assert seconds_to_midnight(ZoneInfo("UTC"), datetime(2026, 3, 1, 23, 0, tzinfo=berlin)) == (
        2 * 3600
    )


# The real clock here (separate processes): a run straddling midnight in Berlin would see the
# day roll over between sessions, so it waits for midnight to pass first; the windows
# themselves are tested with injected time in test_windows.py.
@pytest.mark.timeout(60 + MIDNIGHT_MARGIN)
async def test_limit_from_env_holds_across_restarts_and_shows_in_the_cli(
    store_at: str, tmp_path: Path
) -> None:
    await clear_of_midnight(ZoneInfo(ZONE), MIDNIGHT_MARGIN)
    db = store_at  # a SQLite file, then a PostgreSQL URL
    async with FakeGateway() as fake:
        env = _env(fake, db)
        console = ["-m", "bot", "console"]
        # Three questions at once against a daily limit of two.
        first = await _run(console, env, "one\ntwo\nthree\n", tmp_path)
        assert first.count("You said:") == 2
        assert first.count("daily request limit is used up (2 requests of 2)") == 1
        assert re.search(r"00:00 CES?T\.", first)  # the reset is told in the configured zone
        # A restart: the budget is still spent, settings change and persist.
        second = await _run(console, env, "four\n/temperature 0.4\n", tmp_path)
        assert "daily request limit is used up" in second
        assert "temperature is now 0.4" in second
        third = await _run(console, env, "/quota\n/settings\n", tmp_path)
        assert "requests: 2 of 2 used, 0 left" in third
        assert "(windows in Europe/Berlin)" in third
        assert "temperature: 0.4" in third
        chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
        assert len(chats) == 2
    script = "import asyncio, sys\nfrom bot.quota.cli import quota_cli\n"
    script += "sys.exit(asyncio.run(quota_cli(sys.argv[1:])))"
    exported = await _run(["-c", script, "export"], env, "", tmp_path)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sorted(r["status"] for r in rows) == ["ok", "ok", "refused", "refused"]
    assert {r["channel"] for r in rows} == {"console:local"}
