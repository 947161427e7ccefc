"""Hardening (issue 11), property-based: whatever a backend holds never escapes it
as an exception, and never stops the other contacts.

- The local folder gets arbitrary bytes as task files (and mangled copies of real
  VTODOs) next to kit-sync's own: a real folder, a real state file, the real engine.
- The CalDAV listing gets arbitrary multistatus bodies: the real caldav response
  parsing and kit-sync's readers (the sync-collection parser, the multiget with its
  item-by-item fallback), with a stub only where the network would be.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kit import BASE_CONFIG, World

from kit_sync.model import Status, make_uid

ANN = "ann-example-com"
BOB = "bob-example-com"

VTODO = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VTODO\r\n"
    "UID:{uid}\r\nSUMMARY:Keep in touch with Zed\r\nX-KIT-SYNC-CONTACT:{contact}\r\n"
    "X-KIT-SYNC-ANCHOR:2026-11-01\r\nDUE;VALUE=DATE:20261201\r\nSTATUS:{status}\r\n"
    "COMPLETED:{completed}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)


def vtodo(contact: str, status: str, completed: str) -> bytes:
    uid = make_uid(contact, "fuzz")
    return VTODO.format(uid=uid, contact=contact, status=status, completed=completed).encode()


def mangle(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data[: max(0, len(data) - cut)])
    for at, byte in flips:
        if out:
            out[at % len(out)] = byte
    return bytes(out)


stamps = st.sampled_from(
    ["20261120T100000Z", "99991231T235959Z", "00010101T000000Z", "2026", "", "20261320T250000"]
)
files = st.one_of(
    st.binary(max_size=400),
    st.builds(
        mangle,
        st.builds(
            vtodo,
            st.sampled_from(["zed-example-com", ANN, "ann\x00", "x" * 200]),
            st.sampled_from(["NEEDS-ACTION", "COMPLETED", "CANCELLED", "BOGUS"]),
            stamps,
        ),
        st.integers(0, 40),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(files, min_size=1, max_size=6))
def test_arbitrary_task_files_never_escape_the_local_backend(blobs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), copy.deepcopy(BASE_CONFIG))
        assert world.sync().ok
        for i, blob in enumerate(blobs):
            (world.folder / f"fuzz-{i}.ics").write_bytes(blob)
        engine = world.engine()
        try:
            listing = engine.backend.fetch_listing()  # never raises
            blocked = {p.contact_id for p in listing.problems if p.contact_id}
            result = engine.run_cycle()  # never raises either
            again = engine.run_cycle()
        finally:
            engine.state.close()
        assert not result.failures and not again.failures
        for contact in (BOB, ANN):
            if contact in blocked:
                continue  # an unreadable item of Ann's: her contact waits, nothing else
            opens = [t for t in world.tasks() if t.contact_id == contact]
            assert len([t for t in opens if t.status is Status.OPEN]) == 1, contact
        assert BOB not in blocked  # nothing the fuzzer wrote can name Bob


# --- CalDAV ----------------------------------------------------------------------------------

GOOD = "/dav/list/good.ics"


class Fake:
    """What niquests hands the caldav library: just the answer."""

    def __init__(self, status: int, ctype: str, body: bytes, etag: str | None = None) -> None:
        self.status_code = status
        self.headers = {"Content-Type": ctype, "Content-Length": str(len(body))}
        if etag:
            self.headers["ETag"] = etag
        self.content = body
        self.text = body.decode("utf-8", "replace")
        self.reason = "OK"


class StubClient:
    """The network: a REPORT answers `body`, a GET of GOOD answers a real kit task."""

    def __init__(self, body: bytes) -> None:
        from caldav.davclient import DAVResponse

        self.response = DAVResponse
        self.body = body

    def report(self, url: str, body: Any, depth: int) -> Any:
        return self.response(Fake(207, "application/xml; charset=utf-8", self.body))

    def request(self, url: str, method: str = "GET", body: Any = "", headers: Any = None) -> Any:
        if url.endswith(GOOD):
            data = vtodo(ANN, "NEEDS-ACTION", "20261120T100000Z").replace(b"COMPLETED:", b"X-C:")
            return self.response(Fake(200, "text/calendar", data, '"good-1"'))
        return self.response(Fake(404, "text/plain", b"gone"))

    def close(self) -> None:
        pass


def multistatus(entries: list[tuple[str, str, str]]) -> bytes:
    parts = [
        f"<D:response><D:href>{href}</D:href><D:propstat><D:prop><D:getetag>{etag}"
        f"</D:getetag><C:calendar-data>{data}</C:calendar-data></D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        for href, etag, data in entries
    ]
    return (
        '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav">' + "".join(parts) + "</D:multistatus>"
    ).encode()


texts = st.text(st.characters(codec="utf-8"), max_size=60)
bodies = st.one_of(
    st.binary(max_size=600),
    st.builds(
        multistatus,
        st.lists(
            st.tuples(
                st.one_of(texts, st.just("/dav/list/other.ics")),
                texts,
                st.one_of(texts, st.builds(lambda b: b.decode("utf-8", "replace"), files)),
            ),
            max_size=4,
        ),
    ),
    st.builds(lambda t: t.encode("utf-8", "surrogatepass"), texts),
)


@settings(max_examples=150, deadline=None)
@given(bodies)
@example(b"<not xml")
@example(b"\xff\xfe\x00garbage")
@example(multistatus([("/dav/list/other.ics", '"1"', "BEGIN:VCALENDAR\x01")]))
def test_arbitrary_multistatus_bodies_never_escape_the_caldav_backend(body: bytes) -> None:
    from zoneinfo import ZoneInfo

    from kit_sync.backends.base import BackendError
    from kit_sync.backends.caldav import CaldavBackend
    from kit_sync.backends.caldav.transport import _parse_sync_report
    from kit_sync.config import CaldavConfig

    parsed = _parse_sync_report(body, "/dav/list/")  # None or a result, never raises
    assert parsed is None or isinstance(parsed, tuple)

    config = CaldavConfig.model_validate({"type": "caldav", "url": "http://127.0.0.1:9/dav/list/"})
    backend = CaldavBackend(config, ZoneInfo("Europe/Berlin"))
    backend._client = StubClient(body)
    backend._calendar = object()  # connected: the network is the stub above
    backend.collection = "http://127.0.0.1:9/dav/list/"
    backend._path = "/dav/list/"
    changed = {
        "/dav/list/good.ics": (GOOD, None),
        "/dav/list/other.ics": ("/dav/list/other.ics", None),
    }
    try:
        backend._reconcile(changed, set(), complete=True, token=None)
    except BackendError:
        return  # a clear backend error (the server's answer was refused) is allowed
    tasks = [i.task for i in backend._items.values() if i.task is not None]
    xml_ok = True
    try:
        from lxml import etree

        etree.XML(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except Exception:
        xml_ok = False
    if body.strip() and not xml_ok:
        # The answer could not be read: each item was read on its own, and Ann's
        # good item made it.
        assert [t.contact_id for t in tasks] == [ANN]
