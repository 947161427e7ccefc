"""Past meetings reset a person's clock: the caldav-events touch source on real
Radicale and Xandikos servers, through real syncs of the local backend, and the
pure meeting rules (issue 14)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import icalendar
import pytest
from kit import BASE_CONFIG, World
from servers import KINDS, DavServer, shared

from kit_sync.model import Status
from kit_sync.state import State
from kit_sync.touches.match import AddressBook
from kit_sync.touches.meetings import meeting_touches

BERLIN = ZoneInfo("Europe/Berlin")
ANN = "ann-example-com"
BOB = "bob-example-com"

MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>work {slug}</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""


def vevent(
    start: datetime,
    minutes: int = 60,
    *,
    attendees: dict[str, str] | None = None,
    organizer: str = "me@example.com",
    status: str | None = None,
    rrule: str | None = None,
    exdate: datetime | None = None,
    uid: str | None = None,
    summary: str = "Project sync",
) -> str:
    """One VEVENT in a VCALENDAR, times with a TZID (Europe/Berlin)."""

    def stamp(dt: datetime) -> str:
        return f";TZID=Europe/Berlin:{dt.astimezone(BERLIN):%Y%m%dT%H%M%S}"

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//A Calendar App//EN",
        "BEGIN:VEVENT",
        f"UID:{uid or uuid.uuid4()}",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART{stamp(start)}",
        f"DTEND{stamp(start + timedelta(minutes=minutes))}",
        f"SUMMARY:{summary}",
        f"ORGANIZER:mailto:{organizer}",
    ]
    for address, partstat in (attendees or {}).items():
        lines.append(f"ATTENDEE;PARTSTAT={partstat}:mailto:{address}")
    if status:
        lines.append(f"STATUS:{status}")
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if exdate:
        lines.append(f"EXDATE{stamp(exdate)}")
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


# --- the pure rules ----------------------------------------------------------------------

ANN_ACCEPTS = {"ann@example.com": "ACCEPTED"}
BOOK = AddressBook([("ann@example.com", ANN), ("bob@example.com", BOB)])
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
SINCE = datetime(2026, 1, 1, tzinfo=BERLIN)


def touches_of(text: str, now: datetime = NOW) -> Any:
    cal = icalendar.Calendar.from_ical(text)
    return meeting_touches(cal, BOOK, {"me@example.com"}, SINCE, now, BERLIN, "caldav-events")


def test_attendee_and_organizer_count_on_the_start_day() -> None:
    late = datetime(2026, 3, 10, 23, 30, tzinfo=BERLIN)  # ends after midnight
    found = touches_of(vevent(late, 90, attendees={"ann@example.com": "ACCEPTED"}))
    assert [(t.contact_id, t.day, t.kind) for t in found.touches] == [
        (ANN, date(2026, 3, 10), "meeting")
    ]
    assert found.touches[0].at == late
    found = touches_of(vevent(late, organizer="BOB@example.com"))
    assert [t.contact_id for t in found.touches] == [BOB]


@pytest.mark.parametrize(
    "kw",
    [
        {"status": "CANCELLED", "attendees": {"ann@example.com": "ACCEPTED"}},
        {"attendees": {"ann@example.com": "DECLINED"}},
        {"attendees": {"ann@example.com": "ACCEPTED", "me@example.com": "DECLINED"}},
        {"attendees": {"stranger@example.org": "ACCEPTED"}},
    ],
    ids=["cancelled", "contact declined", "user declined", "no contact"],
)
def test_ignored_meetings(kw: dict[str, Any]) -> None:
    assert touches_of(vevent(datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN), **kw)).touches == []


def test_a_meeting_counts_once_it_has_ended() -> None:
    start = datetime(2026, 3, 20, 12, 30, tzinfo=BERLIN)  # 11:30 UTC, until 12:30 UTC
    text = vevent(start, attendees={"ann@example.com": "ACCEPTED"})
    running = touches_of(text)
    assert running.touches == []
    assert running.next_end == start + timedelta(hours=1)
    assert len(touches_of(text, now=NOW + timedelta(hours=1)).touches) == 1


def test_recurring_meeting_expands_to_past_occurrences_only() -> None:
    first = datetime(2026, 2, 2, 9, 0, tzinfo=BERLIN)  # Mondays, across the DST switch
    text = vevent(
        first,
        30,
        attendees={"bob@example.com": "ACCEPTED"},
        rrule="FREQ=WEEKLY;COUNT=12",
        exdate=first + timedelta(weeks=2),
    )
    found = touches_of(text, now=datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    days = [t.day for t in found.touches]
    assert days == [date(2026, 2, 2) + timedelta(weeks=n) for n in range(9) if n != 2]
    assert found.touches[-1].at == datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)  # CEST now
    assert len({t.source_uid for t in found.touches}) == len(days)
    assert found.next_end == datetime(2026, 4, 6, 9, 30, tzinfo=BERLIN)


# --- real servers ------------------------------------------------------------------------


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


class Calendar:
    def __init__(self, server: DavServer) -> None:
        self.server = server
        slug = uuid.uuid4().hex[:12]
        self.url = urljoin(server.root, server.home + slug + "/")
        with server.http() as http:
            r = http.request(
                "MKCALENDAR",
                self.url,
                content=MKCALENDAR.format(slug=slug).encode(),
                headers={"Content-Type": "application/xml; charset=utf-8"},
            )
            assert r.status_code in (200, 201), (r.status_code, r.text)

    def put(self, text: str) -> str:
        href = f"{uuid.uuid4().hex}.ics"
        with self.server.http() as http:
            r = http.put(
                urljoin(self.url, href),
                content=text.encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
            )
            assert r.status_code in (200, 201, 204), (r.status_code, r.text)
        return href

    def delete(self, href: str) -> None:
        with self.server.http() as http:
            assert http.delete(urljoin(self.url, href)).status_code in (200, 204)

    def section(self, **extra: Any) -> dict[str, Any]:
        section: dict[str, Any] = {"type": "caldav-events", "url": self.url, "timeout": 10}
        auth = self.server.auth()
        if auth is not None:
            section.update(username=auth[0], password=auth[1])
        return section | extra


@pytest.fixture
def calendar(server: DavServer) -> Calendar:
    return Calendar(server)


@pytest.fixture
def world(tmp_path: Path, calendar: Calendar) -> Iterator[World]:
    config = copy.deepcopy(BASE_CONFIG)
    config["touches"] = [calendar.section()]
    w = World(tmp_path, config)
    w.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    yield w
    if w.sources is not None:
        w.sources.close()


def detected(world: World) -> list[Any]:
    state = State(world.dir / "state.sqlite")
    try:
        return [t for t in state.touches() if t.detected]
    finally:
        state.close()


def completed(world: World, contact: str) -> list[Any]:
    return [t for t in world.tasks() if t.contact_id == contact and t.status is Status.COMPLETED]


@pytest.mark.integration
def test_past_meeting_regenerates_from_its_day_and_ignored_ones_do_not(
    world: World, calendar: Calendar
) -> None:
    world.sync()
    ann_task = world.the_open(ANN)
    meeting = datetime(2026, 3, 5, 16, 0, tzinfo=BERLIN)
    calendar.put(vevent(meeting, attendees={"ann@example.com": "ACCEPTED"}))
    calendar.put(vevent(meeting, attendees={"bob@example.com": "ACCEPTED"}, status="CANCELLED"))
    calendar.put(vevent(meeting, attendees={"bob@example.com": "DECLINED"}))
    calendar.put(vevent(meeting, attendees={"stranger@elsewhere.example": "ACCEPTED"}))
    later = datetime(2026, 3, 12, 10, 0, tzinfo=BERLIN)  # still ahead at the next sync
    calendar.put(vevent(later, attendees={"bob@example.com": "TENTATIVE"}))

    world.at(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    result = world.sync()
    assert result.source_failures == []
    (done,) = completed(world, ANN)
    assert done.uid == ann_task.uid
    assert done.completed == meeting.astimezone(UTC)
    assert "Detected: meeting 2026-03-05" in (world.folder / done.href).read_text().replace(
        "\r\n ", ""
    )
    assert world.the_open(ANN).due == date(2026, 3, 26)  # 5 March + 3 weeks
    assert completed(world, BOB) == []
    for path in world.dir.glob("state.sqlite*"):  # people not on the roster: no trace
        assert b"stranger" not in path.read_bytes() and b"elsewhere" not in path.read_bytes()

    # The future meeting has happened by the next sync: it counts then, though the
    # server reports no change.
    world.at(datetime(2026, 3, 13, 9, 0, tzinfo=UTC))
    world.sync()
    (bob_done,) = completed(world, BOB)
    assert bob_done.completed == later.astimezone(UTC)
    assert world.the_open(BOB).due == date(2026, 5, 12)  # 12 March + 2 months


@pytest.mark.integration
def test_recurring_meeting_counts_its_latest_past_occurrence(
    world: World, calendar: Calendar
) -> None:
    world.sync()
    calendar.put(
        vevent(
            datetime(2026, 2, 23, 9, 0, tzinfo=BERLIN),
            attendees={"me@example.com": "ACCEPTED"},
            organizer="bob@example.com",
            rrule="FREQ=WEEKLY;BYDAY=MO",
        )
    )
    world.at(datetime(2026, 3, 17, 9, 0, tzinfo=UTC))  # a Tuesday
    world.sync()
    (done,) = completed(world, BOB)
    assert done.completed == datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN).astimezone(UTC)
    # 23 Feb is before the task was created (2 March): journaled, but only the
    # latest occurrence completes the task.
    assert sorted(t.day for t in detected(world)) == [
        date(2026, 2, 23),
        date(2026, 3, 2),
        date(2026, 3, 9),
        date(2026, 3, 16),
    ]
    assert world.the_open(BOB).due == date(2026, 5, 16)


@pytest.mark.integration
def test_sync_twice_or_without_state_counts_no_meeting_twice(
    world: World, calendar: Calendar
) -> None:
    world.sync()
    href = calendar.put(vevent(datetime(2026, 3, 3, 12, 0, tzinfo=BERLIN), attendees=ANN_ACCEPTS))
    world.at(datetime(2026, 3, 4, 9, 0, tzinfo=UTC))
    world.sync()
    tasks = {t.uid: (t.status, t.due) for t in world.tasks()}
    assert sum(world.sync().counts.values()) == 0
    # A deleted meeting does not undo the touch.
    calendar.delete(href)
    world.advance(hours=1)
    assert sum(world.sync().counts.values()) == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks
    assert len(detected(world)) == 1

    calendar.put(vevent(datetime(2026, 3, 3, 12, 0, tzinfo=BERLIN), attendees=ANN_ACCEPTS))
    assert world.sources is not None
    world.sources.close()
    world.sources = None
    for path in world.dir.glob("state.sqlite*"):
        path.unlink()
    world.advance(hours=1)
    again = world.sync()
    assert again.counts["regenerated"] == 0 and again.counts["created"] == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks


@pytest.mark.integration
def test_idle_check_is_one_request(world: World, calendar: Calendar) -> None:
    from kit_sync.config import CaldavEventsSourceConfig
    from kit_sync.touches.caldav_events import CaldavEventsSource

    calendar.put(vevent(datetime(2026, 3, 3, 12, 0, tzinfo=BERLIN), attendees=ANN_ACCEPTS))
    source = CaldavEventsSource(CaldavEventsSourceConfig.model_validate(calendar.section()), BERLIN)
    now = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    try:
        first = source.fetch_touches(BOOK, SINCE, now, None)
        assert [t.contact_id for t in first.touches] == [ANN]
        before = source.requests
        idle = source.fetch_touches(BOOK, SINCE, now, first.cursor)
        assert idle.touches == []
        assert source.requests - before <= 1
    finally:
        source.close()


@pytest.mark.integration
def test_unreachable_calendar_is_reported_and_tasks_still_sync(tmp_path: Path) -> None:
    from servers import free_port

    config = copy.deepcopy(BASE_CONFIG)
    config["touches"] = [
        {"type": "caldav-events", "url": f"http://127.0.0.1:{free_port()}/cal/", "timeout": 5}
    ]
    world = World(tmp_path, config)
    result = world.sync()
    assert len(world.open_tasks()) == 2
    (line,) = result.source_failures
    assert "caldav-events http://127.0.0.1" in line and "connection refused" in line
