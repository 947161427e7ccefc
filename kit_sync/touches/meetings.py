"""Pure: the touches in one iCalendar object of meetings. No I/O.

A meeting is a touch of every roster contact who is its ORGANIZER or an ATTENDEE
(mailto:) and did not decline, on the local day it starts, once it has ended.
Recurring meetings are expanded (recurring-ical-events: RRULE, RDATE, EXDATE and
moved or cancelled occurrences) to their occurrences in the look-back window.
Ignored: cancelled meetings or occurrences (STATUS:CANCELLED), meetings the user
declined (the user's own ATTENDEE has PARTSTAT=DECLINED), and meetings that have
not ended yet (they count once they have: the source remembers when to look again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from kit_sync.model import MEETING, Touch
from kit_sync.touches.base import detected_touch, digest
from kit_sync.touches.match import AddressBook, normalise

#: Upcoming occurrences looked at to find when a meeting next ends (a daily
#: meeting without contacts must not make this loop forever).
LOOKAHEAD = 60


@dataclass
class Meetings:
    touches: list[Touch] = field(default_factory=list)
    # when the next not-yet-ended meeting with a contact ends (look again then)
    next_end: datetime | None = None
    read: int = 0  # occurrences looked at


def _moment(value: Any, tz: ZoneInfo) -> datetime:
    """DTSTART/DTEND values as aware datetimes: a date is midnight in the user's
    zone, a floating time is the user's local time."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=tz)
    raise ValueError(f"not a date or time: {value!r}")


def _span(event: Any, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start_value = event["DTSTART"].dt
    start = _moment(start_value, tz)
    if "DTEND" in event:
        end = _moment(event["DTEND"].dt, tz)
    elif "DURATION" in event:
        end = start + event["DURATION"].dt
    elif isinstance(start_value, datetime):
        end = start
    else:
        end = start + timedelta(days=1)  # an all-day event without an end: that day
    return start, end


def _people(values: Any) -> list[Any]:
    if values is None:
        return []
    return list(values) if isinstance(values, list) else [values]


def _contacts(event: Any, book: AddressBook, me: set[str]) -> list[str] | None:
    """Contacts in this meeting; None when the user declined or it is cancelled."""
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    found: list[str] = []
    for attendee in _people(event.get("ATTENDEE")):
        address = normalise(str(attendee))
        declined = str(attendee.params.get("PARTSTAT", "")).upper() == "DECLINED"
        if address in me:
            if declined:
                return None
            continue
        if declined:
            continue
        for cid in book.contacts_of(address):
            if cid not in found:
                found.append(cid)
    organizer = event.get("ORGANIZER")
    if organizer is not None and normalise(str(organizer)) not in me:
        for cid in book.contacts_of(str(organizer)):
            if cid not in found:
                found.append(cid)
    return found


def _occurrence_id(event: Any, start: datetime) -> str:
    uid = str(event.get("UID", ""))
    return digest("event", uid, start.astimezone(ZoneInfo("UTC")).isoformat())


def meeting_touches(
    calendar: Any,
    book: AddressBook,
    me: Iterable[str],
    since: datetime,
    now: datetime,
    tz: ZoneInfo,
    source: str,
) -> Meetings:
    """Touches of contacts in the meetings of `calendar` (an icalendar Calendar)
    that started on or after `since` and ended by `now`."""
    import recurring_ical_events

    mine = {normalise(a) for a in me}
    out = Meetings()
    query = recurring_ical_events.of(calendar, skip_bad_series=True)
    for event in query.between(since, now):
        out.read += 1
        start, end = _span(event, tz)
        if start < since:
            continue
        contacts = _contacts(event, book, mine)
        if not contacts:
            continue
        if end > now:
            _later(out, end)
            continue
        item = _occurrence_id(event, start)
        out.touches += [detected_touch(cid, start, MEETING, source, item, tz) for cid in contacts]
    for event in islice(query.after(now), LOOKAHEAD):
        start, end = _span(event, tz)
        if end > now and _contacts(event, book, mine):
            _later(out, end)
            break
    return out


def _later(out: Meetings, end: datetime) -> None:
    if out.next_end is None or end < out.next_end:
        out.next_end = end
