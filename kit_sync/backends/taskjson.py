"""What a listing cache keeps of a parsed item, as JSON: a KitTask, an unreadable kit
item (ItemProblem) or nothing (a foreign item).

A cache stores these so an unchanged item is never parsed again. What was parsed
is only valid for the reading code that parsed it: `parser_version()` changes with
that code, and a cache written under another version is dropped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from kit_sync.model import AnchorKind, ItemProblem, KitMeta, KitTask, Status

Parsed = KitTask | ItemProblem | None

_version: str | None = None


def parser_version() -> str:
    """A fingerprint of the code that turns iCalendar data into KitTasks."""
    global _version
    if _version is None:
        h = hashlib.sha256()
        for name in ("kit_sync.backends.ical", "kit_sync.model", __name__):
            spec = importlib.util.find_spec(name)
            try:
                h.update(Path(str(spec.origin if spec else "")).read_bytes())
            except (OSError, TypeError):
                h.update(name.encode())
        _version = h.hexdigest()[:16]
    return _version


def kind_of(found: Parsed) -> str:
    return "task" if isinstance(found, KitTask) else "problem" if found is not None else "foreign"


def _stamp_json(value: datetime | date | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    return ["d", value.isoformat()]


def _stamp_from(value: Any) -> datetime | date | None:
    if not value:
        return None
    kind, text = value
    return datetime.fromisoformat(text) if kind == "dt" else date.fromisoformat(text)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def to_json(found: Parsed) -> str | None:
    """The parsed item as JSON (None for a foreign item). href and etag are not
    included: the cache keeps them beside it."""
    if isinstance(found, KitTask):
        t, m = found, found.meta
        return json.dumps(
            [
                t.uid,
                t.status.value,
                t.due.isoformat() if t.due else None,
                t.summary,
                _stamp_json(t.completed),
                t.recurring,
                m.contact_id,
                m.anchor.isoformat() if m.anchor else None,
                m.anchor_kind.value,
                m.every,
                m.planned_due.isoformat() if m.planned_due else None,
                m.from_uid,
                m.fingerprint,
                t.created.isoformat() if t.created else None,
            ],
            ensure_ascii=False,
        )
    if isinstance(found, ItemProblem):
        return json.dumps([found.message, found.contact_id], ensure_ascii=False)
    return None


def from_json(kind: str, info: str | None, href: str, etag: str) -> Parsed:
    """The inverse of `to_json` (`kind` as given by `kind_of`)."""
    if kind == "task" and info:
        (
            uid,
            status,
            due,
            summary,
            completed,
            recurring,
            cid,
            anchor,
            akind,
            every,
            planned,
            from_uid,
            fingerprint,
            created,
        ) = json.loads(info)
        return KitTask(
            uid=uid,
            href=href,
            etag=etag,
            status=Status(status),
            due=_day(due),
            meta=KitMeta(
                cid, _day(anchor), AnchorKind(akind), every, _day(planned), from_uid, fingerprint
            ),
            summary=summary,
            completed=_stamp_from(completed),
            recurring=bool(recurring),
            created=datetime.fromisoformat(created) if created else None,
        )
    if kind == "problem" and info:
        message, cid = json.loads(info)
        return ItemProblem(href, message, cid)
    return None
