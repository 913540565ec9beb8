"""The Store protocol and the nouns it speaks: channel settings, usage amounts, reservations."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from storage.vectors import Vector

Metric = Literal["requests", "tokens", "images", "audio_seconds", "cost"]
Window = Literal["day", "month"]
Status = Literal["ok", "error", "interrupted", "cancelled"]
# What a ledger row may say besides a final Status: still held, given back by expiry, refused.
LedgerStatus = Literal["pending", "expired", "refused", "ok", "error", "interrupted", "cancelled"]
Scope = Literal["channel", "user"]
# Access rules: which channels the bot answers in (per workspace) and which models a
# workspace or one channel may use.
RuleKind = Literal["channel_allow", "channel_block", "model_allow"]
RULE_KINDS: tuple[RuleKind, ...] = ("channel_allow", "channel_block", "model_allow")

METRICS: tuple[Metric, ...] = ("requests", "tokens", "images", "audio_seconds", "cost")
# Money is kept in whole millionths of the price table's currency (micro-units): integers add
# up exactly in SQL on any backend, and a millionth of a dollar is far below any real price.
MICRO = 1_000_000
WINDOWS: tuple[Window, ...] = ("day", "month")
DEFAULT_TTL = timedelta(minutes=10)
# Event ids are kept this long for de-duplication: redeliveries come within minutes (Slack
# retries for about an hour at most, Discord resumes within seconds); older ids are pruned.
EVENT_RETENTION = timedelta(days=1)
# How often (by the store's clock) one process prunes old event ids.
EVENT_PRUNE_INTERVAL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class WindowKeys:
    """The calendar windows a moment falls in, as sortable strings in the quota time zone."""

    day: str
    month: str

    def of(self, window: Window) -> str:
        return self.day if window == "day" else self.month


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Default limits for every channel, the windows' time zone and the reservation TTL."""

    limits: Mapping[tuple[Metric, Window], float | None] = field(default_factory=dict)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # Fraction of each channel limit one user may use inside that channel; None = no cap.
    user_share: float | None = None
    reservation_ttl: timedelta = DEFAULT_TTL

    def default_limit(self, metric: Metric, window: Window) -> float | None:
        return self.limits.get((metric, window))

    def window_keys(self, now: datetime) -> WindowKeys:
        local = now.astimezone(self.tz)
        return WindowKeys(day=local.date().isoformat(), month=f"{local.year:04d}-{local.month:02d}")

    def resets_at(self, window: Window, now: datetime) -> datetime:
        """The start of the next window, in the quota time zone."""
        today = now.astimezone(self.tz).date()
        if window == "day":
            nxt = today + timedelta(days=1)
        else:
            nxt = date(today.year + today.month // 12, today.month % 12 + 1, 1)
        return datetime.combine(nxt, time(), tzinfo=self.tz)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Per-channel choices; None means "use the service default"."""

    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    auto_transcribe: bool = True
    # The language the bot speaks here ("en", "zh_CN"); None: the workspace's or the reader's.
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Amounts:
    """Usage in the metered units (tokens split as the gateway reports them); `cost` is in
    micro-units of the price table's currency (see MICRO)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    cost: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True, slots=True)
class Rates:
    """The prices one request is charged at, in micro-units (MICRO) of `currency`.

    Kept with its ledger row, so a later price change applies to new requests only.
    """

    currency: str = ""
    input: int = 0  # per million input tokens
    output: int = 0  # per million output tokens
    image: int = 0  # per image
    audio_minute: int = 0  # per minute of audio

    def cost(self, amounts: Amounts) -> int:
        """What `amounts` cost at these rates, rounded up to a whole micro-unit, exactly."""
        total = (
            Fraction(amounts.tokens_in * self.input + amounts.tokens_out * self.output, 1_000_000)
            + amounts.images * self.image
            + Fraction(amounts.audio_seconds) * self.audio_minute / 60
        )
        return max(math.ceil(total), 0)


@dataclass(frozen=True, slots=True)
class Charge:
    """Who and what a ledger row is for, and the rates it is charged at."""

    platform: str
    channel: str  # Place.channel_key
    user: str  # User.id
    command: str
    model: str
    user_name: str = ""  # User.name, shown in `quota` instead of the id when set
    rates: Rates = Rates()
    # A further gateway call of something already counted as a request (a tool round after
    # the first, the embeddings of a question's file, background indexing): its tokens,
    # images and cost are charged, but it is no request of its own and no requests limit
    # stops it half-way.
    follow_up: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    """A pending ledger row holding an estimate until it is settled or released."""

    id: int
    charge: Charge
    estimate: Amounts


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One request. `amounts` is what it is charged now: the estimate while pending, the real
    usage once settled, zero when released, refused or expired (`estimate` keeps the guess)."""

    id: int
    created_at: datetime
    charge: Charge
    amounts: Amounts
    status: str
    estimate: Amounts = Amounts()
    finished_at: datetime | None = None
    day: str = ""  # the quota windows it was charged to (keys in the quota time zone)
    month: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool the model called: which, for whom, how it ended and how long it took."""

    channel: str  # Place.channel_key
    user: str  # User.id
    tool: str  # as offered to the model, e.g. "generate_image" or "jira.search"
    outcome: str  # ok, error, timeout, invalid, unknown, refused
    duration_ms: int
    ledger_id: int | None = None  # the ledger row of the model request that asked for it
    detail: str = ""  # a short reason when it did not succeed
    id: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ModelVotes:
    """People's 👍/👎 on the replies of one model (one vote per person and reply)."""

    model: str
    up: int
    down: int

    @property
    def satisfaction(self) -> float | None:
        """The share of votes that were 👍; None without votes."""
        total = self.up + self.down
        return self.up / total if total else None


@dataclass(frozen=True, slots=True)
class LimitSetting:
    """The limit in force for one metric and window; None means unlimited."""

    metric: Metric
    window: Window
    value: float | None
    overridden: bool  # set for this channel, not the service default


@dataclass(frozen=True, slots=True)
class Spender:
    """Usage of one user or one model within a window (cost in micro-units)."""

    name: str
    requests: int
    tokens: int
    images: int
    audio_seconds: float
    cost: int = 0


@dataclass(frozen=True, slots=True)
class WindowUsage:
    window: Window
    key: str  # "2026-11-26" / "2026-11", in the quota time zone
    used: Mapping[Metric, float]  # includes what pending reservations hold
    top_users: tuple[Spender, ...]
    top_models: tuple[Spender, ...]
    resets_at: datetime  # the next window's start, in the quota time zone


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """What the `quota` command shows for one channel."""

    channel: str
    windows: tuple[WindowUsage, ...]
    limits: tuple[LimitSetting, ...]
    user_share: float | None
    pending: int  # reservations currently held
    time_zone: str  # the windows' zone, e.g. "UTC" or "Europe/Berlin"


@dataclass(frozen=True, slots=True)
class Passage:
    """One indexed piece of a channel's memory: a message's text (or a part of it), or a chunk
    of a file posted with it. Every part of a message shares its `message_id`."""

    channel: str  # Place.channel_key
    message_id: str  # the platform's id (Slack ts, Discord message id)
    part: int
    text: str
    author: str
    posted_at: datetime
    link: str = ""  # Slack permalink, Discord jump URL
    source: str = ""  # "" for the message itself; "runbook.pdf, page 2" for a file's chunk
    id: int = 0


@dataclass(frozen=True, slots=True)
class MemoryHit:
    passage: Passage
    score: float  # cosine similarity to the question


@dataclass(frozen=True, slots=True)
class MemoryStatus:
    """What `memory status` shows for one channel."""

    enabled: bool
    passages: int
    messages: int
    oldest: datetime | None
    models: tuple[str, ...]  # embedding models of the stored vectors


@dataclass(frozen=True, slots=True)
class RuleScope:
    """Where access rules apply: a whole workspace/guild (channel "") or one of its channels."""

    platform: str
    workspace: str
    channel: str = ""  # Place.channel, the platform's own id


@dataclass(frozen=True, slots=True)
class AccessRule:
    kind: RuleKind
    channel: str  # "" for the whole workspace
    pattern: str  # a channel id or name, or a model glob
    set_by: str = ""


@dataclass(frozen=True, slots=True)
class AccessRules:
    """The rules stored for one workspace and one of its channels, read once per request."""

    rules: tuple[AccessRule, ...] = ()

    def patterns(self, kind: RuleKind, *, channel: bool) -> tuple[str, ...]:
        """The patterns of one kind, set for the channel (True) or the workspace (False)."""
        return tuple(r.pattern for r in self.rules if r.kind == kind and bool(r.channel) == channel)


@dataclass(frozen=True, slots=True)
class BillLine:
    """One channel's settled usage of one model in a month (cost in micro-units)."""

    channel: str
    model: str
    currency: str
    requests: int
    tokens_in: int
    tokens_out: int
    images: int
    audio_seconds: float
    cost: int


@dataclass(frozen=True, slots=True)
class Bill:
    """A month's settled usage per channel and model; `pending` requests are not in it yet."""

    month: str  # "2026-12", in the quota time zone
    lines: tuple[BillLine, ...]
    pending: int


class DatabaseUnusable(Exception):
    """CHATOPS_DB names a database that cannot be opened or used; says why in one line."""

    variable = "CHATOPS_DB"

    def __init__(self, problem: str) -> None:
        super().__init__(f"{self.variable}: {problem}")
        self.problem = problem


class DatabaseUnavailable(Exception):
    """The database could not be reached for one request (connection lost, server restarting).

    The request did nothing that counts: a reservation it may have made unseen expires after
    the reservation TTL, and settling is retried until the database answers or gives up.
    """

    user_message = (
        "The bot's database is unreachable right now, so nothing was done or charged. "
        "Please try again in a minute."
    )

    def __init__(self, reason: str = "connection lost") -> None:
        super().__init__(f"database unavailable: {reason}")
        self.reason = reason


class QuotaExceeded(Exception):
    """A reservation would pass a limit: which limit, what is used and left, when it resets."""

    def __init__(
        self,
        metric: Metric,
        window: Window,
        limit: float,
        used: float,
        resets_at: datetime,
        *,
        needed: float = 0.0,
        scope: Scope = "channel",
    ) -> None:
        super().__init__(f"{scope} {window} {metric} limit {limit:g} reached")
        self.metric = metric
        self.window = window
        self.limit = limit
        self.used = used
        self.left = max(limit - used, 0)
        self.needed = needed
        self.scope = scope
        self.resets_at = resets_at


class Store(Protocol):
    """Everything the bot persists. Implementations must make `reserve` atomic."""

    async def channel_settings(self, channel: str) -> ChannelSettings: ...

    async def set_channel_settings(self, channel: str, settings: ChannelSettings) -> None: ...

    async def reserve(
        self, charge: Charge, estimate: Amounts, *, now: datetime | None = None
    ) -> Reservation:
        """Hold `estimate` against the channel's limits; raise QuotaExceeded if it does not fit.

        Every reservation counts as one request. The ledger gets a row either way (a refused
        one charges nothing); the hold expires after the reservation TTL if never settled.
        """
        ...

    async def settle(
        self, reservation: Reservation, actual: Amounts, status: Status = "ok"
    ) -> None:
        """Replace the estimate with what was really used, exactly once: settling or releasing
        again changes nothing; if the hold had expired meanwhile, the real usage is charged."""
        ...

    async def release(self, reservation: Reservation, status: Status = "error") -> None:
        """Drop the estimate; the ledger row stays with zero usage and the status."""
        ...

    async def first_delivery(self, event_id: str) -> bool:
        """True the first time an event id is seen (persisted), False for redeliveries."""
        ...

    async def ledger(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[LedgerRow]:
        """Ledger rows in id order, optionally one channel's, paged by `after_id`."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return when the database answers a trivial query; raise (saying why) when it cannot.

        Readiness probes call it every few seconds: keep it one cheap round trip.
        """
        ...

    # --- tools ---

    async def tool_switches(self, channel: str) -> dict[str, bool]:
        """The tools (built-in names, MCP server names) a channel switched on or off."""
        ...

    async def set_tool_switch(self, channel: str, name: str, enabled: bool | None) -> None:
        """Switch one tool or server on or off for a channel; None forgets the choice."""
        ...

    async def record_tool_call(self, record: ToolCallRecord) -> None: ...

    async def tool_calls(
        self, channel: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ToolCallRecord]:
        """Tool-call rows in id order, optionally one channel's, paged by `after_id`."""
        ...

    # --- feedback ---

    async def record_vote(self, ledger_id: int, user: str, vote: int, *, channel: str) -> bool:
        """One person's 👍 (1) or 👎 (-1) on a reply, named by the ledger row of its final model
        request; a later vote replaces theirs. False (nothing stored) when that row is not a
        request of `channel`."""
        ...

    async def votes_by_model(
        self, channel: str | None = None, *, month: str | None = None, since: datetime | None = None
    ) -> list[ModelVotes]:
        """Votes by the model that wrote the reply, most voted first: one channel's or all,
        on replies of one quota month ("2026-06") or made since a moment."""
        ...

    # --- settings, changed atomically ---

    async def update_channel_settings(
        self, channel: str, change: Callable[[ChannelSettings], ChannelSettings]
    ) -> ChannelSettings:
        """Read, change and write one channel's settings in one transaction; returns the result."""
        ...

    # --- quota administration ---

    async def limits(self, channel: str) -> tuple[LimitSetting, ...]:
        """The limits in force for a channel: its overrides over the service defaults."""
        ...

    async def set_limit(
        self, channel: str, metric: Metric, window: Window, value: float | None
    ) -> None:
        """Override one limit for a channel; None means unlimited."""
        ...

    async def clear_limits(
        self, channel: str, metric: Metric | None = None, window: Window | None = None
    ) -> int:
        """Drop a channel's overrides (all, or the matching ones); returns how many."""
        ...

    async def reset_usage(self, channel: str, *, now: datetime | None = None) -> None:
        """Give a channel a fresh budget for the current windows; the ledger keeps its rows."""
        ...

    async def quota_status(
        self, channel: str, *, now: datetime | None = None, top: int = 3
    ) -> QuotaStatus: ...

    async def channels(self) -> list[str]:
        """Every channel that has settings, limits or usage."""
        ...

    async def expire_stale(self, *, now: datetime | None = None) -> int:
        """Give back reservations past their TTL (a crashed process); returns how many."""
        ...

    # --- channel memory and embeddings ---

    async def memory_channels(self) -> set[str]:
        """The channels whose memory is on."""
        ...

    async def set_memory(self, channel: str, enabled: bool) -> None: ...

    async def memory_status(self, channel: str) -> MemoryStatus: ...

    async def index_message(
        self,
        channel: str,
        message_id: str,
        passages: Sequence[Passage],
        model: str,
        vectors: Sequence[Vector],
    ) -> None:
        """Replace everything indexed for one message by `passages` (their vectors, unit
        length, made by `model`); none removes the message."""
        ...

    async def forget_message(self, channel: str, message_id: str) -> int:
        """Remove one message's passages; returns how many."""
        ...

    async def forget_memory(self, channel: str) -> int:
        """Remove a channel's whole index; returns how many passages."""
        ...

    async def search_memory(
        self, channel: str, model: str, query: Vector, k: int
    ) -> list[MemoryHit]:
        """The k passages of `channel` nearest `query` among vectors made by `model` with its
        dimension, best first (exact: ties go to the older passage)."""
        ...

    async def stale_passages(self, channel: str, model: str, limit: int) -> list[Passage]:
        """Passages whose vectors another model made: to be embedded again by `model`."""
        ...

    async def revector(self, model: str, vectors: Mapping[int, Vector]) -> None:
        """Replace the vectors of passages (by id) with ones `model` made."""
        ...

    async def prune_memory(self, before: datetime) -> int:
        """Remove passages posted before `before` and cached embeddings unused since; returns
        how many passages."""
        ...

    async def cached_embeddings(self, model: str, keys: Sequence[str]) -> dict[str, Vector]:
        """Vectors embedded earlier by `model`, by content hash, for the keys that have one."""
        ...

    async def cache_embeddings(self, model: str, vectors: Mapping[str, Vector]) -> None: ...

    async def bill(self, month: str) -> Bill:
        """Settled usage and cost of a month ("2026-12") per channel and model."""
        ...

    # --- access rules and notices ---

    async def access_rules(self, platform: str, workspace: str, channel: str) -> AccessRules:
        """The rules of a workspace and of one of its channels (read per request, so a change
        made anywhere applies at once on every replica)."""
        ...

    async def add_access_rules(
        self, scope: RuleScope, kind: RuleKind, patterns: Sequence[str], set_by: str = ""
    ) -> int:
        """Add patterns to a list; returns how many were not there yet."""
        ...

    async def remove_access_rules(
        self, scope: RuleScope, kind: RuleKind, patterns: Sequence[str] | None = None
    ) -> int:
        """Remove patterns (None: the whole list) from a list; returns how many went."""
        ...

    async def claim_notice(
        self, key: str, *, every: timedelta, now: datetime | None = None
    ) -> bool:
        """True when no notice under `key` was claimed within `every` (and claims it now):
        one atomic statement, so replicas sharing the database send it once between them."""
        ...
