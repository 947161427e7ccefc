"""Placement of due dates: an even weekly load (DESIGN rule 12). Pure: no I/O, no clock.

The cadence gives a *nominal* date (touch day + every). When kit-sync sets a new due
date it may move it within `nominal ± flex` (a share of the interval, at most
MAX_FLEX_DAYS) to the day in the least loaded ISO week, never onto an easy day.
Ties go to the less loaded day, then to the day nearest the nominal one, then to a
per-contact hash, so the same inputs always give the same day. Dates already set
are never moved to make room (as Anki's load balancer does).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from kit_sync.cadence import Interval

#: A due date never moves further than this from its nominal day.
MAX_FLEX_DAYS = 14

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_weekday(text: str) -> int:
    """0 for Monday .. 6 for Sunday; full names or three-letter abbreviations."""
    word = str(text).strip().lower()
    for number, name in enumerate(WEEKDAYS):
        if word == name or (len(word) >= 3 and name.startswith(word)):
            return number
    raise ValueError(f"'{text}' is not a day of the week; write monday, tuesday, ... sunday")


@dataclass(frozen=True)
class Policy:
    """The config's `schedule:` section, as plain data."""

    capacity: int | None = None  # due dates per ISO week (None: no limit)
    flex: float = 0.0  # share of the interval a due date may move either way
    easy_days: frozenset[int] = frozenset()  # weekday numbers (0 = Monday): nothing due

    def flex_days(self, every: Interval) -> int:
        return min(MAX_FLEX_DAYS, math.floor(every.approx_days() * self.flex + 1e-9))


@dataclass(frozen=True, slots=True)
class Request:
    """One due date to place."""

    key: str  # the contact id: the deterministic tie-break
    nominal: date  # what the cadence says
    every: Interval  # sets the size of the flex window
    anchor: date  # the day it is counted from: the due date comes after it
    today: date  # placement does not pull a date into the past (unless nominal is)


Week = tuple[int, int]  # ISO (year, week)


@functools.lru_cache(maxsize=4096)
def week_of(day: date) -> Week:
    iso = day.isocalendar()
    return iso.year, iso.week


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass
class Load:
    """How many due dates fall in each ISO week and on each day."""

    weeks: Counter[Week] = field(default_factory=Counter)
    days: Counter[date] = field(default_factory=Counter)

    @classmethod
    def of(cls, dues: Iterable[date]) -> Load:
        load = cls()
        for day in dues:
            load.add(day)
        return load

    def add(self, day: date) -> None:
        self.weeks[week_of(day)] += 1
        self.days[day] += 1

    def week(self, day: date) -> int:
        return self.weeks[week_of(day)]


def window(request: Request, policy: Policy, *, from_today: bool = True) -> list[date]:
    """The days the due date may take, in date order; never empty.

    `nominal ± flex` without the easy days, after the anchor, and not before today
    (or, when the nominal day is already past, not before it). When no day of that window is left,
    the first day after it that is not easy (so the old `avoid_weekends` moved a
    Saturday to the Monday after, and still does)."""
    f = timedelta(days=policy.flex_days(request.every))
    lo = max(request.nominal - f, request.anchor + timedelta(days=1))
    if from_today:
        # Never into the past: from today on, or from the nominal day when that is
        # already past (a late `touch --on`), so placement never adds lateness.
        lo = max(lo, min(request.today, request.nominal))
    hi = max(request.nominal + f, lo)
    first, easy = lo.toordinal(), policy.easy_days
    days = [
        date.fromordinal(n)
        for n in range(first, hi.toordinal() + 1)
        if (n - 1) % 7 not in easy  # date.fromordinal(1) is a Monday
    ]
    if days:
        return days
    day = hi + timedelta(days=1)
    while day.weekday() in policy.easy_days:  # at most 6 easy days: ends
        day += timedelta(days=1)
    return [day]


def fits(due: date | None, request: Request, policy: Policy) -> bool:
    """Whether a due date already set is one placement could have given; then it
    stays (a date is never moved to make room for others).

    Today plays no part here, so a placed date does not stop fitting as days pass:
    any day of `nominal ± flex` after the anchor that is not easy, or the first day
    after that window that is not easy (where placement goes when the window is)."""
    if due is None or due.weekday() in policy.easy_days or due <= request.anchor:
        return False
    f = timedelta(days=policy.flex_days(request.every))
    beyond = request.nominal + f + timedelta(days=1)
    while beyond.weekday() in policy.easy_days:
        beyond += timedelta(days=1)
    return request.nominal - f <= due <= beyond and (due <= request.nominal + f or due == beyond)


def _tiebreak(key: str, day: date) -> bytes:
    return hashlib.sha256(f"{key}\x00{day.isoformat()}".encode()).digest()[:8]


@dataclass(frozen=True, slots=True)
class Placed:
    day: date
    over_capacity: bool  # every week of the window was already full


def place(request: Request, load: Load, policy: Policy) -> Placed:
    """The day for one new due date, given the load of the dates already set.

    Does not add the day to `load`: the caller does (see `place_all`)."""
    days = window(request, policy)

    def rank(d: date) -> tuple[int, int, int]:
        return load.week(d), load.days[d], abs((d - request.nominal).days)

    ranks = [rank(d) for d in days]
    top = min(ranks)
    ties = [d for d, r in zip(days, ranks, strict=True) if r == top]
    # At most two days tie (one before, one after the nominal): a per-contact hash
    # picks, so the same contact always goes the same way.
    best = ties[0] if len(ties) == 1 else min(ties, key=lambda d: _tiebreak(request.key, d))
    full = policy.capacity is not None and load.week(best) >= policy.capacity
    return Placed(best, full)


def place_all(requests: Iterable[Request], load: Load, policy: Policy) -> dict[str, Placed]:
    """Place several dates, earliest nominal first, each counting for the next.

    Keyed by `Request.key`; `load` ends up holding the placed days too."""
    out: dict[str, Placed] = {}
    for request in sorted(requests, key=lambda r: (r.nominal, r.key)):
        placed = place(request, load, policy)
        load.add(placed.day)
        out[request.key] = placed
    return out


# --- what a roster asks for ------------------------------------------------------------


def weekly_rate(intervals: Iterable[Interval]) -> float:
    """Due dates per week a roster produces in the long run (one per interval each)."""
    return sum(7 / max(1, every.approx_days()) for every in intervals)


def capacity_warning(intervals: Iterable[Interval], policy: Policy) -> str | None:
    """A plain warning when the roster needs more due dates a week than the capacity."""
    if policy.capacity is None:
        return None
    rate = weekly_rate(intervals)
    if rate <= policy.capacity:
        return None
    shown = f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}".removesuffix(".0")
    return (
        f"the roster needs about {shown} a week; capacity is {policy.capacity} "
        "(schedule.capacity.per_week): some weeks will hold more. Raise the capacity, "
        "lengthen some intervals or pause some contacts"
    )


def overload_warning(dues: Iterable[date], today: date, policy: Policy) -> str | None:
    """A warning naming the weeks from this one on that hold more due dates than the
    capacity (a burst the flex windows could not spread)."""
    if policy.capacity is None:
        return None
    this_week = monday_of(today)
    load = Load.of(d for d in dues if d >= this_week)
    over = sorted((w, n) for w, n in load.weeks.items() if n > policy.capacity)
    if not over:
        return None
    shown = ", ".join(f"{y}-W{w:02d} ({n})" for (y, w), n in over[:6])
    more = f" and {len(over) - 6} more" if len(over) > 6 else ""
    return (
        f"{len(over)} week(s) hold more due dates than the capacity of {policy.capacity}: "
        f"{shown}{more}; see kit-sync load"
    )


def weeks_ahead(start: date, count: int) -> list[date]:
    """The Mondays of `count` ISO weeks from the one holding `start`."""
    first = monday_of(start)
    return [first + timedelta(weeks=i) for i in range(count)]
