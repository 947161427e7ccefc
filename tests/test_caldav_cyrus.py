"""What Cyrus (Fastmail's server) does differently from Radicale and Xandikos, each
pinned on a real Cyrus: the shared CalDAV suites run on it too (servers.KINDS); these
tests are the quirks themselves. docs/caldav.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from servers import ANN, BOB, DavServer, Kit, Phone, shared
from test_caldav_clients import _utc, href_of

from kit_sync.model import Status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cyrus(request: pytest.FixtureRequest) -> DavServer:
    return shared("cyrus", request)


@pytest.fixture
def account(cyrus: DavServer) -> str:
    """A fresh Cyrus account (its own UID space) with no task list yet."""
    owner = f"u{datetime.now(UTC).strftime('%H%M%S%f')}"
    cyrus.add_user(owner)  # type: ignore[attr-defined]
    return owner


def test_two_task_lists_in_one_account_get_their_own_uids(
    tmp_path: Path, cyrus: DavServer, account: str
) -> None:
    """Cyrus keeps a UID unique across all calendars of an account (403
    unique-scheduling-object-resource naming the other list's item). A second
    kit-sync list in the same account, for the same people, must still get one open
    task per contact, and leave the first list's tasks alone."""
    first = Kit(tmp_path / "one", cyrus, cyrus.new_collection("Work", owner=account))
    second = Kit(tmp_path / "two", cyrus, cyrus.new_collection("Private", owner=account))
    assert first.sync().ok
    before = {t.href: t.etag for t in first.listing().tasks}
    result = second.sync()
    assert result.ok, result.failures
    assert result.counts["created"] == 2
    ann1, ann2 = first.the_open(ANN), second.the_open(ANN)
    assert ann1.uid != ann2.uid
    assert {t.href: t.etag for t in first.listing().tasks} == before
    # Idle, and still idle in a new process (the list's own UIDs are stable).
    assert second.sync().counts["created"] == 0
    done = second.cli("sync")
    assert done.returncode == 0, done.stderr
    assert len(second.opens()) == 2


def test_completion_in_the_second_list_regenerates_there(
    tmp_path: Path, cyrus: DavServer, account: str
) -> None:
    first = Kit(tmp_path / "one", cyrus, cyrus.new_collection("Work", owner=account))
    second = Kit(tmp_path / "two", cyrus, cyrus.new_collection("Private", owner=account))
    first.sync()
    second.sync()
    bob = second.the_open(BOB)
    phone = Phone(cyrus, second.collection)
    try:
        phone.edit(href_of(bob), lambda t: _utc(t, datetime.now(UTC)))
    finally:
        phone.close()
    result = second.sync()
    assert result.ok, result.failures
    assert result.counts["regenerated"] == 1
    assert second.the_open(BOB).uid not in {bob.uid, first.the_open(BOB).uid}
    assert [t.status for t in first.listing().tasks] == [Status.OPEN, Status.OPEN]


def test_compressed_answers_carry_weak_etags(cyrus: DavServer) -> None:
    """Why kit-sync's single GETs ask for no compression: Cyrus marks the ETag of a
    gzip-encoded answer weak, and kit-sync edits only with a strong ETag (a weak one
    says "equivalent", not "these bytes"; RFC 7232 wants strong comparison for
    If-Match). Uncompressed, the ETag is the strong one the PUT returned.
    (The end-to-end case: test_caldav_clients' phone-edit race on cyrus.)"""
    url = cyrus.new_collection()
    phone = Phone(cyrus, url)
    try:
        etag = phone.put("x.ics", _task("weak-etag@phone"))
        gz = phone.http.get(phone.url("x.ics"), headers={"Accept-Encoding": "gzip"})
        plain = phone.http.get(phone.url("x.ics"), headers={"Accept-Encoding": "identity"})
        assert gz.headers.get("content-encoding") == "gzip"
        assert gz.headers["etag"] == f"W/{etag}"
        assert plain.headers["etag"] == etag
    finally:
        phone.close()


def test_a_shared_task_with_a_schedule_tag_is_updated_by_reading_it_back(
    tmp_path: Path, cyrus: DavServer
) -> None:
    """A client turns a kit task into a scheduling object (ORGANIZER and ATTENDEE, as
    assigning it to someone does): Cyrus answers such a PUT with a Schedule-Tag and
    no ETag. kit-sync's next update of it reads the stored item back and keeps the
    client's properties."""
    kit = Kit(tmp_path, cyrus, cyrus.new_collection())
    assert kit.sync().ok
    ann = kit.the_open(ANN)
    owner = cyrus.auth(kit.collection)[0]  # type: ignore[index]
    phone = Phone(cyrus, kit.collection)
    try:
        text, etag = phone.get(href_of(ann))
        shared = text.replace(
            "END:VTODO",
            f"ORGANIZER:mailto:{owner}@localhost\r\n"
            "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\nEND:VTODO",
        )
        r = phone.http.put(
            phone.url(href_of(ann)),
            content=shared.encode(),
            headers={"If-Match": etag, "Content-Type": "text/calendar; charset=utf-8"},
        )
        assert r.status_code in (200, 204), r.text
        assert "schedule-tag" in r.headers and "etag" not in r.headers
        contacts = [
            {"name": "Ann Lee", "email": "ann@example.com", "tier": "inner", "notes": "Jazz"},
            {"name": "Bob Stone", "email": "bob@example.com", "tier": "core"},
        ]
        kit.write(contacts)
        result = kit.sync()
        assert result.ok, result.failures
        assert result.counts["updated"] >= 1
        after, _ = phone.get(href_of(ann))
        unfolded = after.replace("\r\n ", "").replace("\n ", "")
        assert "Jazz" in unfolded
        assert "ATTENDEE" in unfolded and "ORGANIZER" in unfolded
        assert len(kit.opens(ANN)) == 1
    finally:
        phone.close()


def test_root_answers_anonymously_and_kit_sync_logs_in(cyrus: DavServer) -> None:
    """Cyrus answers a PROPFIND on its root without asking for credentials, naming no
    principal: kit-sync (auth: auto) logs in with Basic to find the user's lists."""
    body = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
        b"<D:current-user-principal/></D:prop></D:propfind>"
    )
    with httpx.Client() as anonymous:
        r = anonymous.request(
            "PROPFIND",
            cyrus.root,
            content=body,
            headers={"Depth": "0", "Content-Type": "application/xml"},
        )
    assert r.status_code == 207 and "unauthenticated" in r.text
    # the product side is test_caldav_sync.test_server_root_and_task_list_name[cyrus]


def _task(uid: str) -> str:
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VTODO\n"
        f"UID:{uid}\nDTSTAMP:20261101T090000Z\nSUMMARY:x\n"
        # long enough for Cyrus to compress it at all
        f"DESCRIPTION:{'Met at the conference. ' * 20}\nEND:VTODO\nEND:VCALENDAR\n"
    )


@pytest.fixture(autouse=True)
def _no_leftover(cyrus: DavServer) -> Iterator[None]:
    yield
    assert cyrus.proc is not None and cyrus.proc.poll() is None, "Cyrus died during the test"
