"""How the CLI shows what included files gave: `kit-sync check` (per-file report)
and `kit-sync import FILE` (a preview). Text for people, dicts for `--json`.

Pure formatting: the numbers come from `roster.FileReport`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kit_sync.roster import FileReport


def file_heading(report: FileReport) -> str:
    """`outlook.csv (outlook-csv, dates day first (dmy, ...), only categories Network)`"""
    bits = [b for b in (report.format, report.dates and f"dates {report.dates}") if b]
    if report.filter:
        bits.append(f"only {report.filter}")
    return f"{report.path} ({', '.join(bits)})" if bits else report.path


def report_lines(report: FileReport, *, list_added: bool = False) -> list[str]:
    """The per-file report: one heading, one line of counts, then the details."""
    lines = [f"{file_heading(report)}:", f"  {report.summary()}"]
    if list_added:
        for a in report.added:
            every = f"every {a.every}" if a.every else "no cadence (pass --tier)"
            tier = f"tier {a.tier}, " if a.tier else ""
            emails = f" <{', '.join(a.emails)}>" if a.emails else ""
            lines.append(f"  add {a.id}: {a.name}{emails} ({tier}{every}) from {a.where}")
    lines += [f"  merged {m.describe()}" for m in report.merged]
    lines += [f"  duplicate {m.describe()}" for m in report.duplicates]
    lines += [f"  skipped {s}" for s in report.skipped]
    lines += [f"  warning: {w}" for w in report.warnings]
    return lines


def check_lines(reports: Iterable[FileReport]) -> list[str]:
    lines: list[str] = []
    for report in reports:
        lines += report_lines(report)
    return lines


def reports_json(reports: Iterable[FileReport]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in reports]


def include_snippet(
    path: str, tier: str | None, categories: list[str], date_order: str | None
) -> str:
    """The `include:` entry that makes a previewed import real."""
    parts = [f"path: {path}"]
    if tier:
        parts.append(f"tier: {tier}")
    if date_order:
        parts.append(f"date_order: {date_order}")
    if categories:
        parts.append("only: {categories: [" + ", ".join(categories) + "]}")
    return "include:\n  - {" + ", ".join(parts) + "}"
