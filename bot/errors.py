"""Exceptions that cross module boundaries, each carrying a sentence a user can act on."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message is safe and useful to show the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PlatformRateLimited(Exception):
    """The chat platform answered 429; adapters raise it so the streamer can wait and retry."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"platform rate limited, retry after {retry_after:.2f}s")
        self.retry_after = retry_after


class TooLarge(UserFacingError):
    """A file is over a size limit (raised before or while downloading)."""


class ConfigError(Exception):
    """Invalid configuration: names the environment variable so start-up can say one clear line."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem
