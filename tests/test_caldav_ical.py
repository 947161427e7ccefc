"""Reading completions the way real CalDAV clients write them (kit_sync/backends/ical.py).

Pure: VTODO text in, KitTask out. The same completions are written to real servers
by an independent client in test_caldav_clients.py.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from kit import BASE_CONFIG, World

from kit_sync.backends.ical import apply_change, new_vtodo, parse_calendar, task_from_ical
from kit_sync.cadence import local_day
from kit_sync.model import (
    AnchorKind,
    KitMeta,
    KitTask,
    NewTask,
    Status,
    TaskChange,
    TaskContent,
    make_uid,
)

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
DUE = date(2026, 12, 14)
ANN = "ann-example-com"


def fresh() -> bytes:
    content = TaskContent("Keep in touch with Ann", "How: lunch", ("Keep in touch",), 1)
    meta = KitMeta("ann", date(2026, 11, 23), AnchorKind.TOUCH, "P21D", DUE, None, "f")
    return new_vtodo(NewTask(make_uid("ann", "1"), DUE, content, meta), TZ, NOW)


def read(data: bytes) -> KitTask:
    task = task_from_ical(data, "x.ics", "e")
    assert isinstance(task, KitTask), task
    return task


def add_lines(data: bytes, *lines: str, drop: tuple[str, ...] = ()) -> bytes:
    text = data.decode()
    kept = [ln for ln in text.split("\r\n") if not (drop and ln.startswith(drop))]
    text = "\r\n".join(kept)
    extra = "".join(f"{ln}\r\n" for ln in lines)
    return text.replace("END:VTODO", extra + "END:VTODO", 1).encode()


def set_due(data: bytes, due: date) -> bytes:
    return data.replace(
        f"DUE;VALUE=DATE:{DUE:%Y%m%d}".encode(), f"DUE;VALUE=DATE:{due:%Y%m%d}".encode()
    )


def override(data: bytes, *lines: str) -> bytes:
    """Thunderbird: a second VTODO with the same UID and RECURRENCE-ID, completed."""
    uid = read(data).uid
    block = (
        "BEGIN:VTODO\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20261205T080000Z\r\n"
        f"RECURRENCE-ID;VALUE=DATE:{DUE:%Y%m%d}\r\n"
        f"DUE;VALUE=DATE:{DUE:%Y%m%d}\r\n"
        "SUMMARY:Keep in touch with Ann\r\n"
        + "".join(f"{ln}\r\n" for ln in lines)
        + "END:VTODO\r\n"
    )
    return data.replace(b"END:VCALENDAR", block.encode() + b"END:VCALENDAR")


def test_plain_task_does_not_recur() -> None:
    task = read(fresh())
    assert task.status is Status.OPEN
    assert not task.recurring


@pytest.mark.parametrize(
    ("lines", "day"),
    [
        (["STATUS:COMPLETED", "COMPLETED:20261205T224500Z"], date(2026, 12, 5)),  # 23:45 Berlin
        (["STATUS:COMPLETED", "COMPLETED:20261205T233000Z"], date(2026, 12, 6)),  # 00:30 Berlin
        (["STATUS:COMPLETED", "COMPLETED:20261205T233000"], date(2026, 12, 5)),  # floating
        (
            ["STATUS:COMPLETED", "COMPLETED;TZID=America/New_York:20261205T200000"],
            date(2026, 12, 6),
        ),
        (["STATUS:COMPLETED", "COMPLETED;VALUE=DATE:20261205"], date(2026, 12, 5)),
        (["PERCENT-COMPLETE:100"], None),
        (["STATUS:COMPLETED"], None),
    ],
)
def test_completion_stamps(lines: list[str], day: date | None) -> None:
    task = read(add_lines(fresh(), *lines, drop=("STATUS:",)))
    assert task.status is Status.COMPLETED
    assert not task.recurring
    if day is None:
        assert task.completed is None  # the engine uses the time it first saw it
    else:
        assert task.completed is not None
        assert local_day(task.completed, TZ) == day


def test_nextcloud_completes_the_series() -> None:
    data = add_lines(
        fresh(),
        "RRULE:FREQ=WEEKLY",
        "STATUS:COMPLETED",
        "COMPLETED:20261205T090000Z",
        drop=("STATUS:",),
    )
    task = read(data)
    assert task.status is Status.COMPLETED
    assert task.recurring
    assert task.completed == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_thunderbird_override_completes_the_occurrence() -> None:
    data = override(
        add_lines(fresh(), "RRULE:FREQ=WEEKLY;INTERVAL=3"),
        "STATUS:COMPLETED",
        "COMPLETED:20261206T071500Z",
        "PERCENT-COMPLETE:100",
    )
    task = read(data)
    assert task.status is Status.COMPLETED
    assert task.recurring
    assert task.completed == datetime(2026, 12, 6, 7, 15, tzinfo=UTC)
    assert task.due == DUE  # read from the master, not the override


def test_open_override_is_not_a_completion() -> None:
    data = override(add_lines(fresh(), "RRULE:FREQ=WEEKLY"), "STATUS:NEEDS-ACTION")
    task = read(data)
    assert task.status is Status.OPEN
    assert task.recurring


def test_tasks_org_moves_the_task_in_place() -> None:
    moved = set_due(add_lines(fresh(), "RRULE:FREQ=WEEKLY;INTERVAL=3"), DUE + timedelta(days=21))
    moved = moved.replace(b"LAST-MODIFIED:20261121T100000Z", b"LAST-MODIFIED:20261207T183000Z")
    task = read(moved)
    assert task.status is Status.COMPLETED
    assert task.recurring
    assert task.completed == datetime(2026, 12, 7, 18, 30, tzinfo=UTC)


def test_rrule_added_but_not_completed_stays_open() -> None:
    task = read(add_lines(fresh(), "RRULE:FREQ=MONTHLY"))
    assert task.status is Status.OPEN
    assert task.recurring
    assert task.completed is None


def test_snooze_without_rrule_is_not_a_completion() -> None:
    task = read(set_due(fresh(), DUE + timedelta(days=5)))
    assert task.status is Status.OPEN
    assert task.snoozed


def test_freezing_a_moved_task_drops_the_rrule_and_restores_the_due() -> None:
    moved = set_due(add_lines(fresh(), "RRULE:FREQ=WEEKLY;INTERVAL=3"), DUE + timedelta(days=21))
    stamp = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)
    data = apply_change(moved, TaskChange(status=Status.COMPLETED, completed_at=stamp), TZ, NOW)
    assert b"RRULE" not in data
    task = read(data)
    assert task.status is Status.COMPLETED
    assert not task.recurring
    assert task.due == DUE
    assert task.completed == stamp


def test_freezing_an_override_keeps_one_plain_vtodo() -> None:
    data = override(
        add_lines(fresh(), "RRULE:FREQ=WEEKLY", "X-CLIENT-COLOUR:red"),
        "STATUS:COMPLETED",
        "COMPLETED:20261206T071500Z",
    )
    stamp = datetime(2026, 12, 6, 7, 15, tzinfo=UTC)
    out = apply_change(data, TaskChange(status=Status.COMPLETED, completed_at=stamp), TZ, NOW)
    cal = parse_calendar(out)
    todos = list(cal.walk("VTODO"))
    assert len(todos) == 1
    assert "RECURRENCE-ID" not in todos[0]
    assert b"X-CLIENT-COLOUR:red" in out  # a client's own property is kept
    task = read(out)
    assert (task.status, task.recurring, task.completed) == (Status.COMPLETED, False, stamp)


def test_any_kit_write_drops_a_user_added_rrule() -> None:
    data = add_lines(fresh(), "RRULE:FREQ=MONTHLY", "EXDATE;VALUE=DATE:20270114")
    out = apply_change(data, TaskChange(due=date(2027, 1, 4)), TZ, NOW)
    assert b"RRULE" not in out and b"EXDATE" not in out
    assert read(out).due == date(2027, 1, 4)


def test_completion_with_utc_offset_tzid_is_aware() -> None:
    data = add_lines(fresh(), "STATUS:COMPLETED", "COMPLETED:20261205T230000Z", drop=("STATUS:",))
    task = read(data)
    assert isinstance(task.completed, datetime)
    assert task.completed.utcoffset() == UTC.utcoffset(None)


# --- the same through the engine, on the local backend --------------------------------


def test_engine_regenerates_from_a_task_moved_in_place(tmp_path: Path) -> None:
    world = World(tmp_path, copy.deepcopy(BASE_CONFIG))
    world.sync()
    ann = world.the_open(ANN)
    assert ann.due is not None and ann.meta.planned_due == ann.due
    world.at(datetime(2026, 12, 2, 17, 0, tzinfo=UTC))
    moved_due = ann.due + timedelta(days=21)

    def move(text: str) -> str:
        text = re.sub(r"DUE;VALUE=DATE:\d{8}", f"DUE;VALUE=DATE:{moved_due:%Y%m%d}", text)
        text = re.sub(r"LAST-MODIFIED:[0-9TZ]+", "LAST-MODIFIED:20261202T160000Z", text)
        return text.replace("END:VTODO", "RRULE:FREQ=WEEKLY;INTERVAL=3\r\nEND:VTODO", 1)

    world.edit_raw(ann, move)
    result = world.sync()
    assert result.ok
    fresh_ann = world.the_open(ANN)
    assert fresh_ann.uid != ann.uid
    assert fresh_ann.due == date(2026, 12, 2) + timedelta(weeks=3)
    assert fresh_ann.meta.from_uid == ann.uid
    old = next(t for t in world.tasks() if t.uid == ann.uid)
    assert (old.status, old.recurring, old.due) == (Status.COMPLETED, False, ann.due)
    assert b"RRULE" not in (world.folder / ann.href).read_bytes()
    again = world.sync()  # idempotent: nothing left to do
    assert sum(again.counts.values()) == 0


def test_engine_regenerates_from_a_thunderbird_override(tmp_path: Path) -> None:
    world = World(tmp_path, copy.deepcopy(BASE_CONFIG))
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))

    def complete_one(text: str) -> str:
        text = text.replace("END:VTODO", "RRULE:FREQ=WEEKLY;INTERVAL=3\r\nEND:VTODO", 1)
        block = (
            f"BEGIN:VTODO\r\nUID:{ann.uid}\r\nDTSTAMP:20261203T200000Z\r\n"
            f"RECURRENCE-ID;VALUE=DATE:{ann.due:%Y%m%d}\r\nSTATUS:COMPLETED\r\n"
            "COMPLETED:20261203T200000Z\r\nEND:VTODO\r\n"
        )
        return text.replace("END:VCALENDAR", block + "END:VCALENDAR")

    world.edit_raw(ann, complete_one)
    assert world.sync().ok
    fresh_ann = world.the_open(ANN)
    assert fresh_ann.due == date(2026, 12, 3) + timedelta(weeks=3)
    old = next(t for t in world.tasks() if t.uid == ann.uid)
    assert (old.status, old.recurring) == (Status.COMPLETED, False)
    assert old.completed == datetime(2026, 12, 3, 20, 0, tzinfo=UTC)
