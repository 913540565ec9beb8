"""Log formats: JSON lines with the request's fields, readable text, and no secret in either."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.ops.logs import configure_logging
from bot.ops.scope import request_scope

KEY = "sk-live-0123456789abcdefghijklmnop"
BOT_TOKEN = "xoxb-1111-2222-abcdefabcdef"
# A secret of no recognisable shape: only the list of configured secrets can mask it.
SIGNING = "4f1c2b0d9e8a7766554433221100ffee"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _emit(fmt: str) -> list[str]:
    out = io.StringIO()
    configure_logging("INFO", "json" if fmt == "json" else "text", [KEY, SIGNING], out)
    log = logging.getLogger("tests.ops.logs")
    log.info("before any request")
    with request_scope("slack", "ask") as scope:
        log.warning("calling with key %s and secret %s", KEY, SIGNING)
        try:
            raise RuntimeError(f"the gateway said: Bearer {KEY}; slack token {BOT_TOKEN}")
        except RuntimeError:
            log.exception("request failed")
        request_id = scope.id
    log.info("after it, id was %s", request_id)
    return out.getvalue().splitlines()


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_request_fields() -> None:
    lines = [json.loads(line) for line in _emit("json") if line.startswith("{")]
    before, warning, failure, after = lines
    assert set(before) == {"time", "level", "logger", "message"}
    assert before["level"] == "INFO" and before["logger"] == "tests.ops.logs"
    assert before["time"].endswith("+00:00")
    request_id = after["message"].rsplit(" ", 1)[1]
    for line in (warning, failure):
        assert (line["request_id"], line["platform"], line["command"]) == (
            request_id,
            "slack",
            "ask",
        )
    assert "RuntimeError" in failure["exception"]
    assert "request_id" not in after


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.usefixtures("restore_logging")
def test_no_secret_in_either_format(fmt: str) -> None:
    text = "\n".join(_emit(fmt))
    assert "calling with key *** and secret ***" in text
    for secret in (KEY, SIGNING, BOT_TOKEN):
        assert secret not in text
    # The traceback is masked too, not only the message.
    assert "Bearer ***" in text and "slack token ***" in text


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_name_the_request() -> None:
    lines = _emit("text")
    assert " INFO tests.ops.logs: before any request" in lines[0]
    request_id = lines[-1].rsplit(" ", 1)[1]
    assert f" WARNING tests.ops.logs [{request_id} slack ask]: calling with key" in lines[1]
