"""The calendar feed: one all-day event per open kit task, for the calendar apps that
never show tasks (Google Calendar, iOS Calendar, most Android calendars).

Pure rendering (`render_feed`) plus one atomic file write (`write_feed`). Events are
all-day `VALUE=DATE` events, so the feed needs no VTIMEZONE, and each one's UID is
derived from the task key (the contact and the kind of task), so a regenerated task
moves its event instead of leaving an old one behind in subscribers' calendars.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from kit_sync.model import KitTask, Roster, Status, TaskContent, Wording
from kit_sync.occasions import BIRTHDAY, Birthdays, split_key

PRODID = "-//kit-sync//keep-in-touch feed//EN"
_STAMP_PREFIX = b"DTSTAMP:"


@dataclass(frozen=True)
class FeedEvent:
    key: str  # the task key: contact id, or contact id + kind
    day: date
    summary: str
    description: str

    @property
    def uid(self) -> str:
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:24]
        return f"kit-feed-{digest}@kit-sync"

    @property
    def digest(self) -> str:
        """What the event says (not when it was rendered)."""
        h = hashlib.sha256()
        for part in (self.key, self.day.isoformat(), self.summary, self.description):
            h.update(part.encode())
            h.update(b"\x00")
        return h.hexdigest()[:16]


def feed_events(
    tasks: Iterable[KitTask],
    roster: Roster,
    rendered: dict[str, TaskContent],
    birthdays: Birthdays | None,
    wording: Wording,
) -> list[FeedEvent]:
    """One event per open kit task with a due date, on that day: the task's title as
    the backend has it (a trip in it included) and the text kit-sync gives it."""
    from kit_sync.plan import render_birthday

    events = []
    for t in tasks:
        if t.status is not Status.OPEN or t.due is None:
            continue
        cid, kind = split_key(t.contact_id)
        contact = roster.get(cid)
        if contact is None or contact.paused:
            continue
        if kind == BIRTHDAY:
            if birthdays is None:
                continue
            content = render_birthday(contact, t.meta.anchor or t.due, birthdays, wording)
            description = content.description
        else:
            known = rendered.get(cid)
            description = known.description if known is not None else ""
        events.append(FeedEvent(t.contact_id, t.due, t.summary, description))
    return events


def fingerprint(events: Iterable[FeedEvent]) -> str:
    """Equal events (in any order), equal print."""
    joined = "|".join(sorted(ev.digest for ev in events))
    return hashlib.sha256(joined.encode()).hexdigest()[:24]


def _duration(td: timedelta) -> str:
    seconds = max(60, int(td.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and not minutes:
        return f"PT{hours}H"
    return f"PT{hours}H{minutes}M" if hours else f"PT{minutes}M"


def render_feed(
    events: Iterable[FeedEvent], *, name: str, refresh: timedelta, now: datetime
) -> bytes:
    """The feed as iCalendar bytes, events in (day, summary) order."""
    from icalendar import Calendar, vDuration

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    # Subscribers re-fetch this often: REFRESH-INTERVAL (RFC 7986) for iOS and
    # Thunderbird, X-PUBLISHED-TTL for Google Calendar and Outlook.
    ttl = _duration(refresh)
    cal.add("refresh-interval", vDuration(refresh), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", ttl)
    for ev in sorted(events, key=lambda e: (e.day, e.summary, e.key)):
        cal.add_component(vevent(ev, now))
    return bytes(cal.to_ical())


def vevent(ev: FeedEvent, now: datetime) -> Any:
    """The all-day VEVENT of one event (an icalendar.Event)."""
    from icalendar import Event

    out = Event()
    out.add("uid", ev.uid)
    out.add("dtstamp", now)
    out.add("dtstart", ev.day)
    out.add("dtend", ev.day + timedelta(days=1))
    out.add("summary", ev.summary)
    if ev.description:
        out.add("description", ev.description)
    out.add("transp", "TRANSPARENT")
    return out


def _without_stamps(data: bytes) -> bytes:
    return b"\n".join(
        line
        for line in data.replace(b"\r\n", b"\n").split(b"\n")
        if not line.startswith(_STAMP_PREFIX)
    )


def write_feed(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` atomically (temp file, fsync, rename) unless it
    already holds the same events (DTSTAMP aside). True when it wrote."""
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    if current is not None and _without_stamps(current) == _without_stamps(data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".feed-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # Readable by a web server or a calendar app of the same user, nobody else's
        # business: the feed holds names and notes.
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
