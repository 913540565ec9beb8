"""Quota end to end: `chatops console` processes with env limits, restarts, and the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sys
from pathlib import Path

from tests.fakes.gateway import FakeGateway


def _env(fake: FakeGateway, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    return env | {
        "WEELINKING_API_KEY": fake.api_key,
        "WEELINKING_BASE_URL": fake.base_url,
        "CHATOPS_DB": db,
        "CHATOPS_SHUTDOWN_GRACE": "0.5",
        "CHATOPS_QUOTA_REQUESTS_DAY": "2",
        "CHATOPS_QUOTA_TZ": "Europe/Berlin",
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


async def test_limit_from_env_holds_across_restarts_and_shows_in_the_cli(
    store_at: str, tmp_path: Path
) -> None:
    # Real clocks here (separate processes): only a run straddling midnight in Berlin could
    # see the day roll over between sessions; the windows themselves are tested with
    # injected time in test_quota_windows.py.
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
