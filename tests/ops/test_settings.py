"""Operations settings: defaults, bad values naming their variable, a port already taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.ops.settings import OpsSettings


def test_off_by_default_and_local_only() -> None:
    assert OpsSettings.from_env({}) == OpsSettings(port=None, host="127.0.0.1", log_format="text")
    got = OpsSettings.from_env(
        {"CHATOPS_OPS_PORT": "9102", "CHATOPS_OPS_HOST": "0.0.0.0", "CHATOPS_LOG_FORMAT": "JSON"}
    )
    assert got == OpsSettings(port=9102, host="0.0.0.0", log_format="json")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CHATOPS_OPS_PORT": "http"}, "CHATOPS_OPS_PORT"),
        ({"CHATOPS_OPS_PORT": "70000"}, "CHATOPS_OPS_PORT"),
        ({"CHATOPS_OPS_HOST": "http://x/"}, "CHATOPS_OPS_HOST"),
        ({"CHATOPS_LOG_FORMAT": "yaml"}, "CHATOPS_LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OpsSettings.from_env(env)
    assert caught.value.variable == variable


def test_a_port_in_use_stops_start_up_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        prefixes = ("WEELINKING", "CHATOPS", "SLACK", "DISCORD")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env |= {
            "WEELINKING_API_KEY": "sk-do-not-print-this-key",
            "CHATOPS_DB": str(tmp_path / "bot.db"),
            "CHATOPS_OPS_PORT": str(port),
        }
        done = subprocess.run(
            [sys.executable, "-m", "bot", "console"],
            cwd=tmp_path,
            env=env,
            input="",
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("chatops: configuration error: CHATOPS_OPS_PORT: cannot listen on")
    assert "sk-do-not-print-this-key" not in done.stderr + done.stdout
