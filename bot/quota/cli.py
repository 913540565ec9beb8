"""Operator CLI `chatops quota show|set|reset|export` on the bot's own database."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NoReturn

from bot.errors import ConfigError
from bot.quota.config import parse_limit, parse_metric, parse_window, quota_config_from_env
from bot.quota.view import format_amount, format_quota, month_key
from storage.base import DatabaseUnusable, LedgerRow
from storage.sqlite.store import SqliteStore

DEFAULT_DB = "data/chatops.db"  # as CHATOPS_DB defaults in bot/config.py
EXPORT_PAGE = 2000
CSV_FIELDS = (
    "id",
    "created_at",
    "finished_at",
    "platform",
    "channel",
    "user",
    "user_name",
    "command",
    "model",
    "status",
    "requests",
    "tokens_in",
    "tokens_out",
    "images",
    "audio_seconds",
    "est_tokens_in",
    "est_tokens_out",
    "est_images",
    "est_audio_seconds",
    "day",
    "month",
)


class UsageError(Exception):
    """Bad command-line input: reported in one line with exit status 2."""


class _Done(Exception):
    """`--help` was answered; stop with this status."""

    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    # argparse would sys.exit() from inside our coroutine; return a status instead.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _Done(status)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chatops quota",
        description="Read and change channel quotas and export the usage ledger.",
    )
    parser.add_argument("--db", help=f"SQLite file (default: $CHATOPS_DB or {DEFAULT_DB})")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    show = sub.add_parser("show", help="usage against limits; every channel when none is given")
    show.add_argument("channel", nargs="?", help="channel key, e.g. slack:C0123 or discord:42")
    put = sub.add_parser("set", help="override a channel's limit (or 'default' to drop it)")
    put.add_argument("channel")
    put.add_argument("metric", help="requests, tokens, images or audio")
    put.add_argument("window", help="day or month")
    put.add_argument("limit", help="a number (k/M; s/min/h for audio), unlimited or default")
    reset = sub.add_parser("reset", help="fresh budget for the current windows, or default limits")
    reset.add_argument("channel")
    reset.add_argument("what", nargs="?", default="usage", choices=("usage", "limits"))
    export = sub.add_parser("export", help="the ledger as CSV, one row per request")
    export.add_argument("--channel", help="only this channel")
    export.add_argument("--since", help="only requests from this UTC date/time (ISO 8601) on")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    export.add_argument(
        "--feedback",
        action="store_true",
        help="instead: 👍/👎 on answers by model (satisfaction), one row per model",
    )
    return parser


async def quota_cli(
    argv: list[str],
    environ: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """Run `chatops quota ...`; returns the process exit status.

    `clock` is the current moment (tests inject it so windows never depend on the real date).
    """
    env = os.environ if environ is None else environ
    now = clock or (lambda: datetime.now(UTC))
    try:
        args = _parser().parse_args(argv)
        quota = quota_config_from_env(env)
        since = _parse_since(args.since) if args.action == "export" else None
        _check_channel(args.channel)
    except UsageError as e:
        await _write(sys.stderr, f"chatops quota: {e}\n")
        return 2
    except _Done as done:
        return done.status
    except ConfigError as e:
        await _write(sys.stderr, f"chatops quota: configuration error: {e.variable}: {e.problem}\n")
        return 2
    path = Path(args.db or env.get("CHATOPS_DB", "") or DEFAULT_DB)
    if not await asyncio.to_thread(path.exists):
        await _write(sys.stderr, f"chatops quota: no database at {path} (set CHATOPS_DB or --db)\n")
        return 2
    try:
        store = await SqliteStore.open(path, quota, clock=now)
    except DatabaseUnusable as e:
        await _write(sys.stderr, f"chatops quota: {e.variable}: {e.problem}\n")
        return 2
    try:
        if args.action == "show":
            await _show(store, args.channel, now())
        elif args.action == "set":
            return await _set(store, args.channel, args.metric, args.window, args.limit)
        elif args.action == "reset":
            await _reset(store, args.channel, args.what)
        elif args.feedback:
            await _export_votes(store, args.channel, since, args.output)
        else:
            await _export(store, args.channel, since, args.output)
    finally:
        await store.close()
    return 0


def _check_channel(channel: str | None) -> None:
    platform, _, ident = (channel or "x:x").partition(":")
    if not platform or not ident:
        raise UsageError(
            f"{channel!r} is not a channel key; they look like slack:C0123ABC or discord:1234 "
            "(`chatops quota show` lists them)"
        )


def _parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not an ISO date, e.g. 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _write(stream: IO[str], text: str) -> None:
    await asyncio.to_thread(stream.write, text)


async def _show(store: SqliteStore, channel: str | None, now: datetime) -> None:
    if channel:
        status = await store.quota_status(channel, now=now)
        votes = await store.votes_by_model(channel, month=month_key(status))
        await _write(sys.stdout, format_quota(status, now, votes).replace("**", "") + "\n")
        return
    channels = await store.channels()
    if not channels:
        await _write(sys.stdout, "No channel has used the bot yet.\n")
        return
    lines = [f"{'channel':<28} {'req today':>10} {'tokens today':>13} {'tokens month':>13}  limits"]
    for key in channels:
        status = await store.quota_status(key, now=now)
        day, month = status.windows
        overrides = sum(1 for s in status.limits if s.overridden)
        lines.append(
            f"{key:<28} {day.used['requests']:>10,.0f} {day.used['tokens']:>13,.0f} "
            f"{month.used['tokens']:>13,.0f}  "
            + (f"{overrides} override(s)" if overrides else "defaults")
        )
    await _write(sys.stdout, "\n".join(lines) + "\n")


async def _set(store: SqliteStore, channel: str, metric: str, window: str, limit: str) -> int:
    try:
        m = parse_metric(metric)
        w = parse_window(window)
        clear = limit.strip().lower() == "default"
        value = None if clear else parse_limit(m, limit)
    except ValueError as e:
        await _write(sys.stderr, f"chatops quota set: {e}\n")
        return 2
    if clear:
        await store.clear_limits(channel, m, w)
    else:
        await store.set_limit(channel, m, w, value)
    found = {(s.metric, s.window): s for s in await store.limits(channel)}[(m, w)]
    shown = "unlimited" if found.value is None else format_amount(m, found.value)
    source = "override" if found.overridden else "default"
    await _write(sys.stdout, f"{channel}: {w} {m} limit is {shown} ({source})\n")
    return 0


async def _reset(store: SqliteStore, channel: str, what: str) -> None:
    if what == "limits":
        dropped = await store.clear_limits(channel)
        await _write(sys.stdout, f"{channel}: {dropped} override(s) removed\n")
    else:
        await store.reset_usage(channel)
        await _write(sys.stdout, f"{channel}: usage for the current day and month reset\n")


def _cell(value: str) -> str:
    # Spreadsheets run cells that start like a formula; user names come from chat platforms.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_row(row: LedgerRow) -> list[object]:
    c, a, e = row.charge, row.amounts, row.estimate
    finished = row.finished_at.isoformat() if row.finished_at else ""
    return [
        row.id,
        row.created_at.isoformat(),
        finished,
        _cell(c.platform),
        _cell(c.channel),
        _cell(c.user),
        _cell(c.user_name),
        _cell(c.command),
        _cell(c.model),
        row.status,
        a.requests,
        a.tokens_in,
        a.tokens_out,
        a.images,
        a.audio_seconds,
        e.tokens_in,
        e.tokens_out,
        e.images,
        e.audio_seconds,
        row.day,
        row.month,
    ]


VOTE_FIELDS = ("model", "up", "down", "satisfaction")


async def _export_votes(
    store: SqliteStore, channel: str | None, since: datetime | None, output: str | None
) -> None:
    """Satisfaction by model: votes on answers of requests made since `since`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(VOTE_FIELDS)
    for votes in await store.votes_by_model(channel, since=since):
        share = votes.satisfaction
        writer.writerow(
            [_cell(votes.model), votes.up, votes.down, "" if share is None else f"{share:.4f}"]
        )
    if output:
        await asyncio.to_thread(Path(output).write_text, buffer.getvalue(), encoding="utf-8")
    else:
        await _write(sys.stdout, buffer.getvalue())


async def _export(
    store: SqliteStore, channel: str | None, since: datetime | None, output: str | None
) -> None:
    # Pages keep memory flat for a large ledger; each page is written off the event loop.
    target: IO[str] = (
        await asyncio.to_thread(open, output, "w", newline="", encoding="utf-8")
        if output
        else sys.stdout
    )
    try:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_FIELDS)
        after = 0
        while True:
            rows = await store.ledger(channel, after_id=after, limit=EXPORT_PAGE)
            for row in rows:
                if since is None or row.created_at >= since:
                    writer.writerow(_csv_row(row))
            await _write(target, buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < EXPORT_PAGE:
                break
            after = rows[-1].id
    finally:
        if output:
            await asyncio.to_thread(target.close)
        else:
            await asyncio.to_thread(target.flush)
