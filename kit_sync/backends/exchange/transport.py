"""Exchange transport: exchangelib's retry policy, the server version, TLS
adapters, and `_translate`, the one place where exchangelib's error classes become
kit-sync's backend errors (base.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from exchangelib import (
    Build,
    FaultTolerance,
    Version,
)
from exchangelib import errors as ews
from exchangelib.version import (
    EXCHANGE_2007,
    EXCHANGE_2010,
    EXCHANGE_2013,
    EXCHANGE_2016,
    EXCHANGE_2019,
    EXCHANGE_O365,
)

from kit_sync.backends.base import (
    AuthFailed,
    BackendError,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
    Throttled,
)


def parse_version(text: str) -> Version:
    names = {
        "2007": EXCHANGE_2007,
        "2010": EXCHANGE_2010,
        "2013": EXCHANGE_2013,
        "2016": EXCHANGE_2016,
        "2019": EXCHANGE_2019,
        "online": EXCHANGE_O365,
    }
    build = names.get(text.lower())
    if build is None:
        parts = [int(p) for p in text.split(".")]
        build = Build(*parts)
    return Version(build=build)


# --- error translation ------------------------------------------------------------------


class _Patience(FaultTolerance):
    """exchangelib's fault-tolerant retry policy, except that a 401 is a refusal of
    our credentials (FaultTolerance would treat it as throttling and retry for as
    long as max_wait allows)."""

    def raise_response_errors(self, response: Any) -> Any:
        if response.status_code == 401:
            raise ews.UnauthorizedError(f"Invalid credentials for {response.url}")
        return super().raise_response_errors(response)


#: Errors that say "not now" rather than "not this": the daemon retries with back-off.
_TRANSIENT = (
    ews.ErrorTimeoutExpired,
    ews.ErrorInternalServerTransientError,
    ews.ErrorInternalServerError,
    ews.ErrorMailboxStoreUnavailable,
    ews.ErrorMailboxMoveInProgress,
    ews.ErrorConnectionFailed,
    ews.ErrorTooManyObjectsOpened,
)


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _translate(exc: Exception, what: str) -> BackendError:
    """exchangelib's error classes -> kit-sync's small hierarchy (the one place)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, ews.UnauthorizedError):
        return AuthFailed(
            f"Exchange refused the credentials while {what}; check backend.username, "
            "backend.password and backend.auth"
        )
    if isinstance(exc, ews.ErrorImpersonateUserDenied | ews.ErrorNonExistentMailbox):
        return AuthFailed(f"Exchange refused access to the mailbox while {what}: {text}")
    if isinstance(exc, ews.ErrorAccessDenied):
        return AuthFailed(
            f"access denied while {what} ({text}); with access: delegate the login needs "
            "rights on the mailbox's Tasks folder"
        )
    if isinstance(exc, ews.RateLimitError):
        wait = float(getattr(exc, "wait", 0) or 0) or None
        return Throttled(
            f"Exchange is busy (asked to wait {wait:.0f} s, more than backend.max_retry_wait)"
            if wait
            else "Exchange is busy",
            retry_after=wait,
        )
    if isinstance(exc, ews.ErrorServerBusy):
        back_off = getattr(exc, "back_off", None)
        return Throttled(f"Exchange is busy while {what}", retry_after=back_off)
    if isinstance(
        exc, ews.ErrorIrresolvableConflict | ews.ErrorChangeKeyRequiredForWriteOperations
    ):
        return Conflict(f"the task changed in Outlook since it was read ({what})")
    if isinstance(exc, ews.ErrorInvalidChangeKey):
        return Conflict(f"the task changed since it was read ({what})")
    if isinstance(exc, ews.ErrorItemNotFound | ews.ErrorInvalidIdMalformed):
        return NotFound(f"the task is gone (deleted in Outlook?) ({what})")
    if isinstance(exc, ews.ErrorFolderNotFound):
        return BackendUnavailable(f"the task folder does not exist ({what})")
    if isinstance(exc, _TRANSIENT):
        return BackendUnavailable(f"cannot reach Exchange while {what} ({_short(text)})")
    if isinstance(exc, ews.ResponseMessageError):
        return ItemRejected(f"Exchange refused {what}: {type(exc).__name__}: {_short(text)}")
    if isinstance(exc, ews.TransportError | ews.EWSError | requests.RequestException | OSError):
        return BackendUnavailable(f"cannot reach Exchange while {what}: {_short(text)}")
    return BackendUnavailable(f"Exchange failed while {what}: {type(exc).__name__}: {_short(text)}")


@contextmanager
def _ews(what: str) -> Iterator[None]:
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:  # exchangelib raises from many layers; translate them all
        raise _translate(exc, what) from exc


def _raise_if_error(result: Any, what: str) -> Any:
    if isinstance(result, Exception):
        raise _translate(result, what) from result
    return result


def _utc_zone() -> Any:
    # Requests carry TimeZoneContext UTC: task due dates are sent and read as midnight
    # UTC, so the day written is the day read back, whatever the server's zone.
    from exchangelib import UTC as EWS_UTC

    return EWS_UTC


def _ca_bundle_adapter(path: str) -> type[requests.adapters.HTTPAdapter]:
    class CABundleAdapter(requests.adapters.HTTPAdapter):
        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn=conn, url=url, verify=path, cert=cert)

    return CABundleAdapter
