"""Graph transport helpers: batching, Retry-After, and `_error`, the one place that
turns HTTP statuses and Graph error codes into the backend errors of base.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from kit_sync.backends.base import (
    AuthFailed,
    BackendError,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
    Throttled,
)
from kit_sync.backends.graph_auth import LOGIN_HINT
from kit_sync.clock import Clock, system_clock

BATCH_LIMIT = 20  # Graph's JSON batching limit
PAGE_SIZE = 100
RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
#: How long to wait on a throttled request without a Retry-After header.
DEFAULT_RETRY = 2.0


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- errors ----------------------------------------------------------------------


def _graph_error(body: Any) -> tuple[str, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("code") or ""), str(err.get("message") or "")
    return "", ""


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def retry_after(
    headers: Any, default: float = DEFAULT_RETRY, *, clock: Clock = system_clock
) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = None
    if headers:
        for key, val in dict(headers).items():
            if str(key).lower() == "retry-after":
                value = str(val).strip()
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, (when - clock()).total_seconds())


def _error(status: int, body: Any, what: str, headers: Any = None) -> BackendError:
    """The one place HTTP statuses and Graph error codes become backend errors."""
    code, message = _graph_error(body)
    detail = f"{code}: {message}" if code else (message or f"HTTP {status}")
    if status == 401:
        return AuthFailed(f"Microsoft Graph refused the access token ({detail}); {LOGIN_HINT}")
    if status == 403:
        return AuthFailed(
            f"Microsoft Graph denied access to {what} ({detail}); the app registration "
            "needs the Tasks.ReadWrite permission (Tasks.ReadWrite.All with admin consent "
            "for app-only access)"
        )
    if status == 404:
        return NotFound(f"{what} is gone ({detail})")
    if status in (409, 412):
        return Conflict(f"{what} changed since it was read ({detail})")
    if status in (429, 503, 504):
        wait = retry_after(headers)
        return Throttled(f"Microsoft Graph is throttling ({detail}); retry in {wait:.0f} s", wait)
    if status in (400, 413, 422):
        return ItemRejected(f"Microsoft Graph rejected {what} ({detail})")
    if status >= 500:
        return BackendUnavailable(f"Microsoft Graph failed on {what} ({detail})")
    return BackendError(f"unexpected answer from Microsoft Graph for {what} ({detail})")


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _throttled(status: int, safe: bool) -> bool:
    """Answered "not now": safe to send again (a 504 only when the request is idempotent)."""
    return status in (429, 503) or (status == 504 and safe)
