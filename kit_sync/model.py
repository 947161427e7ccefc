"""Backend-neutral data: the tasks kit-sync owns and the touches it records.

Nothing here does I/O. Backends turn their items into `KitTask`s and accept
`NewTask` / `TaskChange` to write; `plan.py` reasons only in these terms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from urllib.parse import quote, unquote

UID_SUFFIX = "@kit-sync"
MARKER = "X-KIT-SYNC-CONTACT"


class Status(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AnchorKind(StrEnum):
    TOUCH = "touch"  # due counted from a real touch day
    NEW = "new"  # never touched: due spread over the first interval from this day


@dataclass(frozen=True)
class TaskContent:
    """What the user reads on the task. kit-sync rewrites it only when the roster changes."""

    summary: str
    description: str
    categories: tuple[str, ...] = ()
    priority: int = 0  # iCalendar: 0 undefined, 1 highest .. 9 lowest
    alarm: str | None = None  # "HH:MM" on the due day, or None

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for part in (
            self.summary,
            self.description,
            "\x1f".join(self.categories),
            str(self.priority),
            self.alarm or "",
        ):
            h.update(part.encode())
            h.update(b"\x00")
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class KitMeta:
    """What kit-sync wrote into the task besides the visible content.

    Stored on the backend (not only in the state DB) so that state can be rebuilt
    from the backend alone. Any field but `contact_id` may be missing when a client
    dropped our private properties.
    """

    contact_id: str
    anchor: date | None = None  # the day the due date was counted from
    anchor_kind: AnchorKind = AnchorKind.TOUCH
    every: str | None = None  # canonical interval ("P14D", "P2M") the due was computed with
    planned_due: date | None = None  # the due date kit-sync last wrote; DUE != this means snoozed
    from_uid: str | None = None  # the completed task this one regenerates
    fingerprint: str | None = None  # TaskContent.fingerprint kit-sync last wrote


@dataclass(frozen=True)
class KitTask:
    """One kit-owned task as the backend has it now."""

    uid: str
    href: str  # backend address (file name, URL path, item id); never derived from uid
    etag: str  # opaque version token for conditional writes
    status: Status
    due: date | None
    meta: KitMeta
    summary: str = ""
    # Raw completion stamp as the client wrote it: aware datetime (UTC or TZID),
    # naive datetime (floating local time), a date, or None when only STATUS says so.
    completed: datetime | date | None = None
    # A user made the task repeating (a client added an RRULE). kit-sync never writes
    # one: a completion read from such a task is turned into a plain completed task.
    recurring: bool = False

    @property
    def contact_id(self) -> str:
        return self.meta.contact_id

    @property
    def snoozed(self) -> bool:
        """The user moved the due date by hand: that date wins until the next touch."""
        return (
            self.meta.planned_due is not None
            and self.due is not None
            and self.due != self.meta.planned_due
        )


@dataclass(frozen=True)
class NewTask:
    uid: str
    due: date
    content: TaskContent
    meta: KitMeta


@dataclass(frozen=True)
class TaskChange:
    """A conditional edit of one task. Fields left as None stay as they are."""

    due: date | None = None
    content: TaskContent | None = None
    meta: KitMeta | None = None
    status: Status | None = None
    completed_at: datetime | None = None  # aware; with status=COMPLETED


@dataclass(frozen=True)
class ItemProblem:
    """An item on the backend kit-sync could not read. Reported, never rewritten."""

    item: str  # file name, href or item id
    message: str
    contact_id: str | None = None  # when the item is recognisably ours


@dataclass
class Listing:
    tasks: list[KitTask] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)


@dataclass(frozen=True)
class Touch:
    contact_id: str
    day: date
    source: str  # "backend" (a completed task), "cli", ...
    source_uid: str  # unique per touch: the completed task's uid, or a generated id
    note: str = ""


def make_uid(contact_id: str, seed: str) -> str:
    """A kit UID: deterministic for (contact, seed), never a prefix of another kit UID.

    The contact id is embedded (percent-encoded, so it cannot contain '@') so a task
    whose private properties a client dropped is still recognisably ours.
    """
    digest = hashlib.sha256(f"{contact_id}\x00{seed}".encode()).hexdigest()[:16]
    return f"kit-{digest}-{quote(contact_id, safe='')}{UID_SUFFIX}"


def contact_from_uid(uid: str) -> str | None:
    if not (uid.startswith("kit-") and uid.endswith(UID_SUFFIX)):
        return None
    body = uid[len("kit-") : -len(UID_SUFFIX)]
    digest, sep, encoded = body.partition("-")
    if not sep or len(digest) != 16 or not encoded:
        return None
    return unquote(encoded)
