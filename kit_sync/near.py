"""`kit-sync near CITY`: everyone on the roster in a city, for planning a trip.

Pure: takes the snapshot `overview.fetch_snapshot` reads, returns rows and their
text / JSON forms. A city matches case- and accent-insensitively, and through the
aliases of a configured trip to it ("Lisboa" finds the Lisbon people).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from kit_sync.model import fold_text
from kit_sync.occasions import Trip
from kit_sync.overview import Person, Snapshot, touch_how


@dataclass(frozen=True)
class Nearby:
    city: str
    today: date
    people: list[Person]
    trips: list[Trip]  # configured trips to that city, not over yet


def people_near(snapshot: Snapshot, city: str, trips: tuple[Trip, ...]) -> Nearby:
    names = {fold_text(city)}
    for trip in trips:
        if names & trip.names():
            names |= trip.names()
    found = [
        p
        for p in snapshot.people
        if p.contact.active and p.contact.city and fold_text(p.contact.city) in names
    ]
    found.sort(key=lambda p: (p.next_due or date.max, p.contact.name))
    ahead = [t for t in trips if t.names() & names and t.end >= snapshot.today]
    return Nearby(city, snapshot.today, found, sorted(ahead, key=lambda t: t.start))


def near_dict(report: Nearby) -> dict[str, Any]:
    out = []
    for p in report.people:
        c, last = p.contact, p.last_touch
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "city": c.city,
                "company": c.company,
                "emails": list(c.emails),
                "phone": c.phone,
                "channel": c.channel.value,
                "last_touch": last.day.isoformat() if last else None,
                "last_touch_how": touch_how(last) if last else None,
                "last_touch_note": last.note if last and last.note else None,
                "next_due": p.next_due.isoformat() if p.next_due else None,
                "days_overdue": p.overdue_days(report.today),
                "notes": c.notes,
            }
        )
    trips = [
        {"city": t.city, "from": t.start.isoformat(), "to": t.end.isoformat()} for t in report.trips
    ]
    return {"city": report.city, "people": out, "trips": trips}


def near_text(report: Nearby) -> str:
    if not report.people:
        return f"nobody on the roster lives in {report.city}."
    n = len(report.people)
    lines = [f"{report.city}: {n} {'person' if n == 1 else 'people'}"]
    for t in report.trips:
        lines.append(f"  your trip: {t.label()}")
    for p in report.people:
        c, last = p.contact, p.last_touch
        overdue = p.overdue_days(report.today)
        due = (
            f"{overdue} days overdue"
            if overdue
            else f"due {p.next_due}"
            if p.next_due
            else "no task yet"
        )
        lines.append("")
        lines.append(f"  {c.name}" + (f" ({c.company})" if c.company else "") + f" — {due}")
        if last is not None:
            said = f': "{last.note}"' if last.note else ""
            lines.append(f"      last contact {last.day} ({touch_how(last)}){said}")
        else:
            lines.append("      last contact: never")
        reach = [*c.emails, c.phone] if c.phone else list(c.emails)
        if reach:
            lines.append("      " + " · ".join(reach))
        if c.notes:
            lines += ["      " + line for line in c.notes.strip().splitlines()]
    return "\n".join(lines)
