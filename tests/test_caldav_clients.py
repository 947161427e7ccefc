"""Real clients' ways of completing (and otherwise touching) a task, each written to a
real server by an independent client (the `Phone`, plain httpx), then one kit-sync
cycle through the whole stack (config -> engine -> CalDAV backend -> server).

DESIGN rule 2: the next task is due `touch day + every`, the touch day being the
local day (Europe/Berlin here) of the completion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from servers import ANN, BOB, FOREIGN, KINDS, DavServer, Kit, Phone, shared

from kit_sync.model import KitTask, Status

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
ANN_EVERY = timedelta(weeks=3)


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


@pytest.fixture
def kit(tmp_path: Path, server: DavServer) -> Kit:
    return Kit(tmp_path, server, server.new_collection("Keep in touch"))


@pytest.fixture
def phone(kit: Kit) -> Iterator[Phone]:
    p = Phone(kit.server, kit.collection)
    yield p
    p.close()


def href_of(task: KitTask) -> str:
    return task.href.rsplit("/", 1)[-1]


def today() -> date:
    return datetime.now(BERLIN).date()


def edit_vtodo(text: str, *add: str, drop: tuple[str, ...] = ()) -> str:
    """Drop property lines starting with `drop` from the (first) VTODO, add `add`."""
    lines = re.split(r"\r?\n", text)
    out, in_todo, done = [], False, False
    for line in lines:
        if line == "BEGIN:VTODO":
            in_todo = not done
        if in_todo and drop and line.startswith(drop):
            continue
        if in_todo and line == "END:VTODO":
            out.extend(add)
            in_todo, done = False, True
        out.append(line)
    return "\n".join(out)


def utc_stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def local_stamp(dt: datetime) -> str:
    return dt.astimezone(BERLIN).strftime("%Y%m%dT%H%M%S")


def one_open(kit: Kit, contact: str) -> KitTask:
    return kit.the_open(contact)


# --- the story the issue asks to show ----------------------------------------------------


def test_one_task_per_contact_then_an_early_tick_regenerates(kit: Kit, phone: Phone) -> None:
    result = kit.sync()
    assert result.ok and result.counts["created"] == 2
    # The phone sees one task per contact, with the kit marker and a date-only DUE.
    texts = [phone.get(h.rsplit("/", 1)[-1])[0] for h in phone.listing()]
    assert len(texts) == 2
    assert all("X-KIT-SYNC-CONTACT" in t and "DUE;VALUE=DATE:" in t for t in texts)
    assert all("RRULE" not in t for t in texts)
    ann = one_open(kit, ANN)
    assert ann.due is not None and ann.due > today()  # not due yet: ticked off early
    done_at = datetime.now(UTC) - timedelta(minutes=5)
    phone.edit(
        href_of(ann),
        lambda t: edit_vtodo(
            t, "STATUS:COMPLETED", f"COMPLETED:{utc_stamp(done_at)}", drop=("STATUS",)
        ),
    )
    result = kit.sync()
    assert result.ok and result.counts["regenerated"] == 1
    fresh = one_open(kit, ANN)
    assert fresh.uid != ann.uid
    assert fresh.due == done_at.astimezone(BERLIN).date() + ANN_EVERY
    assert fresh.meta.from_uid == ann.uid
    old = next(t for t in kit.listing().tasks if t.uid == ann.uid)
    assert old.status is Status.COMPLETED  # history stays
    assert one_open(kit, BOB).uid  # Bob untouched, still exactly one
    again = kit.sync()
    assert again.ok and sum(again.counts.values()) == 0


# --- every completion style ----------------------------------------------------------------

Style = Callable[[str, datetime], str]


def _utc(t: str, at: datetime) -> str:
    return edit_vtodo(t, "STATUS:COMPLETED", f"COMPLETED:{utc_stamp(at)}", drop=("STATUS",))


def _floating(t: str, at: datetime) -> str:
    return edit_vtodo(t, "STATUS:COMPLETED", f"COMPLETED:{local_stamp(at)}", drop=("STATUS",))


def _tzid(t: str, at: datetime) -> str:
    ny = at.astimezone(ZoneInfo("America/New_York")).strftime("%Y%m%dT%H%M%S")
    return edit_vtodo(
        t, "STATUS:COMPLETED", f"COMPLETED;TZID=America/New_York:{ny}", drop=("STATUS",)
    )


def _date_only(t: str, at: datetime) -> str:
    day = at.astimezone(BERLIN).date()
    return edit_vtodo(t, "STATUS:COMPLETED", f"COMPLETED;VALUE=DATE:{day:%Y%m%d}", drop=("STATUS",))


def _percent_only(t: str, at: datetime) -> str:
    return edit_vtodo(t, "PERCENT-COMPLETE:100", drop=("PERCENT-COMPLETE",))


def _status_only(t: str, at: datetime) -> str:
    return edit_vtodo(t, "STATUS:COMPLETED", drop=("STATUS",))


def _nextcloud_series(t: str, at: datetime) -> str:
    """Nextcloud Tasks on a task the user made repeating: the series completes."""
    return edit_vtodo(
        t,
        "RRULE:FREQ=WEEKLY;INTERVAL=3",
        "STATUS:COMPLETED",
        f"COMPLETED:{utc_stamp(at)}",
        "PERCENT-COMPLETE:100",
        drop=("STATUS",),
    )


def _thunderbird_override(t: str, at: datetime) -> str:
    """Thunderbird: the series stays open, a completed instance is written beside it."""
    uid = re.search(r"^UID:(.*?)\r?$", t, re.M)
    due = re.search(r"^DUE;VALUE=DATE:(\d{8})", t, re.M)
    assert uid and due
    t = edit_vtodo(t, "RRULE:FREQ=WEEKLY;INTERVAL=3")
    instance = "\n".join(
        [
            "BEGIN:VTODO",
            f"UID:{uid.group(1)}",
            f"DTSTAMP:{utc_stamp(at)}",
            f"RECURRENCE-ID;VALUE=DATE:{due.group(1)}",
            f"DUE;VALUE=DATE:{due.group(1)}",
            "SUMMARY:Keep in touch with Ann Lee",
            "STATUS:COMPLETED",
            f"COMPLETED:{utc_stamp(at)}",
            "PERCENT-COMPLETE:100",
            "END:VTODO",
        ]
    )
    return re.sub(r"END:VCALENDAR\s*$", instance + "\nEND:VCALENDAR\n", t)


def _tasks_org_in_place(t: str, at: datetime) -> str:
    """tasks.org: the user added a repeat rule; completing moves DUE on, task stays open."""
    due = re.search(r"^DUE;VALUE=DATE:(\d{8})", t, re.M)
    assert due
    old = datetime.strptime(due.group(1), "%Y%m%d").date()
    moved = old + timedelta(weeks=3)
    t = edit_vtodo(
        t,
        "RRULE:FREQ=WEEKLY;INTERVAL=3",
        f"DUE;VALUE=DATE:{moved:%Y%m%d}",
        f"LAST-MODIFIED:{utc_stamp(at)}",
        drop=("DUE", "LAST-MODIFIED"),
    )
    return t


STYLES: dict[str, tuple[Style, bool]] = {
    # name: (edit, has a stamp of its own; else the time kit-sync first saw it counts)
    "utc": (_utc, True),
    "floating": (_floating, True),
    "tzid": (_tzid, True),
    "date-only": (_date_only, True),
    "percent-complete-100": (_percent_only, False),
    "status-without-completed": (_status_only, False),
    "nextcloud-repeating-series": (_nextcloud_series, True),
    "thunderbird-override": (_thunderbird_override, True),
    "tasks-org-moved-in-place": (_tasks_org_in_place, True),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_completion_style_regenerates(kit: Kit, phone: Phone, style: str) -> None:
    edit, stamped = STYLES[style]
    if style == "date-only" and kit.server.kind == "radicale":
        pytest.skip("Radicale refuses COMPLETED;VALUE=DATE (RFC 5545 wants a DATE-TIME)")
    kit.sync()
    ann = one_open(kit, ANN)
    # Late yesterday evening, local time: in UTC that can be another day, which is
    # exactly what must not leak into the touch day.
    yesterday = today() - timedelta(days=1)
    at = datetime.combine(yesterday, datetime.min.time(), tzinfo=BERLIN) + timedelta(
        hours=23, minutes=40
    )
    phone.edit(href_of(ann), lambda t: edit(t, at))
    before = datetime.now(BERLIN).date()
    result = kit.sync()
    assert result.ok, result.failures
    fresh = one_open(kit, ANN)
    assert fresh.uid != ann.uid
    touch = yesterday if stamped else before
    assert fresh.due == touch + ANN_EVERY, style
    assert fresh.meta.anchor == touch
    # The old item is plain history now: completed, no repeat rule, one VTODO.
    old_text, _ = phone.get(href_of(ann))
    assert "RRULE" not in old_text or style not in (
        "thunderbird-override",
        "tasks-org-moved-in-place",
        "nextcloud-repeating-series",
    )
    assert old_text.count("BEGIN:VTODO") == 1
    old = next(t for t in kit.listing().tasks if t.uid == ann.uid)
    assert old.status is Status.COMPLETED
    assert len(kit.opens(ANN)) == 1
    # Nothing left to do: the same touch is never counted twice.
    again = kit.sync()
    assert again.ok and sum(again.counts.values()) == 0
    assert one_open(kit, ANN).uid == fresh.uid


def test_completion_without_stamp_keeps_the_day_first_seen(kit: Kit, phone: Phone) -> None:
    """The first-seen time is remembered: later cycles keep that touch day."""
    kit.sync()
    ann = one_open(kit, ANN)
    phone.edit(href_of(ann), lambda t: _status_only(t, datetime.now(UTC)))
    kit.sync()
    fresh = one_open(kit, ANN)
    kit.sync()
    assert one_open(kit, ANN).uid == fresh.uid
    assert fresh.due == today() + ANN_EVERY


# --- the other things a phone does --------------------------------------------------------


def test_snooze_is_kept(kit: Kit, phone: Phone) -> None:
    kit.sync()
    ann = one_open(kit, ANN)
    assert ann.due is not None
    later = ann.due + timedelta(days=9)
    phone.edit(
        href_of(ann),
        lambda t: edit_vtodo(t, f"DUE;VALUE=DATE:{later:%Y%m%d}", drop=("DUE",)),
    )
    result = kit.sync()
    assert result.ok and sum(result.counts.values()) == 0
    now = one_open(kit, ANN)
    assert (now.uid, now.due, now.snoozed) == (ann.uid, later, True)
    # A cadence change does not move a snoozed task either.
    contacts = [dict(c) for c in kit_contacts()]
    contacts[0]["every"] = "5 weeks"
    kit.write(contacts)
    kit.sync()
    assert one_open(kit, ANN).due == later


def kit_contacts() -> list[dict[str, str]]:
    from servers import BASE_CONTACTS

    return [dict(c) for c in BASE_CONTACTS]


def test_task_deleted_on_the_phone_is_recreated_from_the_last_touch(
    kit: Kit, phone: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    kit.sync()
    ann = one_open(kit, ANN)
    at = datetime.now(UTC) - timedelta(days=2)
    phone.edit(href_of(ann), lambda t: _utc(t, at))
    kit.sync()  # regenerated from the touch two days ago
    successor = one_open(kit, ANN)
    phone.delete(href_of(successor))
    with caplog.at_level("INFO", logger="kit_sync"):
        result = kit.sync()
    assert result.ok and result.counts["created"] == 1
    recreated = one_open(kit, ANN)  # (the same UID again is fine: the old one is gone)
    assert recreated.due == at.astimezone(BERLIN).date() + ANN_EVERY
    reasons = [a.reason for a in result.plan.actions]
    assert any("deleted on a device" in r for r in reasons), reasons
    assert any("deleted on a device" in r.getMessage() for r in caplog.records)


def test_completed_then_uncompleted_before_kit_sync_saw_it(kit: Kit, phone: Phone) -> None:
    kit.sync()
    ann = one_open(kit, ANN)
    original, _ = phone.get(href_of(ann))
    phone.edit(href_of(ann), lambda t: _utc(t, datetime.now(UTC)))
    phone.edit(
        href_of(ann),
        lambda t: edit_vtodo(t, "STATUS:NEEDS-ACTION", drop=("STATUS", "COMPLETED", "PERCENT")),
    )
    result = kit.sync()
    assert result.ok and sum(result.counts.values()) == 0
    assert one_open(kit, ANN).uid == ann.uid
    engine = kit.engine()
    try:
        assert engine.state.touches() == []
    finally:
        engine.backend.close()
        engine.state.close()
    assert original  # the phone's own re-open is what stays


def test_completion_undone_after_regeneration_cancels_the_successor(kit: Kit, phone: Phone) -> None:
    kit.sync()
    ann = one_open(kit, ANN)
    phone.edit(href_of(ann), lambda t: _utc(t, datetime.now(UTC)))
    kit.sync()
    successor = one_open(kit, ANN)
    phone.edit(
        href_of(ann),
        lambda t: edit_vtodo(t, "STATUS:NEEDS-ACTION", drop=("STATUS", "COMPLETED", "PERCENT")),
    )
    result = kit.sync()
    assert result.ok
    assert one_open(kit, ANN).uid == ann.uid
    gone = next(t for t in kit.listing().tasks if t.uid == successor.uid)
    assert gone.status is Status.CANCELLED


def test_foreign_tasks_stay_byte_for_byte(kit: Kit, phone: Phone) -> None:
    phone.put("groceries.ics", FOREIGN.format(uid="g1@phone", summary="Keep in touch with Ann Lee"))
    before = phone.get("groceries.ics")
    kit.sync()
    ann = one_open(kit, ANN)
    phone.edit(href_of(ann), lambda t: _utc(t, datetime.now(UTC)))
    kit.sync()
    assert phone.get("groceries.ics") == before
    assert all(t.uid != "g1@phone" for t in kit.listing().tasks)


def test_a_phone_edit_at_the_same_moment_is_not_overwritten(
    kit: Kit, phone: Phone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN rule 7 with a real server: the phone writes between kit-sync's listing
    and its update; the If-Match fails, kit-sync re-reads and re-plans."""
    kit.sync()
    ann = one_open(kit, ANN)
    contacts = kit_contacts()
    contacts[0]["notes"] = "Met at the conference"  # a roster edit: ann's task is rewritten
    kit.write(contacts)
    engine = kit.engine()
    original = type(engine.backend).update_task
    raced: list[str] = []

    def racing_update(self: object, task: KitTask, change: object) -> KitTask:
        if not raced:
            raced.append(task.uid)
            phone.edit(href_of(task), lambda t: edit_vtodo(t, "X-PHONE-NOTE:mine"))
        return original(self, task, change)  # type: ignore[arg-type]

    monkeypatch.setattr(type(engine.backend), "update_task", racing_update)
    try:
        result = engine.run_cycle()
    finally:
        engine.backend.close()
        engine.state.close()
    assert raced == [ann.uid]
    assert result.ok, result.failures
    text, _ = phone.get(href_of(ann))
    assert "X-PHONE-NOTE:mine" in text  # the phone's edit survived
    assert "Met at the conference" in text.replace("\r\n ", "").replace("\n ", "")
