"""VTODO <-> KitTask, shared by the local (vdir) and CalDAV backends.

Reading is forgiving (clients write COMPLETED in UTC, floating, with a TZID, or as
a date; some drop our private properties); writing is conservative: an update
edits only the properties kit-sync manages and keeps everything else a client
put on the task (its own alarms, geo, colour, sort order, ...).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Alarm, Calendar, Component, Todo

from kit_sync.backends import icalwrite
from kit_sync.backends.icalwrite import (
    P_ALARM,
    P_ANCHOR,
    P_DUE,
    P_EVERY,
    P_FROM,
    P_HASH,
    P_KIND,
)
from kit_sync.model import (
    MARKER,
    AnchorKind,
    ItemProblem,
    KitMeta,
    KitTask,
    NewTask,
    Status,
    TaskChange,
    TaskContent,
    contact_from_uid,
)

META_PROPS = (MARKER, P_ANCHOR, P_KIND, P_EVERY, P_DUE, P_FROM, P_HASH)

log = logging.getLogger("kit_sync")


class ParseError(ValueError):
    pass


def _text(todo: Todo, name: str) -> str | None:
    value = todo.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0]
    text = value.to_ical().decode() if hasattr(value, "to_ical") else str(value)
    text = text.replace("\\,", ",").replace("\\;", ";").replace("\\n", "\n").replace("\\\\", "\\")
    return text.strip() or None


def _date_prop(todo: Todo, name: str) -> date | None:
    text = _text(todo, name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _due(todo: Todo) -> date | None:
    if "DUE" not in todo:
        return None
    prop: Any = todo["DUE"]
    value = prop.dt
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def completed_stamp(todo: Todo) -> datetime | date | None:
    """COMPLETED as written: aware (UTC or TZID), naive (floating), or a date."""
    if "COMPLETED" not in todo:
        return None
    prop: Any = todo["COMPLETED"]
    value = prop.dt
    if isinstance(value, datetime) and value.tzinfo is None:
        tzid = prop.params.get("TZID")
        if tzid:
            try:
                return value.replace(tzinfo=ZoneInfo(str(tzid).strip("/")))
            except (ZoneInfoNotFoundError, ValueError):
                return value  # unknown zone name (e.g. Windows): treat as local time
    if isinstance(value, datetime | date):
        return value
    return None


def status_of(todo: Todo) -> Status:
    status = str(todo.get("STATUS", "")).upper()
    if status == "CANCELLED":
        return Status.CANCELLED
    if status == "COMPLETED" or "COMPLETED" in todo:
        return Status.COMPLETED
    try:
        if int(str(todo.get("PERCENT-COMPLETE", 0))) >= 100:
            return Status.COMPLETED
    except ValueError:
        pass
    return Status.OPEN


def owner_of(todo: Todo) -> str | None:
    """The contact id (task key) when this VTODO is kit-sync's, else None (foreign).

    Ours means a kit UID: kit-sync writes it with its marker, and the UID names the
    contact, so a task whose private properties a client dropped stays ours. A
    marker alone is not enough: a task a user (or an app) copied from a kit task
    keeps the marker but gets its own UID, and is none of kit-sync's business."""
    return contact_from_uid(str(todo.get("UID", "")))


#: hrefs already reported as marker-only (foreign) items by this process
_warned_foreign: set[str] = set()


def _foreign_marker(todo: Todo, href: str) -> None:
    """A marker without a kit UID: foreign, left alone, reported once."""
    marker = _text(todo, MARKER)
    if marker and href not in _warned_foreign:
        _warned_foreign.add(href)
        log.warning(
            "%s carries kit-sync's marker (%s) but not a kit-sync UID: a copy made by "
            "a client or by hand. kit-sync leaves it alone (delete it if it is a "
            "stray copy)",
            href,
            marker,
            extra={"href": href},
        )


def find_todo(cal: Calendar) -> Todo | None:
    todos = [c for c in cal.walk("VTODO") if isinstance(c, Todo)]
    if not todos:
        return None
    masters = [t for t in todos if "RECURRENCE-ID" not in t]
    return (masters or todos)[0]


RECURRENCE_PROPS = ("RRULE", "RDATE", "EXDATE")


def _overrides(cal: Calendar, master: Todo) -> list[Todo]:
    """Instances of a recurring VTODO a client wrote separately (RECURRENCE-ID)."""
    return [
        c
        for c in cal.walk("VTODO")
        if isinstance(c, Todo) and c is not master and "RECURRENCE-ID" in c
    ]


def _stamp(todo: Todo, name: str) -> datetime | None:
    if name not in todo:
        return None
    prop: Any = todo[name]
    value = prop.dt
    return value if isinstance(value, datetime) else None


def _created(todo: Todo) -> datetime | None:
    """CREATED as an aware stamp (UTC by RFC 5545; a floating one is taken as UTC)."""
    try:
        stamp = _stamp(todo, "CREATED")
    except (ValueError, TypeError, AttributeError):
        return None
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp


def recurring_completion(
    cal: Calendar, todo: Todo, due: date | None, planned_due: date | None
) -> tuple[bool, datetime | date | None] | None:
    """How a client completed a kit task a user had made repeating (it added an RRULE).

    kit-sync never writes RRULE, but clients let users add one, and then disagree on
    what completing it means: Nextcloud Tasks completes the series (plain STATUS,
    read as usual), Thunderbird writes a completed override instance (RECURRENCE-ID)
    and leaves the series open, tasks.org moves the task in place (DUE jumps to the
    next occurrence, the task stays open). Returns None when the item does not recur;
    else (completed, stamp): an override's COMPLETED, or for a task moved in place
    its LAST-MODIFIED (None when missing: the engine then uses the time it first saw
    the change). A due moved forward on a repeating task reads as a completion, not
    a snooze.
    """
    overrides = _overrides(cal, todo)
    if not overrides and not any(name in todo for name in RECURRENCE_PROPS):
        return None
    done = [o for o in overrides if status_of(o) is Status.COMPLETED]
    if done:
        stamps = [s for s in (completed_stamp(o) for o in done) if s is not None]
        aware = [s for s in stamps if isinstance(s, datetime) and s.tzinfo is not None]
        stamp: datetime | date | None = max(aware) if aware else (stamps[0] if stamps else None)
        return True, stamp
    if "RRULE" in todo and planned_due and due and due > planned_due:
        return True, _stamp(todo, "LAST-MODIFIED")
    return False, None


def parse_calendar(data: bytes | str) -> Calendar:
    try:
        cal = Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ParseError(f"not valid iCalendar data ({exc})") from None
    if isinstance(cal, list):
        cal = cal[0]
    return cal


def task_from_ical(data: bytes, href: str, etag: str) -> KitTask | ItemProblem | None:
    """A KitTask for a kit-owned VTODO, None for foreign or non-task items, an
    ItemProblem for something unreadable (with the contact id when recognisable)."""
    try:
        cal = parse_calendar(data)
        todo = find_todo(cal)
    except ParseError as exc:
        return ItemProblem(href, str(exc), _sniff_marker(data))
    if todo is None:
        return None
    cid = owner_of(todo)
    if cid is None:
        _foreign_marker(todo, href)
        return None
    try:
        kind_text = (_text(todo, P_KIND) or AnchorKind.TOUCH.value).lower()
        meta = KitMeta(
            contact_id=cid,
            anchor=_date_prop(todo, P_ANCHOR),
            anchor_kind=AnchorKind(kind_text)
            if kind_text in ("new", "touch")
            else AnchorKind.TOUCH,
            every=_text(todo, P_EVERY),
            planned_due=_date_prop(todo, P_DUE),
            from_uid=_text(todo, P_FROM),
            fingerprint=_text(todo, P_HASH),
        )
        status = status_of(todo)
        due = _due(todo)
        completed = completed_stamp(todo)
        recurs = recurring_completion(cal, todo, due, meta.planned_due)
        if recurs is not None and status is Status.OPEN and recurs[0]:
            status, completed = Status.COMPLETED, recurs[1]
        return KitTask(
            uid=str(todo.get("UID", "")),
            href=href,
            etag=etag,
            status=status,
            due=due,
            meta=meta,
            summary=_text(todo, "SUMMARY") or "",
            completed=completed,
            recurring=recurs is not None,
            created=_created(todo),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return ItemProblem(href, f"cannot read the task ({exc})", cid)


def _sniff_marker(data: bytes) -> str | None:
    text = data.decode("utf-8", "replace")
    for line in text.splitlines():
        # Only a kit UID makes an item ours (see owner_of), unreadable or not.
        if line.upper().startswith("UID:"):
            cid = contact_from_uid(line.split(":", 1)[1].strip())
            if cid:
                return cid
    return None


def _set(todo: Component, name: str, value: object, **params: str) -> None:
    if name in todo:
        del todo[name]
    if value is not None and value != "":
        if params:
            todo.add(name, value, parameters=params)
        else:
            todo.add(name, value)


def _set_meta(todo: Todo, meta: KitMeta) -> None:
    values = {
        MARKER: meta.contact_id,
        P_ANCHOR: meta.anchor.isoformat() if meta.anchor else None,
        P_KIND: meta.anchor_kind.value,
        P_EVERY: meta.every,
        P_DUE: meta.planned_due.isoformat() if meta.planned_due else None,
        P_FROM: meta.from_uid,
        P_HASH: meta.fingerprint,
    }
    for name, value in values.items():
        _set(todo, name, value)


def _set_content(todo: Todo, content: TaskContent, due: date | None, tz: ZoneInfo) -> None:
    _set(todo, "SUMMARY", content.summary)
    _set(todo, "DESCRIPTION", content.description)
    if "CATEGORIES" in todo:
        del todo["CATEGORIES"]
    if content.categories:
        todo.add("CATEGORIES", list(content.categories))
    _set(todo, "PRIORITY", content.priority or None)
    # Replace only our own alarm; a client's alarms stay.
    todo.subcomponents = [
        c for c in todo.subcomponents if not (c.name == "VALARM" and P_ALARM in c)
    ]
    if content.alarm and due is not None:
        hh, mm = (int(x) for x in content.alarm.split(":"))
        at = datetime.combine(due, time(hh, mm), tzinfo=tz).astimezone(UTC)
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", content.summary)
        alarm.add("TRIGGER", at, parameters={"VALUE": "DATE-TIME"})
        alarm.add(P_ALARM, "1")
        todo.add_component(alarm)


def _touch_stamps(todo: Todo, now: datetime, bump: bool) -> None:
    stamp = now.astimezone(UTC).replace(microsecond=0)
    _set(todo, "DTSTAMP", stamp)
    _set(todo, "LAST-MODIFIED", stamp)
    if bump:
        try:
            seq = int(str(todo.get("SEQUENCE", 0)))
        except ValueError:
            seq = 0
        _set(todo, "SEQUENCE", seq + 1)


def new_vtodo(new: NewTask, tz: ZoneInfo, now: datetime) -> bytes:
    """A new kit task's iCalendar text (written directly, see icalwrite)."""
    return icalwrite.new_vtodo(new, tz, now)


def apply_change(data: bytes, change: TaskChange, tz: ZoneInfo, now: datetime) -> bytes:
    """The item's data with `change` applied; everything else kept as it was."""
    cal = parse_calendar(data)
    todo = find_todo(cal)
    if todo is None:
        raise ParseError("the item holds no VTODO")
    _drop_recurrence(cal, todo, change)
    due = change.due if change.due is not None else _due(todo)
    if change.due is not None:
        _set(todo, "DUE", change.due)
    if change.content is not None:
        _set_content(todo, change.content, due, tz)
    elif change.due is not None:
        # keep our alarm on the (new) due day
        for alarm in todo.subcomponents:
            if alarm.name == "VALARM" and P_ALARM in alarm and "TRIGGER" in alarm:
                trigger: Any = alarm["TRIGGER"]
                old = trigger.dt
                if isinstance(old, datetime):
                    local = old.astimezone(tz)
                    at = datetime.combine(change.due, local.time(), tzinfo=tz).astimezone(UTC)
                    _set(alarm, "TRIGGER", at, VALUE="DATE-TIME")
    if change.meta is not None:
        _set_meta(todo, change.meta)
    if change.status is Status.COMPLETED:
        stamp = (change.completed_at or now).astimezone(UTC).replace(microsecond=0)
        _set(todo, "STATUS", "COMPLETED")
        _set(todo, "COMPLETED", stamp)
        _set(todo, "PERCENT-COMPLETE", 100)
    elif change.status is Status.CANCELLED:
        _set(todo, "STATUS", "CANCELLED")
    elif change.status is Status.OPEN:
        _set(todo, "STATUS", "NEEDS-ACTION")
        for name in ("COMPLETED", "PERCENT-COMPLETE"):
            if name in todo:
                del todo[name]
    _touch_stamps(todo, now, bump=True)
    return bytes(cal.to_ical())


def _drop_recurrence(cal: Calendar, todo: Todo, change: TaskChange) -> None:
    """kit-sync regenerates tasks itself and never writes RRULE: any write to a task a
    user made repeating turns it back into one plain occurrence. When that write
    completes a task a client moved in place (tasks.org), the due date it had before
    the move comes back, so the history shows when it was really due."""
    overrides = _overrides(cal, todo)
    if not overrides and not any(name in todo for name in RECURRENCE_PROPS):
        return
    if change.status is Status.COMPLETED and change.due is None and "RRULE" in todo:
        planned = _date_prop(todo, P_DUE)
        current = _due(todo)
        if planned is not None and current is not None and current > planned:
            _set(todo, "DUE", planned)
    for name in RECURRENCE_PROPS:
        if name in todo:
            del todo[name]
    cal.subcomponents = [c for c in cal.subcomponents if not any(c is o for o in overrides)]
