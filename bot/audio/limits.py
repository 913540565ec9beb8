"""Audio pipeline limits and their environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.envvars import number
from bot.errors import ConfigError

MB = 1_000_000
ConvertFormat = Literal["ogg", "mp3"]


@dataclass(frozen=True, slots=True)
class AudioLimits:
    # Largest attachment we download (checked against the declared size and while reading).
    max_download_bytes: int = 100 * MB
    # The gateway's upload limit per request; every piece stays under it.
    upload_limit_bytes: int = 25 * MB
    # Longest recording accepted at all, and longest piece sent in one request.
    max_duration_seconds: float = 3600.0
    max_piece_seconds: float = 300.0
    # Shorter than this is a mis-tap, not a voice note.
    min_duration_seconds: float = 0.5
    # Pieces transcribed at once per recording.
    concurrency: int = 4
    # What recordings in formats the gateway does not take are converted to.
    convert_format: ConvertFormat = "mp3"
    # Deadline for each ffmpeg/ffprobe run.
    tool_timeout_seconds: float = 120.0
    # Where scratch files go (None: the system default); a tmpfs keeps them off disk.
    temp_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AudioLimits:
        """Read CHATOPS_AUDIO_* variables; unset ones keep their defaults."""
        default = cls()
        fmt = env.get("CHATOPS_AUDIO_FORMAT", "").strip().lower() or default.convert_format
        if fmt not in ("ogg", "mp3"):
            raise ConfigError("CHATOPS_AUDIO_FORMAT", f"{fmt!r} is not one of ogg, mp3")
        limits = cls(
            max_download_bytes=int(
                number(
                    env, "CHATOPS_AUDIO_MAX_DOWNLOAD_MB", default.max_download_bytes / MB, 1, 2000
                )
                * MB
            ),
            upload_limit_bytes=int(
                number(
                    env, "CHATOPS_AUDIO_UPLOAD_LIMIT_MB", default.upload_limit_bytes / MB, 1, 500
                )
                * MB
            ),
            max_duration_seconds=number(
                env, "CHATOPS_AUDIO_MAX_SECONDS", default.max_duration_seconds, 1, 86_400
            ),
            max_piece_seconds=number(
                env, "CHATOPS_AUDIO_PIECE_SECONDS", default.max_piece_seconds, 10, 3600
            ),
            concurrency=int(number(env, "CHATOPS_AUDIO_CONCURRENCY", default.concurrency, 1, 32)),
            convert_format="mp3" if fmt == "mp3" else "ogg",
            tool_timeout_seconds=number(
                env, "CHATOPS_AUDIO_TIMEOUT", default.tool_timeout_seconds, 5, 3600
            ),
            temp_dir=env.get("CHATOPS_AUDIO_TMPDIR", "").strip() or None,
        )
        if limits.max_duration_seconds < limits.min_duration_seconds:
            raise ConfigError("CHATOPS_AUDIO_MAX_SECONDS", "is shorter than the minimum duration")
        # Read once at start-up, so a plain stat here does not block a running loop.
        if limits.temp_dir is not None and not os.path.isdir(limits.temp_dir):
            raise ConfigError("CHATOPS_AUDIO_TMPDIR", f"{limits.temp_dir!r} is not a directory")
        return limits
