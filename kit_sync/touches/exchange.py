"""Sent Items and past meetings of an Exchange mailbox, over EWS (exchangelib).

With the exchange backend and no `email` of its own, the source shares the
backend's account (one connection, one login). Otherwise it opens the mailbox with
the same connection keys as an exchange backend.

- Sent mail: SyncFolderItems on Sent Items with DateTimeSent only (the cursor keeps
  the sync state, so an idle check is one request); the recipients of messages in
  the look-back window are read with GetItem (EWS does not return recipient lists
  from FindItem or SyncFolderItems).
- Meetings: a CalendarView (the server expands recurring meetings) from the last
  check to now, Start/End/IsCancelled/MyResponseType; the attendees of the ended
  ones with GetItem. Cancelled meetings, ones you declined and attendees who
  declined are ignored.

An idle check is two requests: one SyncFolderItems and one FindItem.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from kit_sync.model import EMAIL_SENT, MEETING, Touch
from kit_sync.touches.base import Found, SourceUnavailable, detected_touch, digest
from kit_sync.touches.match import AddressBook, normalise

log = logging.getLogger("kit_sync")

MAIL_FIELDS = ["to_recipients", "cc_recipients", "bcc_recipients", "datetime_sent", "message_id"]
MEETING_FIELDS = ["required_attendees", "optional_attendees", "organizer", "uid", "start"]


class ExchangeSource:
    type: ClassVar[str] = "exchange"

    def __init__(self, config: Any, tz: ZoneInfo, backend: Any = None) -> None:
        from kit_sync.backends.exchange import ExchangeBackend

        self.config = config
        self.tz = tz
        connection = config.connection()
        if connection is None:
            if not isinstance(backend, ExchangeBackend):
                raise SourceUnavailable(
                    "the exchange touch source has no mailbox of its own (email:) and the "
                    "backend is not exchange"
                )
            self._backend, self._own = backend, False
        else:
            self._backend, self._own = ExchangeBackend(connection, tz), True
        self.email = self._backend.config.email
        #: EWS requests sent by this source (benchmarks count them).
        self.requests = 0

    @property
    def name(self) -> str:
        return f"exchange {self.email}"

    @property
    def key(self) -> str:
        c = self._backend.config
        return f"touches|exchange|{self.email}|{c.service_endpoint or c.server or ''}"

    def close(self) -> None:
        if self._own:
            self._backend.close()  # a shared backend is the engine's to close

    def fetch_touches(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        from exchangelib import errors as ews

        from kit_sync.backends.base import BackendError
        from kit_sync.backends.exchange.transport import _translate

        try:
            return self._fetch(book, since, now, cursor)
        except SourceUnavailable:
            raise
        except BackendError as exc:
            raise SourceUnavailable(f"{self.name}: {exc.message}") from None
        except ews.ErrorInvalidSyncStateData:
            log.info("%s: Exchange no longer accepts the sync state; looking back again", self.name)
            return self._fetch(book, since, now, None)
        except Exception as exc:
            raise SourceUnavailable(
                f"{self.name}: {_translate(exc, 'reading sent mail and meetings').message}"
            ) from None

    def _fetch(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        # The backend's account (its login, version and retry policy). The source
        # uses it read-only.
        account = self._backend._acct()
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        found = Found()
        sent_state = self._mail(account, book, since, now, state.get("sent"), found)
        until = state.get("until")
        start = since
        if until:
            # Meetings that ended since the last check (a day's overlap: the journal
            # counts each occurrence once).
            start = max(since, datetime.fromisoformat(until) - timedelta(days=1))
        self._meetings(account, book, start, since, now, found)
        found.cursor = json.dumps({"sent": sent_state, "until": now.isoformat()}, sort_keys=True)
        return found

    def _mail(
        self,
        account: Any,
        book: AddressBook,
        since: datetime,
        now: datetime,
        sync_state: str | None,
        found: Found,
    ) -> str | None:
        folder = account.sent
        folder.item_sync_state = sync_state
        wanted = []
        for change, item in folder.sync_items(
            sync_state=sync_state, only_fields=["datetime_sent"], max_changes_returned=512
        ):
            if isinstance(item, Exception) or change not in ("create", "update"):
                continue
            sent = item.datetime_sent
            if sent is not None and since <= _plain(sent) <= now:
                wanted.append(item)
        self.requests += 1
        if wanted:
            self.requests += 1 + len(wanted) // 100
            for item in account.fetch(ids=wanted, only_fields=MAIL_FIELDS):
                if isinstance(item, Exception):
                    continue  # deleted meanwhile: its touch, if any, was counted before
                found.read += 1
                found.touches += self._mail_touches(item, book, now)
        state: str | None = folder.item_sync_state
        return state

    def _mail_touches(self, item: Any, book: AddressBook, now: datetime) -> list[Touch]:
        addresses = [
            box.email_address
            for field in (item.to_recipients, item.cc_recipients, item.bcc_recipients)
            for box in field or []
            if getattr(box, "email_address", None)
        ]
        contacts: list[str] = []
        for address in addresses:
            for cid in book.contacts_of(address):
                if cid not in contacts:
                    contacts.append(cid)
        if not contacts:
            return []
        at = min(_plain(item.datetime_sent), now)
        message_id = (item.message_id or "").strip().strip("<>").strip()
        item_hash = digest("message-id", message_id) if message_id else digest("ews", item.id)
        return [detected_touch(c, at, EMAIL_SENT, self.type, item_hash, self.tz) for c in contacts]

    def _meetings(
        self,
        account: Any,
        book: AddressBook,
        start: datetime,
        since: datetime,
        now: datetime,
        found: Found,
    ) -> None:
        from exchangelib import EWSDateTime

        view = account.calendar.view(
            start=EWSDateTime.from_datetime(start), end=EWSDateTime.from_datetime(now)
        ).only("start", "end", "is_cancelled", "my_response_type")
        ended = []
        for occurrence in view:
            if isinstance(occurrence, Exception):
                continue
            found.read += 1
            if occurrence.is_cancelled or occurrence.my_response_type == "Decline":
                continue
            end, begin = occurrence.end, occurrence.start
            if end is None or _plain(end) > now or begin is None or _plain(begin) < since:
                continue
            ended.append(occurrence)
        self.requests += 1
        if not ended:
            return
        self.requests += 1 + len(ended) // 100
        for item in account.fetch(ids=ended, only_fields=MEETING_FIELDS):
            if isinstance(item, Exception):
                continue
            contacts: list[str] = []
            for attendee in [*(item.required_attendees or []), *(item.optional_attendees or [])]:
                if attendee.response_type == "Decline" or attendee.mailbox is None:
                    continue
                for cid in book.contacts_of(attendee.mailbox.email_address or ""):
                    if cid not in contacts:
                        contacts.append(cid)
            organizer = item.organizer
            if organizer is not None and normalise(organizer.email_address or "") != normalise(
                self.email
            ):
                for cid in book.contacts_of(organizer.email_address or ""):
                    if cid not in contacts:
                        contacts.append(cid)
            if not contacts:
                continue
            at = _plain(item.start)
            item_hash = digest("event", str(item.uid or item.id), at.isoformat())
            found.touches += [
                detected_touch(c, at, MEETING, self.type, item_hash, self.tz) for c in contacts
            ]


def _plain(moment: Any) -> datetime:
    """exchangelib's EWSDateTime as a plain aware datetime in UTC."""
    return datetime.fromtimestamp(moment.timestamp(), UTC)
