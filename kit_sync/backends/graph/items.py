"""Pure conversions of the Graph backend: time zones (Windows and IANA names),
dateTimeTimeZone values, the kit-sync link (linkedResource) that carries the
marker and bookkeeping, importance, and the compact form of a todoTask kept in the
cache. No network.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kit_sync.model import (
    AnchorKind,
    KitMeta,
    contact_from_uid,
)

APP_NAME = "kit-sync"
#: Base of the webUrl that carries kit-sync's bookkeeping. `.invalid` never resolves
#: (RFC 2606): the link is data, not a page.
META_URL = "https://kit-sync.invalid/task"


# --- time zones ------------------------------------------------------------------


def _windows_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(Windows -> IANA, IANA -> Windows), from CLDR's windowsZones via tzlocal."""
    try:
        from tzlocal.windows_tz import tz_win, win_tz
    except ImportError:  # pragma: no cover - tzlocal ships with APScheduler 3
        win_tz, tz_win = {}, {}
    return dict(win_tz), dict(tz_win)


WIN_TO_IANA, IANA_TO_WIN = _windows_tables()
_UTC_NAMES = frozenset(
    {"utc", "etc/utc", "gmt", "z", "tzone://microsoft/utc", "coordinated universal time"}
)


def zone_named(name: str) -> ZoneInfo:
    """An IANA or Windows zone name (Graph writes either) as a ZoneInfo.

    Raises ValueError for a name neither table knows."""
    key = name.strip()
    if key.lower() in _UTC_NAMES:
        return ZoneInfo("UTC")
    if key in WIN_TO_IANA:
        return ZoneInfo(WIN_TO_IANA[key])
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    for win, iana in WIN_TO_IANA.items():
        if win.lower() == key.lower():
            return ZoneInfo(iana)
    raise ValueError(f"unknown time zone '{name}'")


def zone_name_for_graph(tz: ZoneInfo) -> str:
    """The Windows name of an IANA zone (what Exchange stores natively), else the IANA name."""
    return IANA_TO_WIN.get(tz.key, tz.key)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_dtz(value: Any) -> datetime | None:
    """A Graph dateTimeTimeZone as an aware datetime (None when absent)."""
    if not value or not isinstance(value, dict) or not value.get("dateTime"):
        return None
    text = _FRACTION.sub(r"\1", str(value["dateTime"]).strip())
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is not None:
        return stamp
    return stamp.replace(tzinfo=zone_named(str(value.get("timeZone") or "UTC")))


def to_dtz(local: datetime, tz: ZoneInfo) -> dict[str, str]:
    """A naive local time in `tz` as a Graph dateTimeTimeZone."""
    return {
        "dateTime": local.replace(tzinfo=None).isoformat(timespec="seconds"),
        "timeZone": zone_name_for_graph(tz),
    }


def _utc_midnight(stamp: datetime) -> date | None:
    utc = stamp.astimezone(UTC)
    if utc.time() == dtime(0):
        return utc.date()
    return None


def due_of(value: Any, tz: ZoneInfo) -> date | None:
    """The due day. To Do keeps a date: written as local midnight it comes back as
    that instant (in UTC or the Prefer zone); a date stored as UTC midnight (what
    the apps do for some accounts) is that date whatever the user's zone."""
    stamp = parse_dtz(value)
    if stamp is None:
        return None
    return _utc_midnight(stamp) or stamp.astimezone(tz).date()


def completed_of(value: Any) -> datetime | date | None:
    """The completion stamp. To Do's apps store only the completion *date*, as UTC
    midnight (Graph docs issue #8664): that is a date, not an instant, or a user
    west of UTC would see every completion a day early. Any other time is an
    instant (an API client wrote it) and is converted by the planner."""
    stamp = parse_dtz(value)
    if stamp is None:
        return None
    return _utc_midnight(stamp) or stamp


# --- kit-sync's linkedResource ---------------------------------------------------------


# Ownership. The marker is a linkedResource with applicationName "kit-sync" and the
# contact id (task key) as externalId. A task is kit-sync's only when such a link also
# carries, in its webUrl, a kit UID naming that same contact: every kit-sync version
# writes the uid into the link it creates a task with, and rewrites the link only
# with a kit UID. The marker alone is foreign: another app (or a person through the
# API) can copy a link but gives the task an identity of its own (no uid, its own,
# a kit UID of another contact). Such a task is never changed, reported once.
#
# Two related cases:
# - a copy of a whole kit link (To Do's own recurrence copies a task with its links)
#   carries the kit UID, so it is kit-sync's, listed under a uid of its own (the
#   duplicate rule reduces open ones to one);
# - the one way a task without a kit link stays kit-sync's: a client *removed* the
#   link (no kit-sync link left at all) and the mirror in the state DB holds that
#   same Graph id with a kit link, i.e. kit-sync saw the task with its full link
#   before; the link is added back at the next write. A marker-only task never
#   enters the mirror (and one an older version mirrored is dropped when the state
#   is loaded), so this cannot adopt one. A task whose link now is marker-only (its
#   kit UID edited away) is foreign like any other.


def _is_marker(link: Any) -> bool:
    return (
        isinstance(link, dict)
        and str(link.get("applicationName", "")).lower() == APP_NAME
        and bool(link.get("externalId"))
    )


def is_kit_link(link: dict[str, Any]) -> bool:
    """A marker link whose webUrl holds a kit UID of the contact it names."""
    if not _is_marker(link):
        return False
    uid = decode_link(link)[0]
    return uid is not None and contact_from_uid(uid) == str(link["externalId"])


def find_link(raw: dict[str, Any]) -> dict[str, Any] | None:
    """Our linkedResource on a task: the marker with a kit UID of its contact (above)."""
    for link in raw.get("linkedResources") or ():
        if isinstance(link, dict) and is_kit_link(link):
            return link
    return None


def copied_marker(raw: dict[str, Any]) -> dict[str, Any] | None:
    """A kit-sync marker on a task that has no kit link (see above): a foreign task."""
    if find_link(raw) is not None:
        return None
    links = raw.get("linkedResources") or ()
    return next((x for x in links if isinstance(x, dict) and _is_marker(x)), None)


def _human(meta: KitMeta) -> str:
    every = meta.every or "?"
    m = re.fullmatch(r"P(?:(\d+)M)?(?:(\d+)D)?", every)
    if m:
        months, days = int(m.group(1) or 0), int(m.group(2) or 0)
        if months and not days:
            every = f"{months} month{'s' * (months != 1)}"
        elif days and not months:
            every = (
                f"{days // 7} week{'s' * (days != 7)}"
                if days % 7 == 0
                else f"{days} day{'s' * (days != 1)}"
            )
    return f"kit-sync: keep in touch every {every}"


def encode_link(
    uid: str, meta: KitMeta, alarm: str | None = None, cancelled: bool = False
) -> dict[str, str]:
    """The linkedResource fields for a task (without the server-assigned id)."""
    fields: dict[str, str] = {"v": "1", "uid": uid}
    optional = {
        "anchor": meta.anchor.isoformat() if meta.anchor else None,
        "kind": meta.anchor_kind.value,
        "every": meta.every,
        "due": meta.planned_due.isoformat() if meta.planned_due else None,
        "from": meta.from_uid,
        "hash": meta.fingerprint,
        "alarm": alarm,
        "state": "cancelled" if cancelled else None,
    }
    fields.update({k: v for k, v in optional.items() if v})
    return {
        "applicationName": APP_NAME,
        "externalId": meta.contact_id,
        "displayName": _human(meta),
        "webUrl": f"{META_URL}#{urlencode(fields)}",
    }


def _date_or_none(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def decode_link(link: dict[str, Any]) -> tuple[str | None, KitMeta, str | None, bool]:
    """(uid, meta, alarm, cancelled) from our linkedResource. Forgiving: a link a
    client mangled still names the contact; the rest is then missing."""
    cid = str(link["externalId"])
    url = str(link.get("webUrl") or "")
    fields = dict(parse_qsl(urlsplit(url).fragment)) if "#" in url else {}
    kind = fields.get("kind", AnchorKind.TOUCH.value)
    meta = KitMeta(
        contact_id=cid,
        anchor=_date_or_none(fields.get("anchor")),
        anchor_kind=AnchorKind(kind) if kind in ("new", "touch") else AnchorKind.TOUCH,
        every=fields.get("every") or None,
        planned_due=_date_or_none(fields.get("due")),
        from_uid=fields.get("from") or None,
        fingerprint=fields.get("hash") or None,
    )
    return (
        fields.get("uid") or None,
        meta,
        fields.get("alarm") or None,
        fields.get("state") == "cancelled",
    )


def importance_of(priority: int) -> str:
    """iCalendar priority (1 highest .. 9 lowest, 0 undefined) as To Do importance."""
    if 1 <= priority <= 4:
        return "high"
    if priority >= 6:
        return "low"
    return "normal"


#: The parts of a todoTask kit-sync keeps in its mirror (the body can be long and
#: is never read back).
_KEEP = (
    "id",
    "@odata.etag",
    "title",
    "status",
    "dueDateTime",
    "completedDateTime",
    "reminderDateTime",
    "isReminderOn",
    "recurrence",
    "createdDateTime",
    "lastModifiedDateTime",
    "_detached",  # ours, not Graph's: our link is known here but gone on the server
)


def compact(raw: dict[str, Any]) -> dict[str, Any]:
    out = {k: raw[k] for k in _KEEP if k in raw}
    link = find_link(raw)
    out["linkedResources"] = [link] if link else []
    return out


#: Properties Graph always sends on a whole todoTask (none of them nullable). An item
#: from a delta round without one of them is partial: "at least the properties that
#: have been updated" (the delta query overview).
WHOLE_TASK_KEYS = ("title", "status", "importance", "createdDateTime")


def is_partial(item: dict[str, Any]) -> bool:
    return any(k not in item for k in WHOLE_TASK_KEYS)


def merge_partial(known: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A partial delta item applied to the stored copy: properties it carries win, a
    null clears, everything it leaves out is unchanged."""
    merged = dict(known)
    for key, value in item.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def html_note(text: str) -> dict[str, str]:
    """A plain-text note as the HTML body Graph's update accepts ("only HTML type is
    supported" on PATCH): escaped, one line per line."""
    lines = [html.escape(line, quote=False) for line in text.split("\n")]
    return {"content": "<br>\n".join(lines), "contentType": "html"}


def note_text(body: Any) -> str:
    """The note as plain text, whichever way Graph hands it back (text, or HTML as
    written by an update or by Outlook)."""
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "text").lower() != "html":
        return content
    inner = re.search(r"<body[^>]*>(.*)</body>", content, re.S | re.I)
    content = inner.group(1) if inner else content
    content = re.sub(r"<br\s*/?>\r?\n?", "\n", content, flags=re.I)
    content = re.sub(r"</p\s*>\s*<p[^>]*>", "\n", content, flags=re.I)
    content = re.sub(r"<[^>]+>", "", content)
    return html.unescape(content).strip("\n")
