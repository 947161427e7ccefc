"""Past meetings from a CalDAV calendar (caldav + icalendar + recurring-ical-events).

Incremental with sync-collection (RFC 6578): the cursor keeps the sync token, so
an idle check is one REPORT. Servers without it are read in full each time (caldav
falls back by itself); the journal counts each meeting once either way. Meetings
that had not ended when they were read are remembered by address (href) and the
time they end, and read again then: a meeting that simply passes changes nothing
on the server, so sync-collection alone would never report it.

The user's own addresses (to recognise a meeting the user declined) come from
the principal's calendar-user-address-set, and from `username` when it is an
email address.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from kit_sync.touches.base import Found, SourceUnavailable
from kit_sync.touches.match import AddressBook, normalise
from kit_sync.touches.meetings import meeting_touches

log = logging.getLogger("kit_sync")

#: Objects asked for per calendar-multiget REPORT.
MULTIGET = 200


def _caldav() -> Any:
    import caldav

    return caldav


class CaldavEventsSource:
    type: ClassVar[str] = "caldav-events"

    def __init__(self, config: Any, tz: ZoneInfo, backend: Any = None) -> None:
        self.config = config
        self.tz = tz
        self._client: Any = None
        self._calendar: Any = None
        self._me: set[str] | None = None
        #: HTTP requests sent by this source (benchmarks count them).
        self.requests = 0

    @property
    def name(self) -> str:
        return f"caldav-events {self.config.url}"

    @property
    def key(self) -> str:
        return f"touches|caldav-events|{self.config.url}|{self.config.username or ''}"

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return response

    def _connect(self) -> Any:
        if self._calendar is not None:
            return self._calendar
        c = self.config
        lib = _caldav()
        try:
            self._client = lib.DAVClient(
                url=c.url,
                username=c.username,
                password=c.password.get_secret_value() if c.password else None,
                timeout=c.timeout,
                ssl_verify_cert=c.verify,
                enable_rfc6764=False,
            )
        except Exception as exc:
            raise SourceUnavailable(f"{self.name}: cannot connect: {exc}") from None
        self._client.session.hooks.setdefault("response", []).append(self._count)
        self._calendar = self._client.calendar(url=c.url)
        return self._calendar

    def _my_addresses(self) -> set[str]:
        if self._me is None:
            me: set[str] = set()
            if self.config.username and "@" in self.config.username:
                me.add(normalise(self.config.username))
            try:
                for address in self._client.principal().calendar_user_address_set() or []:
                    me.add(normalise(str(address)))
            except Exception as exc:  # optional: many servers do not say
                log.debug("%s: no calendar-user-address-set (%s)", self.name, type(exc).__name__)
            self._me = me
        return self._me

    def close(self) -> None:
        client, self._client, self._calendar = self._client, None, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:
                log.debug("%s: closing: %s", self.name, exc)

    def fetch_touches(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        lib = _caldav()
        try:
            return self._fetch(book, since, now, cursor)
        except SourceUnavailable:
            self.close()
            raise
        except lib.error.AuthorizationError:
            self.close()
            raise SourceUnavailable(
                f"{self.name}: the server refused the login; check username and password"
            ) from None
        except lib.error.NotFoundError:
            self.close()
            raise SourceUnavailable(
                f"{self.name}: there is no calendar at this URL; check url:"
            ) from None
        except (OSError, lib.error.DAVError) as exc:
            self.close()
            raise SourceUnavailable(f"{self.name}: {_why(exc)}") from None
        except Exception as exc:  # requests' connection errors and the like
            self.close()
            if type(exc).__module__.startswith(("requests", "urllib3", "niquests", "httpx")):
                raise SourceUnavailable(f"{self.name}: {_why(exc)}") from None
            raise

    def _fetch(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        import icalendar

        calendar = self._connect()
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        token = state.get("token")
        pending: dict[str, str] = dict(state.get("pending", {}))
        # What changed (hrefs only), then their data in calendar-multiget REPORTs:
        # a first read of E meetings is a handful of requests, not E GETs.
        result = calendar.get_objects_by_sync_token(token, load_objects=False)
        deleted = {str(u) for u in getattr(result, "deleted_urls", ()) or ()}
        for url in deleted:
            # A deleted meeting does not undo a touch; it just needs no look later.
            pending.pop(url, None)
        wanted = [str(obj.url) for obj in result if str(obj.url) not in deleted]
        wanted += [
            url
            for url, end in pending.items()
            if url not in wanted and datetime.fromisoformat(end) <= now
        ]
        wanted = [u for u in wanted if not u.endswith("/")]
        objects: dict[str, Any] = {}
        for i in range(0, len(wanted), MULTIGET):
            urls = [lib_url(u) for u in wanted[i : i + MULTIGET]]
            for obj in calendar.multiget(urls):
                objects[str(obj.url)] = obj
        for url in wanted:
            if url not in objects:
                pending.pop(url, None)  # gone meanwhile
        me = self._my_addresses()
        found = Found()
        for url, obj in objects.items():
            pending.pop(url, None)
            data = obj.data
            if not data:
                continue
            try:
                parsed = icalendar.Calendar.from_ical(data)
                meetings = meeting_touches(parsed, book, me, since, now, self.tz, self.type)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("%s: cannot read %s (%s); skipped", self.name, url, exc)
                continue
            found.read += meetings.read
            found.touches += meetings.touches
            if meetings.next_end is not None:
                pending[url] = meetings.next_end.isoformat()
        new_token = getattr(result, "sync_token", None)
        if new_token and str(new_token).startswith("fake-"):
            new_token = None  # no sync-collection: the next check reads it all again
        found.cursor = json.dumps(
            {"token": str(new_token) if new_token else None, "pending": pending}, sort_keys=True
        )
        return found


def lib_url(url: str) -> Any:
    return _caldav().lib.url.URL.objectify(url)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, is the url right?)"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:300]
