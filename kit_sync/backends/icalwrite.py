"""The iCalendar text of a new kit task, written directly.

A first sync writes one VTODO per contact; building each through icalendar's
component model cost more than writing the file itself. The text is fixed by
RFC 5545 and small: content lines of TEXT values (3.3.11 escaping), UTC
date-times, one DATE, folded at 75 octets (3.1). Properties come in the order
icalendar writes them (sorted), so a task reads the same whichever wrote it;
tests/test_icalwrite.py reads generated tasks back with icalendar.
Updates keep going through icalendar (ical.apply_change): they must keep every
property a client added.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from kit_sync.model import MARKER, NewTask

PRODID = "-//kit-sync//kit-sync//EN"
P_ANCHOR = "X-KIT-SYNC-ANCHOR"
P_KIND = "X-KIT-SYNC-ANCHOR-KIND"
P_EVERY = "X-KIT-SYNC-EVERY"
P_DUE = "X-KIT-SYNC-DUE"
P_FROM = "X-KIT-SYNC-FROM"
P_HASH = "X-KIT-SYNC-HASH"
P_ALARM = "X-KIT-SYNC-ALARM"  # inside a VALARM: this alarm is ours to replace


def escape_text(text: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\r", "\\n")
        .replace("\n", "\\n")
    )


def fold(line: str, limit: int = 75) -> str:
    """One content line folded at `limit` octets, never inside a UTF-8 character nor
    between a backslash and the character it escapes."""
    if len(line) < limit and line.isascii():
        return line
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode())
        if current and size + width >= limit:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                parts.append("".join(current))
                current, size = [carried], len(carried.encode())
            else:
                parts.append("".join(current))
                current, size = [], 0
        current.append(char)
        size += width
    if current:
        parts.append("".join(current))
    return "\r\n ".join(parts)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _date(value: date) -> str:
    return value.strftime("%Y%m%d")


def new_vtodo(new: NewTask, tz: ZoneInfo, now: datetime) -> bytes:
    """The VTODO kit-sync creates for `new` (see ical.new_vtodo)."""
    stamp = _utc(now.replace(microsecond=0))
    content, meta = new.content, new.meta
    props: list[tuple[str, str]] = []  # (name with parameters, value as written)

    def text(name: str, value: str | None) -> None:
        if value:
            props.append((name, escape_text(value)))

    if content.categories:
        props.append(("CATEGORIES", ",".join(escape_text(c) for c in content.categories)))
    props.append(("CREATED", stamp))
    text("DESCRIPTION", content.description)
    props.append(("DTSTAMP", stamp))
    props.append(("DUE;VALUE=DATE", _date(new.due)))
    props.append(("LAST-MODIFIED", stamp))
    if content.priority:
        props.append(("PRIORITY", str(content.priority)))
    props.append(("SEQUENCE", "0"))
    props.append(("STATUS", "NEEDS-ACTION"))
    text("SUMMARY", content.summary)
    text("UID", new.uid)
    text(P_ANCHOR, meta.anchor.isoformat() if meta.anchor else None)
    text(P_KIND, meta.anchor_kind.value)
    text(MARKER, meta.contact_id)
    text(P_DUE, meta.planned_due.isoformat() if meta.planned_due else None)
    text(P_EVERY, meta.every)
    text(P_FROM, meta.from_uid)
    text(P_HASH, meta.fingerprint)
    # icalendar sorts by name; the parameters of DUE do not change its place.
    props.sort(key=lambda p: p[0].split(";", 1)[0])
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "BEGIN:VTODO"]
    lines += [fold(f"{name}:{value}") for name, value in props]
    if content.alarm:
        hh, mm = (int(x) for x in content.alarm.split(":"))
        at = datetime.combine(new.due, time(hh, mm), tzinfo=tz)
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY"]
        lines.append(fold(f"DESCRIPTION:{escape_text(content.summary)}"))
        lines += [f"TRIGGER;VALUE=DATE-TIME:{_utc(at)}", f"{P_ALARM}:1", "END:VALARM"]
    lines += ["END:VTODO", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()
