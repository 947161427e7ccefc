"""CalDAV transport: the caldav library loaded on first use, the raw HTTP helpers
(sync-collection REPORT body and parsing, headers, bodies) and `_translate`, the one
place where HTTP statuses and library/transport exceptions become the project's
errors (base.py).
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from kit_sync.backends.base import (
    AlreadyExists,
    AuthFailed,
    BackendError,
    BackendUnavailable,
    ItemRejected,
    NotFound,
    Throttled,
)
from kit_sync.backends.caldav.items import _key


@functools.cache
def _lib() -> Any:
    """caldav, lxml and the VTODO code (icalendar), imported on first use: the idle
    cycle of a new process needs none of them (see `_quick_refresh`), which saves
    it about 0.15 s of imports."""
    from types import SimpleNamespace

    from caldav.davclient import DAVClient
    from caldav.elements import cdav, dav
    from caldav.lib import error
    from caldav.lib.http_sync import requests
    from lxml import etree  # type: ignore[import-untyped]

    from kit_sync.backends import ical

    return SimpleNamespace(
        DAVClient=DAVClient, cdav=cdav, dav=dav, error=error, http=requests, etree=etree, ical=ical
    )


ICS = {"Content-Type": "text/calendar; charset=utf-8"}
XML = {"Content-Type": "application/xml; charset=utf-8"}
VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"
SUPPORTED_REPORT = "{DAV:}supported-report"
UID_CONFLICT = {
    "{urn:ietf:params:xml:ns:caldav}no-uid-conflict",
    "{urn:ietf:params:xml:ns:caldav}unique-scheduling-object-resource",
}
#: Hrefs per calendar-multiget: bounds the memory of the first listing of a big list.
MULTIGET_BATCH = 250
USER_AGENT = "kit-sync (python-caldav)"


# --- errors: the one place ------------------------------------------------------------


class _TokenRejected(Exception):
    """The server no longer knows our sync token (expired, or its history was reset)."""


class _SyncUnsupported(Exception):
    """The server does not do sync-collection: list by ETags instead."""


class _CollectionGone(Exception):
    """The task list's URL answers 404 (deleted or moved on the server)."""


class _UidTakenElsewhere(AlreadyExists):
    """The server keeps UIDs unique across all of the account's calendars (Cyrus,
    hence Fastmail, does: RFC 6638 `unique-scheduling-object-resource`), and this UID
    is used in another task list: not a copy of ours in this list."""


def _conflict_href(body: Any) -> str | None:
    """The href a `no-uid-conflict` / `unique-scheduling-object-resource` error names
    (RFC 4791 5.3.2.1, RFC 6638 3.2.4.1), if the server named one."""
    if not body:
        return None
    try:
        root = _lib().etree.fromstring(body if isinstance(body, bytes) else body.encode())
    except Exception:
        return None
    for tag in UID_CONFLICT:
        found = root.find(f".//{tag}/{{DAV:}}href")
        if found is not None and found.text:
            return str(found.text).strip()
    return None


def _retry_after(exc: Any) -> float | None:
    value = getattr(exc, "retry_after_seconds", None)
    return float(value) if isinstance(value, int | float) else None


def _translate(exc: BaseException, where: str, what: str) -> BaseException:
    """Library, transport and HTTP failures -> the project's errors (base.py).

    `where` names the server or item, `what` the action ("list the tasks"). Returns
    the exception unchanged when it is not a server failure (a bug stays a bug)."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, _lib().error.RateLimitError):
        wait = _retry_after(exc)
        hint = f"; it asks to wait {wait:.0f} s" if wait is not None else ""
        return Throttled(f"{where} is busy (HTTP {exc.status}) and could not {what}{hint}", wait)
    if isinstance(exc, _lib().error.AuthorizationError):
        if exc.status == 401 or exc.status is None:
            return AuthFailed(
                f"{where} refused the credentials (HTTP 401) when trying to {what}; check "
                "backend.username and the password/token (and backend.auth)"
            )
        return AuthFailed(
            f"{where} forbids this account to {what} (HTTP 403); check that the user "
            "owns the task list or has write access to it"
        )
    if isinstance(exc, _lib().error.DAVError):
        status = exc.status
        if status == 404:
            return BackendUnavailable(f"{where} does not exist (HTTP 404); check backend.url")
        if status is not None and status >= 500:
            return BackendUnavailable(
                f"{where} failed with a server error (HTTP {status}) and could not {what}; "
                "retrying later"
            )
        detail = f"HTTP {status}" if status else (exc.reason or type(exc).__name__)
        return BackendUnavailable(f"{where} could not {what} ({detail})")
    if isinstance(exc, _lib().http.exceptions.SSLError):
        return BackendUnavailable(
            f"TLS check of {where} failed ({_short(exc)}); set backend.verify to the "
            "CA bundle that signed the server's certificate (or false for testing only)"
        )
    if isinstance(exc, _lib().http.exceptions.Timeout | TimeoutError):
        return BackendUnavailable(
            f"{where} did not answer in time (backend.timeout) and could not {what}; retrying later"
        )
    if isinstance(exc, _lib().http.exceptions.ConnectionError | ConnectionError):
        return BackendUnavailable(
            f"cannot reach {where} ({_short(exc)}); is the server up and backend.url right?"
        )
    if isinstance(exc, _lib().http.exceptions.RequestException | OSError):
        return BackendUnavailable(f"talking to {where} failed: {_short(exc)}")
    if isinstance(exc, _lib().etree.XMLSyntaxError):
        return BackendUnavailable(f"{where} sent a garbled answer (not XML) when asked to {what}")
    return exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    for marker in ("Caused by ", "(Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1].strip("()")
    return text[:200]


def _status_error(status: int, body: Any, where: str, what: str) -> BackendError:
    """A non-2xx answer to a PUT/DELETE that is not a precondition failure."""
    if status == 404:
        return NotFound(f"{where} is gone (deleted on another device?)")
    if status == 401:
        return AuthFailed(f"{where} refused the credentials (HTTP 401) when trying to {what}")
    if status == 423:
        return BackendUnavailable(
            f"{where} is locked on the server (HTTP 423) and could not {what}; retrying "
            "later (a server that crashed may need its stale lock removed)"
        )
    if status >= 500 and status != 507:
        return BackendUnavailable(
            f"{where} failed with a server error (HTTP {status}) when trying to {what}; "
            "retrying later"
        )
    reason = _precondition_text(body)
    return ItemRejected(f"the server refused to {what} {where} (HTTP {status}{reason})")


def _precondition_text(body: Any) -> str:
    names = _lib().error.parse_preconditions(body) if body else []
    return (": " + ", ".join(n.split("}")[-1] for n in names)) if names else ""


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    value = headers.get(name)
    return str(value) if value else None


def _body(response: Any) -> str:
    """The body of a DAVResponse as text (empty when there was none)."""
    try:
        return str(response.raw or "")
    except Exception:
        return ""


def _read(response: Any) -> bytes:
    try:
        return bytes(response.read(65536))
    except Exception:
        return b""


def _sync_body(token: str | None) -> bytes:
    """An RFC 6578 sync-collection REPORT asking for ETags only."""
    from xml.sax.saxutils import escape

    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<D:sync-collection xmlns:D="DAV:">'
        f"<D:sync-token>{escape(token or '')}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    ).encode()


def _parse_sync_report(
    data: bytes, collection: str
) -> tuple[dict[str, tuple[str, str | None]], set[str], str] | None:
    """(changed key -> (href, etag), removed keys, new token) from a sync-collection
    answer; None for anything unexpected (then caldav does it again, properly)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    if root.tag != "{DAV:}multistatus":
        return None
    token = root.findtext("{DAV:}sync-token")
    if not token:
        return None
    base = _key(collection).rstrip("/")
    changed: dict[str, tuple[str, str | None]] = {}
    removed: set[str] = set()
    for response in root.findall("{DAV:}response"):
        href = (response.findtext("{DAV:}href") or "").strip()
        path = urlsplit(href).path
        key = _key(path)
        status = response.findtext("{DAV:}status") or ""
        if key.rstrip("/") == base:
            return None  # about the list itself (507: truncated): not for the quick path
        if key.endswith("/"):
            continue
        if " 404 " in f"{status} ":
            removed.add(key)
            continue
        etag = response.findtext("{DAV:}propstat/{DAV:}prop/{DAV:}getetag")
        changed[key] = (path, etag.strip() if etag else None)
    return changed, removed, token
