"""The calendar feed mirrored into a CalDAV calendar collection (`calendar.caldav`).

The same events as the `.ics` feed, as one VEVENT resource each, written with the
same rules as tasks: a create is `PUT` with `If-None-Match: *`, an update or a
delete carries the `If-Match` ETag the event was listed with, so an edit made on a
phone meanwhile is never overwritten (412: left for the next cycle). Only events
that carry both kit-sync's feed UID and its `X-KIT-SYNC-FEED` marker are ever
changed; everything else in the calendar is left as it is. An event whose text
kit-sync last wrote is unchanged is not written again, whatever a user edited
in it since (as with tasks).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from kit_sync.feed import PRODID, FeedEvent, vevent

if TYPE_CHECKING:
    from kit_sync.config import CalendarCaldav

log = logging.getLogger("kit_sync")

MARKER = "X-KIT-SYNC-FEED"
HASH = "X-KIT-SYNC-HASH"
UID_PREFIX = "kit-feed-"

_QUERY = b"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter>
  </C:filter>
</C:calendar-query>"""
_NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav"}
_ICS = {"Content-Type": "text/calendar; charset=utf-8"}


class MirrorError(Exception):
    """The calendar could not be read or written at all (down, login refused)."""


@dataclass
class Mirrored:
    """One kit event as the calendar holds it."""

    href: str
    etag: str
    key: str
    written: str  # the X-KIT-SYNC-HASH kit-sync last wrote


@dataclass
class MirrorResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: list[str] = field(default_factory=list)


def event_ics(ev: FeedEvent, now: datetime) -> bytes:
    """One event as its own calendar resource, with kit-sync's marker and the digest
    of what it says (to tell "unchanged since kit-sync wrote it")."""
    from icalendar import Calendar

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    event = vevent(ev, now)
    event.add(MARKER, ev.key)
    event.add(HASH, ev.digest)
    cal.add_component(event)
    return bytes(cal.to_ical())


def parse_listing(body: bytes, base: str) -> tuple[list[Mirrored], list[str]]:
    """kit's events in a calendar-query answer, and the hrefs that could not be read.
    An event is kit's only when its UID is a feed UID AND it carries the marker."""
    from icalendar import Calendar

    mine: list[Mirrored] = []
    bad: list[str] = []
    root = ET.fromstring(body)
    for response in root.findall("D:response", _NS):
        href = (response.findtext("D:href", default="", namespaces=_NS) or "").strip()
        etag = response.findtext(".//D:getetag", default="", namespaces=_NS) or ""
        data = response.findtext(".//C:calendar-data", default="", namespaces=_NS) or ""
        if not href or not data:
            continue
        try:
            cal = Calendar.from_ical(data)
            events = cal.walk("VEVENT")
        except Exception:
            bad.append(href)
            continue
        for ev in events[:1]:
            uid, key = str(ev.get("UID", "")), ev.get(MARKER)
            if uid.startswith(UID_PREFIX) and key is not None:
                written = str(ev.get(HASH, ""))
                mine.append(Mirrored(urljoin(base, href), etag.strip(), str(key), written))
    return mine, bad


class CalendarMirror:
    """Keeps kit's events in one CalDAV calendar equal to the feed's events."""

    def __init__(self, config: CalendarCaldav) -> None:
        self.config = config
        self._client: Any = None

    @property
    def url(self) -> str:
        url = str(self.config.url)
        return url if url.endswith("/") else url + "/"

    def _connect(self) -> Any:
        if self._client is None:
            import importlib

            caldav: Any = importlib.import_module("caldav")
            c = self.config
            self._client = caldav.DAVClient(
                url=self.url,
                username=c.username,
                password=c.password.get_secret_value() if c.password else None,
                timeout=c.timeout,
                ssl_verify_cert=c.verify,
                enable_rfc6764=False,
            )
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _request(self, url: str, method: str, body: bytes, headers: dict[str, str]) -> Any:
        try:
            return self._connect().request(url, method, body.decode(), headers)
        except Exception as exc:
            name = type(exc).__name__
            if "Authorization" in name:
                raise MirrorError(
                    f"{self.url}: the server refused the login; check calendar.caldav "
                    "username and password"
                ) from None
            raise MirrorError(f"{self.url}: {str(exc).splitlines()[0][:200] or name}") from None

    def fetch(self) -> list[Mirrored]:
        response = self._request(
            self.url,
            "REPORT",
            _QUERY,
            {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )
        if response.status == 404:
            raise MirrorError(
                f"{self.url}: there is no calendar at this URL; check calendar.caldav.url"
            )
        if response.status >= 400:
            raise MirrorError(f"{self.url}: the server answered {response.status} to a listing")
        raw = response.raw if isinstance(response.raw, bytes) else str(response.raw).encode()
        mine, bad = parse_listing(raw, self.url)
        for href in bad:
            log.warning("calendar mirror: %s is not a readable event; left alone", href)
        return mine

    def publish(self, events: list[FeedEvent], now: datetime) -> MirrorResult:
        """Create, update and delete kit's events so the calendar shows `events`."""
        result = MirrorResult()
        have: dict[str, Mirrored] = {}
        extra: list[Mirrored] = []
        for m in self.fetch():
            if m.key in have:
                extra.append(m)  # a second copy of one event: it goes
            else:
                have[m.key] = m
        want = {ev.key: ev for ev in events}
        for key, ev in sorted(want.items()):
            current = have.get(key)
            if current is not None and current.written == ev.digest:
                continue
            data = event_ics(ev, now)
            if current is None:
                href = urljoin(self.url, quote(ev.uid, safe="@-_.") + ".ics")
                r = self._request(href, "PUT", data, {**_ICS, "If-None-Match": "*"})
                ok = self._outcome(r, href, "create", result)
                result.created += ok
            else:
                headers = {**_ICS, "If-Match": current.etag}
                r = self._request(current.href, "PUT", data, headers)
                result.updated += self._outcome(r, current.href, "update", result)
        for m in [*extra, *(m for k, m in have.items() if k not in want)]:
            r = self._request(m.href, "DELETE", b"", {"If-Match": m.etag})
            if r.status == 404:
                continue
            result.deleted += self._outcome(r, m.href, "delete", result)
        return result

    def _outcome(self, response: Any, href: str, what: str, result: MirrorResult) -> int:
        if response.status < 300:
            return 1
        path = urlsplit(href).path
        if response.status == 412:
            # Changed on another device since listed (or already there): the next
            # cycle reads it again; nothing is overwritten.
            result.conflicts.append(f"{path}: changed meanwhile; {what} left for the next sync")
            return 0
        if response.status in (401, 403):
            raise MirrorError(
                f"{self.url}: the server refused to {what} {path} ({response.status})"
            )
        if response.status >= 500 or response.status == 429:
            raise MirrorError(f"{self.url}: the server answered {response.status}; try later")
        result.conflicts.append(f"{path}: the server refused to {what} it ({response.status})")
        return 0
