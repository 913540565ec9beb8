"""Every chatops_ Prometheus metric, in one registry; implements the Telemetry hooks."""

from __future__ import annotations

import platform as python_platform
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from bot.ops.telemetry import Stage
from storage.base import Amounts

# Seconds from a request to its first visible text and to its final text: sub-second for
# one-line answers, tens of seconds for long replies, minutes for images and recordings.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300, 600)
# Answers from the gateway that say nothing about whether our key is accepted.
_NOT_KEY_ENDPOINTS = frozenset({"image_download"})

# (kind, scope key, writes spare beyond pledges) for every platform write budget.
BudgetView = Callable[[], Iterable[tuple[str, str, int]]]


class Metrics:
    """The Telemetry hooks as Prometheus counters, histograms and gauges.

    Gauges that describe a state (readiness, connections, in-flight replies, spare budget)
    are read when /metrics is scraped, so nothing on a hot path pays for them.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        # _created series double every counter's output and no dashboard here uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self._clock = clock
        self.key_rejected_at: float | None = None
        r = self.registry
        self.requests = Counter(
            "chatops_requests_total",
            "Requests handled, by platform, command and outcome.",
            ["platform", "command", "outcome"],
            registry=r,
        )
        self.first_visible = Histogram(
            "chatops_first_visible_seconds",
            "Seconds from taking a request to its first text visible on the platform.",
            ["platform", "command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.final = Histogram(
            "chatops_final_text_seconds",
            "Seconds from taking a request to its final text delivered.",
            ["platform", "command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "chatops_replies_in_flight", "Requests being worked on right now.", registry=r
        )
        self.quota_refusals = Counter(
            "chatops_quota_refusals_total",
            "Requests refused by a quota limit, by metric, window and scope (channel/user).",
            ["metric", "window", "scope"],
            registry=r,
        )
        self.tokens = Counter(
            "chatops_tokens_total",
            "Tokens charged, by model and direction (in: prompt, out: completion).",
            ["model", "direction"],
            registry=r,
        )
        self.images = Counter(
            "chatops_images_total", "Images generated and charged, by model.", ["model"], registry=r
        )
        self.audio_seconds = Counter(
            "chatops_audio_seconds_total",
            "Seconds of audio transcribed and charged, by model.",
            ["model"],
            registry=r,
        )
        self.gateway_requests = Counter(
            "chatops_gateway_requests_total",
            "Gateway HTTP requests (each retry counts), by endpoint, HTTP status and code "
            "(ok, or the error taxonomy: invalid_api_key, rate_limited, server_error, …).",
            ["endpoint", "status", "code"],
            registry=r,
        )
        self.gateway_retries = Counter(
            "chatops_gateway_retries_total",
            "Gateway requests retried, by endpoint and the error that caused the retry.",
            ["endpoint", "code"],
            registry=r,
        )
        self.gateway_key_rejected = Gauge(
            "chatops_gateway_key_rejected",
            "1 while the gateway's last word on our API key was a rejection (401).",
            registry=r,
        )
        self.platform_calls = Counter(
            "chatops_platform_api_calls_total",
            "Chat platform API calls, by platform, method and HTTP status.",
            ["platform", "method", "status"],
            registry=r,
        )
        self.platform_rate_limited = Counter(
            "chatops_platform_rate_limited_total",
            "Chat platform API calls answered 429, by platform and method.",
            ["platform", "method"],
            registry=r,
        )
        self.redeliveries = Counter(
            "chatops_redeliveries_ignored_total",
            "Platform events delivered again and not answered twice.",
            ["platform"],
            registry=r,
        )
        self.ready = Gauge(
            "chatops_ready", "1 when /readyz would answer 200 (read at scrape).", registry=r
        )
        self.database_up = Gauge(
            "chatops_database_up", "1 when the database answers (read at scrape).", registry=r
        )
        self.platform_connected = Gauge(
            "chatops_platform_connected",
            "1 when the platform connection is live (Slack socket or listener, Discord shards).",
            ["platform"],
            registry=r,
        )
        Info("chatops_build", "Version of the running service.", registry=r).info(
            {"version": _version(), "python": python_platform.python_version()}
        )
        ProcessCollector(namespace="chatops", registry=r)
        self._budgets: BudgetCollector | None = None

    # --- wiring ------------------------------------------------------------------------

    def watch(self, *, in_flight: Callable[[], int], budgets: BudgetView) -> None:
        """Read these at every scrape: requests in flight and the spare write budgets."""
        self.in_flight.set_function(in_flight)
        if self._budgets is None:
            self._budgets = BudgetCollector(budgets)
            self.registry.register(self._budgets)

    # --- Telemetry -----------------------------------------------------------------------

    def request_done(self, platform: str, command: str, outcome: str) -> None:
        self.requests.labels(platform, command, outcome).inc()

    def latency(self, stage: Stage, platform: str, command: str, seconds: float) -> None:
        histogram = self.first_visible if stage == "first_visible" else self.final
        histogram.labels(platform, command).observe(seconds)

    def quota_refused(self, metric: str, window: str, scope: str) -> None:
        self.quota_refusals.labels(metric, window, scope).inc()

    def used(self, model: str, amounts: Amounts) -> None:
        if amounts.tokens_in:
            self.tokens.labels(model, "in").inc(amounts.tokens_in)
        if amounts.tokens_out:
            self.tokens.labels(model, "out").inc(amounts.tokens_out)
        if amounts.images:
            self.images.labels(model).inc(amounts.images)
        if amounts.audio_seconds:
            self.audio_seconds.labels(model).inc(amounts.audio_seconds)

    def gateway_answer(self, endpoint: str, status: int | None, code: str) -> None:
        self.gateway_requests.labels(endpoint, str(status or "none"), code).inc()
        if endpoint in _NOT_KEY_ENDPOINTS:
            return
        if code == "invalid_api_key":
            if self.key_rejected_at is None:
                self.key_rejected_at = self._clock()
            self.gateway_key_rejected.set(1)
        elif code == "ok":
            self.key_rejected_at = None
            self.gateway_key_rejected.set(0)

    def gateway_retry(self, endpoint: str, code: str) -> None:
        self.gateway_retries.labels(endpoint, code).inc()

    def platform_call(self, platform: str, method: str, status: int | None) -> None:
        self.platform_calls.labels(platform, method, str(status or "none")).inc()
        if status == 429:
            self.platform_rate_limited.labels(platform, method).inc()

    def redelivery_ignored(self, platform: str) -> None:
        self.redeliveries.labels(platform).inc()


class BudgetCollector:
    """Spare write budget per platform and kind, computed from the live budgets at scrape."""

    def __init__(self, budgets: BudgetView) -> None:
        self._budgets = budgets

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        spare = self._families()
        least: dict[tuple[str, str], int] = {}
        exhausted: dict[tuple[str, str], int] = {}
        for kind, key, free in self._budgets():
            # Budget keys start with the platform ("slack:T1", "discord:123", "console").
            labels = (key.partition(":")[0], kind)
            least[labels] = min(free, least.get(labels, free))
            exhausted[labels] = exhausted.get(labels, 0) + (free == 0)
        for labels, free in least.items():
            spare[0].add_metric(list(labels), free)
            spare[1].add_metric(list(labels), exhausted[labels])
        yield from spare

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "chatops_budget_spare_writes",
                "Writes the tightest scope of a platform budget can spend beyond what open "
                "replies have pledged (kind: write = edits, post = new messages).",
                labels=["platform", "kind"],
            ),
            GaugeMetricFamily(
                "chatops_budget_exhausted_scopes",
                "Budget scopes (workspaces, channels) with no spare write right now.",
                labels=["platform", "kind"],
            ),
        ]


def _version() -> str:
    try:
        return metadata.version("chatops-bot")
    except metadata.PackageNotFoundError:
        return "unknown"
