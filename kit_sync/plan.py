"""Pure planning: (roster, tasks on the backend, touch journal) -> actions.

No I/O and no clock: the engine passes `now`. The rules are DESIGN's behaviour
contract; each branch below names the rule it implements.

Per active contact the plan ends with exactly one open kit task (rule 1):
- no open task: create one, due `last touch + every` (rule 2), or spread over the
  first interval for a contact never touched;
- an open task whose anchor is older than the last touch: move its due date to
  `last touch + every` (a new touch overrides a snooze);
- otherwise, unless the user moved the due date by hand (a snooze, rule 5), move
  the due date when the cadence or scheduling rules changed;
- visible content is rewritten only when what kit-sync would write changed (a
  roster edit), so a user's own edit of an unchanged contact is left alone;
- more than one open task: keep one, cancel the others.
Removed or paused contacts have their open tasks cancelled (or deleted).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from kit_sync.cadence import Interval, Rules, local_day, planned_due, today
from kit_sync.model import (
    AnchorKind,
    Contact,
    KitMeta,
    KitTask,
    NewTask,
    RemovalPolicy,
    Roster,
    Status,
    TaskChange,
    TaskContent,
    Touch,
    Wording,
    fold_text,
    make_uid,
)
from kit_sync.occasions import (
    BIRTHDAY,
    TRIP_MARK,
    Birthdays,
    Trip,
    birthday_in,
    next_birthday,
    split_key,
    task_key,
    trip_for,
    with_trip,
)
from kit_sync.schedule import Load, Policy, Request, fits, place_all, week_of


class Kind(StrEnum):
    CREATE = "created"
    REGENERATE = "regenerated"
    UPDATE = "updated"
    CANCEL = "cancelled"


@dataclass(frozen=True, slots=True)
class Action:
    kind: Kind
    contact_id: str
    reason: str
    new: NewTask | None = None  # for CREATE / REGENERATE
    task: KitTask | None = None  # for UPDATE / CANCEL
    change: TaskChange | None = None  # for UPDATE / CANCEL (status=CANCELLED)
    delete: bool = False  # CANCEL by deleting instead
    # A new due date the schedule places (DESIGN rule 12); the due written in `new`
    # or `change` is the nominal one until `place_due_dates` has run.
    to_place: Request | None = None
    verb: str | None = None  # what logs and --dry-run say instead of the kind's verb
    # Apply only if the contact's earlier actions in this cycle succeeded (the task
    # that regenerates from a detected touch needs its predecessor completed).
    after_previous: bool = False

    @property
    def uid(self) -> str:
        if self.new is not None:
            return self.new.uid
        assert self.task is not None
        return self.task.uid

    def describe(self) -> str:
        """One line for logs and --dry-run: verb, contact, why, new due date."""
        due = self.new.due if self.new else (self.change.due if self.change else None)
        verb = "delete" if self.delete else self.verb or _VERBS[self.kind]
        tail = f", due {due.isoformat()}" if due else ""
        if due and self.to_place is not None and due != self.to_place.nominal:
            tail += f" (placed for an even load; nominal {self.to_place.nominal.isoformat()})"
        return f"{verb} {self.contact_id}: {self.reason}{tail}"


_VERBS = {
    Kind.CREATE: "create",
    Kind.REGENERATE: "regenerate",
    Kind.UPDATE: "update",
    Kind.CANCEL: "cancel",
}


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)  # new touches to journal
    retracted: list[str] = field(default_factory=list)  # touch source_uids to remove
    skipped: list[str] = field(default_factory=list)  # contacts left alone, with why
    warnings: list[str] = field(default_factory=list)  # e.g. weeks over capacity, odd data
    # What each active contact's keep-in-touch task says, as planned (for later phases).
    rendered: dict[str, TaskContent] = field(default_factory=dict, repr=False)

    def extend(self, other: Plan) -> None:
        self.actions += other.actions
        self.touches += other.touches
        self.retracted += other.retracted
        self.skipped += other.skipped
        self.warnings += other.warnings
        self.rendered.update(other.rendered)

    def counts(self) -> dict[str, int]:
        out = {k.value: 0 for k in Kind}
        for a in self.actions:
            out[a.kind.value] += 1
        return out


@dataclass(frozen=True)
class Inputs:
    roster: Roster
    tasks: list[KitTask]
    journal: list[Touch]  # every touch recorded so far
    now: datetime  # aware
    tz: ZoneInfo
    rules: Rules = field(default_factory=Rules)
    schedule: Policy = field(default_factory=Policy)
    wording: Wording = field(default_factory=Wording)
    first_seen: dict[str, date] = field(default_factory=dict)
    # first time a completion without a COMPLETED stamp was seen, by uid
    completion_seen: dict[str, datetime] = field(default_factory=dict)
    # contacts with an unreadable item on the backend: do nothing for them
    blocked: frozenset[str] = frozenset()
    # open tasks seen at the previous listing, uid -> contact (tells "deleted on a device")
    previously_open: dict[str, str] = field(default_factory=dict)
    # The backend regenerates a completed task itself (Exchange): a detected touch
    # moves the open task's due date instead of completing it, because the server
    # would stamp the completed copy with its own "today", not the touch's day.
    regenerating: bool = False
    birthdays: Birthdays | None = None  # None: no birthday tasks
    trips: tuple[Trip, ...] = ()
    trip_pull: Interval = field(default_factory=lambda: Interval(months=2))


#: Control characters no task may carry (NUL ends a C string in some clients; the
#: others are not allowed in iCalendar text). Line breaks and tabs stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(text: str) -> str:
    """`text` without control characters (a NUL pasted into a roster cell, ...)."""
    return _CONTROL.sub("", text)


def render(contact: Contact, last_touch: date | None, wording: Wording) -> TaskContent:
    """The visible task: what phone apps show (summary, notes, categories, priority)."""
    summary = wording.title.format(
        name=contact.name,
        first_name=contact.first_name,
        channel=contact.channel.value,
        tier=contact.tier or "",
        company=contact.company or "",
    )
    lines = [
        f"How: {contact.channel.value}"
        if contact.channel.value != "any"
        else "How: any way you like",
        f"Every: {contact.every}",
    ]
    if contact.emails:
        lines.append("Email: " + ", ".join(contact.emails))
    if contact.phone:
        lines.append(f"Phone: {contact.phone}")
    org = " · ".join(x for x in (contact.title, contact.company, contact.city) if x)
    if org:
        lines.append(org)
    lines.append("Last contacted: " + (last_touch.isoformat() if last_touch else "not yet"))
    if contact.notes:
        lines += ["", contact.notes.strip()]
    lines += [
        "",
        "Tick this off when you have been in touch: kit-sync schedules the next "
        f"one {contact.every} after that day.",
    ]
    categories = list(wording.categories)
    if wording.tier_category and contact.tier and contact.tier not in categories:
        categories.append(contact.tier)
    return TaskContent(
        summary=printable(summary),
        description=printable("\n".join(lines)),
        categories=tuple(printable(c) for c in categories),
        priority=contact.priority,
        alarm=wording.alarm,
    )


def stamp_day(task: KitTask, now: datetime, tz: ZoneInfo) -> date | None:
    """The local day of the task's COMPLETED stamp when it can be believed.

    None when there is no stamp, when it cannot be placed on a calendar (year 9999
    in another zone) or when it is later than today: a phone with a wrong clock
    must not push a contact's schedule years out. Such a completion counts for the
    day kit-sync first saw it, like one without a stamp."""
    if task.completed is None:
        return None
    try:
        day = local_day(task.completed, tz)
    except (OverflowError, ValueError):
        return None
    return day if day <= today(now, tz) else None


def future_stamp(task: KitTask, now: datetime, tz: ZoneInfo) -> bool:
    """A completed task whose COMPLETED stamp is not believable (see `stamp_day`)."""
    return (
        task.status is Status.COMPLETED
        and task.completed is not None
        and stamp_day(task, now, tz) is None
    )


def touch_day_of(task: KitTask, inputs: Inputs, successor_anchor: dict[str, date]) -> date:
    """The local day a completed task was completed on (DESIGN rule 2)."""
    if task.uid in successor_anchor:
        # Already regenerated: the successor recorded the day we used. Stable even
        # when the completion had no stamp and the state DB was lost.
        return successor_anchor[task.uid]
    day = stamp_day(task, inputs.now, inputs.tz)
    if day is not None:
        return day
    seen = inputs.completion_seen.get(task.uid, inputs.now)
    return local_day(seen, inputs.tz)


def completion_stamp(task: KitTask, day: date, inputs: Inputs) -> datetime:
    """An aware COMPLETED stamp on the local `day`: the client's own when it is one."""
    stamp = task.completed
    if (
        isinstance(stamp, datetime)
        and stamp.tzinfo is not None
        and stamp_day(task, inputs.now, inputs.tz) == day
    ):
        return stamp
    seen = inputs.completion_seen.get(task.uid)
    if seen is not None and local_day(seen, inputs.tz) == day:
        return seen
    return datetime.combine(day, time(12), tzinfo=inputs.tz)


def _show(stamp: datetime | date | None) -> str:
    return stamp.isoformat() if stamp is not None else "none"


def _pick_keeper(opens: list[KitTask]) -> KitTask:
    return sorted(
        opens, key=lambda t: (-(t.meta.anchor or date.min).toordinal(), not t.snoozed, t.uid)
    )[0]


def build_plan(inputs: Inputs) -> Plan:
    plan = Plan()
    # Birthday tasks first (DESIGN rule 11): a kind of their own, planned apart; a
    # completed one may count as a touch for the keep-in-touch task below.
    occasion = [t for t in inputs.tasks if split_key(t.contact_id)[1] is not None]
    if occasion or inputs.birthdays is not None:
        touches = _birthdays_phase(plan, inputs, occasion)
        inputs = replace(
            inputs,
            tasks=[t for t in inputs.tasks if split_key(t.contact_id)[1] is None],
            journal=[*inputs.journal, *touches],
        )
    by_contact: dict[str, list[KitTask]] = defaultdict(list)
    for t in inputs.tasks:
        by_contact[t.contact_id].append(t)
    journal_by_contact: dict[str, list[Touch]] = defaultdict(list)
    for touch in inputs.journal:
        journal_by_contact[touch.contact_id].append(touch)

    for cid in sorted(set(by_contact) | {c.id for c in inputs.roster.contacts}):
        one = Plan()
        try:
            _plan_contact(one, cid, by_contact.get(cid, []), journal_by_contact[cid], inputs)
        except Exception as exc:
            # Whatever a backend holds (a date at the end of the calendar, a field no
            # client should write) stops at most this one contact, never the cycle.
            why = f"{cid}: cannot plan this contact ({type(exc).__name__}: {exc}); left alone"
            plan.skipped.append(why)
            plan.warnings.append(why)
            continue
        plan.extend(one)
    place_due_dates(plan, inputs)
    _trips_phase(plan, inputs)
    return plan


@dataclass
class _Seen:
    """What the phases of one contact share: its tasks and journal, and what the
    earlier phases found (open tasks left, retracted touches, the last touch)."""

    cid: str
    tasks: list[KitTask]
    journal: list[Touch]
    opens: list[KitTask]
    retracted: set[str] = field(default_factory=set)
    successor_anchor: dict[str, date] = field(default_factory=dict)
    detected: list[Touch] = field(default_factory=list)
    detected_days: set[date] = field(default_factory=set)
    last: date | None = None
    last_source: str | None = None


def _plan_contact(
    plan: Plan, cid: str, tasks: list[KitTask], journal: list[Touch], inputs: Inputs
) -> None:
    """The actions and touches of one contact (or of a task whose contact is gone),
    phase by phase; each phase is a function of its own, tested by
    tests/test_plan_phases.py."""
    if cid in inputs.blocked:
        plan.skipped.append(f"{cid}: an item on the backend for this contact is unreadable")
        return
    seen = _Seen(cid, tasks, journal, [t for t in tasks if t.status is Status.OPEN])
    _retractions(plan, seen, inputs)
    _touches(plan, seen, inputs)
    _stamp_repairs(plan, seen, inputs)
    contact = inputs.roster.get(cid)
    if contact is None or contact.paused:
        _retire(plan, seen, contact, inputs)
        return
    _keep_one_open(plan, seen, contact, inputs)


def _retractions(plan: Plan, seen: _Seen, inputs: Inputs) -> None:
    """Undone completions: a completed task reopened after kit-sync regenerated it.
    The successor is cancelled and the touch withdrawn."""
    open_uids = {t.uid for t in seen.opens}
    for t in list(seen.opens):
        if t.meta.from_uid and t.meta.from_uid in open_uids:
            seen.retracted.add(t.meta.from_uid)
            plan.retracted.append(t.meta.from_uid)
            # A completion kit-sync made for a detected touch, undone by the
            # user: that touch is withdrawn too, or the next sync would redo it.
            for x in seen.journal:
                if x.detected and x.day == t.meta.anchor:
                    seen.retracted.add(x.source_uid)
                    plan.retracted.append(x.source_uid)
            plan.actions.append(
                _cancel(
                    t,
                    inputs,
                    f"the completion of {t.meta.from_uid} was undone on a device",
                    delete=False,
                )
            )
            seen.opens.remove(t)


def _touches(plan: Plan, seen: _Seen, inputs: Inputs) -> None:
    """Touches: the journal plus completions on the backend (rule 3: the journal
    survives purges); sets the contact's last touch (rule 2)."""
    cid, tasks, journal = seen.cid, seen.tasks, seen.journal
    seen.successor_anchor = {
        t.meta.from_uid: t.meta.anchor for t in tasks if t.meta.from_uid and t.meta.anchor
    }
    known = {x.source_uid for x in journal}
    days: list[tuple[date, str]] = [
        (x.day, x.source_uid) for x in journal if x.source_uid not in seen.retracted
    ]
    seen.detected = [x for x in journal if x.detected and x.source_uid not in seen.retracted]
    # A task kit-sync completed for a detected touch is that touch, not a second
    # one (also when the state file was lost and the source found it again).
    seen.detected_days = {x.day for x in seen.detected}
    for t in tasks:
        if t.status is not Status.COMPLETED:
            continue
        day = touch_day_of(t, inputs, seen.successor_anchor)
        if t.uid not in known and day not in seen.detected_days:
            plan.touches.append(Touch(cid, day, "backend", t.uid))
            days.append((day, t.uid))
    seen.last, seen.last_source = max(days) if days else (None, None)


def _stamp_repairs(plan: Plan, seen: _Seen, inputs: Inputs) -> None:
    """Completions whose day is not written on the task (no stamp, a stamp in the
    future, a repeating task) get the day kit-sync counted, so it survives a lost
    state file."""
    cid = seen.cid
    for t in seen.tasks:
        future = future_stamp(t, inputs.now, inputs.tz)
        if t.status is not Status.COMPLETED or not (t.recurring or t.completed is None or future):
            continue
        day = touch_day_of(t, inputs, seen.successor_anchor)
        if future:
            # A phone with a wrong clock (or a stamp in year 9999): the day kit-sync
            # first saw the completion counts, and is written down so it stays put.
            why = f"completed with a stamp in the future ({_show(t.completed)}); recorded as {day}"
            plan.warnings.append(
                f"{t.href}: the task of {cid} is completed with a stamp in the future "
                f"({_show(t.completed)}; is that device's clock wrong?); counted as {day}"
            )
        elif t.recurring:
            # A client completed a task the user made repeating, but the item may
            # still show as open on the phone (an override, a due moved in place):
            # keep it as a plain completed task, as history (kit-sync regenerates).
            why = f"completed on {day} as a repeating task; kept as a plain completed task"
        else:
            # Completed without a COMPLETED stamp: write down the day we counted,
            # so it survives a lost state file.
            why = f"completed without a date; recorded as {day}"
        plan.actions.append(
            Action(
                Kind.UPDATE,
                cid,
                why,
                task=t,
                change=TaskChange(
                    status=Status.COMPLETED, completed_at=completion_stamp(t, day, inputs)
                ),
            )
        )


def _retire(plan: Plan, seen: _Seen, contact: Contact | None, inputs: Inputs) -> None:
    """A removed or paused contact's open tasks go, by the one removal policy (rule 5)."""
    why = "paused in the roster" if contact else "no longer in the roster"
    for t in seen.opens:
        plan.actions.append(
            _cancel(t, inputs, why, delete=inputs.wording.on_remove is RemovalPolicy.DELETE)
        )


def _keep_one_open(plan: Plan, seen: _Seen, contact: Contact, inputs: Inputs) -> None:
    """Exactly one open task for an active contact (rule 1): complete it for a
    detected touch, create or regenerate one, or keep one and refresh it."""
    cid, tasks, last = seen.cid, seen.tasks, seen.last
    completed_uids = {t.uid for t in tasks if t.status is Status.COMPLETED}
    from_uid = seen.last_source if seen.last_source in completed_uids else None
    if from_uid is None and last in seen.detected_days:
        # The task kit-sync completed for that detected touch (a cycle stopped
        # before its successor was created): regenerate from it.
        from_uid = next(
            (
                t.uid
                for t in sorted(tasks, key=lambda t: t.uid)
                if t.status is Status.COMPLETED
                and touch_day_of(t, inputs, seen.successor_anchor) == last
            ),
            None,
        )
    content = render(contact, last, inputs.wording)
    plan.rendered[cid] = content

    found = _detected_completion(seen.opens, seen.detected, last, inputs)
    if found is not None:
        plan.actions += _complete_detected(contact, tasks, seen.opens, *found, inputs)
        return
    if not seen.opens:
        _create_or_regenerate(plan, seen, contact, content, from_uid, inputs)
    else:
        _dedupe_and_refresh(plan, seen, contact, content, from_uid, inputs)


def _create_or_regenerate(
    plan: Plan,
    seen: _Seen,
    contact: Contact,
    content: TaskContent,
    from_uid: str | None,
    inputs: Inputs,
) -> None:
    """No open task: a new one, due `last touch + every` (rule 2), or spread over the
    first interval for a contact never touched."""
    cid, tasks, last = seen.cid, seen.tasks, seen.last
    if last is not None:
        anchor, kind = last, AnchorKind.TOUCH
    else:
        anchor, kind = inputs.first_seen.get(cid, today(inputs.now, inputs.tz)), AnchorKind.NEW
    due = planned_due(anchor, kind is AnchorKind.NEW, cid, contact.every, inputs.rules)
    request = _request(contact, due, anchor, inputs)
    existing_uids = {t.uid for t in tasks}
    n = len(tasks)
    uid = make_uid(cid, f"{from_uid or ''}|{anchor}|{kind}|{n}")
    while uid in existing_uids:
        n += 1
        uid = make_uid(cid, f"{from_uid or ''}|{anchor}|{kind}|{n}")
    meta = KitMeta(cid, anchor, kind, contact.every.iso, due, from_uid, content.fingerprint)
    vanished = [u for u, c in inputs.previously_open.items() if c == cid and u not in existing_uids]
    if vanished:
        # Checked first: a regenerated task deleted on the phone leaves its
        # completed predecessor behind, and is still a deletion to report.
        action_kind, reason = (Kind.CREATE, "its open task was deleted on a device; recreated")
    elif from_uid is not None and not any(t.meta.from_uid == from_uid for t in tasks):
        action_kind, reason = Kind.REGENERATE, f"completed on {last}"
    elif tasks:
        action_kind, reason = Kind.CREATE, "no open task left; recreated"
    else:
        action_kind, reason = Kind.CREATE, "new contact"
    plan.actions.append(
        Action(action_kind, cid, reason, new=NewTask(uid, due, content, meta), to_place=request)
    )


def _dedupe_and_refresh(
    plan: Plan,
    seen: _Seen,
    contact: Contact,
    content: TaskContent,
    from_uid: str | None,
    inputs: Inputs,
) -> None:
    """Open tasks: one is kept (a second is cancelled, never deleted) and brought up to
    date: content, cadence, due date unless snoozed (rule 5)."""
    keeper = _pick_keeper(seen.opens)
    for t in seen.opens:
        if t is not keeper:
            plan.actions.append(
                _cancel(t, inputs, "a second open task for the same contact", delete=False)
            )
    change = _refresh(keeper, contact, content, seen.last, from_uid, inputs)
    if change is not None:
        plan.actions.append(change)


def _request(contact: Contact, nominal: date, anchor: date, inputs: Inputs) -> Request:
    return Request(contact.id, nominal, contact.every, anchor, today(inputs.now, inputs.tz))


def place_due_dates(plan: Plan, inputs: Inputs) -> None:
    """DESIGN rule 12: each new due date in the plan moves within its flex window to
    the least loaded week. The dates of the tasks that keep theirs (snoozes
    included) make the load; none of them moves."""
    requests = {i: a.to_place for i, a in enumerate(plan.actions) if a.to_place is not None}
    if not requests:
        return
    leaving = {
        a.task.uid
        for a in plan.actions
        if a.task is not None and (a.kind is Kind.CANCEL or a.to_place is not None)
    }
    load = Load.of(
        t.due
        for t in inputs.tasks
        if t.status is Status.OPEN and t.due is not None and t.uid not in leaving
    )
    placed = place_all(requests.values(), load, inputs.schedule)
    full: set[tuple[int, int]] = set()
    for i, request in requests.items():
        day = placed[request.key]
        plan.actions[i] = _with_due(plan.actions[i], day.day)
        if day.over_capacity:
            full.add(week_of(day.day))
    for year, week in sorted(full):
        plan.warnings.append(
            f"week {year}-W{week:02d} holds {load.weeks[(year, week)]} due dates, more than "
            f"the capacity of {inputs.schedule.capacity} a week: no week within the "
            "flex window had room"
        )


def _with_due(action: Action, day: date) -> Action:
    if action.new is not None:
        new = replace(action.new, due=day, meta=replace(action.new.meta, planned_due=day))
        return replace(action, new=new)
    assert action.change is not None and action.change.meta is not None
    assert action.task is not None
    meta = replace(action.change.meta, planned_due=day)
    due = None if day == action.task.due else day
    return replace(action, change=replace(action.change, due=due, meta=meta))


def _refresh(
    task: KitTask,
    contact: Contact,
    content: TaskContent,
    last: date | None,
    from_uid: str | None,
    inputs: Inputs,
) -> Action | None:
    """The update an existing open task needs, if any."""
    m = task.meta
    every = contact.every
    due: date | None = None
    to_place: Request | None = None
    meta = m
    reasons: list[str] = []
    if last is not None and (
        m.anchor is None or m.anchor_kind is AnchorKind.NEW or last > m.anchor
    ):
        # A touch newer than this task's anchor: count from it (wins over a snooze).
        due = planned_due(last, False, contact.id, every, inputs.rules)
        to_place = _request(contact, due, last, inputs)
        meta = replace(
            m,
            anchor=last,
            anchor_kind=AnchorKind.TOUCH,
            every=every.iso,
            planned_due=due,
            from_uid=from_uid or m.from_uid,
        )
        reasons.append(f"touched on {last}")
    elif m.anchor is None:
        # Our private properties were dropped by a client: adopt the task as it is.
        anchor = inputs.first_seen.get(contact.id, today(inputs.now, inputs.tz))
        meta = replace(
            m, anchor=anchor, anchor_kind=AnchorKind.NEW, every=every.iso, planned_due=task.due
        )
        reasons.append("restored kit-sync's bookkeeping on the task")
    elif not task.snoozed:
        want = planned_due(
            m.anchor, m.anchor_kind is AnchorKind.NEW, contact.id, every, inputs.rules
        )
        request = _request(contact, want, m.anchor, inputs)
        why = f"cadence is now {every}" if m.every != every.iso else "scheduling rules changed"
        if not fits(task.due, request, inputs.schedule):
            # The cadence or the schedule's rules changed so much that the date is
            # out of its window (or on an easy day): place it again.
            due, to_place = want, request
            meta = replace(m, every=every.iso, planned_due=want)
            reasons.append(why)
        elif m.every != every.iso:
            # The date still fits the new cadence: it stays (nothing moves needlessly).
            meta = replace(m, every=every.iso)
            reasons.append(why)
    if m.fingerprint != content.fingerprint:
        meta = replace(meta, fingerprint=content.fingerprint)
        reasons.append("roster details changed")
        new_content: TaskContent | None = content
    else:
        new_content = None
    if meta == m and due is None and new_content is None:
        return None
    return Action(
        Kind.UPDATE,
        contact.id,
        "; ".join(reasons),
        task=task,
        change=TaskChange(due=due, content=new_content, meta=meta),
        to_place=to_place,
    )


def task_created_day(task: KitTask, inputs: Inputs) -> date:
    """The local day `task` was created on: its creation stamp when the backend
    has one, else its anchor (a task is never created before the day its due date
    is counted from), else the contact's first-seen day."""
    if task.created is not None:
        return local_day(task.created, inputs.tz)
    if task.meta.anchor is not None:
        return task.meta.anchor
    return inputs.first_seen.get(task.contact_id, today(inputs.now, inputs.tz))


def _detected_completion(
    opens: list[KitTask], detected: list[Touch], last: date | None, inputs: Inputs
) -> tuple[KitTask, Touch] | None:
    """The open task a detected touch completes, and that touch (DESIGN rule 10).

    The latest detected touch completes the open task when it is the contact's
    latest touch, later than the touch the task was counted from, and not before
    the day the task was created. Several touches since the last sync collapse to
    the latest. An older detected touch only moves the due date (`_refresh`)."""
    if not opens or not detected or last is None or inputs.regenerating:
        return None
    latest = max(detected, key=lambda x: (x.day, x.at or datetime.min.replace(tzinfo=UTC)))
    if latest.day != last or latest.day > today(inputs.now, inputs.tz):
        return None
    keeper = _pick_keeper(opens)
    m = keeper.meta
    if m.anchor is not None and m.anchor_kind is AnchorKind.TOUCH and latest.day <= m.anchor:
        return None
    if latest.day < task_created_day(keeper, inputs):
        return None
    return keeper, latest


def _complete_detected(
    contact: Contact,
    tasks: list[KitTask],
    opens: list[KitTask],
    task: KitTask,
    touch: Touch,
    inputs: Inputs,
) -> list[Action]:
    """Complete `task` as of the detected `touch` and regenerate from that day."""
    day = touch.day
    content = render(contact, day, inputs.wording)
    said = f"Detected: {touch.kind} {day.isoformat()}"
    done = replace(content, description=f"{said}\n\n{content.description}")
    stamp = touch.at if touch.at is not None else datetime.combine(day, time(12), inputs.tz)
    actions = [
        Action(
            Kind.UPDATE,
            contact.id,
            f"{touch.kind} {day} (detected by {touch.source})",
            task=task,
            change=TaskChange(status=Status.COMPLETED, completed_at=stamp, content=done),
            verb="complete",
        )
    ]
    due = planned_due(day, False, contact.id, contact.every, inputs.rules)
    existing = {t.uid for t in tasks}
    n = len(tasks)
    uid = make_uid(contact.id, f"{task.uid}|{day}|{AnchorKind.TOUCH}|{n}")
    while uid in existing:
        n += 1
        uid = make_uid(contact.id, f"{task.uid}|{day}|{AnchorKind.TOUCH}|{n}")
    meta = KitMeta(
        contact.id,
        day,
        AnchorKind.TOUCH,
        contact.every.iso,
        due,
        task.uid,
        content.fingerprint,
    )
    actions.append(
        Action(
            Kind.REGENERATE,
            contact.id,
            f"{touch.kind} {day}",
            new=NewTask(uid, due, content, meta),
            after_previous=True,
            to_place=_request(contact, due, day, inputs),
        )
    )
    for t in opens:
        if t is not task:
            actions.append(
                _cancel(t, inputs, "a second open task for the same contact", delete=False)
            )
    return actions


def _cancel(task: KitTask, inputs: Inputs, reason: str, *, delete: bool) -> Action:
    return Action(
        Kind.CANCEL,
        task.contact_id,
        reason,
        task=task,
        delete=delete,
        change=TaskChange(status=Status.CANCELLED),
    )


# --- occasions: birthday tasks and trips ----------------------------------------------


def render_birthday(
    contact: Contact, day: date, settings: Birthdays, wording: Wording
) -> TaskContent:
    """The visible birthday task: whose, which day, how to reach them."""
    summary = settings.title.format(name=contact.name, first_name=contact.first_name)
    born = contact.birthday
    when = f"{day.day} {day:%B}"
    if born is not None and 1900 < born.year < day.year:
        when += f" (turns {day.year - born.year})"
    lines = [f"Birthday: {when}"]
    if contact.emails:
        lines.append("Email: " + ", ".join(contact.emails))
    if contact.phone:
        lines.append(f"Phone: {contact.phone}")
    if contact.notes:
        lines += ["", contact.notes.strip()]
    lines += [
        "",
        "Tick this off when you have sent your wishes: kit-sync schedules next "
        "year's birthday."
        + (" It also counts as being in touch." if settings.counts_as_touch else ""),
    ]
    return TaskContent(
        summary=printable(summary),
        description=printable("\n".join(lines)),
        categories=("Birthday",),
        priority=contact.priority,
        alarm=wording.alarm,
    )


def _birthdays_phase(plan: Plan, inputs: Inputs, tasks: list[KitTask]) -> list[Touch]:
    """One open birthday task per active contact with a birthday, due on the next
    birthday (less the lead); completing it schedules the birthday after (the date,
    not the completion, decides). Returns the touches its completions count as."""
    settings = inputs.birthdays
    by_key: dict[str, list[KitTask]] = defaultdict(list)
    for t in tasks:
        by_key[t.contact_id].append(t)
    if settings is not None:
        for c in inputs.roster.contacts:
            if c.birthday is not None:
                by_key.setdefault(task_key(c.id, BIRTHDAY), [])
    known = {x.source_uid for x in inputs.journal}
    touches: list[Touch] = []
    day_now = today(inputs.now, inputs.tz)
    delete = inputs.wording.on_remove is RemovalPolicy.DELETE
    for key in sorted(by_key):
        if key in inputs.blocked:
            plan.skipped.append(f"{key}: an item on the backend for this task is unreadable")
            continue
        cid, _ = split_key(key)
        contact = inputs.roster.get(cid)
        group = by_key[key]
        opens = [t for t in group if t.status is Status.OPEN]
        done = [t for t in group if t.status is Status.COMPLETED]
        if settings is not None and settings.counts_as_touch:
            for t in done:
                if t.uid not in known:
                    touch = Touch(cid, touch_day_of(t, inputs, {}), "birthday", t.uid)
                    touches.append(touch)
                    plan.touches.append(touch)
        # An undone completion: its successor goes (the reopened task is the one).
        open_uids = {t.uid for t in opens}
        for t in list(opens):
            if t.meta.from_uid in open_uids:
                plan.actions.append(_cancel(t, inputs, "the birthday was un-ticked", delete=False))
                opens.remove(t)
        why = None
        if settings is None:
            why = "birthday tasks are turned off"
        elif contact is None or contact.paused:
            why = "paused in the roster" if contact else "no longer in the roster"
        elif contact.birthday is None:
            why = "no birthday in the roster any more"
        if why is not None or contact is None or settings is None:
            for t in opens:
                plan.actions.append(_cancel(t, inputs, why or "", delete=delete))
            continue
        born = contact.birthday
        assert born is not None
        lead = timedelta(days=settings.lead_days)
        # The birthday the next task is for: after the latest one ticked off, and
        # not one already past (a late tick schedules the coming one).
        covered = [t.meta.anchor for t in done if t.meta.anchor is not None]
        upcoming = next_birthday(born, day_now)
        if covered:
            upcoming = max(birthday_in(born, max(covered).year + 1), upcoming)
        due = upcoming - lead
        content = render_birthday(contact, upcoming, settings, inputs.wording)
        if not opens:
            last_done = max(done, key=lambda t: (t.meta.anchor or date.min, t.uid), default=None)
            from_uid = last_done.uid if last_done is not None else None
            existing = {t.uid for t in group}
            n = 0
            uid = make_uid(key, f"{upcoming}|{n}")
            while uid in existing:
                n += 1
                uid = make_uid(key, f"{upcoming}|{n}")
            meta = KitMeta(
                key, upcoming, AnchorKind.TOUCH, "P1Y", due, from_uid, content.fingerprint
            )
            kind, reason = (
                (Kind.REGENERATE, f"birthday {last_done.meta.anchor} ticked off")
                if last_done is not None and last_done.meta.anchor is not None
                else (Kind.CREATE, f"birthday on {upcoming}")
            )
            plan.actions.append(Action(kind, key, reason, new=NewTask(uid, due, content, meta)))
            continue
        keeper = sorted(opens, key=lambda t: (t.meta.anchor or date.max, t.uid))[0]
        for t in opens:
            if t is not keeper:
                plan.actions.append(_cancel(t, inputs, "a second open birthday task", delete=False))
        m = keeper.meta
        change_due: date | None = None
        meta = m
        reasons = []
        on_date = m.anchor is not None and birthday_in(born, m.anchor.year) == m.anchor
        # A backend that regenerates by itself (Exchange) moved the ticked task on,
        # counting from the completion: put it back on the birthday.
        celebrated = m.anchor is not None and bool(covered) and m.anchor <= max(covered)
        if not on_date or m.anchor is None or celebrated:
            # The birthday was edited in the roster (or our bookkeeping was lost).
            meta = replace(m, anchor=upcoming, planned_due=due, every="P1Y")
            change_due = due if keeper.due != due else None
            reasons.append(f"birthday is {upcoming}")
        elif not keeper.snoozed and m.planned_due != m.anchor - lead:
            want = m.anchor - lead
            meta = replace(m, planned_due=want)
            change_due = want if keeper.due != want else None
            reasons.append(f"lead is now {settings.lead_days} days")
        anchor = meta.anchor or upcoming
        content = render_birthday(contact, anchor, settings, inputs.wording)
        new_content = None
        if m.fingerprint != content.fingerprint:
            meta = replace(meta, fingerprint=content.fingerprint)
            new_content = content
            reasons.append("roster details changed")
        if meta != m or change_due is not None or new_content is not None:
            plan.actions.append(
                Action(
                    Kind.UPDATE,
                    key,
                    "; ".join(reasons),
                    task=keeper,
                    change=TaskChange(due=change_due, content=new_content, meta=meta),
                )
            )
    return touches


def _trips_phase(plan: Plan, inputs: Inputs) -> None:
    """Contacts in a trip's city who fall due after it, within its pull, are due on
    the trip's first day, the trip named in the title. The move is kit-sync's own
    snooze: the task's planned date stays the nominal one, so when the trip is
    removed (or is over) the nominal date comes back. A date the user moved stays."""
    day_now = today(inputs.now, inputs.tz)
    cities = {name for trip in inputs.trips for name in trip.names()}
    index: dict[str, int] = {}
    for n, a in enumerate(plan.actions):
        writes_open = a.kind is not Kind.CANCEL and (a.change is None or a.change.status is None)
        if writes_open and split_key(a.contact_id)[1] is None:
            index[a.contact_id] = n
    opens = {t.contact_id: t for t in inputs.tasks if t.status is Status.OPEN}
    drop: set[int] = set()
    for contact in inputs.roster.active:
        current = opens.get(contact.id)
        was_moved = current is not None and TRIP_MARK + "in " in current.summary
        in_a_trip_city = bool(contact.city) and fold_text(contact.city or "") in cities
        if not (in_a_trip_city or was_moved):
            continue
        i = index.get(contact.id, -1)
        action = plan.actions[i] if i >= 0 else None
        if action is not None and action.new is not None:
            new = action.new
            trip = trip_for(contact.city, new.due, day_now, inputs.trips, inputs.trip_pull)
            if trip is not None:
                content = replace(new.content, summary=with_trip(new.content.summary, trip))
                meta = replace(new.meta, fingerprint=content.fingerprint)
                moved = replace(new, due=trip.start, content=content, meta=meta)
                plan.actions[i] = replace(
                    action, new=moved, reason=f"{action.reason}; {trip.label()}"
                )
            continue
        task = opens.get(contact.id) if action is None else action.task
        if task is None or task.status is not Status.OPEN:
            continue
        change = action.change if action is not None and action.change else TaskChange()
        meta = change.meta or task.meta
        nominal = meta.planned_due or change.due or task.due
        if nominal is None:
            continue
        plain = change.content or plan.rendered.get(contact.id)
        if plain is None:
            continue
        tripped = task.summary.startswith(plain.summary + TRIP_MARK + "in ")
        touched = change.meta is not None and change.meta.planned_due != task.meta.planned_due
        if task.snoozed and not tripped and not touched:
            continue  # the user's own date wins
        trip = trip_for(contact.city, nominal, day_now, inputs.trips, inputs.trip_pull)
        if trip is not None:
            content = replace(plain, summary=with_trip(plain.summary, trip))
            want, why = trip.start, trip.label()
        elif tripped:
            content, want, why = plain, nominal, "no trip any more; back to its date"
        else:
            continue
        new_meta = replace(meta, planned_due=nominal, fingerprint=content.fingerprint)
        new_change = TaskChange(
            due=None if want == task.due else want,
            content=None if content.fingerprint == task.meta.fingerprint else content,
            meta=None if new_meta == task.meta else new_meta,
        )
        if new_change == TaskChange():
            if action is not None:
                drop.add(i)  # what the main phase wanted undone is the trip itself
        elif action is None:
            plan.actions.append(Action(Kind.UPDATE, contact.id, why, task=task, change=new_change))
        else:
            reason = f"{action.reason}; {why}"
            plan.actions[i] = replace(action, change=new_change, reason=reason)
    if drop:
        plan.actions = [a for j, a in enumerate(plan.actions) if j not in drop]
