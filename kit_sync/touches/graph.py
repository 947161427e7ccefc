"""Sent Items and past meetings of a Microsoft 365 account, over Microsoft Graph.

With the graph backend and no `client_id` of its own, the source shares the
backend's client (its sign-in, throttling budget and error translation); the
sign-in then also asks for Mail.ReadBasic (headers, never bodies) and
Calendars.Read. With a `client_id` it reads with app-only access of its own.

- Sent mail: `mailFolders/sentitems/messages/delta` with only sentDateTime, the
  recipients and internetMessageId selected; the first round is filtered to the
  look-back window, the cursor keeps the deltaLink, so an idle check is one request.
  An expired delta link (410) means looking back again; the journal counts each
  message once.
- Meetings: a `calendarView` (the service expands recurring meetings) from the last
  check to now; cancelled ones, ones you declined and attendees who declined are
  ignored.

An idle check is two requests: the messages delta and the calendar view.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from kit_sync.model import EMAIL_SENT, MEETING, Touch
from kit_sync.touches.base import Found, SourceUnavailable, detected_touch, digest
from kit_sync.touches.match import AddressBook, normalise

log = logging.getLogger("kit_sync")

MAIL_SELECT = "sentDateTime,toRecipients,ccRecipients,bccRecipients,internetMessageId"
EVENT_SELECT = "iCalUId,start,end,isCancelled,responseStatus,organizer,attendees"
#: Pages a single poll follows before it stops (a runaway nextLink chain).
MAX_PAGES = 1000


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphSource:
    type: ClassVar[str] = "graph"

    def __init__(self, config: Any, tz: ZoneInfo, backend: Any = None) -> None:
        from kit_sync.backends.graph import GraphBackend

        self.config = config
        self.tz = tz
        connection = config.connection()
        if connection is None:
            if not isinstance(backend, GraphBackend):
                raise SourceUnavailable(
                    "the graph touch source has no account of its own (client_id:) and the "
                    "backend is not graph"
                )
            self._backend, self._own = backend, False
        else:
            self._backend, self._own = GraphBackend(connection, tz), True
        self._root = self._backend._root  # /me, or /users/{upn} with app-only access

    @property
    def requests(self) -> int:
        count: int = self._backend.requests
        return count

    @property
    def name(self) -> str:
        who = self._backend.config.user or "the signed-in user"
        return f"graph {who}"

    @property
    def key(self) -> str:
        c = self._backend.config
        return f"touches|graph|{c.graph_url}|{c.client_id}|{self._root}"

    def close(self) -> None:
        if self._own:
            self._backend.close()  # a shared backend is the engine's to close

    def fetch_touches(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        from kit_sync.backends.base import AuthFailed, BackendError

        try:
            return self._fetch(book, since, now, cursor)
        except _DeltaGone:
            log.info("%s: the mail delta link expired; looking back again", self.name)
            state = json.loads(cursor) if cursor else {}
            state.pop("mail", None)
            return self._fetch(book, since, now, json.dumps(state))
        except AuthFailed as exc:
            raise SourceUnavailable(
                f"{self.name}: {exc.message} (reading sent mail and meetings needs the "
                "Mail.ReadBasic and Calendars.Read permissions: Mail.ReadBasic.All and "
                "Calendars.Read with admin consent for app-only access; after adding a "
                "graph touch source, run kit-sync login once more)"
            ) from None
        except BackendError as exc:
            raise SourceUnavailable(f"{self.name}: {exc.message}") from None

    def _get(self, url: str, what: str) -> dict[str, Any]:
        from kit_sync.backends.base import BackendError

        try:
            data: dict[str, Any] = self._backend._call("GET", url, what)
        except BackendError as exc:
            if "syncStateNotFound" in exc.message or "410" in exc.message:
                raise _DeltaGone() from None
            raise
        return data

    def _fetch(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        # The backend's client (its token, throttling budget and error translation),
        # used read-only.
        self._backend._budget = float(self._backend.config.max_retry_wait)
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        found = Found()
        link = state.get("mail") or (
            f"{self._root}/mailFolders/sentitems/messages/delta?$select={MAIL_SELECT}"
            f"&$filter={quote('receivedDateTime ge ' + _iso(since), safe='')}"
        )
        for _ in range(MAX_PAGES):
            page = self._get(self._backend._own_link(link) if "://" in link else link, "sent mail")
            for message in page.get("value") or []:
                if "@removed" in message:
                    continue  # a deleted message does not undo its touch
                found.read += 1
                found.touches += self._mail_touches(message, book, since, now)
            if page.get("@odata.nextLink"):
                link = str(page["@odata.nextLink"])
                continue
            link = str(page.get("@odata.deltaLink") or link)
            break
        until = state.get("until")
        start = since
        if until:
            # Meetings that ended since the last check (a day's overlap: the journal
            # counts each occurrence once).
            start = max(since, datetime.fromisoformat(until) - timedelta(days=1))
        self._meetings(book, start, since, now, found)
        found.cursor = json.dumps({"mail": link, "until": now.isoformat()}, sort_keys=True)
        return found

    def _mail_touches(
        self, message: dict[str, Any], book: AddressBook, since: datetime, now: datetime
    ) -> list[Touch]:
        from kit_sync.backends.graph.items import parse_dtz

        sent_text = message.get("sentDateTime")
        if not sent_text:
            return []
        sent = parse_dtz({"dateTime": str(sent_text).rstrip("Z"), "timeZone": "UTC"})
        if sent is None or sent < since:
            return []
        contacts: list[str] = []
        for field in ("toRecipients", "ccRecipients", "bccRecipients"):
            for person in message.get(field) or []:
                address = (person.get("emailAddress") or {}).get("address") or ""
                for cid in book.contacts_of(address):
                    if cid not in contacts:
                        contacts.append(cid)
        if not contacts:
            return []
        at = min(sent, now)
        message_id = str(message.get("internetMessageId") or "").strip().strip("<>").strip()
        item_hash = (
            digest("message-id", message_id) if message_id else digest("graph", message["id"])
        )
        return [detected_touch(c, at, EMAIL_SENT, self.type, item_hash, self.tz) for c in contacts]

    def _meetings(
        self, book: AddressBook, start: datetime, since: datetime, now: datetime, found: Found
    ) -> None:
        from kit_sync.backends.graph.items import parse_dtz

        link = (
            f"{self._root}/calendarView?startDateTime={_iso(start)}&endDateTime={_iso(now)}"
            f"&$select={EVENT_SELECT}"
        )
        mine = normalise(self._backend.config.user or "")
        for _ in range(MAX_PAGES):
            page = self._get(self._backend._own_link(link) if "://" in link else link, "meetings")
            for event in page.get("value") or []:
                found.read += 1
                if event.get("isCancelled"):
                    continue
                if (event.get("responseStatus") or {}).get("response") == "declined":
                    continue
                begin, end = parse_dtz(event.get("start")), parse_dtz(event.get("end"))
                if begin is None or end is None or end > now or begin < since:
                    continue
                contacts: list[str] = []
                people = [
                    (a.get("emailAddress") or {}, (a.get("status") or {}).get("response"))
                    for a in event.get("attendees") or []
                ]
                people.append(((event.get("organizer") or {}).get("emailAddress") or {}, None))
                for address_info, response in people:
                    address = address_info.get("address") or ""
                    if response == "declined" or normalise(address) == mine:
                        continue
                    for cid in book.contacts_of(address):
                        if cid not in contacts:
                            contacts.append(cid)
                if not contacts:
                    continue
                item_hash = digest(
                    "event", str(event.get("iCalUId") or event.get("id")), _iso(begin)
                )
                found.touches += [
                    detected_touch(c, begin, MEETING, self.type, item_hash, self.tz)
                    for c in contacts
                ]
            if page.get("@odata.nextLink"):
                link = str(page["@odata.nextLink"])
                continue
            break


class _DeltaGone(Exception):
    """The service no longer knows the delta link (410 syncStateNotFound)."""
