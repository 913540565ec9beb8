"""Configuration: defaults, validation, and secrets kept out of repr."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Config
from bot.errors import ConfigError


def _start_console(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        cwd=cwd,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_and_key() -> None:
    config = Config.from_env({"WEELINKING_API_KEY": "sk-secret-123"})
    assert config.base_url == "https://api.weelinking.com/v1"
    assert config.image_model == "gpt-image-1"
    assert config.transcribe_model == "whisper-1"
    assert config.api_key.reveal() == "sk-secret-123"
    assert "sk-secret-123" not in repr(config)
    # No reply cap unless an operator sets one; the quota holds an estimate instead.
    assert (config.max_reply_tokens, config.reply_tokens_estimate) == (None, 1024)
    capped = Config.from_env(
        {
            "WEELINKING_API_KEY": "k",
            "CHATOPS_MAX_REPLY_TOKENS": "8192",
            "CHATOPS_REPLY_TOKENS_ESTIMATE": "2000",
        }
    )
    assert (capped.max_reply_tokens, capped.reply_tokens_estimate) == (8192, 2000)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "WEELINKING_API_KEY"),
        ({"WEELINKING_BASE_URL": "ftp://x"}, "WEELINKING_BASE_URL"),
        ({"CHATOPS_MAX_REPLY_TOKENS": "lots"}, "CHATOPS_MAX_REPLY_TOKENS"),
        ({"CHATOPS_MAX_REPLY_TOKENS": "-5"}, "CHATOPS_MAX_REPLY_TOKENS"),
        ({"CHATOPS_REPLY_TOKENS_ESTIMATE": "0"}, "CHATOPS_REPLY_TOKENS_ESTIMATE"),
        ({"CHATOPS_REPLY_TOKENS_ESTIMATE": "many"}, "CHATOPS_REPLY_TOKENS_ESTIMATE"),
        ({"CHATOPS_DEFAULT_MODEL": "gpt 4o"}, "CHATOPS_DEFAULT_MODEL"),
        ({"CHATOPS_LOG_LEVEL": "LOUD"}, "CHATOPS_LOG_LEVEL"),
        ({"CHATOPS_DB": "mysql://root:pw@db/chatops"}, "CHATOPS_DB"),
        ({"CHATOPS_DB": "postgresql://u:pw@db:port/chatops"}, "CHATOPS_DB"),
        ({"CHATOPS_DB": "postgresql://u:pw@db:5432"}, "CHATOPS_DB"),
        ({"CHATOPS_DB_POOL_SIZE": "0"}, "CHATOPS_DB_POOL_SIZE"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    base = {"WEELINKING_API_KEY": "k"} if variable != "WEELINKING_API_KEY" else {}
    with pytest.raises(ConfigError) as caught:
        Config.from_env(base | env)
    assert caught.value.variable == variable
    assert "pw" not in caught.value.problem  # a database URL's password is never repeated


def test_a_postgres_url_is_a_secret_and_a_path_stays_a_file() -> None:
    url = "postgresql://chatops:hunter2@db.internal:5432/chatops"
    config = Config.from_env({"WEELINKING_API_KEY": "k", "CHATOPS_DB": url})
    assert config.database == url and "hunter2" not in repr(config)
    assert config.db_path == Path("data/chatops.db")  # the console's uploads stay in ./data
    local = Config.from_env({"WEELINKING_API_KEY": "k", "CHATOPS_DB": "/srv/bot.db"})
    assert local.database == Path("/srv/bot.db") and local.db_url is None


def test_start_up_refuses_bad_config_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    env |= {"WEELINKING_API_KEY": "sk-do-not-print", "WEELINKING_BASE_URL": "nonsense"}
    done = _start_console(env, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WEELINKING_BASE_URL" in lines[0]
    assert "sk-do-not-print" not in done.stderr + done.stdout


def test_start_up_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    env |= {"WEELINKING_API_KEY": "k", "CHATOPS_DB": str(db)}
    done = _start_console(env, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CHATOPS_DB" in lines[0], done.stderr


def test_start_up_with_an_unreachable_postgres_is_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEELINKING", "CHATOPS"))}
    # Port 1 on loopback: nothing listens there, so the refusal is immediate.
    env |= {"WEELINKING_API_KEY": "k", "CHATOPS_DB": "postgresql://bot:s3cr3t-pw@127.0.0.1:1/x"}
    done = _start_console(env, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatops: configuration error: CHATOPS_DB:")
    assert "cannot connect to postgresql://127.0.0.1:1/x" in lines[0]
    assert "s3cr3t-pw" not in done.stderr + done.stdout
    assert not (tmp_path / "postgresql:").exists()
