"""The catch-up hour: who to contact in one sitting. Pure (takes a Snapshot).

Candidates are the active people overdue or due within `agenda.within` days. They
are ranked by how overdue they are relative to their interval, weighted by
priority (high x2, low x0.5); people who need a meeting (lunch, coffee) are listed
apart "to schedule"; the others are taken in rank order while their channel's
minutes fit the budget (one that does not fit is passed over for a shorter one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from kit_sync.config import AgendaOptions
from kit_sync.overview import Person, Snapshot, touch_how


def priority_weight(priority: int) -> float:
    """iCalendar priority: 1-4 high (x2), 0 or 5 normal (x1), 6-9 low (x0.5)."""
    if 1 <= priority <= 4:
        return 2.0
    if priority >= 6:
        return 0.5
    return 1.0


def urgency(person: Person, today: date) -> float:
    """Days overdue as a share of the interval, weighted by priority: 0.5 is half an
    interval late. Not yet due is negative, and priority pulls it towards 0."""
    assert person.next_due is not None
    ratio = (today - person.next_due).days / max(1, person.contact.every.approx_days())
    weight = priority_weight(person.contact.priority)
    return ratio * weight if ratio >= 0 else ratio / weight


@dataclass(frozen=True)
class Entry:
    person: Person
    urgency: float
    minutes: int

    def as_dict(self, today: date) -> dict[str, Any]:
        c = self.person.contact
        last = self.person.last_touch
        due = self.person.next_due
        return {
            "id": c.id,
            "name": c.name,
            "channel": c.channel.value,
            "minutes": self.minutes,
            "due": due.isoformat() if due else None,
            "days_overdue": self.person.overdue_days(today),
            "urgency": round(self.urgency, 3),
            "priority": c.priority,
            "tier": c.tier,
            "every": str(c.every),
            "email": list(c.emails),
            "phone": c.phone,
            "company": c.company,
            "city": c.city,
            "notes": c.notes,
            "last_touch": None
            if last is None
            else {"day": last.day.isoformat(), "how": touch_how(last), "note": last.note},
        }


@dataclass(frozen=True)
class Agenda:
    today: date
    budget: int
    now: list[Entry]  # contact in this sitting, in order
    to_schedule: list[Entry]  # need a meeting: propose a date
    left: list[Entry]  # due too, but past the budget: next time

    @property
    def used(self) -> int:
        return sum(e.minutes for e in self.now)

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "budget_minutes": self.budget,
            "used_minutes": self.used,
            "now": [e.as_dict(self.today) for e in self.now],
            "to_schedule": [e.as_dict(self.today) for e in self.to_schedule],
            "left_for_next_time": [e.person.contact.id for e in self.left],
        }


def build_agenda(snapshot: Snapshot, budget: int, options: AgendaOptions) -> Agenda:
    today = snapshot.today
    horizon = today + timedelta(days=options.within)
    candidates = [
        p
        for p in snapshot.active
        if p.next_due is not None and p.next_due <= horizon and p.state != "completed"
    ]
    ranked = sorted(
        (Entry(p, urgency(p, today), options.minutes_for(p.contact.channel)) for p in candidates),
        key=lambda e: (-e.urgency, e.person.next_due, e.person.contact.name, e.person.contact.id),
    )
    now: list[Entry] = []
    meet: list[Entry] = []
    left: list[Entry] = []
    used = 0
    for entry in ranked:
        if entry.person.contact.channel in options.meetings:
            meet.append(entry)
        elif used + entry.minutes <= budget:
            now.append(entry)
            used += entry.minutes
        else:
            left.append(entry)
    return Agenda(today, budget, now, meet, left)


# --- output ----------------------------------------------------------------------------


def _when(entry: Entry, today: date) -> str:
    due = entry.person.next_due
    days = entry.person.overdue_days(today)
    if days:
        return f"{days} day{'s' if days != 1 else ''} overdue"
    return "due today" if due == today else f"due {due}"


def _details(entry: Entry) -> list[str]:
    c = entry.person.contact
    out = []
    reach = [*c.emails, *([c.phone] if c.phone else [])]
    if reach:
        out.append(" · ".join(reach))
    org = " · ".join(x for x in (c.title, c.company, c.city) if x)
    if org:
        out.append(org)
    last = entry.person.last_touch
    if last is None:
        out.append("last touch: never")
    else:
        note = f" — {last.note}" if last.note else ""
        out.append(f"last touch: {last.day} ({touch_how(last)}){note}")
    if c.notes:
        out.extend(line for line in c.notes.strip().splitlines() if line.strip())
    return out


def agenda_text(agenda: Agenda) -> str:
    lines = [
        f"Agenda for {agenda.today}: {len(agenda.now)} to contact in "
        f"{agenda.used} of {agenda.budget} minutes"
    ]
    if not (agenda.now or agenda.to_schedule):
        lines.append("Nobody is due: enjoy the hour.")
    for i, e in enumerate(agenda.now, 1):
        c = e.person.contact
        lines.append(
            f"{i:>2}. {c.name} — {c.channel.value}, {e.minutes} min, {_when(e, agenda.today)}"
        )
        lines += [f"      {d}" for d in _details(e)]
    if agenda.to_schedule:
        lines += ["", f"To schedule ({len(agenda.to_schedule)}): propose a date"]
        for e in agenda.to_schedule:
            c = e.person.contact
            lines.append(f"  - {c.name} — {c.channel.value}, {_when(e, agenda.today)}")
            lines += [f"      {d}" for d in _details(e)]
    if agenda.left:
        names = ", ".join(e.person.contact.name for e in agenda.left)
        lines += ["", f"Next time ({len(agenda.left)}): {names}"]
    return "\n".join(lines)


def agenda_markdown(agenda: Agenda) -> str:
    """A printable page."""
    out = [
        f"# Catch-up hour — {agenda.today:%A} {agenda.today.day} {agenda.today:%B %Y}",
        "",
        f"{_people(len(agenda.now))}, {agenda.used} of {agenda.budget} minutes.",
        "",
    ]
    if not (agenda.now or agenda.to_schedule):
        out += ["Nobody is due.", ""]
    for i, e in enumerate(agenda.now, 1):
        c = e.person.contact
        out.append(
            f"## {i}. {c.name} — {c.channel.value}, {e.minutes} min ({_when(e, agenda.today)})"
        )
        out.append("")
        out += [f"- {_md(d)}" for d in _details(e)]
        out += ["- [ ] done", ""]
    if agenda.to_schedule:
        out += ["## To schedule", ""]
        for e in agenda.to_schedule:
            c = e.person.contact
            details = "; ".join(_md(d) for d in _details(e))
            out.append(
                f"- [ ] **{_md(c.name)}** — {c.channel.value}, {_when(e, agenda.today)}: {details}"
            )
        out.append("")
    if agenda.left:
        out += ["## Next time", ""]
        out += [f"- {_md(e.person.contact.name)}" for e in agenda.left]
        out.append("")
    return "\n".join(out)


def _people(n: int) -> str:
    return "1 person" if n == 1 else f"{n} people"


def _md(text: str) -> str:
    """Escape what Markdown would read as markup in a person's notes."""
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in text)
