"""The project's error hierarchy. Every error the CLI can show carries its exit code.

Exit codes (stable, documented in the README):
0 ok, 1 some actions failed, 2 usage or config error, 3 backend unreachable or
refused credentials.
"""

from __future__ import annotations


class KitError(Exception):
    """Base of every error meant for the user: the message is the whole story."""

    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class ConfigError(KitError):
    """The config or a roster file is wrong. Nothing was written anywhere."""

    exit_code = 2


class UsageError(KitError):
    exit_code = 2


class DiskFull(KitError):
    """No space left where kit-sync writes (the state file, the task folder).
    Nothing was half-written; the daemon retries with back-off."""

    exit_code = 1
