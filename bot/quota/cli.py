"""Operator CLI `chatops quota show|set|reset|export|report` on the bot's own database."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NoReturn

from bot.errors import ConfigError
from bot.governance.money import decimal_text, format_money
from bot.governance.policy import policy_from_env
from bot.quota.config import parse_limit, parse_metric, parse_window, quota_config_from_env
from bot.quota.view import format_amount, format_quota, format_seconds, month_key
from storage.base import Bill, DatabaseUnavailable, DatabaseUnusable, LedgerRow, Store
from storage.opener import open_store

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
    # Money in the price table's currency, exact decimals (kept as micro-units in the ledger).
    "cost",
    "est_cost",
    "currency",
    "price_input",
    "price_output",
    "price_image",
    "price_audio_minute",
)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


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
    parser.add_argument(
        "--db",
        help=f"SQLite file or postgresql:// URL (default: $CHATOPS_DB or {DEFAULT_DB})",
    )
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    show = sub.add_parser("show", help="usage against limits; every channel when none is given")
    show.add_argument("channel", nargs="?", help="channel key, e.g. slack:C0123 or discord:42")
    put = sub.add_parser("set", help="override a channel's limit (or 'default' to drop it)")
    put.add_argument("channel")
    put.add_argument("metric", help="requests, tokens, images, audio or cost")
    put.add_argument("window", help="day or month")
    put.add_argument(
        "limit",
        help="a number (k/M; s/min/h for audio; money for cost, e.g. 50), unlimited or default",
    )
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
    report = sub.add_parser("report", help="a month's bill per channel and model")
    report.add_argument("--month", help="YYYY-MM in the quota time zone (default: this month)")
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
        # The currency to show amounts in (the ledger keeps each row's own).
        currency = policy_from_env(env).currency
        since = _parse_since(args.since) if args.action == "export" else None
        month = (
            _parse_month(args.month, quota.window_keys(now()).month)
            if args.action == "report"
            else ""
        )
        _check_channel(getattr(args, "channel", None))
    except UsageError as e:
        await _write(sys.stderr, f"chatops quota: {e}\n")
        return 2
    except _Done as done:
        return done.status
    except ConfigError as e:
        await _write(sys.stderr, f"chatops quota: configuration error: {e.variable}: {e.problem}\n")
        return 2
    where = (args.db or env.get("CHATOPS_DB", "")).strip() or DEFAULT_DB
    # A SQLite path that does not exist is a typo, not a request for a new database.
    if "://" not in where and not await asyncio.to_thread(Path(where).exists):
        await _write(
            sys.stderr, f"chatops quota: no database at {where} (set CHATOPS_DB or --db)\n"
        )
        return 2
    try:
        store = await open_store(where, quota, clock=now)
    except DatabaseUnusable as e:
        await _write(sys.stderr, f"chatops quota: {e.variable}: {e.problem}\n")
        return 2
    try:
        return await _act(
            store, args, now, since=since, month=month, currency=currency, tz=quota.tz.key
        )
    except DatabaseUnavailable:
        await _write(sys.stderr, "chatops quota: lost the connection to the database; retry\n")
        return 1
    finally:
        await store.close()


async def _act(
    store: Store,
    args: argparse.Namespace,
    now: Callable[[], datetime],
    *,
    since: datetime | None,
    month: str,
    currency: str,
    tz: str,
) -> int:
    if args.action == "show":
        await _show(store, args.channel, now(), currency)
    elif args.action == "set":
        return await _set(store, args.channel, args.metric, args.window, args.limit, currency)
    elif args.action == "reset":
        await _reset(store, args.channel, args.what)
    elif args.action == "report":
        await _write(sys.stdout, render_bill(await store.bill(month), tz))
    elif args.feedback:
        await _export_votes(store, args.channel, since, args.output)
    else:
        await _export(store, args.channel, since, args.output)
    return 0


def _check_channel(channel: str | None) -> None:
    platform, _, ident = (channel or "x:x").partition(":")
    if not platform or not ident:
        raise UsageError(
            f"{channel!r} is not a channel key; they look like slack:C0123ABC or discord:1234 "
            "(`chatops quota show` lists them)"
        )


def _parse_month(text: str | None, current: str) -> str:
    if not text:
        return current
    if not _MONTH.match(text.strip()):
        raise UsageError(f"--month {text!r} is not a month; write it like 2026-12")
    return text.strip()


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


async def _show(store: Store, channel: str | None, now: datetime, currency: str) -> None:
    if channel:
        status = await store.quota_status(channel, now=now)
        votes = await store.votes_by_model(channel, month=month_key(status))
        view = format_quota(status, now, currency, votes)
        await _write(sys.stdout, view.replace("**", "") + "\n")
        return
    channels = await store.channels()
    if not channels:
        await _write(sys.stdout, "No channel has used the bot yet.\n")
        return
    lines = [
        f"{'channel':<28} {'req today':>10} {'tokens today':>13} {'tokens month':>13} "
        f"{'spend month':>14}  limits"
    ]
    for key in channels:
        status = await store.quota_status(key, now=now)
        day, month = status.windows
        overrides = sum(1 for s in status.limits if s.overridden)
        lines.append(
            f"{key:<28} {day.used['requests']:>10,.0f} {day.used['tokens']:>13,.0f} "
            f"{month.used['tokens']:>13,.0f} {format_money(month.used['cost'], currency):>14}  "
            + (f"{overrides} override(s)" if overrides else "defaults")
        )
    await _write(sys.stdout, "\n".join(lines) + "\n")


async def _set(
    store: Store, channel: str, metric: str, window: str, limit: str, currency: str
) -> int:
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
    shown = "unlimited" if found.value is None else format_amount(m, found.value, currency)
    source = "override" if found.overridden else "default"
    await _write(sys.stdout, f"{channel}: {w} {m} limit is {shown} ({source})\n")
    return 0


async def _reset(store: Store, channel: str, what: str) -> None:
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
        decimal_text(a.cost),
        decimal_text(e.cost),
        c.rates.currency,
        decimal_text(c.rates.input),
        decimal_text(c.rates.output),
        decimal_text(c.rates.image),
        decimal_text(c.rates.audio_minute),
    ]


VOTE_FIELDS = ("model", "up", "down", "satisfaction")


async def _export_votes(
    store: Store, channel: str | None, since: datetime | None, output: str | None
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
    store: Store, channel: str | None, since: datetime | None, output: str | None
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


def render_bill(bill: Bill, time_zone: str) -> str:
    """The monthly bill as text: per channel, one line per model, then totals per currency."""
    head = f"Bill for {bill.month} (months in {time_zone})"
    if not bill.lines:
        return f"{head}\nNo usage was settled in {bill.month}.\n"
    columns = (
        f"  {'model':<34} {'requests':>9} {'tokens in':>12} {'tokens out':>12} {'images':>7} "
        f"{'audio':>10} {'cost':>16}"
    )
    lines = [head]
    totals: dict[str, int] = {}
    channel = None
    subtotal: dict[str, int] = {}

    def close_channel() -> None:
        for currency, cost in sorted(subtotal.items()):
            lines.append(
                f"  {'total':<34} {'':>9} {'':>12} {'':>12} {'':>7} {'':>10} "
                f"{format_money(cost, currency):>16}"
            )
        subtotal.clear()

    for line in bill.lines:
        if line.channel != channel:
            if channel is not None:
                close_channel()
            channel = line.channel
            lines += ["", channel, columns]
        lines.append(
            f"  {line.model[:34]:<34} {line.requests:>9,} {line.tokens_in:>12,} "
            f"{line.tokens_out:>12,} {line.images:>7,} {format_seconds(line.audio_seconds):>10} "
            f"{format_money(line.cost, line.currency):>16}"
        )
        subtotal[line.currency] = subtotal.get(line.currency, 0) + line.cost
        totals[line.currency] = totals.get(line.currency, 0) + line.cost
    close_channel()
    lines.append("")
    for currency, cost in sorted(totals.items()):
        lines.append(f"All channels: {format_money(cost, currency)}")
    if bill.pending:
        lines.append(f"({bill.pending} request(s) still in progress are not in this bill.)")
    return "\n".join(lines) + "\n"
