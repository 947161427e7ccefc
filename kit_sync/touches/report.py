"""`kit-sync touches`: what the sources found, per contact, changing nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from kit_sync.cadence import today
from kit_sync.model import Touch

if TYPE_CHECKING:
    from kit_sync.engine import Engine


@dataclass(frozen=True)
class Found:
    contact_id: str
    name: str
    touch: Touch
    journaled: bool  # False: found just now, journaled by the next sync

    def as_dict(self) -> dict[str, Any]:
        t = self.touch
        return {
            "contact_id": self.contact_id,
            "name": self.name,
            "day": t.day.isoformat(),
            "at": t.at.isoformat() if t.at else None,
            "kind": t.kind,
            "source": t.source,
            "journaled": self.journaled,
        }


def detected_touches(engine: Engine, since_days: int | None) -> tuple[list[Found], list[str]]:
    """Detected touches in the journal plus what the sources find now (not
    journaled, no cursor moved), newest first per contact; and the lines of
    sources that failed."""
    poll = engine.poll_sources(write=False)
    start: date | None = None
    if since_days is not None:
        start = today(engine.clock(), engine.tz) - timedelta(days=since_days)
    rows: list[Found] = []
    pairs = [(t, True) for t in engine.state.touches() if t.detected]
    pairs += [(t, False) for t in poll.touches]
    for touch, journaled in pairs:
        contact = engine.roster.get(touch.contact_id)
        if contact is None or (start is not None and touch.day < start):
            continue
        rows.append(Found(contact.id, contact.name, touch, journaled))
    rows.sort(key=lambda r: (r.name.lower(), r.contact_id, -r.touch.day.toordinal()))
    return rows, poll.failures


def format_text(rows: list[Found], tz: Any) -> list[str]:
    lines: list[str] = []
    current = None
    for r in rows:
        if r.contact_id != current:
            if lines:
                lines.append("")
            lines.append(f"{r.name} ({r.contact_id})")
            current = r.contact_id
        t = r.touch
        when = t.at.astimezone(tz).strftime("%H:%M") if t.at else "     "
        tail = "" if r.journaled else "  (new: counted at the next sync)"
        lines.append(f"  {t.day.isoformat()} {when}  {t.kind:<14} {t.source}{tail}")
    return lines
