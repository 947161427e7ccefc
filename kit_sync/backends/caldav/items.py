"""Pure conversions of the CalDAV backend: hrefs and file names, ETags, and the
rows of the listing cache (a kit task as JSON and back). No I/O.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kit_sync.model import (
    AnchorKind,
    ItemProblem,
    KitMeta,
    KitTask,
    Status,
)

# --- small helpers ----------------------------------------------------------------------


def _key(href: str) -> str:
    """One spelling per item: servers and the library disagree on quoting (@ vs %40)."""
    return unquote(urlsplit(href).path)


def _file_name(uid: str) -> str:
    """A plain ASCII resource name for a kit UID (no '@' or '%': quoting differs)."""
    safe = (ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in uid)
    return "".join(safe) + ".ics"


def _strong(etag: str | None) -> str | None:
    if not etag or etag.startswith("W/"):
        return None
    return etag


def _parser_fingerprint() -> str:
    """Cached parsed tasks are only valid for the reading code that parsed them."""
    h = hashlib.sha256()
    for name in ("kit_sync.backends.ical", "kit_sync.model"):
        spec = importlib.util.find_spec(name)
        with contextlib.suppress(OSError, TypeError):
            h.update(Path(str(spec.origin if spec else "")).read_bytes())
    return h.hexdigest()[:16]


# --- what the backend remembers about each item ------------------------------------------


@dataclass
class _Item:
    href: str  # as the server spells it (a path)
    etag: str
    task: KitTask | None = None  # kit-owned and readable
    problem: ItemProblem | None = None  # kit-owned but unreadable
    data: bytes | None = None  # the raw iCalendar of a kit item; None: in the cache file

    @property
    def kind(self) -> str:
        return "task" if self.task else "problem" if self.problem else "foreign"


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


def _info_json(item: _Item) -> str | None:
    if item.task is not None:
        t, m = item.task, item.task.meta
        return json.dumps(
            {
                "uid": t.uid,
                "status": t.status.value,
                "due": t.due.isoformat() if t.due else None,
                "summary": t.summary,
                "completed": _stamp_json(t.completed),
                "recurring": t.recurring,
                "meta": [
                    m.contact_id,
                    m.anchor.isoformat() if m.anchor else None,
                    m.anchor_kind.value,
                    m.every,
                    m.planned_due.isoformat() if m.planned_due else None,
                    m.from_uid,
                    m.fingerprint,
                ],
            }
        )
    if item.problem is not None:
        return json.dumps([item.problem.message, item.problem.contact_id])
    return None


def _item_from_row(href: str, etag: str, kind: str, info: str | None) -> _Item:
    item = _Item(href, etag)
    if kind == "task" and info:
        d = json.loads(info)
        cid, anchor, akind, every, planned, from_uid, fingerprint = d["meta"]
        item.task = KitTask(
            uid=d["uid"],
            href=href,
            etag=etag,
            status=Status(d["status"]),
            due=_day(d["due"]),
            meta=KitMeta(
                cid, _day(anchor), AnchorKind(akind), every, _day(planned), from_uid, fingerprint
            ),
            summary=d["summary"],
            completed=_stamp_from(d["completed"]),
            recurring=bool(d.get("recurring")),
        )
    elif kind == "problem" and info:
        message, cid = json.loads(info)
        item.problem = ItemProblem(href, message, cid)
    return item
