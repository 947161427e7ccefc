"""Pure date rules. No I/O, no clock: callers pass `now` and the zone.

DESIGN rule 2: the next task is due `touch_day + every`, where touch_day is the
local calendar day (in the user's zone) on which the task was completed. Months
are calendar months, clamped to the month's end (Jan 31 + 1 month = Feb 28/29).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

_UNITS_DAYS = {"day": 1, "week": 7, "fortnight": 14}
_UNITS_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_WORDS = {
    "daily": (1, 0),
    "weekly": (7, 0),
    "biweekly": (14, 0),
    "fortnightly": (14, 0),
    "monthly": (0, 1),
    "bimonthly": (0, 2),
    "quarterly": (0, 3),
    "semiannually": (0, 6),
    "half-yearly": (0, 6),
    "yearly": (0, 12),
    "annually": (0, 12),
}
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
}
_PHRASE = re.compile(r"^(?:every\s+)?(?:(\d+|[a-z]+)\s*)?([a-z]+?)s?$")
_ISO = re.compile(r"^P(?:(\d+)M)?(?:(\d+)D)?$")

EXAMPLES = '"3 weeks", "2 months", "90 days", "quarterly", "monthly", "yearly"'


class IntervalError(ValueError):
    pass


_BARE_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


def _no_unit(value: object) -> str:
    """A bare number is never guessed: 2 could mean days, weeks or months."""
    n = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        n = str(int(value))
    units = (
        ("weeks", "months") if len(n) < 3 and n.isdigit() and int(n) <= 12 else ("days", "weeks")
    )
    return (
        f'\'{n}\' has no unit; write it with one, like "{n} {units[0]}" or "{n} {units[1]}" '
        "(a bare number could mean days, weeks or months)"
    )


@dataclass(frozen=True, order=True, slots=True)
class Interval:
    """A cadence: whole months plus whole days (never both in user input)."""

    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or (self.months == 0 and self.days == 0):
            raise IntervalError("an interval must be at least one day")

    @classmethod
    def parse(cls, text: str | int) -> Interval:
        """Parse an interval as people write it. Raises IntervalError with examples."""
        if isinstance(text, int | float) and not isinstance(text, bool):
            raise IntervalError(_no_unit(text))
        if not isinstance(text, str):
            raise IntervalError(f"expected an interval like {EXAMPLES}, got {text!r}")
        raw = " ".join(text.strip().lower().split())
        if _BARE_NUMBER.match(raw):
            raise IntervalError(_no_unit(raw))
        iso = _ISO.match(text.strip().upper())
        if iso and (iso.group(1) or iso.group(2)):
            return cls(months=int(iso.group(1) or 0), days=int(iso.group(2) or 0))
        if raw in _WORDS:
            days, months = _WORDS[raw]
            return cls(months=months, days=days)
        m = _PHRASE.match(raw)
        if m:
            count_text, unit = m.group(1), m.group(2)
            if count_text is None:
                count = 1
            elif count_text.isdigit():
                count = int(count_text)
            else:
                count = _NUMBER_WORDS.get(count_text, 0)
            if count > 0:
                if unit in _UNITS_DAYS:
                    return cls(days=count * _UNITS_DAYS[unit])
                if unit in _UNITS_MONTHS:
                    return cls(months=count * _UNITS_MONTHS[unit])
        raise IntervalError(f"'{text}' is not an interval; write it like {EXAMPLES}")

    @property
    def iso(self) -> str:
        """Canonical form stored on tasks: P2M, P21D."""
        return (
            "P"
            + (f"{self.months}M" if self.months else "")
            + (f"{self.days}D" if self.days else "")
        )

    def __str__(self) -> str:
        if self.months and not self.days:
            if self.months % 12 == 0:
                n = self.months // 12
                return "1 year" if n == 1 else f"{n} years"
            return "1 month" if self.months == 1 else f"{self.months} months"
        if self.days and not self.months:
            if self.days % 7 == 0:
                n = self.days // 7
                return "1 week" if n == 1 else f"{n} weeks"
            return "1 day" if self.days == 1 else f"{self.days} days"
        return f"{self.months} months {self.days} days"

    def after(self, day: date) -> date:
        """`day` + this interval, months clamped to the end of the month."""
        return day + relativedelta(months=self.months, days=self.days)

    def before(self, day: date) -> date:
        """`day` - this interval (a look-back start), months clamped likewise."""
        return day - relativedelta(months=self.months, days=self.days)

    def approx_days(self) -> int:
        return self.days + round(self.months * 30.44)


@dataclass(frozen=True)
class Rules:
    """Scheduling options from the config's `schedule:` section."""

    avoid_weekends: bool = False
    spread_new: bool = True


def local_day(stamp: datetime | date, tz: ZoneInfo) -> date:
    """The calendar day in `tz` of a completion stamp.

    Aware datetimes (UTC or any TZID) are converted to `tz`; naive datetimes are
    floating local time (RFC 5545) and taken as already local; a date is itself.
    """
    if isinstance(stamp, datetime):
        if stamp.tzinfo is None or stamp.tzinfo.utcoffset(stamp) is None:
            return stamp.date()
        return stamp.astimezone(tz).date()
    return stamp


def today(now: datetime, tz: ZoneInfo) -> date:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(tz).date()


def shift_weekend(day: date) -> date:
    """Saturday and Sunday move to the following Monday."""
    wd = day.weekday()
    return day + timedelta(days=7 - wd) if wd >= 5 else day


def next_due(touch_day: date, every: Interval, rules: Rules = Rules()) -> date:
    """DESIGN rule 2: the next due date after a touch on `touch_day`."""
    due = every.after(touch_day)
    return shift_weekend(due) if rules.avoid_weekends else due


def spread_offset(contact_id: str, span_days: int) -> int:
    """A stable offset in 1..span_days for this contact (same id, same offset)."""
    if span_days <= 1:
        return 1
    digest = hashlib.sha256(contact_id.encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % span_days


def first_due(start: date, contact_id: str, every: Interval, rules: Rules = Rules()) -> date:
    """Due date for a contact never touched, first seen on `start`.

    With `spread_new` the dates of a freshly imported roster spread evenly over the
    first interval (deterministic per contact id) instead of all landing on one day.
    """
    if rules.spread_new:
        span = (every.after(start) - start).days
        due = start + timedelta(days=spread_offset(contact_id, span))
    else:
        due = start + timedelta(days=1)
    return shift_weekend(due) if rules.avoid_weekends else due


def planned_due(anchor: date, new: bool, contact_id: str, every: Interval, rules: Rules) -> date:
    """The due date kit-sync wants for a task anchored on `anchor`."""
    if new:
        return first_due(anchor, contact_id, every, rules)
    return next_due(anchor, every, rules)
