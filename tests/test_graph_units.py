"""Pure parts of the Graph backend: Graph's dateTimeTimeZone values (IANA and
Windows zone names, To Do's date-only completions), kit-sync's linkedResource, and
the one function that turns HTTP answers into backend errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit_sync.backends.base import (
    AuthFailed,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
    Throttled,
)
from kit_sync.backends.graph import (
    GraphBackend,
    _error,
    completed_of,
    copied_marker,
    decode_link,
    due_of,
    encode_link,
    find_link,
    importance_of,
    retry_after,
    to_dtz,
    zone_name_for_graph,
    zone_named,
)
from kit_sync.backends.graph_auth import StaticToken
from kit_sync.cadence import local_day
from kit_sync.config import GraphConfig
from kit_sync.model import AnchorKind, ItemProblem, KitMeta, KitTask, make_uid

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("name", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("w. europe standard time", "Europe/Berlin"),
        ("Mountain Standard Time", "America/Denver"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("New Zealand Standard Time", "Pacific/Auckland"),
        ("India Standard Time", "Asia/Calcutta"),
        ("UTC", "UTC"),
        ("tzone://Microsoft/Utc", "UTC"),
        ("Europe/Berlin", "Europe/Berlin"),
    ],
)
def test_zone_names(name: str, iana: str) -> None:
    assert zone_named(name).utcoffset(datetime(2026, 7, 1)) == ZoneInfo(iana).utcoffset(
        datetime(2026, 7, 1)
    )


def test_unknown_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars Standard Time'"):
        zone_named("Mars Standard Time")


def test_writes_use_windows_names() -> None:
    assert zone_name_for_graph(BERLIN) == "W. Europe Standard Time"
    assert to_dtz(datetime(2026, 12, 14), BERLIN) == {
        "dateTime": "2026-12-14T00:00:00",
        "timeZone": "W. Europe Standard Time",
    }


@pytest.mark.parametrize(
    ("value", "tz", "day"),
    [
        # written as local midnight in Berlin, returned in UTC (the default)
        (
            {"dateTime": "2026-12-13T23:00:00.0000000", "timeZone": "UTC"},
            BERLIN,
            date(2026, 12, 14),
        ),
        # returned in the Prefer zone, named the Windows way
        (
            {"dateTime": "2026-12-14T00:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            BERLIN,
            date(2026, 12, 14),
        ),
        # stored as UTC midnight (a date): the same day for a user west of UTC
        ({"dateTime": "2026-12-14T00:00:00.0000000", "timeZone": "UTC"}, LA, date(2026, 12, 14)),
        # local midnight in Los Angeles, in UTC
        ({"dateTime": "2026-12-14T08:00:00.0000000", "timeZone": "UTC"}, LA, date(2026, 12, 14)),
    ],
)
def test_due_day(value: dict[str, str], tz: ZoneInfo, day: date) -> None:
    assert due_of(value, tz) == day


def test_completion_date_stored_as_utc_midnight_is_a_date() -> None:
    # microsoft-graph-docs-contrib#8664: completed on Sept 27 in Denver, read with
    # Prefer: outlook.timezone="America/Denver".
    value = {"dateTime": "2021-09-26T18:00:00.0000000", "timeZone": "Mountain Standard Time"}
    assert completed_of(value) == date(2021, 9, 27)
    assert local_day(completed_of(value), ZoneInfo("America/Denver")) == date(2021, 9, 27)  # type: ignore[arg-type]


def test_completion_instant_is_converted_to_the_users_day() -> None:
    value = {"dateTime": "2026-11-30T22:30:00.0000000", "timeZone": "UTC"}
    stamp = completed_of(value)
    assert isinstance(stamp, datetime)
    assert local_day(stamp, BERLIN) == date(2026, 11, 30)
    assert local_day(stamp, ZoneInfo("Asia/Tokyo")) == date(2026, 12, 1)
    assert completed_of(None) is None and due_of({}, BERLIN) is None


META = KitMeta(
    "ann-lee",
    date(2026, 11, 23),
    AnchorKind.TOUCH,
    "P21D",
    date(2026, 12, 14),
    "kit-0123456789abcdef-ann-lee@kit-sync",
    "2eb2e86f02a1d2f6",
)


@pytest.mark.parametrize("cid", ["ann-lee", "x@y", "b\u00f6b", "a&b=c#d e", "id with / and %"])
def test_link_round_trip(cid: str) -> None:
    meta = KitMeta(cid, META.anchor, META.anchor_kind, META.every, META.planned_due, None, "f")
    uid = make_uid(cid, "1")
    link = encode_link(uid, meta, "09:30", cancelled=True)
    assert link["applicationName"] == "kit-sync" and link["externalId"] == cid
    assert link["webUrl"].startswith("https://kit-sync.invalid/task#")
    assert decode_link(link) == (uid, meta, "09:30", True)


@given(
    st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.sampled_from(["P14D", "P1M", "P3M", "P90D"]),
)
def test_link_round_trip_any_contact(cid: str, anchor: date, every: str) -> None:
    meta = KitMeta(cid, anchor, AnchorKind.NEW, every, anchor + timedelta(days=3), None, "abc")
    assert decode_link(encode_link("u", meta)) == ("u", meta, None, False)


def test_mangled_link_still_names_the_contact() -> None:
    uid, meta, alarm, cancelled = decode_link(
        {"applicationName": "kit-sync", "externalId": "bob", "webUrl": "https://x.invalid/"}
    )
    assert uid is None and meta == KitMeta("bob") and alarm is None and not cancelled


@pytest.mark.parametrize(
    ("uid", "ours"),
    [
        (make_uid("ann-lee", "1"), True),
        (None, False),  # a copied marker without a uid
        ("made-by-another-app-1@example.org", False),
        (make_uid("bob", "1"), False),  # a kit UID, but of another contact
    ],
)
def test_a_task_is_ours_only_with_the_marker_and_a_kit_uid_of_its_contact(
    uid: str | None, ours: bool
) -> None:
    link = encode_link(uid or "", KitMeta("ann-lee"))
    if uid is None:
        link["webUrl"] = "https://example.org/some-app/task/1"
    raw = {"id": "t", "linkedResources": [{"id": "l", **link}]}
    assert (find_link(raw) is not None) is ours
    assert (copied_marker(raw) is not None) is not ours
    plain = {"id": "t", "linkedResources": [{"applicationName": "Outlook", "webUrl": "x"}]}
    assert find_link(plain) is None and copied_marker(plain) is None


def test_link_display_name_is_readable() -> None:
    assert encode_link("u", META)["displayName"] == "kit-sync: keep in touch every 3 weeks"
    monthly = KitMeta("a", every="P2M")
    assert encode_link("u", monthly)["displayName"] == "kit-sync: keep in touch every 2 months"


@pytest.mark.parametrize(
    ("priority", "word"), [(0, "normal"), (1, "high"), (5, "normal"), (9, "low")]
)
def test_importance(priority: int, word: str) -> None:
    assert importance_of(priority) == word


def test_retry_after() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": "0"}) == 0.0
    assert retry_after({}) == 2.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 < retry_after({"Retry-After": later}) <= 90


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ItemRejected),
        (401, AuthFailed),
        (403, AuthFailed),
        (404, NotFound),
        (409, Conflict),
        (412, Conflict),
        (429, Throttled),
        (500, BackendUnavailable),
        (503, Throttled),
    ],
)
def test_error_translation(status: int, kind: type[Exception]) -> None:
    body = {"error": {"code": "SomeCode", "message": "what happened"}}
    err = _error(status, body, "task X", {"Retry-After": "12"})
    assert type(err) is kind
    assert "SomeCode: what happened" in str(err)
    if isinstance(err, Throttled):
        assert err.retry_after == 12.0 and err.exit_code == 3


def backend(tz: ZoneInfo = BERLIN) -> GraphBackend:
    config = GraphConfig.model_validate({"type": "graph", "client_id": "x"})
    return GraphBackend(config, tz, tokens=StaticToken("t"))


def raw_task(tid: str, link: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "@odata.etag": f'W/"{tid}"',
        "title": "Keep in touch with Ann",
        "status": "notStarted",
        "createdDateTime": f"2026-11-2{len(tid)}T10:00:00Z",
        "linkedResources": [{"id": "l-" + tid, **link}],
        **props,
    }


def test_copies_of_one_link_get_their_own_uids() -> None:
    """To Do's own recurrence copies a completed task with its link: both stay
    listed, the newer one under a uid of its own."""
    b = backend()
    uid = make_uid(META.contact_id, "u")
    link = encode_link(uid, META)
    b._tasks = {"a": raw_task("a", link), "bb": raw_task("bb", link)}
    listing = b._listing()
    uids = [t.uid for t in listing.tasks]
    assert uids[0] == uid and uids[1] != uids[0]
    assert {t.contact_id for t in listing.tasks} == {"ann-lee"}
    b.close()


def test_unreadable_task_is_a_problem_naming_the_contact() -> None:
    b = backend()
    bad = raw_task(
        "a",
        encode_link(make_uid(META.contact_id, "u"), META),
        dueDateTime={"dateTime": "2026-12-14T00:00:00", "timeZone": "Mars Standard Time"},
    )
    b._tasks = {"a": bad}
    listing = b._listing()
    assert listing.tasks == []
    [problem] = listing.problems
    assert isinstance(problem, ItemProblem)
    assert problem.contact_id == "ann-lee" and "Mars Standard Time" in problem.message
    b.close()


def test_cancelled_and_completed_read_back() -> None:
    b = backend(LA)
    done = {"dateTime": "2026-11-30T00:00:00.0000000", "timeZone": "UTC"}
    u1, u2 = make_uid(META.contact_id, "1"), make_uid(META.contact_id, "2")
    b._tasks = {
        "a": raw_task("a", encode_link(u1, META), status="completed", completedDateTime=done),
        "bb": raw_task(
            "bb",
            encode_link(u2, META, cancelled=True),
            status="completed",
            completedDateTime=done,
        ),
    }
    tasks = {t.uid: t for t in b._listing().tasks}
    assert isinstance(tasks[u1], KitTask) and tasks[u1].status.value == "completed"
    assert tasks[u1].completed == date(2026, 11, 30)  # a date, not 16:00 the day before
    assert tasks[u2].status.value == "cancelled" and tasks[u2].completed is None
    b.close()
