"""The touch-source contract.

A source turns what it reads (sent messages, past meetings) into `Touch`es of
roster contacts. It is incremental: it gets back the opaque cursor it returned
last time (None on the first run, after a lost state file, or when the roster's
addresses changed) and reads only what is new since then; without a cursor it
looks back to `since`. The runner journals the touches and stores the new cursor
in one transaction, so a crash in between reads the same items again, and the
journal (unique per `Touch.source_uid`) counts each once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo

from kit_sync.errors import KitError
from kit_sync.model import Touch
from kit_sync.touches.match import AddressBook, local_day


class SourceError(KitError):
    """A touch source could not be read. The task sync runs anyway; a one-shot
    command exits 1 after it, the daemon retries the source with back-off."""

    exit_code = 1


class SourceUnavailable(SourceError):
    """Cannot reach the source at all (down, refused credentials, folder missing,
    library missing)."""


@dataclass
class Found:
    """What one poll of a source found: touches of roster contacts only."""

    touches: list[Touch] = field(default_factory=list)
    cursor: str | None = None  # where to go on from next time
    read: int = 0  # items (messages, event occurrences) looked at, for logs and benchmarks


class TouchSource(Protocol):
    #: Config `type` ("imap", "caldav-events", ...), also the journal's `source`.
    type: ClassVar[str]

    @property
    def name(self) -> str:
        """Where it reads, for messages: "imap imap.example.com (me@example.com)"."""
        ...

    @property
    def key(self) -> str:
        """Stable id of this source (server, account, folders) for its cursor."""
        ...

    def fetch_touches(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        """Touches of contacts in `book` that are new since `cursor` (or happened on
        or after `since` when the cursor is None or no longer valid), and nothing
        after `now`. Network faults raise SourceUnavailable; nothing is written."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...


def digest(*parts: str) -> str:
    """The only trace of a message or event kept in the journal: a hash of its
    Message-ID / UID (and occurrence), never the value itself."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def detected_touch(
    contact_id: str, at: datetime, kind: str, source: str, item_hash: str, tz: ZoneInfo
) -> Touch:
    """A touch of `contact_id` at `at` (aware), on its day in the user's zone."""
    return Touch(
        contact_id,
        local_day(at, tz),
        source,
        f"{source}:{item_hash}:{contact_id}",
        kind=kind,
        at=at,
    )
