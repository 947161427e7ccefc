"""New tasks are written without icalendar's component model (backends/icalwrite.py):
what icalendar reads back from that text is exactly what was meant, for any text a
roster can hold, and the task the local backend builds without parsing back equals
the task parsing gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from kit_sync.backends.ical import task_from_ical
from kit_sync.backends.icalwrite import fold, new_vtodo
from kit_sync.backends.local import LocalBackend, etag_of, written_task
from kit_sync.model import AnchorKind, KitMeta, NewTask, TaskContent, make_uid

# Any text, with the characters TEXT escaping is about, long lines and non-ASCII.
# Lone CRs are left out: icalendar keeps one raw (the line then breaks), we write
# it as a newline.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",;:\\\n\"'^ é€😀ß中\t")),
        st.characters(blacklist_categories=("Cs", "Cc")),
    ),
    max_size=200,
).map(lambda s: s.replace("\\N", "\\n"))  # icalendar reads \N as a newline (RFC 5545)
WORD = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
DAY = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])


# Contact ids as rosters make them (slugs, or an `id:` a user typed): kit-sync reads
# its properties back stripped, so an id with outer spaces would not round-trip.
CONTACT_ID = WORD.map(str.strip).filter(bool)


@st.composite
def new_tasks(draw: st.DrawFn) -> NewTask:
    cid = draw(CONTACT_ID)
    content = TaskContent(
        summary=draw(WORD),
        description=draw(TEXT.filter(bool)),
        categories=tuple(draw(st.lists(WORD, max_size=3))),
        priority=draw(st.integers(0, 9)),
        alarm=draw(st.none() | st.sampled_from(["09:00", "00:00", "23:59", "7:30"])),
    )
    anchor = draw(DAY)
    due = draw(DAY)
    meta = KitMeta(
        cid,
        anchor,
        draw(st.sampled_from(list(AnchorKind))),
        draw(st.sampled_from(["P21D", "P2M", "P1Y"])),
        due,
        draw(st.none() | st.just(make_uid(cid, "before"))),
        content.fingerprint,
    )
    return NewTask(make_uid(cid, draw(WORD)), due, content, meta)


def normalized(text: str) -> str:
    return text.replace("\r\n", "\n")


@settings(max_examples=150, deadline=None)
@given(new=new_tasks(), zone=ZONES, seconds=st.integers(0, 10**9))
def test_icalendar_reads_back_what_was_written(new: NewTask, zone: str, seconds: int) -> None:
    tz = ZoneInfo(zone)
    now = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=123)
    data = new_vtodo(new, tz, now)
    for raw_line in data.split(b"\r\n"):
        assert len(raw_line) <= 75  # folded (RFC 5545 3.1)
    cal = Calendar.from_ical(data)
    assert str(cal["VERSION"]) == "2.0"
    (todo,) = cal.walk("VTODO")
    assert str(todo["UID"]) == new.uid
    assert str(todo["SUMMARY"]) == new.content.summary
    assert str(todo["DESCRIPTION"]) == normalized(new.content.description)
    if new.content.categories:
        assert [str(c) for c in todo["CATEGORIES"].cats] == list(new.content.categories)
    else:
        assert "CATEGORIES" not in todo
    assert int(todo.get("PRIORITY", 0)) == new.content.priority
    assert todo["DUE"].dt == new.due
    stamp = now.replace(microsecond=0)
    for name in ("DTSTAMP", "CREATED", "LAST-MODIFIED"):
        assert todo[name].dt == stamp
    assert str(todo["STATUS"]) == "NEEDS-ACTION"
    alarms = todo.walk("VALARM")
    if new.content.alarm:
        (alarm,) = alarms
        hh, mm = (int(x) for x in new.content.alarm.split(":"))
        assert alarm["TRIGGER"].dt == datetime.combine(new.due, time(hh, mm), tzinfo=tz)
        assert str(alarm["DESCRIPTION"]) == new.content.summary
    else:
        assert alarms == []
    # The task the local backend builds from `new` is the one parsing the file gives.
    href = "x.ics"
    parsed = task_from_ical(data, href, etag_of(data))
    assert parsed == written_task(new, href, data, now)


@given(st.text(alphabet=st.sampled_from(list("ab\\^é€😀 ")), max_size=400))
def test_folding_keeps_the_text_and_escapes_together(text: str) -> None:
    folded = fold("DESCRIPTION:" + text)
    parts = folded.split("\r\n ")
    assert "".join(parts) == "DESCRIPTION:" + text
    assert all(len(p.encode()) <= 75 for p in parts)
    assert all(not p.endswith("\\") or len(p) == 1 for p in parts[:-1])


def test_a_local_create_writes_exactly_that_text(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "tasks"
    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    tz = ZoneInfo("Europe/Berlin")
    backend = LocalBackend(SimpleNamespace(path=folder), tz, clock=lambda: now)
    content = TaskContent("Keep in touch with Ann", "Notes, more; notes\nline 2", ("a,b",), 1)
    meta = KitMeta("ann", date(2026, 11, 21), AnchorKind.NEW, "P21D", date(2026, 12, 12))
    new = NewTask(make_uid("ann", "1"), date(2026, 12, 12), content, meta)
    task = backend.create_task(new)
    data = (folder / task.href).read_bytes()
    assert data == new_vtodo(new, tz, now)
    assert backend.fetch_listing().tasks == [task]
