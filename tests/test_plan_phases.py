"""build_plan, phase by phase, as a table: Inputs -> the actions it plans.

Each row is one situation on the backend (tasks as a client left them, the journal,
the roster) and the plan it must give: the action kinds, for whom, and why. The
phases (kit_sync/plan.py) are: retractions, touches, stamp repairs, retire,
create/regenerate, dedupe/refresh."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kit_sync.cadence import Interval
from kit_sync.model import (
    Contact,
    KitTask,
    RemovalPolicy,
    Roster,
    Status,
    Touch,
    Wording,
)
from kit_sync.plan import Inputs, Plan, build_plan

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 20, 9, tzinfo=UTC)


def person(cid: str, every: str = "2 weeks", paused: bool = False) -> Contact:
    return Contact(cid, f"Person {cid}", Interval.parse(every), paused=paused)


def inputs(*people: Contact, tasks: list[KitTask] | None = None, **kw: Any) -> Inputs:
    return Inputs(Roster(list(people)), tasks or [], [], NOW, TZ, **kw)


def stored(cid: str, n: int = 0, every: str = "2 weeks") -> KitTask:
    """The open task kit-sync itself would have written for `cid` (up to date)."""
    plan = build_plan(inputs(person(cid, every)))
    (action,) = plan.actions
    assert action.new is not None
    new = action.new
    due = action.to_place.nominal if action.to_place is not None else new.due
    meta = replace(new.meta, planned_due=due)
    uid = new.uid if n == 0 else f"{cid}-{n}@kit-sync"
    return KitTask(uid, f"{uid}.ics", f'"{n}"', Status.OPEN, due, meta, new.content.summary)


def done(task: KitTask, on: datetime | None) -> KitTask:
    return replace(task, status=Status.COMPLETED, completed=on)


@dataclass(frozen=True)
class Row:
    name: str
    given: Callable[[], Inputs]
    actions: list[tuple[str, str, str]]  # (kind, contact, a word of the reason)
    touches: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def written(given: Inputs) -> list[KitTask]:
    """The backend after kit-sync wrote the creates of `given`'s plan."""
    out = list(given.tasks)
    for a in build_plan(given).actions:
        if a.new is not None:
            due = a.to_place.nominal if a.to_place is not None else a.new.due
            meta = replace(a.new.meta, planned_due=due)
            out.append(
                KitTask(a.new.uid, a.new.uid, '"1"', Status.OPEN, due, meta, a.new.content.summary)
            )
    return out


def _completed_and_regenerated() -> Inputs:
    old = done(stored("ann"), datetime(2026, 3, 18, 10, tzinfo=UTC))
    journal = [Touch("ann", date(2026, 3, 18), "backend", old.uid)]
    given = replace(inputs(person("ann"), tasks=[old]), journal=journal)
    return replace(given, tasks=written(given))


def _undone() -> Inputs:
    old = stored("ann")  # reopened on a device after kit-sync regenerated it
    new = replace(stored("ann", 1), meta=replace(old.meta, from_uid=old.uid))
    return replace(
        inputs(person("ann"), tasks=[old, new]),
        journal=[Touch("ann", date(2026, 3, 18), "backend", old.uid)],
    )


ROWS = [
    Row("a new contact gets a task", lambda: inputs(person("ann")), [("created", "ann", "new")]),
    Row(
        "an up-to-date task: nothing to do",
        lambda: inputs(person("ann"), tasks=[stored("ann")]),
        [],
    ),
    Row(
        "a completion regenerates from its day (and is a touch)",
        lambda: inputs(
            person("ann"), tasks=[done(stored("ann"), datetime(2026, 3, 18, 10, tzinfo=UTC))]
        ),
        [("regenerated", "ann", "2026-03-18")],
        touches=1,
    ),
    Row("a regenerated completion: nothing more", _completed_and_regenerated, []),
    Row(
        "a completion without a stamp gets its day written, then regenerates",
        lambda: inputs(person("ann"), tasks=[done(stored("ann"), None)]),
        [("updated", "ann", "without a date"), ("regenerated", "ann", "completed")],
        touches=1,
    ),
    Row(
        "an undone completion cancels the successor",
        _undone,
        [("cancelled", "ann", "undone")],
    ),
    Row(
        "a removed contact's task is cancelled",
        lambda: inputs(person("bob"), tasks=[stored("ann"), stored("bob")]),
        [("cancelled", "ann", "no longer in the roster")],
    ),
    Row(
        "a paused contact's task is cancelled",
        lambda: inputs(person("ann", paused=True), tasks=[stored("ann")]),
        [("cancelled", "ann", "paused")],
    ),
    Row(
        "with on_remove: delete, a paused contact's task is deleted",
        lambda: inputs(
            person("ann", paused=True),
            tasks=[stored("ann")],
            wording=Wording(on_remove=RemovalPolicy.DELETE),
        ),
        [("cancelled", "ann", "paused")],
        extra={"delete": True},
    ),
    Row(
        "a second open task is cancelled, never deleted",
        lambda: inputs(person("ann"), tasks=[stored("ann"), stored("ann", 1)]),
        [("cancelled", "ann", "second open task")],
        extra={"delete": False},
    ),
    Row(
        "an open task deleted on a device is recreated",
        lambda: inputs(person("ann"), previously_open={"gone@kit-sync": "ann"}),
        [("created", "ann", "deleted on a device")],
    ),
    Row(
        "a contact with an unreadable item is left alone",
        lambda: inputs(person("ann"), blocked=frozenset({"ann"})),
        [],
    ),
    Row(
        "a changed cadence moves the due date",
        lambda: inputs(person("ann", "1 month"), tasks=[stored("ann")]),
        [("updated", "ann", "")],
    ),
    Row(
        "a snoozed task keeps its date when the cadence changes",
        lambda: inputs(
            person("ann", "1 month"),
            tasks=[replace(stored("ann"), due=date(2026, 6, 1))],
        ),
        [("updated", "ann", "")],
        extra={"due": None},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_inputs_to_plan(row: Row) -> None:
    plan: Plan = build_plan(row.given())
    got = [(a.kind.value, a.contact_id, a.reason) for a in plan.actions]
    assert [(k, c) for k, c, _ in got] == [(k, c) for k, c, _ in row.actions], got
    for (_, _, reason), (_, _, word) in zip(got, row.actions, strict=True):
        assert word in reason, (reason, word)
    assert len(plan.touches) == row.touches
    if "delete" in row.extra:
        assert [a.delete for a in plan.actions] == [row.extra["delete"]]
    if "due" in row.extra:  # a snooze: the update changes no due date
        assert all(a.change is None or a.change.due is None for a in plan.actions)
