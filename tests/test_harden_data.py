"""Hardening (issue 11): data from the backend or the roster that no client should
write never stops a cycle, and is never written back raw.

Each test here failed on the main of 2026-12-02 (7343a71)."""

from __future__ import annotations

import copy
import logging
from datetime import date
from pathlib import Path

import pytest
from kit import BASE_CONFIG, World

from kit_sync.model import Status

ANN = "ann-example-com"
BOB = "bob-example-com"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, copy.deepcopy(BASE_CONFIG))


# --- 4: completion stamps in the future ---------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    ["COMPLETED:99991231T230000Z", "COMPLETED:20300101T120000Z", "COMPLETED;VALUE=DATE:99991231"],
    ids=["year-9999-utc", "2030", "year-9999-date"],
)
def test_a_completion_stamped_in_the_future_counts_for_the_day_it_was_seen(
    world: World, stamp: str, caplog: pytest.LogCaptureFixture
) -> None:
    world.sync()
    world.complete_raw(world.the_open(ANN), stamp)
    world.advance(days=2)  # seen two days later: that is the touch day
    seen_day = world.today()
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        result = world.sync()
    assert result.ok
    assert result.counts["regenerated"] == 1
    # 3 weeks (inner) after the day kit-sync saw the completion, not after 2030/9999.
    assert world.the_open(ANN).due == date.fromordinal(seen_day.toordinal() + 21)
    warned = [r.getMessage() for r in caplog.records if "stamp in the future" in r.getMessage()]
    assert len(warned) == 1 and ANN in warned[0] and ".ics" in warned[0]
    # The day counted is written onto the task: the next cycle is quiet and stable,
    # and so is a cycle after the state file is lost.
    done = [t for t in world.tasks() if t.status is Status.COMPLETED]
    assert [t.completed for t in done] == [world.now.replace(microsecond=0)]
    caplog.clear()
    world.advance(days=30)
    (world.dir / "state.sqlite").unlink()
    again = world.sync()
    assert again.counts == {
        "created": 0,
        "regenerated": 0,
        "updated": 0,
        "cancelled": 0,
        "failed": 0,
    }
    assert not [r for r in caplog.records if "stamp in the future" in r.getMessage()]


def test_a_year_9999_stamp_stops_neither_the_other_contacts_nor_status(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    from test_service_health import cli

    world.sync()
    world.complete_raw(world.the_open(ANN), "COMPLETED:99991231T230000Z")
    world.complete_raw(world.the_open(BOB), "COMPLETED:20261120T100000Z")
    ran = cli(capfd, "--config", str(world.config_path), "status", "--json")
    assert ran.code == 0, ran.text
    result = world.sync()
    assert result.ok and result.counts["regenerated"] == 2
    assert world.the_open(BOB).due == date(2027, 1, 20)


def test_a_due_date_at_the_end_of_the_calendar_leaves_only_that_contact_alone(
    world: World,
) -> None:
    """An anchor a hand-edited file put at 9999-12-31: planning that contact cannot
    work, the others still sync and the cycle reports it."""
    world.sync()
    ann = world.the_open(ANN)
    world.edit_raw(
        ann, lambda t: t.replace("X-KIT-SYNC-ANCHOR:", "X-KIT-SYNC-ANCHOR:9999-12-31\r\nX-OLD:")
    )
    world.complete_raw(world.the_open(BOB), "COMPLETED:20261120T100000Z")
    result = world.sync()
    assert result.counts["regenerated"] == 1
    assert any(ANN in line and "cannot plan" in line for line in result.plan.skipped)
    assert world.the_open(BOB).due == date(2027, 1, 20)


# --- 5: ids that can never be written -------------------------------------------------------


def write_contacts(world: World, contacts: list[dict[str, object]]) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"] = contacts
    world.write_config(data)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("ann\nlee", "control character"),
        ("x" * 300, "300 characters long"),
        ("名" * 60, "60 characters long"),
        ("tab\there", "control character"),
    ],
    ids=["newline", "300-chars", "60-cjk", "tab"],
)
def test_an_id_that_cannot_be_written_is_a_config_error_with_file_and_line(
    world: World, capfd: pytest.CaptureFixture[str], bad: str, says: str
) -> None:
    from test_service_health import cli

    write_contacts(
        world,
        [
            {"name": "Ann Lee", "email": "ann@example.com", "tier": "inner"},
            {"name": "Odd One", "id": bad, "tier": "core"},
        ],
    )
    line = next(
        i
        for i, text in enumerate(world.config_path.read_text().splitlines(), 1)
        if "Odd One" in text
    )
    ran = cli(capfd, "--config", str(world.config_path), "check")
    assert ran.code == 2, ran.text
    assert f"config.yaml:{line} id: " in ran.err and says in ran.err
    ran = cli(capfd, "--config", str(world.config_path), "sync")
    assert ran.code == 2
    assert not world.folder.exists() or not list(world.folder.iterdir())  # nothing written


def test_the_longest_allowed_id_is_written_and_read_back(world: World) -> None:
    write_contacts(world, [{"name": "Long Id", "id": "x" * 120, "tier": "core"}])
    assert world.sync().ok
    assert world.the_open("x" * 120)


# --- 14: control characters from roster fields ------------------------------------------------


def test_nul_and_control_characters_from_roster_fields_never_reach_a_task(world: World) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"][0]["notes"] = "mentor\x00, met\x1b in Lisbon\nsecond line"
    data["contacts"][1]["name"] = "Bob\x00 Stone\x07"
    world.write_config(data)  # YAML writes them as "\0", "\e", "\a" escapes
    assert "\\0" in world.config_path.read_text()
    assert world.sync().ok
    files = sorted(world.folder.glob("*.ics"))
    assert len(files) == 2
    for path in files:
        raw = path.read_bytes()
        assert not [b for b in raw if b < 0x20 and b not in (0x0A, 0x0D, 0x09)], path.name
    assert world.the_open(BOB).summary == "Keep in touch with Bob Stone"
    ann = (world.folder / world.the_open(ANN).href).read_text()
    assert "mentor\\, met in Lisbon\\nsecond line" in ann.replace("\r\n ", "")


# --- 3: a kit task is recognised by its kit UID, not by the marker alone ---------------------


def copied(text: str, uid: str, new_uid: str) -> str:
    return text.replace(f"UID:{uid}", f"UID:{new_uid}")


def test_a_foreign_copy_with_the_marker_is_left_alone_and_reported_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    import uuid

    world.sync()
    ann = world.the_open(ANN)
    name = f"copy-{uuid.uuid4().hex[:8]}.ics"
    copy_path = world.folder / name
    raw = copied((world.folder / ann.href).read_text(), ann.uid, "made-by-a-phone-1@example")
    assert "X-KIT-SYNC-CONTACT:ann-example-com" in raw
    copy_path.write_bytes(raw.encode())
    before = copy_path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        first = world.sync()
        second = world.sync()
    assert first.ok and second.ok
    assert first.plan.actions == [] and second.plan.actions == []
    assert copy_path.read_bytes() == before  # byte for byte
    assert [t.uid for t in world.open_tasks(ANN)] == [ann.uid]
    warned = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(warned) == 1 and "not a kit-sync UID" in warned[0]
    # A completion on the copy is not a touch of Ann's either.
    copy_path.write_bytes(before.replace(b"STATUS:NEEDS-ACTION", b"STATUS:COMPLETED"))
    assert world.sync().plan.actions == []


@pytest.mark.integration
def test_a_foreign_copy_with_the_marker_on_a_caldav_server_is_left_alone(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from servers import Kit, Phone, shared

    server = shared("radicale", request)
    collection = server.new_collection()
    kit_ = Kit(tmp_path, server, collection)
    phone = Phone(server, collection)
    try:
        assert kit_.cli("sync").returncode == 0
        href, _ = next(iter(phone.listing().items()))
        text, _ = phone.get(href)
        uid = next(line[4:] for line in text.splitlines() if line.startswith("UID:"))
        contact = next(
            line.split(":", 1)[1]
            for line in text.splitlines()
            if line.startswith("X-KIT-SYNC-CONTACT:")
        )
        etag = phone.put("copied-by-hand.ics", copied(text, uid, "copy-by-hand-2@example"))
        done = kit_.cli("sync")
        assert done.returncode == 0, done.stderr
        assert "copied-by-hand.ics" in done.stderr and "not a kit-sync UID" in done.stderr
        after, etag_after = phone.get("copied-by-hand.ics")
        assert etag_after == etag and "STATUS:NEEDS-ACTION" in after
        assert len(kit_.opens(contact)) == 1
    finally:
        phone.close()


# --- 6: one huge or unreadable item on a CalDAV server --------------------------------------

FOREIGN = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
    "UID:{uid}\r\nSUMMARY:{summary}\r\nDESCRIPTION:{description}\r\n"
    "END:VTODO\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.integration
def test_a_huge_item_on_a_caldav_server_is_skipped_by_href_and_the_rest_syncs(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """On Xandikos (Radicale refuses items over 10 MB itself)."""
    from servers import Kit, Phone, shared

    server = shared("xandikos", request)
    collection = server.new_collection()
    kit_ = Kit(tmp_path, server, collection)
    phone = Phone(server, collection)
    try:
        assert kit_.cli("sync").returncode == 0
        contacts = {t.contact_id for t in kit_.opens()}
        # 12 MB of text: past the XML parser's 10 MB limit for one text node, which
        # made the whole multistatus answer "not XML" before.
        target = sorted(kit_.opens(), key=lambda t: t.contact_id)[0]
        phone.edit(
            target.href.rsplit("/", 1)[-1],
            lambda text: text.replace("STATUS:NEEDS-ACTION", "STATUS:COMPLETED"),
        )
        phone.put(
            "huge.ics",
            FOREIGN.format(uid="huge-1@test", summary="Huge", description="x" * 12_000_000),
        )
        done = kit_.cli("sync")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "huge.ics" in done.stderr and "too large" in done.stderr
        assert "regenerated 1" in done.stdout
        assert {t.contact_id for t in kit_.opens()} == contacts
        again = kit_.cli("sync")  # reported again, nothing else to do
        assert again.returncode == 0 and "huge.ics" in again.stderr
        assert "created 0, regenerated 0, updated 0, cancelled 0, failed 0" in again.stdout
    finally:
        phone.close()
