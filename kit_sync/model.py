"""The core's data: the people on the roster, how their tasks are worded, the tasks
kit-sync owns and the touches it records.

Nothing here does I/O and nothing here knows the config file: `config.py` and
`roster.py` build these from YAML/CSV/vCard, backends turn their items into
`KitTask`s and accept `NewTask` / `TaskChange` to write; `plan.py` reasons only in
these terms.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from urllib.parse import quote, unquote

from kit_sync.cadence import Interval

UID_SUFFIX = "@kit-sync"
MARKER = "X-KIT-SYNC-CONTACT"


class Status(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AnchorKind(StrEnum):
    TOUCH = "touch"  # due counted from a real touch day
    NEW = "new"  # never touched: due spread over the first interval from this day


class Channel(StrEnum):
    """How the user means to get in touch (shown on the task)."""

    EMAIL = "email"
    CALL = "call"
    LUNCH = "lunch"
    COFFEE = "coffee"
    MESSAGE = "message"
    ANY = "any"


class RemovalPolicy(StrEnum):
    """What happens to the open task of a removed or paused contact (DESIGN rule 5).
    One policy for every backend: `cancel` marks it cancelled (Exchange: Deferred,
    recurrence removed), `delete` deletes it (Exchange: to Deleted Items)."""

    CANCEL = "cancel"
    DELETE = "delete"


@dataclass(frozen=True)
class Wording:
    """How kit tasks read: the title template and what goes beside it."""

    title: str = "Keep in touch with {name}"
    categories: tuple[str, ...] = ("Keep in touch",)
    tier_category: bool = True
    alarm: str | None = None  # "HH:MM" reminder on the due day
    on_remove: RemovalPolicy = RemovalPolicy.CANCEL


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    every: Interval
    channel: Channel = Channel.ANY
    priority: int = 0
    tier: str | None = None
    emails: tuple[str, ...] = ()
    phone: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()
    city: str | None = None
    company: str | None = None
    title: str | None = None
    birthday: date | None = None
    met: date | None = None
    paused: bool = False
    where: str = ""  # "config.yaml:14" or "people.csv:3": where the user can edit it

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name

    @property
    def active(self) -> bool:
        return not self.paused


@dataclass
class Roster:
    contacts: list[Contact]
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_id = {c.id: c for c in self.contacts}

    def get(self, contact_id: str) -> Contact | None:
        return self._by_id.get(contact_id)

    @property
    def active(self) -> list[Contact]:
        return [c for c in self.contacts if c.active]

    def find(self, who: str) -> list[Contact]:
        """Contacts matching an id, an email, or a part of a name. Case and accents do
        not matter: "siobhan" finds Siobhán, "MULLER" finds Müller."""
        key = fold(who)
        exact = [
            c
            for c in self.contacts
            if fold(c.id) == key or key in (fold(e) for e in c.emails) or fold(c.name) == key
        ]
        if exact:
            return exact
        return [c for c in self.contacts if key and key in fold(c.name)]


def fold(text: str) -> str:
    """Text as people type it when searching: no case, no accents, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    # When the task was created (CREATED / the item's creation time), when the
    # backend says: a detected touch before that day does not complete the task.
    created: datetime | None = None

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


@dataclass(frozen=True, slots=True)
class NewTask:
    uid: str
    due: date
    content: TaskContent
    meta: KitMeta


@dataclass(frozen=True, slots=True)
class TaskChange:
    """A conditional edit of one task. Fields left as None stay as they are."""

    due: date | None = None
    content: TaskContent | None = None
    meta: KitMeta | None = None
    status: Status | None = None
    completed_at: datetime | None = None  # aware; with status=COMPLETED


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """An item on the backend kit-sync could not read. Reported, never rewritten."""

    item: str  # file name, href or item id
    message: str
    contact_id: str | None = None  # when the item is recognisably ours


@dataclass
class Listing:
    tasks: list[KitTask] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Touch:
    contact_id: str
    day: date
    source: str  # "backend" (a completed task), "cli", or a touch source ("imap", ...)
    source_uid: str  # unique per touch: the completed task's uid, or a generated id
    note: str = ""
    # What kind of contact it was: "" for a ticked task or `kit-sync touch`; for a
    # touch a source detected, one of DETECTED_KINDS.
    kind: str = ""
    # When it happened (aware), for detected touches: the completion they cause
    # is stamped with it.
    at: datetime | None = None

    @property
    def detected(self) -> bool:
        """Found by a touch source (sent mail, a meeting), not ticked or typed."""
        return self.at is not None and self.kind in DETECTED_KINDS


#: Kinds of touch a source detects (the text shown after "Detected: ").
EMAIL_SENT = "email sent"
EMAIL_RECEIVED = "email received"
MEETING = "meeting"
DETECTED_KINDS = (EMAIL_SENT, EMAIL_RECEIVED, MEETING)


def fold_text(text: str) -> str:
    """Case, accents, punctuation and spacing folded: "Zoë  O'Brien" -> "zoe o brien".
    How names and cities are compared wherever a person types them."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", plain).split())


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
