"""The weekly review: the week in one page, printed or emailed on a schedule.

`build_digest` and the renderers are pure (they take a Snapshot). `send_digest` and
`send_digest_if_due` read the backend and the state file and send mail: the daemon
calls the latter from its cron job and at start-up, so a run missed while it was
down is sent once, and each period's digest once across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kit_sync.model import Touch
from kit_sync.occasions import Trip, next_birthday
from kit_sync.overview import LoadReport, Person, Snapshot, load_chart, touch_how, weekly_load
from kit_sync.schedule import WEEKDAYS, parse_weekday

if TYPE_CHECKING:
    from kit_sync.config import DigestOptions
    from kit_sync.engine import Engine

#: Birthdays this many days ahead are listed.
BIRTHDAYS_AHEAD = 14
#: Trips starting within this many days are listed (and those under way).
TRIPS_AHEAD = 28
#: State keys: the period whose digest the daemon sent, and when any digest was sent.
PERIOD_KEY = "digest.period"
SENT_KEY = "digest.sent_on"


@dataclass(frozen=True)
class Digest:
    today: date
    since: date  # people first seen after this day count as added
    due_this_week: list[Person]  # today .. Sunday, not overdue
    overdue: dict[str, list[Person]]  # by tier ("no tier" for none), most overdue first
    touched: list[tuple[Person, Touch]]  # the 7 days before today, newest first
    added: list[Person]
    load: LoadReport
    birthdays: list[tuple[Person, date]]
    trips: list[tuple[Trip, list[Person]]]  # under way or starting soon, who is there

    @property
    def overdue_count(self) -> int:
        return sum(len(v) for v in self.overdue.values())

    @property
    def subject(self) -> str:
        return (
            f"kit-sync weekly review {self.today:%d %b %Y}: {len(self.due_this_week)} due "
            f"this week, {self.overdue_count} overdue"
        )

    def as_dict(self) -> dict[str, Any]:
        def person(p: Person) -> dict[str, Any]:
            c = p.contact
            return {
                "id": c.id,
                "name": c.name,
                "tier": c.tier,
                "channel": c.channel.value,
                "every": str(c.every),
                "due": p.next_due.isoformat() if p.next_due else None,
                "days_overdue": p.overdue_days(self.today),
                "email": list(c.emails),
                "phone": c.phone,
            }

        return {
            "today": self.today.isoformat(),
            "since": self.since.isoformat(),
            "due_this_week": [person(p) for p in self.due_this_week],
            "overdue_by_tier": {t: [person(p) for p in ps] for t, ps in self.overdue.items()},
            "touched_last_week": [
                {
                    "id": p.contact.id,
                    "name": p.contact.name,
                    "day": t.day.isoformat(),
                    "how": touch_how(t),
                    "note": t.note,
                }
                for p, t in self.touched
            ],
            "added": [person(p) for p in self.added],
            "load": self.load.as_dict(),
            "birthdays": [
                {"id": p.contact.id, "name": p.contact.name, "day": d.isoformat()}
                for p, d in self.birthdays
            ],
            "trips": [
                {
                    "city": t.city,
                    "from": t.start.isoformat(),
                    "to": t.end.isoformat(),
                    "people": [p.contact.id for p in people],
                }
                for t, people in self.trips
            ],
        }


def build_digest(
    snapshot: Snapshot,
    *,
    since: date | None = None,
    weeks: int = 4,
    trips: tuple[Trip, ...] = (),
) -> Digest:
    today = snapshot.today
    sunday = today + timedelta(days=6 - today.weekday())
    since = since if since is not None else today - timedelta(days=7)
    active = [p for p in snapshot.active if p.state != "completed"]
    due = sorted(
        (p for p in active if p.next_due and today <= p.next_due <= sunday),
        key=lambda p: (p.next_due, p.contact.name),
    )
    overdue: dict[str, list[Person]] = {}
    for p in sorted(
        (p for p in active if p.next_due and p.next_due < today),
        key=lambda p: (p.next_due, p.contact.name),
    ):
        overdue.setdefault(p.contact.tier or "no tier", []).append(p)
    week_ago = today - timedelta(days=7)
    touched = sorted(
        ((p, t) for p in snapshot.people for t in p.touches if week_ago <= t.day < today),
        key=lambda pt: (pt[1].day, pt[0].contact.name),
        reverse=True,
    )
    added = sorted(
        (p for p in snapshot.active if p.first_seen and p.first_seen > since),
        key=lambda p: p.contact.name,
    )
    birthdays = sorted(
        (
            (p, next_birthday(p.contact.birthday, today))
            for p in snapshot.active
            if p.contact.birthday is not None
        ),
        key=lambda pd: (pd[1], pd[0].contact.name),
    )
    ahead = today + timedelta(days=BIRTHDAYS_AHEAD)
    soon = today + timedelta(days=TRIPS_AHEAD)
    coming = [
        (trip, [p for p in snapshot.active if trip.matches(p.contact.city)])
        for trip in sorted(trips, key=lambda t: (t.start, t.city))
        if trip.end >= today and trip.start <= soon
    ]
    return Digest(
        today,
        since,
        due,
        dict(sorted(overdue.items())),
        touched,
        added,
        weekly_load(snapshot, weeks),
        [(p, d) for p, d in birthdays if d <= ahead],
        coming,
    )


# --- output ------------------------------------------------------------------------------


def _who(p: Person) -> str:
    reach = " · ".join([*p.contact.emails, *([p.contact.phone] if p.contact.phone else [])])
    return f"{p.contact.name} ({p.contact.channel.value}{', ' + reach if reach else ''})"


def _sections(d: Digest) -> list[tuple[str, list[str]]]:
    """(heading, lines) in the order of the page; empty sections say so."""
    due = [f"{_who(p)} — {p.next_due:%a %d %b}" for p in d.due_this_week]
    overdue: list[str] = []
    for tier, people in d.overdue.items():
        overdue.append(f"{tier} ({len(people)})")
        overdue += [f"  {_who(p)} — {p.overdue_days(d.today)} days overdue" for p in people]
    touched = [
        f"{p.contact.name} on {t.day:%a %d %b} — {touch_how(t)}"
        + (f': "{t.note}"' if t.note else "")
        for p, t in d.touched
    ]
    added = [
        f"{p.contact.name} — {p.contact.tier or 'own cadence'}, every {p.contact.every}"
        for p in d.added
    ]
    sections = [
        (f"Due this week ({len(d.due_this_week)})", due or ["nobody"]),
        (f"Overdue ({d.overdue_count})", overdue or ["nobody"]),
        (f"Touched last week ({len(d.touched)})", touched or ["nobody"]),
        (f"Added to the roster since {d.since:%d %b} ({len(d.added)})", added or ["nobody"]),
        (f"Load, next {len(d.load.weeks)} weeks", load_chart(d.load).splitlines()),
    ]
    if d.birthdays:
        sections.append(
            (
                "Birthdays coming up",
                [f"{p.contact.name} — {day:%a %d %b}" for p, day in d.birthdays],
            )
        )
    if d.trips:
        lines = []
        for trip, people in d.trips:
            who = ", ".join(p.contact.name for p in people) or "nobody on the roster there"
            lines.append(f"{trip.label().removeprefix('in ')}: {who}")
        sections.append(("Trips coming up", lines))
    return sections


def digest_text(d: Digest) -> str:
    out = [f"kit-sync weekly review — {d.today:%A} {d.today.day} {d.today:%B %Y}"]
    for heading, lines in _sections(d):
        out += ["", heading]
        out += [f"  {line}" for line in lines]
    return "\n".join(out) + "\n"


def digest_markdown(d: Digest) -> str:
    out = [f"# Weekly review — {d.today:%A} {d.today.day} {d.today:%B %Y}"]
    for heading, lines in _sections(d):
        out += ["", f"## {heading}", ""]
        if heading.startswith("Load"):
            out += ["```", *lines, "```"]
        else:
            out += [
                f"- {_md(line)}" if not line.startswith("  ") else f"  - {_md(line.strip())}"
                for line in lines
            ]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in text)


# --- when: "monday 08:00" -------------------------------------------------------------------


def _parse_every(every: str) -> tuple[int | None, int, int]:
    word, clock = every.split()
    hour, minute = (int(x) for x in clock.split(":"))
    return (None if word == "daily" else parse_weekday(word)), hour, minute


def cron_fields(every: str) -> dict[str, Any]:
    """APScheduler CronTrigger fields for `digest.every`."""
    weekday, hour, minute = _parse_every(every)
    day = "*" if weekday is None else WEEKDAYS[weekday][:3]
    return {"day_of_week": day, "hour": hour, "minute": minute}


def last_slot(every: str, now: datetime, tz: ZoneInfo) -> datetime:
    """The latest scheduled time at or before `now`: the period `now` belongs to."""
    weekday, hour, minute = _parse_every(every)
    local = now.astimezone(tz)
    for back in range(8):
        day = local.date() - timedelta(days=back)
        if weekday is not None and day.weekday() != weekday:
            continue
        slot = datetime.combine(day, time(hour, minute), tzinfo=tz)
        if slot <= local:
            return slot
    raise AssertionError("unreachable")  # pragma: no cover


# --- sending (I/O) ---------------------------------------------------------------------------


def digest_for(engine: Engine, weeks: int = 4) -> Digest:
    from kit_sync.overview import fetch_snapshot

    raw = engine.state.get_meta(SENT_KEY)
    since = date.fromisoformat(raw) if raw else None
    trips = engine.config.trips.trips()
    return build_digest(fetch_snapshot(engine), since=since, weeks=weeks, trips=trips)


def send_digest(engine: Engine, options: DigestOptions) -> Digest:
    """Build and email the digest now; remember the day (for "added since")."""
    from kit_sync.errors import UsageError
    from kit_sync.mail import send_mail

    if options.smtp is None:
        raise UsageError(
            "no mail server configured: add digest: {to: ..., smtp: {host: ...}} to the config"
        )
    digest = digest_for(engine, options.weeks)
    send_mail(
        options.smtp,
        options.sender or options.to[0],
        options.to,
        digest.subject,
        digest_text(digest),
    )
    engine.state.set_meta(SENT_KEY, digest.today.isoformat())
    return digest


def send_digest_if_due(engine: Engine, options: DigestOptions) -> bool:
    """Send this period's digest unless it was sent already (in this process or an
    earlier one). True when it was sent now."""
    period = last_slot(options.every, engine.clock(), engine.tz).isoformat()
    if engine.state.get_meta(PERIOD_KEY) == period:
        return False
    send_digest(engine, options)
    engine.state.set_meta(PERIOD_KEY, period)
    return True
