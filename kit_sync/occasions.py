"""Occasions: birthdays and trips. Pure date rules, no I/O, no clock.

Birthdays (DESIGN rule 11) are a second *kind* of kit task. A task's kind travels in
its task key, the value the marker property carries and the UID embeds: the plain
contact id for the keep-in-touch task, `<id>#birthday` for the birthday task. So
each kind has its own marker value and UID namespace on every backend without any
backend knowing about kinds, and a birthday task can never be mistaken for (or
cancelled as a duplicate of) the keep-in-touch task of the same person.

A birthday task recurs on the date, not from completion: completing it (early or
late) schedules the next birthday after the one it was for.

Trips pull contacts who live in the trip's city forward: a contact whose open task
falls due after the trip but within `pull` of its end is due on the trip's first day
instead, so the user meets them while there.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from kit_sync.cadence import Interval
from kit_sync.model import fold_text

BIRTHDAY = "birthday"
KIND_SEP = "#"


def task_key(contact_id: str, kind: str | None = None) -> str:
    """The marker value of a contact's task of `kind` (None: keep in touch)."""
    return contact_id if kind is None else f"{contact_id}{KIND_SEP}{kind}"


def split_key(key: str) -> tuple[str, str | None]:
    """(contact id, kind) of a task key; kind None for the keep-in-touch task."""
    head, sep, kind = key.rpartition(KIND_SEP)
    if sep and kind == BIRTHDAY and head:
        return head, kind
    return key, None


def birthday_in(born: date, year: int) -> date:
    """The day someone born on `born` celebrates in `year`: 29 February falls on
    28 February in common years."""
    if born.month == 2 and born.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, born.month, born.day)


def next_birthday(born: date, on_or_after: date) -> date:
    """The first birthday on or after `on_or_after`."""
    day = birthday_in(born, on_or_after.year)
    return day if day >= on_or_after else birthday_in(born, on_or_after.year + 1)


def birthday_due(born: date, lead_days: int, on_or_after: date) -> tuple[date, date]:
    """(the birthday, the due date `lead_days` before it) for the next birthday whose
    due date is not before `on_or_after`."""
    lead = timedelta(days=lead_days)
    day = next_birthday(born, on_or_after + lead)
    return day, day - lead


@dataclass(frozen=True)
class Birthdays:
    """The birthday tasks' settings (the config's `birthdays:` when `tasks: true`)."""

    lead_days: int = 0
    title: str = "Birthday: {name}"
    counts_as_touch: bool = False


@dataclass(frozen=True)
class Trip:
    city: str
    start: date
    end: date
    aliases: tuple[str, ...] = ()
    pull: Interval | None = None  # this trip's own pull, else the section's

    def names(self) -> set[str]:
        return {fold_text(n) for n in (self.city, *self.aliases) if fold_text(n)}

    def matches(self, city: str | None) -> bool:
        return bool(city) and fold_text(city or "") in self.names()

    def label(self) -> str:
        """'in Lisbon 10–14 Mar', 'in Lisbon 28 Feb–3 Mar', 'in Oslo 30 Dec 2027–2 Jan 2028'."""
        s, e = self.start, self.end
        if s == e:
            span = f"{s.day} {_mon(s)}"
        elif (s.year, s.month) == (e.year, e.month):
            span = f"{s.day}–{e.day} {_mon(e)}"
        elif s.year == e.year:
            span = f"{s.day} {_mon(s)}–{e.day} {_mon(e)}"
        else:
            span = f"{s.day} {_mon(s)} {s.year}–{e.day} {_mon(e)} {e.year}"
        return f"in {self.city} {span}"


def _mon(day: date) -> str:
    return calendar.month_abbr[day.month]


TRIP_MARK = " — "


def with_trip(summary: str, trip: Trip) -> str:
    return f"{summary}{TRIP_MARK}{trip.label()}"


def trip_for(
    city: str | None, due: date, today: date, trips: tuple[Trip, ...], pull: Interval
) -> Trip | None:
    """The trip a contact in `city` due on `due` is met during, if any: the trip ends
    before `due`, `due` is within the trip's pull of its end, and the trip is not over
    (a past trip pulls nobody, so a date it moved goes back). The earliest trip wins."""
    best: Trip | None = None
    for trip in trips:
        if not trip.matches(city) or trip.end < today:
            continue
        pulled = trip.end < due <= (trip.pull or pull).after(trip.end)
        if pulled and (best is None or (trip.start, trip.end) < (best.start, best.end)):
            best = trip
    return best
