"""Pure conversions of the Exchange backend: kit-sync's named properties, Outlook
recurrence and importance, KitMeta as JSON, and the cache entry of one kit item.
No network.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from exchangelib import (
    ExtendedProperty,
    Task,
)
from exchangelib.fields import FieldPath, InvalidField
from exchangelib.recurrence import (
    DailyRegeneration,
    MonthlyRegeneration,
    WeeklyRegeneration,
    YearlyRegeneration,
)

from kit_sync.cadence import Interval, IntervalError
from kit_sync.model import (
    MARKER,
    AnchorKind,
    KitMeta,
    Status,
    contact_from_uid,
    make_uid,
)

log = logging.getLogger("kit_sync.exchange")

P_UID = "X-KIT-SYNC-UID"
P_META = "X-KIT-SYNC-META"
P_DONE = "X-KIT-SYNC-DONE"  # completion stamp kit-sync recorded (EWS ignores CompleteDate)
P_STATE = "X-KIT-SYNC-STATE"  # "cancelled" on a task kit-sync retired

# --- named properties (PublicStrings) ---------------------------------------------------


class _KitProperty(ExtendedProperty):
    distinguished_property_set_id = "PublicStrings"
    property_type = "String"


class _ContactProp(_KitProperty):
    property_name = MARKER


class _UidProp(_KitProperty):
    property_name = P_UID


class _MetaProp(_KitProperty):
    property_name = P_META


class _DoneProp(_KitProperty):
    property_name = P_DONE


class _StateProp(_KitProperty):
    property_name = P_STATE


_PROPS: dict[str, type[ExtendedProperty]] = {
    "kit_contact": _ContactProp,
    "kit_uid": _UidProp,
    "kit_meta": _MetaProp,
    "kit_done": _DoneProp,
    "kit_state": _StateProp,
}
_register_lock = threading.Lock()


def _register_properties() -> None:
    """Make the named properties attributes of exchangelib's Task (once per process)."""
    with _register_lock:
        for name, cls in _PROPS.items():
            try:
                Task.get_field_by_fieldname(name)
            except InvalidField:
                Task.register(name, cls)


def _paths(*names: str) -> set[FieldPath]:
    return {FieldPath(field=Task.get_field_by_fieldname(n)) for n in names}


def kit_owner(contact: str | None, uid: str | None) -> str | None:
    """The task key (contact id) when an item's named properties make it kit-sync's,
    else None (foreign).

    Ours means both: the marker (X-KIT-SYNC-CONTACT) and, in X-KIT-SYNC-UID, a kit
    UID naming that same key. Every kit-sync version writes both in the CreateItem
    of each task and never changes either afterwards. Exchange and Outlook copy named
    properties with an item (the completed copy of a regenerating task, a task
    copied in Outlook): such a copy carries both, with its original's UID, and is
    kit-sync's (a completed copy is a touch; an open second one is a duplicate the
    plan reduces to one). A marker without that UID (none, another program's, a kit
    UID of someone else) was written by something else: foreign, never changed."""
    if contact and uid and contact_from_uid(uid) == contact:
        return contact
    return None


#: Asked in SyncFolderItems: just enough to tell our items from foreign ones.
SYNC_FIELDS = ("kit_contact", "kit_uid")
#: Read with GetItem for each changed kit item.
READ_FIELDS = (
    "subject",
    "due_date",
    "status",
    "complete_date",
    "recurrence",
    "reminder_is_set",
    "reminder_due_by",
    *_PROPS,
)

# --- small pure helpers ------------------------------------------------------------------


def regeneration_for(every: str | None) -> Any:
    """The Outlook regeneration pattern for a kit interval ("P21D" -> every 3 weeks)."""
    try:
        iv = Interval.parse(every or "P7D")
    except IntervalError:
        iv = Interval(days=7)
    if iv.months and not iv.days:
        if iv.months % 12 == 0:
            return YearlyRegeneration(interval=iv.months // 12)
        return MonthlyRegeneration(interval=iv.months)
    if iv.days and not iv.months:
        if iv.days % 7 == 0:
            return WeeklyRegeneration(interval=iv.days // 7)
        return DailyRegeneration(interval=iv.days)
    return DailyRegeneration(interval=iv.approx_days())  # no Outlook pattern; kit-sync corrects


def importance_for(priority: int) -> str:
    """iCalendar priority (1 highest .. 9 lowest, 0 none) -> Outlook importance."""
    if 1 <= priority <= 4:
        return "High"
    if priority >= 6:
        return "Low"
    return "Normal"


def meta_to_json(meta: KitMeta) -> str:
    return json.dumps(
        {
            "v": 1,
            "anchor": meta.anchor.isoformat() if meta.anchor else None,
            "kind": meta.anchor_kind.value,
            "every": meta.every,
            "due": meta.planned_due.isoformat() if meta.planned_due else None,
            "from": meta.from_uid,
            "hash": meta.fingerprint,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def meta_from_json(contact_id: str, text: str | None) -> KitMeta:
    """KitMeta from the property; only the contact id when it is missing or unreadable
    (the plan then adopts the task as it is, as for a client that dropped it)."""
    if not text:
        return KitMeta(contact_id)
    try:
        raw = json.loads(text)
        return KitMeta(
            contact_id,
            date.fromisoformat(raw["anchor"]) if raw.get("anchor") else None,
            AnchorKind(raw.get("kind") or "touch"),
            raw.get("every") or None,
            date.fromisoformat(raw["due"]) if raw.get("due") else None,
            raw.get("from") or None,
            raw.get("hash") or None,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("unreadable kit-sync bookkeeping on a task of %s; adopting it", contact_id)
        return KitMeta(contact_id)


def _iso_or_none(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _stamp_from(text: str | None) -> datetime | date | None:
    if not text:
        return None
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)


# --- the cache of kit items -----------------------------------------------------------------


@dataclass
class _Entry:
    """What kit-sync knows about one kit item, as of change key `ck`."""

    id: str
    ck: str
    contact_id: str
    stored_uid: str | None
    status: Status
    due: date | None
    completed: datetime | date | None
    summary: str
    recurring: bool
    reminder: datetime | None
    meta: KitMeta
    has_done: bool = False
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        m = self.meta
        return {
            "ck": self.ck,
            "cid": self.contact_id,
            "uid": self.stored_uid,
            "status": self.status.value,
            "due": _iso_or_none(self.due),
            "completed": _iso_or_none(self.completed),
            "summary": self.summary,
            "rec": self.recurring,
            "rem": _iso_or_none(self.reminder),
            "meta": None if m == KitMeta(self.contact_id) else meta_to_json(m),
            "done": self.has_done,
            "problem": self.problem,
        }

    @classmethod
    def from_json(cls, item_id: str, raw: dict[str, Any]) -> _Entry:
        cid = raw["cid"]
        return cls(
            item_id,
            raw["ck"],
            cid,
            raw.get("uid"),
            Status(raw["status"]),
            date.fromisoformat(raw["due"]) if raw.get("due") else None,
            _stamp_from(raw.get("completed")),
            raw.get("summary") or "",
            bool(raw.get("rec")),
            datetime.fromisoformat(raw["rem"]) if raw.get("rem") else None,
            meta_from_json(cid, raw.get("meta")),
            bool(raw.get("done")),
            raw.get("problem"),
        )


def _utc(value: datetime) -> datetime:
    """A stdlib datetime in UTC (exchangelib's EWSDateTime refuses stdlib zones)."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _done_stamp(raw: str | None, due: date | None) -> datetime | None:
    """Our recorded completion stamp, if it belongs to a completion of this due date."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        if data.get("due") != _iso_or_none(due):
            return None
        return datetime.fromisoformat(data["at"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _assign_uids(entries: Iterable[_Entry]) -> dict[str, str]:
    """Item id -> kit uid, deterministic for a listing.

    A completed copy carries every property of its master, including the kit UID, so
    completed items get a uid derived from their own item id (stable: an item id
    does not change). Among open items sharing a stored UID (a copy reopened in
    Outlook, a task copied by hand) the recurring one keeps it."""
    out: dict[str, str] = {}
    by_uid: dict[str, list[_Entry]] = {}
    for e in entries:
        if e.status is Status.COMPLETED or not e.stored_uid:
            out[e.id] = make_uid(e.contact_id, f"ews:{e.id}")
        else:
            by_uid.setdefault(e.stored_uid, []).append(e)
    for uid, group in by_uid.items():
        group.sort(key=lambda e: (not e.recurring, e.id))
        out[group[0].id] = uid
        for e in group[1:]:
            out[e.id] = make_uid(e.contact_id, f"ews:{e.id}")
    return out
