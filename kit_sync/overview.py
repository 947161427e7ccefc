"""Who is due when: one read of the backend and the journal, shared by `load`,
`agenda` and `digest`; and the weekly load with its bar chart.

`fetch_snapshot` reads (the backend listing, the state file) and plans without
writing; everything else here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kit_sync.cadence import today as local_today
from kit_sync.model import Contact, Status, Touch
from kit_sync.plan import Kind
from kit_sync.schedule import Policy, week_of, weeks_ahead

if TYPE_CHECKING:
    from kit_sync.engine import Engine


def touch_how(touch: Touch) -> str:
    """How a touch came in, in words: a ticked task, the touch command, or detected
    by a touch source (sent mail, a meeting)."""
    if touch.detected:
        return f"detected: {touch.kind}"
    if touch.source == "backend":
        return "task"
    if touch.source == "cli":
        return "touch"
    return touch.source


@dataclass(frozen=True)
class Person:
    contact: Contact
    state: str  # open / completed / paused / missing (as `status` says)
    next_due: date | None  # the open task's due date, or the one the next sync sets
    touches: tuple[Touch, ...]  # oldest first
    first_seen: date | None

    @property
    def last_touch(self) -> Touch | None:
        return self.touches[-1] if self.touches else None

    def overdue_days(self, today: date) -> int:
        return max(0, (today - self.next_due).days) if self.next_due else 0


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    today: date
    people: list[Person]
    policy: Policy

    @property
    def active(self) -> list[Person]:
        return [p for p in self.people if p.contact.active]


def fetch_snapshot(engine: Engine) -> Snapshot:
    """Read the backend and the journal once; plan (without writing) so that people
    whose next task the coming sync creates already show their due date."""
    plan, listing, inputs = engine.fetch_plan(allow_empty=True)
    day = local_today(inputs.now, inputs.tz)
    retracted = set(plan.retracted)
    touches: dict[str, list[Touch]] = {}
    for t in [*inputs.journal, *plan.touches]:
        if t.source_uid not in retracted:
            touches.setdefault(t.contact_id, []).append(t)
    opens: dict[str, list[date]] = {}
    for task in listing.tasks:
        if task.status is Status.OPEN and task.due is not None:
            opens.setdefault(task.contact_id, []).append(task.due)
    planned: dict[str, date] = {}
    for action in plan.actions:
        if action.new is not None:
            planned[action.contact_id] = action.new.due
        elif action.change is not None and action.change.due is not None:
            planned[action.contact_id] = action.change.due
    regenerating = {a.contact_id for a in plan.actions if a.kind is Kind.REGENERATE}
    people = []
    for c in engine.roster.contacts:
        if c.paused:
            state = "paused"
        elif c.id in regenerating:
            state = "completed"
        elif c.id in opens:
            state = "open"
        else:
            state = "missing"
        due = None
        if not c.paused:
            due = planned.get(c.id) or min(opens.get(c.id, []), default=None)
        people.append(
            Person(
                c,
                state,
                due,
                tuple(sorted(touches.get(c.id, []), key=lambda t: (t.day, t.source_uid))),
                inputs.first_seen.get(c.id),
            )
        )
    return Snapshot(inputs.now, day, people, engine.config.schedule.policy)


# --- the weekly load -----------------------------------------------------------------------


@dataclass(frozen=True)
class WeekLoad:
    start: date  # the Monday
    due: int

    @property
    def label(self) -> str:
        year, week = week_of(self.start)
        return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class LoadReport:
    today: date
    overdue: int
    weeks: list[WeekLoad]
    capacity: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "capacity": self.capacity,
            "overdue": self.overdue,
            "weeks": [
                {
                    "week": w.label,
                    "start": w.start.isoformat(),
                    "due": w.due,
                    "over_capacity": self.capacity is not None and w.due > self.capacity,
                }
                for w in self.weeks
            ],
        }


def weekly_load(snapshot: Snapshot, weeks: int) -> LoadReport:
    """Due dates of active people per ISO week, from this week on; past dues count
    as overdue (this week's own past days included in this week)."""
    mondays = weeks_ahead(snapshot.today, weeks)
    counts = dict.fromkeys(mondays, 0)
    overdue = 0
    for person in snapshot.active:
        due = person.next_due
        if due is None:
            continue
        monday = due - timedelta(days=due.weekday())
        if monday in counts:
            counts[monday] += 1
        elif due < snapshot.today:
            overdue += 1
    return LoadReport(
        snapshot.today,
        overdue,
        [WeekLoad(m, counts[m]) for m in mondays],
        snapshot.policy.capacity,
    )


def load_chart(report: LoadReport, *, width: int = 40, unicode: bool = True) -> str:
    """A bar per week with the capacity line, for a terminal:

    capacity: 10 a week (│)
    2026-W49  30 Nov  ████████  │    8
    2026-W50   7 Dec  ██████████│██  12 over
    """
    block, mark = ("█", "│") if unicode else ("#", "|")
    top = max([w.due for w in report.weeks] + [report.capacity or 0, 1])
    scale = min(1.0, width / top)
    cap = round(report.capacity * scale) if report.capacity is not None else None
    bars = []
    for w in report.weeks:
        filled = round(w.due * scale)
        if cap is None:
            bars.append(block * filled)
        else:
            inside = min(filled, cap)
            bars.append(block * inside + " " * (cap - inside) + mark + block * (filled - inside))
    span = max((len(b) for b in bars), default=0)
    rows = []
    if report.capacity is not None:
        rows.append(f"capacity: {report.capacity} a week ({mark})")
    if report.overdue:
        rows.append(f"overdue now: {report.overdue}")
    for w, bar in zip(report.weeks, bars, strict=True):
        over = " over" if report.capacity is not None and w.due > report.capacity else ""
        rows.append(f"{w.label}  {w.start.day:>2} {w.start:%b}  {bar.ljust(span)}  {w.due}{over}")
    return "\n".join(rows)
