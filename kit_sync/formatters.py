"""How command results look: one formatter for people, one for scripts (JSON).

As in todoman's `formatters.py`, commands compute plain data and hand it to a
formatter; they never build strings themselves. Both formatters have the same
methods, so `--json` is a choice of formatter, not a branch in every command.
Nothing here does I/O or reads the clock: what to show arrives as arguments.

JSON keys are stable (the README lists them); a new key may be added, none is
renamed or removed without a note in the changelog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

# --- the data commands hand over --------------------------------------------------------


@dataclass(frozen=True)
class StatusRow:
    id: str
    name: str
    tier: str | None
    every: str
    channel: str
    last_touch: date | None
    next_due: date | None
    days_overdue: int
    state: str


@dataclass(frozen=True)
class DueRow:
    id: str
    name: str
    tier: str | None
    channel: str
    next_due: date
    days_overdue: int
    last_touch: date | None
    last_note: str
    notes: str
    emails: tuple[str, ...]
    phone: str | None


@dataclass(frozen=True)
class PlannedAction:
    kind: str  # created / regenerated / updated / cancelled
    verb: str  # create / regenerate / update / cancel / delete
    contact_id: str
    name: str
    reason: str
    due: date | None


@dataclass(frozen=True)
class DetectedTouch:
    """A touch a touch source (sent mail, a meeting) found."""

    contact_id: str
    name: str
    day: date
    kind: str
    source: str


@dataclass(frozen=True)
class SyncReport:
    dry_run: bool
    counts: dict[str, int]
    actions: Sequence[PlannedAction] = ()
    touches: Sequence[tuple[str, str, date]] = ()  # (contact id, name, day)
    problems: Sequence[str] = ()
    failures: Sequence[str] = ()
    skipped: Sequence[str] = ()
    warnings: Sequence[str] = ()  # about the plan as a whole, e.g. more due than capacity
    next_due: Sequence[tuple[str, date]] = ()  # (name, due) soonest first, for a summary
    detected: Sequence[DetectedTouch] = ()


@dataclass(frozen=True)
class CheckReport:
    config: str
    contacts: int
    active: int
    paused: int
    backend: str
    timezone: str
    warnings: Sequence[str] = ()
    files: Sequence[Any] = ()  # the per-file import report, as JSON-ready dicts
    file_lines: Sequence[str] = ()  # the same for people


@dataclass(frozen=True)
class HistoryEntry:
    day: date
    source: str  # as journaled: "cli", "backend:caldav", "backend", ...
    note: str
    recorded_at: str  # ISO timestamp, UTC
    kind: str = ""  # for a touch a source detected: "email sent", ...


@dataclass(frozen=True)
class TouchOutcome:
    contact_id: str
    name: str
    day: date
    next_due: date | None
    already: bool = False  # the person had a touch on that day already: nothing done
    note: str = ""


@dataclass(frozen=True)
class UntouchOutcome:
    contact_id: str
    name: str
    removed_day: date
    due: date | None  # the open task's due date now


KEYS_STATUS = (
    "id",
    "name",
    "tier",
    "every",
    "channel",
    "last_touch",
    "next_due",
    "days_overdue",
    "state",
)


def source_label(source: str, kind: str = "") -> str:
    """A journal source in words: `cli` -> "touch command", `backend:caldav` -> ..."""
    if kind:
        return f"{kind.replace('-', ' ').replace('_', ' ')} ({source})"
    if source == "cli":
        return "touch command"
    kind, _, where = source.partition(":")
    if kind == "backend":
        return f"task completed on {where}" if where else "task completed"
    return source


class Formatter(Protocol):
    def status(self, rows: Sequence[StatusRow]) -> str: ...
    def due(self, rows: Sequence[DueRow], today: date, within: int) -> str: ...
    def sync(self, report: SyncReport) -> str: ...
    def check(self, report: CheckReport) -> str: ...
    def history(self, contact_id: str, name: str, entries: Sequence[HistoryEntry]) -> str: ...
    def touched(self, outcomes: Sequence[TouchOutcome]) -> str: ...
    def untouched(self, outcome: UntouchOutcome) -> str: ...


# --- JSON ----------------------------------------------------------------------------------


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


class JsonFormatter:
    def status(self, rows: Sequence[StatusRow]) -> str:
        return _dump(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "tier": r.tier,
                    "every": r.every,
                    "channel": r.channel,
                    "last_touch": _iso(r.last_touch),
                    "next_due": _iso(r.next_due),
                    "days_overdue": r.days_overdue,
                    "state": r.state,
                }
                for r in rows
            ]
        )

    def due(self, rows: Sequence[DueRow], today: date, within: int) -> str:
        return _dump(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "tier": r.tier,
                    "channel": r.channel,
                    "next_due": _iso(r.next_due),
                    "days_overdue": r.days_overdue,
                    "last_touch": _iso(r.last_touch),
                    "last_note": r.last_note,
                    "notes": r.notes,
                    "emails": list(r.emails),
                    "phone": r.phone,
                }
                for r in rows
            ]
        )

    def sync(self, report: SyncReport) -> str:
        return _dump(
            {
                "dry_run": report.dry_run,
                "counts": report.counts,
                "actions": [
                    {
                        "kind": a.kind,
                        "verb": a.verb,
                        "id": a.contact_id,
                        "name": a.name,
                        "reason": a.reason,
                        "due": _iso(a.due),
                    }
                    for a in report.actions
                ],
                "touches": [
                    {"id": cid, "name": name, "day": day.isoformat()}
                    for cid, name, day in report.touches
                ],
                "detected": [
                    {
                        "id": d.contact_id,
                        "name": d.name,
                        "day": d.day.isoformat(),
                        "kind": d.kind,
                        "source": d.source,
                    }
                    for d in report.detected
                ],
                "problems": list(report.problems),
                "failures": list(report.failures),
                "skipped": list(report.skipped),
                "warnings": list(report.warnings),
            }
        )

    def check(self, report: CheckReport) -> str:
        return _dump(
            {
                "ok": True,
                "config": report.config,
                "contacts": report.contacts,
                "active": report.active,
                "paused": report.paused,
                "backend": report.backend,
                "timezone": report.timezone,
                "warnings": list(report.warnings),
                "files": list(report.files),
            }
        )

    def history(self, contact_id: str, name: str, entries: Sequence[HistoryEntry]) -> str:
        return _dump(
            {
                "id": contact_id,
                "name": name,
                "touches": [
                    {
                        "day": e.day.isoformat(),
                        "source": e.source,
                        "kind": e.kind,
                        "how": source_label(e.source, e.kind),
                        "note": e.note,
                        "recorded_at": e.recorded_at,
                    }
                    for e in entries
                ],
            }
        )

    def touched(self, outcomes: Sequence[TouchOutcome]) -> str:
        return _dump(
            [
                {
                    "id": o.contact_id,
                    "name": o.name,
                    "day": o.day.isoformat(),
                    "next_due": _iso(o.next_due),
                    "already": o.already,
                }
                for o in outcomes
            ]
        )

    def untouched(self, outcome: UntouchOutcome) -> str:
        return _dump(
            {
                "id": outcome.contact_id,
                "name": outcome.name,
                "removed_day": outcome.removed_day.isoformat(),
                "next_due": _iso(outcome.due),
            }
        )


def error_json(message: str, problems: Iterable[str], config: str | None = None) -> str:
    """What `check --json` prints for a config that does not load."""
    return _dump({"ok": False, "config": config, "error": message, "problems": list(problems)})


# --- people ----------------------------------------------------------------------------------

#: Status columns in display order, and the order they go when the terminal is narrow.
_STATUS_COLUMNS = (
    ("name", "name"),
    ("state", "state"),
    ("next_due", "next due"),
    ("days_overdue", "overdue"),
    ("last_touch", "last touch"),
    ("channel", "channel"),
    ("every", "every"),
    ("tier", "tier"),
    ("id", "id"),
)
_DROP_ORDER = ("id", "tier", "every", "channel", "last_touch", "state", "days_overdue")
#: A name is never cut shorter than this (plus the ellipsis).
MIN_NAME = 10
#: Long names are cut to this before any column is dropped.
NAME_FIRST_CUT = 24
_GAP = "  "


def _cell(row: StatusRow, key: str) -> str:
    value = getattr(row, key)
    if key == "days_overdue":
        return str(value) if value else ""
    if value is None:
        return "-" if key in ("last_touch", "next_due") else ""
    return str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


class HumanFormatter:
    """Plain text for a terminal or a pipe. `width` None: no limit (a pipe)."""

    def __init__(self, width: int | None = None, color: bool = False) -> None:
        self.width = width
        self.color = color

    def _style(
        self, text: str, *, fg: str | None = None, bold: bool = False, dim: bool = False
    ) -> str:
        if not self.color or not text:
            return text
        codes = {"red": "31", "green": "32", "yellow": "33", "cyan": "36"}
        parts = [codes[fg]] if fg else []
        if bold:
            parts.append("1")
        if dim:
            parts.append("2")
        return f"\x1b[{';'.join(parts)}m{text}\x1b[0m" if parts else text

    # status: a table without box drawing that fits `width`: columns drop before names are
    # cut, and names are never cut shorter than MIN_NAME.
    def status(self, rows: Sequence[StatusRow]) -> str:
        if not rows:
            return "no contacts in the roster."
        columns = list(_STATUS_COLUMNS)
        cells = [[_cell(r, key) for key, _ in columns] for r in rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]

        def total() -> int:
            return sum(widths) + len(_GAP) * (len(widths) - 1)

        if self.width is not None:
            # First long names give way down to NAME_FIRST_CUT, then columns go, then
            # names are cut further, never below MIN_NAME.
            over = total() - self.width
            if over > 0 and widths[0] > NAME_FIRST_CUT:
                widths[0] = max(NAME_FIRST_CUT, widths[0] - over)
            for key in _DROP_ORDER:
                if total() <= self.width:
                    break
                i = [k for k, _ in columns].index(key)
                del columns[i], widths[i]
                for c in cells:
                    del c[i]
            over = total() - self.width
            if over > 0:
                widths[0] = max(min(widths[0], MIN_NAME + 1), widths[0] - over)
        keys = [k for k, _ in columns]
        lines = [
            self._style(
                _GAP.join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip(),
                bold=True,
            )
        ]
        for row, c in zip(rows, cells, strict=True):
            parts = []
            for key, text, w in zip(keys, c, widths, strict=True):
                text = _cut(text, w).ljust(w)
                if key == "days_overdue" and row.days_overdue:
                    text = self._style(text, fg="red")
                elif key == "state" and row.state in ("missing", "completed"):
                    text = self._style(text, fg="yellow")
                parts.append(text)
            line = _GAP.join(parts).rstrip()
            lines.append(self._style(line, dim=True) if row.state == "paused" else line)
        return "\n".join(lines)

    def due(self, rows: Sequence[DueRow], today: date, within: int) -> str:
        if not rows:
            return f"nobody is due{' within ' + str(within) + ' days' if within else ' today'}."
        groups: dict[str, list[DueRow]] = {}
        for r in rows:
            groups.setdefault(r.channel, []).append(r)
        out: list[str] = []
        for channel in sorted(groups):
            people = groups[channel]
            out.append(self._style(f"{channel} ({len(people)})", bold=True))
            for r in people:
                if r.days_overdue:
                    when = self._style(
                        f"{r.days_overdue} day{'s' if r.days_overdue != 1 else ''} overdue",
                        fg="red",
                    )
                elif r.next_due == today:
                    when = "due today"
                else:
                    when = f"due {r.next_due}"
                last = f"last contact {r.last_touch or 'never'}"
                if r.last_note:
                    last += f" ({r.last_note})"
                out.append(f"  {r.name} — {when}; {last}")
                bits = [*r.emails, r.phone] if r.phone else list(r.emails)
                if bits:
                    out.append(f"      {' · '.join(bits)}")
                for line in r.notes.strip().splitlines():
                    out.append(f"      {line}".rstrip())
            out.append("")
        return "\n".join(out).rstrip("\n")

    def sync(self, report: SyncReport) -> str:
        keys = ("created", "regenerated", "updated", "cancelled", "failed")
        counts = ", ".join(f"{k} {report.counts.get(k, 0)}" for k in keys)
        if not report.dry_run:
            lines = [counts]
            if report.next_due and report.counts.get("created", 0):
                name, due = report.next_due[0]
                lines.append(f"next due: {name} on {due}")
            return "\n".join(lines)
        lines = [
            f"would record touch: {d.name} ({d.contact_id}) on {d.day} ({d.kind}, {d.source})"
            for d in report.detected
        ]
        for a in report.actions:
            tail = f", due {a.due}" if a.due else ""
            lines.append(f"would {a.verb} {a.name} ({a.contact_id}): {a.reason}{tail}")
        for cid, name, day in report.touches:
            lines.append(f"would record touch: {name} ({cid}) on {day}")
        for line in report.problems:
            lines.append(f"problem: {line}")
        for line in report.warnings:
            lines.append(f"warning: {line}")
        counts = ", ".join(f"{k} {report.counts.get(k, 0)}" for k in keys[:-1])
        lines.append(f"dry run: {counts}, failed 0 (nothing written)")
        return "\n".join(lines)

    def check(self, report: CheckReport) -> str:
        head = (
            f"{report.config}: ok — {report.contacts} contacts ({report.active} active), "
            f"backend {report.backend}, time zone {report.timezone}"
        )
        return "\n".join([head, *report.file_lines])

    def history(self, contact_id: str, name: str, entries: Sequence[HistoryEntry]) -> str:
        if not entries:
            return f"{name} ({contact_id}): no touches recorded yet."
        lines = [self._style(f"{name} ({contact_id}): {len(entries)} touch(es)", bold=True)]
        for e in entries:
            note = f"  {e.note}" if e.note else ""
            lines.append(f"  {e.day}  {source_label(e.source, e.kind)}{note}")
        return "\n".join(lines)

    def touched(self, outcomes: Sequence[TouchOutcome]) -> str:
        lines = []
        for o in outcomes:
            if o.already:
                note = f" (note: {o.note})" if o.note else ""
                lines.append(
                    f"{o.name} was already touched on {o.day}{note}; not recorded again "
                    f"(kit-sync untouch {o.contact_id} removes it)"
                )
            else:
                due = f"; next due {o.next_due}" if o.next_due else ""
                lines.append(f"touched {o.name} on {o.day}{due}")
        return "\n".join(lines)

    def untouched(self, outcome: UntouchOutcome) -> str:
        due = f"; due {outcome.due} again" if outcome.due else ""
        return f"removed the touch of {outcome.name} on {outcome.removed_day}{due}"
