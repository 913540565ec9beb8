"""The shipped dashboard and alert rules use only metrics /metrics exports, and
docs/operations.md describes every metric it exports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.ops.metrics import Metrics
from bot.ops.readiness import Readiness
from bot.ops.server import OpsServer
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.memory_adapter import MemoryAdapter
from tests.ops_harness import get, parse_metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
METRIC = re.compile(r"\bchatops_[a-z0-9_]+")
DURATION = re.compile(r"\d+[smhd]")


@pytest.fixture
async def exported(tmp_path: Path) -> AsyncIterator[str]:
    """The text of /metrics from a freshly started ops port (no traffic yet)."""
    metrics = Metrics()
    metrics.watch(in_flight=lambda: 0, budgets=Budgets().spare)
    store = await SqliteStore.open(tmp_path / "chatops.db")
    server = OpsServer(Readiness(store, [MemoryAdapter()], metrics), metrics, "127.0.0.1", 0)
    port = await server.start()
    try:
        status, text = await get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        yield text
    finally:
        await server.close()
        await store.close()


def _balanced(expr: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for ch in re.sub(r'"[^"]*"', "", expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


async def test_dashboard_uses_only_exported_metrics(exported: str) -> None:
    names = parse_metrics(exported).names
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "chatops-bot"
    used: set[str] = set()
    for panel in _panels(dashboard):
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert _balanced(target["expr"]), target["expr"]
            found = set(METRIC.findall(target["expr"]))
            assert found, f"{panel['title']}: no chatops_ metric in {target['expr']}"
            used |= found
    assert used - names == set()
    # What the issue asks the dashboard to show.
    for wanted in (
        "chatops_requests_total",
        "chatops_first_visible_seconds_bucket",
        "chatops_final_text_seconds_bucket",
        "chatops_gateway_requests_total",
        "chatops_gateway_retries_total",
        "chatops_platform_rate_limited_total",
        "chatops_tokens_total",
        "chatops_images_total",
        "chatops_quota_refusals_total",
        "chatops_replies_in_flight",
    ):
        assert wanted in used


async def test_alert_rules_use_only_exported_metrics(exported: str) -> None:
    names = parse_metrics(exported).names
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    for name, rule in alerts.items():
        assert _balanced(rule["expr"]), name
        assert rule["labels"]["severity"] in ("page", "warn", "info"), name
        assert rule["annotations"]["summary"], name
        assert "for" not in rule or DURATION.fullmatch(rule["for"]), name
        assert set(METRIC.findall(rule["expr"])) <= names, name
    # Not ready, error rate, 429s, gateway auth failing, quota exhaustion.
    for wanted in (
        "ChatopsNotReady",
        "ChatopsHighErrorRate",
        "ChatopsPlatformRateLimited",
        "ChatopsGatewayAuthFailing",
        "ChatopsQuotaExhaustion",
    ):
        assert wanted in alerts


async def test_the_images_health_check_probes_healthz(tmp_path: Path) -> None:
    dockerfile = (DOCS.parent / "Dockerfile").read_text()
    match = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert match, "no HEALTHCHECK … CMD [...] in the Dockerfile"
    argv = json.loads(match.group(1))
    assert argv[0] == "python"
    assert re.search(r"^ENV [^#]*CHATOPS_OPS_HOST=0\.0\.0\.0", dockerfile, flags=re.MULTILINE)

    async def check(port: str) -> int:
        env = {**os.environ, "CHATOPS_OPS_PORT": port}
        proc = await asyncio.create_subprocess_exec(sys.executable, *argv[1:], env=env)
        async with asyncio.timeout(20):
            return await proc.wait()

    metrics = Metrics()
    store = await SqliteStore.open(tmp_path / "chatops.db")
    server = OpsServer(Readiness(store, [MemoryAdapter()], metrics), metrics, "127.0.0.1", 0)
    port = await server.start()
    try:
        assert await check(str(port)) == 0
    finally:
        await server.close()
        await store.close()
    assert await check(str(port)) != 0  # nothing listens there any more
    assert await check("") == 0  # the port turned off: nothing to check


async def test_operations_guide_describes_every_exported_metric(exported: str) -> None:
    guide = (DOCS / "operations.md").read_text()
    families = re.findall(r"^# HELP (chatops_\S+)", exported, flags=re.MULTILINE)
    ours = [f for f in families if not f.startswith("chatops_process_")]
    assert len(ours) > 15
    assert [f for f in ours if f not in guide] == []
