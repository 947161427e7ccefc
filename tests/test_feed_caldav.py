"""The calendar feed mirrored into a real CalDAV calendar (Radicale, Xandikos, Cyrus):
one VEVENT per open task, moved when the task regenerates, removed with the
contact, conditional writes, and other events in the calendar never touched."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from icalendar import Calendar
from servers import ANN, BASE_CONTACTS, KINDS, DavServer, Phone, shared
from test_caldav_clients import _utc, href_of
from test_occasions_backends import ClockKit

from kit_sync.feed import FeedEvent
from kit_sync.feed_caldav import HASH, MARKER, parse_listing
from kit_sync.model import Status

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

FOREIGN = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nBEGIN:VEVENT\r\n"
    "UID:dentist-1@phone.example\r\nDTSTAMP:20261101T090000Z\r\n"
    "DTSTART;VALUE=DATE:20261215\r\nSUMMARY:Keep in touch with Ann Lee\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


class Events:
    """An independent client on the events calendar (httpx, not kit-sync's code)."""

    def __init__(self, server: DavServer, url: str) -> None:
        self.server, self.url = server, url

    def put(self, name: str, text: str) -> None:
        with self.server.http(self.url) as http:
            r = http.put(
                urljoin(self.url, name),
                content=text.encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8"},
            )
            assert r.status_code in (200, 201, 204), (r.status_code, r.text)

    def get(self, name: str) -> bytes:
        with self.server.http(self.url) as http:
            return http.get(urljoin(self.url, name)).content

    def all(self) -> dict[str, bytes]:
        body = (
            '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
            "</D:prop></D:propfind>"
        )
        with self.server.http(self.url) as http:
            r = http.request(
                "PROPFIND",
                self.url,
                content=body,
                headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            )
            hrefs = [
                h
                for h in re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", r.text)
                if h.endswith(".ics")
            ]
            return {h.rsplit("/", 1)[-1]: http.get(urljoin(self.url, h)).content for h in hrefs}

    def kit_events(self) -> dict[str, tuple[str, date, str]]:
        """marker -> (uid, day, summary) of the events kit-sync owns."""
        out = {}
        for data in self.all().values():
            for ev in Calendar.from_ical(data).walk("VEVENT"):
                if MARKER in ev:
                    out[str(ev[MARKER])] = (
                        str(ev["UID"]),
                        ev.decoded("DTSTART"),
                        str(ev["SUMMARY"]),
                    )
        return out


def mirror_kit(tmp_path: Path, server: DavServer) -> tuple[ClockKit, Events]:
    events_url = server.new_collection("keep in touch", component="VEVENT")
    contacts = [dict(c) for c in BASE_CONTACTS]
    kit = ClockKit(tmp_path, server, server.new_collection(), contacts)
    caldav: dict[str, Any] = {"url": events_url}
    auth = server.auth(events_url)
    if auth is not None:
        caldav.update(username=auth[0], password=auth[1])
    if server.tls:
        caldav["verify"] = str(server.tls[0])
    kit.write(contacts, calendar={"caldav": caldav})
    return kit, Events(server, events_url)


def test_events_follow_the_tasks(tmp_path: Path, server: DavServer) -> None:
    kit, cal = mirror_kit(tmp_path, server)
    cal.put("dentist.ics", FOREIGN)
    foreign_before = cal.get("dentist.ics")
    kit.sync()
    opens = {t.contact_id: t for t in kit.listing().tasks if t.status is Status.OPEN}
    events = cal.kit_events()
    assert {k: (v[1], v[2]) for k, v in events.items()} == {
        cid: (t.due, t.summary) for cid, t in opens.items()
    }
    ann_uid = events[ANN][0]
    # Ann's task is ticked off on a phone: her event moves, same UID, no copy left
    kit.now = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
    phone = Phone(server, kit.collection)
    try:
        phone.edit(href_of(opens[ANN]), lambda t: _utc(t, kit.now))
    finally:
        phone.close()
    kit.sync()
    new_ann = kit.the_open(ANN)
    events = cal.kit_events()
    assert events[ANN][0] == ann_uid
    assert events[ANN][1] == new_ann.due != opens[ANN].due
    # Ann leaves the roster: her event goes; the foreign event never changed
    kit.write([c for c in BASE_CONTACTS if c["email"] != "ann@example.com"], **_top(kit))
    kit.sync()
    assert ANN not in cal.kit_events()
    assert cal.get("dentist.ics") == foreign_before
    n = len(cal.all())
    kit.sync()
    assert len(cal.all()) == n


def _top(kit: ClockKit) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(kit.config_path.read_text())
    return {"calendar": data["calendar"]}


def test_an_edit_on_a_phone_is_not_overwritten_while_the_task_is_unchanged(
    tmp_path: Path, server: DavServer
) -> None:
    kit, cal = mirror_kit(tmp_path, server)
    kit.sync()
    name = next(n for n, data in cal.all().items() if f"{MARKER}:{ANN}".encode() in data)
    edited = cal.get(name).replace(b"SUMMARY:Keep in touch", b"SUMMARY:Lunch! Keep in touch")
    cal.put(name, edited.decode())
    kit.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    kit.write(kit_contacts_with_note(), **_top(kit))  # Bob's text changes, Ann's does not
    kit.sync()
    assert cal.get(name) == edited


def kit_contacts_with_note() -> list[dict[str, Any]]:
    contacts = [dict(c) for c in BASE_CONTACTS]
    contacts[1]["notes"] = "New job at the harbour."
    return contacts


def test_listing_owns_only_events_with_marker_and_feed_uid() -> None:
    ours = FeedEvent("ann", date(2027, 1, 5), "Keep in touch with Ann", "")
    copied = FOREIGN.replace("END:VEVENT", f"{MARKER}:ann\r\nEND:VEVENT")  # marker, own UID
    own_uid = FOREIGN.replace("dentist-1@phone.example", ours.uid)  # our UID, no marker
    body = (
        '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav">'
        + "".join(
            f"<D:response><D:href>/cal/{i}.ics</D:href><D:propstat><D:prop>"
            f'<D:getetag>"e{i}"</D:getetag><C:calendar-data>{data}</C:calendar-data>'
            "</D:prop></D:propstat></D:response>"
            for i, data in enumerate([copied, own_uid, "not a calendar", _kit_text(ours)])
        )
        + "</D:multistatus>"
    ).encode()
    mine, bad = parse_listing(body, "http://127.0.0.1/cal/")
    assert [(m.key, m.href, m.etag) for m in mine] == [
        ("ann", "http://127.0.0.1/cal/3.ics", '"e3"')
    ]
    assert bad == ["/cal/2.ics"]


def _kit_text(ev: FeedEvent) -> str:
    from kit_sync.feed_caldav import event_ics

    text = event_ics(ev, NOW).decode()
    assert HASH in text
    return text.replace("&", "&amp;").replace("<", "&lt;")


def test_an_unreachable_calendar_never_fails_the_sync(
    tmp_path: Path, server: DavServer, caplog: pytest.LogCaptureFixture
) -> None:
    from servers import free_port

    kit, cal = mirror_kit(tmp_path, server)
    top = _top(kit)
    good = dict(top["calendar"]["caldav"])
    top["calendar"]["caldav"]["url"] = f"http://127.0.0.1:{free_port()}/cal/"
    kit.write([dict(c) for c in BASE_CONTACTS], **top)
    result = kit.sync()
    assert result.ok and result.counts["created"] == 2
    assert "calendar mirror" in caplog.text and "tried again at the next sync" in caplog.text
    top["calendar"]["caldav"] = good
    kit.write([dict(c) for c in BASE_CONTACTS], **top)
    kit.sync()
    assert set(cal.kit_events()) == {t.contact_id for t in kit.listing().tasks}
