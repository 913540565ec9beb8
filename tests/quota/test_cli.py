"""Operator CLI: show, set, reset and export against the bot's real database (both backends)."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.quota.cli import CSV_FIELDS, quota_cli
from storage.base import Amounts, Charge
from storage.opener import open_store

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def seeded(where: Path | str) -> str:
    """Three settled requests in the database at `where` (a directory: a SQLite file in it)."""
    path = str(where / "chatops.db") if isinstance(where, Path) else where
    store = await open_store(path)
    try:
        for i, (channel, user) in enumerate(
            [("slack:C1", "alice"), ("slack:C1", "=HYPERLINK(evil)"), ("discord:9", "bob")]
        ):
            r = await store.reserve(
                Charge(channel.split(":")[0], channel, user, "ask", "gpt-4o", f"{user.title()} A."),
                Amounts(tokens_in=100, tokens_out=100),
                now=T0.replace(hour=9 + i),
            )
            await store.settle(r, Amounts(tokens_in=10 * (i + 1), tokens_out=5))
    finally:
        await store.close()
    return path


async def test_set_then_show_then_reset(store_at: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = await seeded(store_at)
    db = ["--db", str(path)]
    assert await quota_cli([*db, "set", "slack:C1", "tokens", "day", "50k"], {}) == 0
    assert "slack:C1: day tokens limit is 50,000 (override)" in capsys.readouterr().out
    assert await quota_cli([*db, "show"], {}) == 0
    listing = capsys.readouterr().out
    assert "slack:C1" in listing and "1 override(s)" in listing and "discord:9" in listing
    assert await quota_cli([*db, "show", "slack:C1"], {}) == 0
    shown = capsys.readouterr().out
    assert "of 50,000 used" in shown and "**" not in shown
    # The limit is in the database the bot reads.
    store = await open_store(path)
    try:
        found = {(s.metric, s.window): s.value for s in await store.limits("slack:C1")}
        assert found[("tokens", "day")] == 50_000
    finally:
        await store.close()
    assert await quota_cli([*db, "set", "slack:C1", "tokens", "day", "default"], {}) == 0
    assert "day tokens limit is unlimited (default)" in capsys.readouterr().out
    assert await quota_cli([*db, "reset", "slack:C1", "limits"], {}) == 0
    assert "0 override(s) removed" in capsys.readouterr().out


async def test_defaults_come_from_the_environment(
    store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await seeded(store_at)
    env = {"CHATOPS_DB": str(path), "CHATOPS_QUOTA_REQUESTS_MONTH": "100"}
    # The seeded usage is in T0's month; the CLI reads the month of the moment it is given.
    assert await quota_cli(["show", "discord:9"], env, clock=lambda: T0.replace(day=28)) == 0
    assert "requests: 1 of 100 used, 99 left" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["set", "slack:C1", "tokens", "day", "-1"], "cannot be negative"),
        (["set", "slack:C1", "tokens", "day", "many"], "is not a limit"),
        (["set", "slack:C1", "bananas", "day", "5"], "unknown metric"),
        (["set", "slack:C1", "tokens", "fortnight", "5"], "unknown window"),
        (["set", "slack:C1", "images", "month", "1e99"], "is not a limit"),
        (["set", "slack:C1", "tokens", "day", "5000000000000"], "absurdly large"),
        (["set", "slack:C1", "tokens"], "the following arguments are required"),
        (["frob"], "invalid choice"),
        (["export", "--since", "yesterday"], "not an ISO date"),
        (["set", "C0123", "tokens", "day", "5"], "is not a channel key"),
    ],
)
async def test_bad_input_exits_2_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    path = await seeded(tmp_path)
    assert await quota_cli(["--db", str(path), *argv], {}) == 2
    assert says in capsys.readouterr().err
    store = await open_store(path)
    try:
        assert not any(s.overridden for s in await store.limits("slack:C1"))
    finally:
        await store.close()


async def test_help_returns_instead_of_exiting(capsys: pytest.CaptureFixture[str]) -> None:
    assert await quota_cli(["--help"], {}) == 0
    assert "show" in capsys.readouterr().out
    assert await quota_cli(["export", "--help"], {}) == 0
    assert "--since" in capsys.readouterr().out


async def test_bad_environment_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await seeded(tmp_path)
    env = {"CHATOPS_DB": str(path), "CHATOPS_QUOTA_TZ": "Atlantis/Capital"}
    assert await quota_cli(["show"], env) == 2
    assert "CHATOPS_QUOTA_TZ" in capsys.readouterr().err
    assert await quota_cli(["--db", str(tmp_path / "nope.db"), "show"], {}) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()


async def test_export_writes_every_ledger_row_as_csv(store_at: str, tmp_path: Path) -> None:
    path = await seeded(store_at)
    out = tmp_path / "ledger.csv"
    assert await quota_cli(["--db", str(path), "export", "-o", str(out)], {}) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 3 and tuple(rows[0]) == CSV_FIELDS
    assert [r["user"] for r in rows] == ["alice", "'=HYPERLINK(evil)", "bob"]
    assert rows[0]["user_name"] == "Alice A."
    assert [r["tokens_in"] for r in rows] == ["10", "20", "30"]
    assert rows[0]["est_tokens_out"] == "100" and rows[0]["status"] == "ok"
    assert rows[2]["created_at"] == "2026-11-26T11:00:00+00:00"
    only = tmp_path / "c1.csv"
    argv = ["--db", str(path), "export", "--channel", "slack:C1", "--since", "2026-11-26T10:00"]
    assert await quota_cli([*argv, "-o", str(only)], {}) == 0
    [row] = list(csv.DictReader(io.StringIO(only.read_text(encoding="utf-8"))))
    assert row["channel"] == "slack:C1" and row["tokens_in"] == "20"


async def test_export_to_stdout_from_a_real_process(store_at: str) -> None:
    path = await seeded(store_at)
    script = (
        "import asyncio, sys\nfrom bot.quota.cli import quota_cli\n"
        "sys.exit(asyncio.run(quota_cli(sys.argv[1:])))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "--db",
        str(path),
        "export",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    rows = list(csv.reader(io.StringIO(out.decode())))
    assert rows[0] == list(CSV_FIELDS) and len(rows) == 4


async def test_export_feedback_gives_satisfaction_by_model(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await seeded(store_at)
    store = await open_store(path)
    try:
        rows = await store.ledger()
        for row, user, vote in [(rows[0], "u1", 1), (rows[0], "u2", -1), (rows[1], "u1", 1)]:
            assert await store.record_vote(row.id, user, vote, channel=row.charge.channel)
        assert await store.record_vote(rows[0].id, "u2", 1, channel="slack:C1")  # changed
    finally:
        await store.close()
    assert await quota_cli(["--db", str(path), "export", "--feedback"], {}) == 0
    got = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert got == [["model", "up", "down", "satisfaction"], ["gpt-4o", "3", "0", "1.0000"]]
    assert await quota_cli(["--db", str(path), "show", "slack:C1"], {}, clock=lambda: T0) == 0
    assert "answers rated: gpt-4o 👍 3 👎 0 (100%)" in capsys.readouterr().out
    out = tmp_path / "votes.csv"
    args = ["--db", str(path), "export", "--feedback", "--channel", "discord:9", "-o", str(out)]
    assert await quota_cli(args, {}) == 0
    assert out.read_text().splitlines() == ["model,up,down,satisfaction"]
