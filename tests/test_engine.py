"""DESIGN's behaviour contract, rule by rule, on the local backend."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from kit import BASE_CONFIG, World

from kit_sync.model import Status, make_uid

BERLIN = ZoneInfo("Europe/Berlin")
ANN = "ann-example-com"
BOB = "bob-example-com"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, copy.deepcopy(BASE_CONFIG))


def test_rule1_one_open_task_per_active_contact_and_idempotent(world: World) -> None:
    first = world.sync()
    assert first.counts["created"] == 2
    assert len(world.open_tasks(ANN)) == 1
    assert len(world.open_tasks(BOB)) == 1
    files = sorted(p.name for p in world.folder.iterdir())
    again = world.sync()
    assert again.plan.actions == []
    assert sorted(p.name for p in world.folder.iterdir()) == files


def test_new_contacts_are_spread_over_their_first_interval(world: World) -> None:
    world.sync()
    start = world.today()
    ann = world.the_open(ANN)
    bob = world.the_open(BOB)
    assert start < ann.due <= start + timedelta(weeks=3)
    assert start < bob.due <= date(2027, 1, 21)
    assert ann.summary == "Keep in touch with Ann Lee"


@pytest.mark.parametrize("days_early", [-10, -1, 0, 3, 15])
def test_rule2_next_due_counts_from_the_completion_day(world: World, days_early: int) -> None:
    world.sync()
    ann = world.the_open(ANN)
    done_day = ann.due - timedelta(days=days_early)
    world.at(datetime(done_day.year, done_day.month, done_day.day, 15, 0, tzinfo=UTC))
    world.complete_raw(ann, f"COMPLETED:{done_day:%Y%m%d}T140000Z")
    result = world.sync()
    assert result.counts["regenerated"] == 1
    nxt = world.the_open(ANN)
    assert nxt.due == done_day + timedelta(weeks=3)
    assert nxt.uid != ann.uid
    assert nxt.meta.from_uid == ann.uid


def test_completion_late_evening_local_is_that_local_day(world: World) -> None:
    # 23:30 in Berlin on Nov 30 is 22:30 UTC on Nov 30; and 00:30 Berlin Dec 1 is
    # 23:30 UTC Nov 30 - the local day counts, not the UTC one.
    world.sync()
    ann = world.the_open(ANN)
    world.complete_raw(ann, "COMPLETED:20261130T233000Z")  # = 00:30 Dec 1 in Berlin
    world.at(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 1) + timedelta(weeks=3)


@pytest.mark.parametrize(
    ("lines", "day"),
    [
        (["COMPLETED:20261205T103000"], date(2026, 12, 5)),  # floating local time
        (["COMPLETED;TZID=America/New_York:20261205T213000"], date(2026, 12, 6)),
        (["COMPLETED;VALUE=DATE:20261205"], date(2026, 12, 5)),  # date-only
    ],
)
def test_completion_stamp_forms(world: World, lines: list[str], day: date) -> None:
    world.sync()
    world.complete_raw(world.the_open(ANN), *lines)
    world.at(datetime(2026, 12, 7, 9, tzinfo=UTC))
    world.sync()
    assert world.the_open(ANN).due == day + timedelta(weeks=3)


def test_completion_without_stamp_uses_first_seen_time(world: World) -> None:
    world.sync()
    world.complete_raw(world.the_open(ANN), "PERCENT-COMPLETE:100", status=None)
    world.at(datetime(2026, 12, 3, 9, tzinfo=UTC))
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 3) + timedelta(weeks=3)
    # Later cycles (even with the state DB gone) keep that day.
    world.at(datetime(2026, 12, 9, 9, tzinfo=UTC))
    (world.dir / "state.sqlite").unlink()
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 24)


def test_rule2_month_end_clamping(world: World) -> None:
    world.sync()
    bob = world.the_open(BOB)
    world.complete_raw(bob, "COMPLETED:20261231T120000Z")
    world.at(datetime(2027, 1, 1, 9, tzinfo=UTC))
    world.sync()
    assert world.the_open(BOB).due == date(2027, 2, 28)


def test_rule3_completed_tasks_stay_and_journal_survives_purge(world: World) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.complete_raw(ann, "COMPLETED:20261125T120000Z")
    world.at(datetime(2026, 11, 26, tzinfo=UTC))
    world.sync()
    done = [t for t in world.tasks() if t.status is Status.COMPLETED]
    assert [t.uid for t in done] == [ann.uid]
    # The user purges completed tasks and deletes the open one on the phone.
    (world.folder / ann.href).unlink()
    (world.folder / world.the_open(ANN).href).unlink()
    result = world.sync()
    assert [a.reason for a in result.plan.actions] == [
        "its open task was deleted on a device; recreated"
    ]
    assert world.the_open(ANN).due == date(2026, 11, 25) + timedelta(weeks=3)


def test_rule4_foreign_tasks_are_byte_identical(world: World) -> None:
    world.folder.mkdir(parents=True)
    foreign = {
        "lookalike.ics": (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:abc@phone\r\n"
            "SUMMARY:Keep in touch with Ann Lee\r\nDUE;VALUE=DATE:20261122\r\n"
            "END:VTODO\r\nEND:VCALENDAR\r\n"
        ),
        "done.ics": (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:def@phone\r\n"
            "SUMMARY:Buy milk\r\nSTATUS:COMPLETED\r\nCOMPLETED:20261101T100000Z\r\n"
            "END:VTODO\r\nEND:VCALENDAR\r\n"
        ),
        "broken.ics": "BEGIN:VCALENDAR\r\nthis is not ical\r\n",
        "notes.txt": "not a task",
    }
    for name, text in foreign.items():
        (world.folder / name).write_bytes(text.encode())
    stats = {name: (world.folder / name).stat().st_mtime_ns for name in foreign}
    for _ in range(3):
        world.sync()
        world.complete_raw(world.the_open(ANN), "COMPLETED:20261122T100000Z")
        world.advance(days=1)
    world.edit_config(contacts=[])  # even removing everyone leaves them alone
    with pytest.raises(Exception, match="roster is empty"):
        world.sync()
    for name, text in foreign.items():
        assert (world.folder / name).read_bytes() == text.encode()
        assert (world.folder / name).stat().st_mtime_ns == stats[name]


def test_rule5_new_removed_and_paused_contacts(world: World) -> None:
    world.sync()
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"] = [
        {"name": "Ann Lee", "email": "ann@example.com", "tier": "inner", "paused": True},
        {"name": "Cleo Park", "email": "cleo@example.com", "tier": "core"},
    ]
    world.write_config(data)
    result = world.sync()
    reasons = sorted(a.describe().split(",")[0] for a in result.plan.actions)
    assert reasons == [
        "cancel ann-example-com: paused in the roster",
        "cancel bob-example-com: no longer in the roster",
        "create cleo-example-com: new contact",
    ]
    assert world.open_tasks(ANN) == [] and world.open_tasks(BOB) == []
    cancelled = [t for t in world.tasks() if t.status is Status.CANCELLED]
    assert len(cancelled) == 2  # cancelled, not deleted (history kept)
    assert len(world.open_tasks("cleo-example-com")) == 1


def test_rule5_on_remove_delete(world: World) -> None:
    world.sync()
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"] = data["contacts"][:1]
    data["task"] = {"on_remove": "delete"}
    world.write_config(data)
    world.sync()
    assert [t.contact_id for t in world.tasks()] == [ANN]


def test_rule5_unpausing_creates_a_fresh_task(world: World) -> None:
    world.sync()
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"][0]["paused"] = True
    world.write_config(data)
    world.sync()
    data["contacts"][0]["paused"] = False
    world.write_config(data)
    world.sync()
    assert len(world.open_tasks(ANN)) == 1
    assert len({t.uid for t in world.tasks() if t.contact_id == ANN}) == 2


def test_rule5_cadence_change_moves_due_unless_snoozed(world: World) -> None:
    world.sync()
    world.complete_raw(world.the_open(ANN), "COMPLETED:20261122T100000Z")
    world.complete_raw(world.the_open(BOB), "COMPLETED:20261122T100000Z")
    world.at(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # (a stamp later than now is not believed)
    world.sync()
    bob = world.the_open(BOB)
    world.set_due_raw(bob, date(2027, 3, 1))  # Bob's task snoozed by hand
    data = copy.deepcopy(BASE_CONFIG)
    data["tiers"]["inner"]["every"] = "2 weeks"
    data["tiers"]["core"]["every"] = "1 month"
    world.write_config(data)
    result = world.sync()
    assert world.the_open(ANN).due == date(2026, 11, 22) + timedelta(weeks=2)
    assert world.the_open(BOB).due == date(2027, 3, 1)  # the snooze wins
    by_contact = {a.contact_id: a for a in result.plan.actions}
    assert by_contact[BOB].change is not None and by_contact[BOB].change.due is None
    assert by_contact[BOB].reason == "roster details changed"  # "Every: 1 month" in the notes
    # ...until the next completion, which counts from its day with the new cadence.
    world.complete_raw(world.the_open(BOB), "COMPLETED:20261201T100000Z")
    world.at(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    world.sync()
    assert world.the_open(BOB).due == date(2027, 1, 1)


def test_rule5_roster_edit_updates_content_in_place(world: World) -> None:
    world.sync()
    before = world.the_open(ANN)
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"][0].update(
        name="Ann Lee-Park", notes="Moved to Lisbon", phone="+351 21 000 0000"
    )
    world.write_config(data)
    result = world.sync()
    assert [a.kind.value for a in result.plan.actions] == ["updated"]
    after = world.the_open(ANN)
    assert after.uid == before.uid and after.due == before.due
    assert after.summary == "Keep in touch with Ann Lee-Park"
    text = (world.folder / after.href).read_text().replace("\n ", "")  # unfold lines
    assert "Moved to Lisbon" in text and "+351 21 000 0000" in text


def test_user_edit_of_summary_is_not_overwritten(world: World) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.edit_raw(
        ann, lambda t: t.replace("SUMMARY:Keep in touch with Ann Lee", "SUMMARY:Lunch with Ann!")
    )
    assert world.sync().plan.actions == []
    assert world.the_open(ANN).summary == "Lunch with Ann!"


def test_rule6_deleting_state_creates_no_duplicates(world: World) -> None:
    world.sync()
    world.complete_raw(world.the_open(ANN), "COMPLETED:20261122T100000Z")
    world.sync()
    before = sorted((t.uid, t.due, t.status) for t in world.tasks())
    (world.dir / "state.sqlite").unlink()
    result = world.sync()
    assert result.plan.actions == []
    assert sorted((t.uid, t.due, t.status) for t in world.tasks()) == before


def test_duplicate_open_tasks_are_reduced_to_one(world: World) -> None:
    world.sync()
    ann = world.the_open(ANN)
    # Two open kit tasks for one contact (a state lost between two runs of an older
    # kit-sync, a restored backup): one is kept. (A copy a client made under its own,
    # non-kit UID is foreign: see test_harden_data.py.)
    text = (world.folder / ann.href).read_text()
    copy_uid = make_uid(ANN, "a second one")
    (world.folder / "copy.ics").write_text(text.replace(f"UID:{ann.uid}", f"UID:{copy_uid}"))
    result = world.sync()
    assert [a.reason for a in result.plan.actions] == ["a second open task for the same contact"]
    assert len(world.open_tasks(ANN)) == 1


def test_undone_completion_cancels_the_successor(world: World) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.complete_raw(ann, "COMPLETED:20261121T090000Z")
    world.sync()
    successor = world.the_open(ANN)
    # The user un-ticks the original on the phone.
    world.edit_raw(
        ann_now := next(t for t in world.tasks() if t.uid == ann.uid),
        lambda t: (
            t.replace("STATUS:COMPLETED", "STATUS:NEEDS-ACTION")
            .replace("COMPLETED:20261121T090000Z\r\n", "")
            .replace("PERCENT-COMPLETE:100\r\n", "")
        ),
    )
    del ann_now
    world.sync()
    opens = world.open_tasks(ANN)
    assert [t.uid for t in opens] == [ann.uid]
    assert successor.uid in {t.uid for t in world.tasks() if t.status is Status.CANCELLED}
    engine = world.engine()
    assert engine.state.touches(ANN) == []
    engine.state.close()


def test_conflict_reloads_and_replans(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.sync()
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"][0]["notes"] = "new note"
    world.write_config(data)
    engine = world.engine()
    real_update = engine.backend.update_task
    calls = {"n": 0}

    def racing_update(task, change):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:  # a phone edits the task between our read and our write
            world.edit_raw(task, lambda t: t.replace("SUMMARY:", "X-PHONE:1\r\nSUMMARY:"))
        return real_update(task, change)

    monkeypatch.setattr(engine.backend, "update_task", racing_update)
    result = engine.run_cycle()
    engine.state.close()
    assert result.ok and result.counts["updated"] == 1 and calls["n"] == 2
    text = (world.folder / world.the_open(ANN).href).read_text()
    assert "X-PHONE:1" in text and "new note" in text  # the phone's edit survived


def test_empty_backend_guard(world: World) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"] = [{"name": f"P{i}", "tier": "inner"} for i in range(6)]
    world.write_config(data)
    world.sync()
    for path in world.folder.iterdir():
        path.unlink()
    with pytest.raises(Exception, match="lists no kit-sync tasks"):
        world.sync()
    engine = world.engine()
    result = engine.run_cycle(allow_empty=True)
    engine.state.close()
    assert result.counts["created"] == 6


def test_touch_completes_and_regenerates(world: World) -> None:
    world.sync()
    ann = world.the_open(ANN)
    engine = world.engine()
    contact = engine.roster.get(ANN)
    assert contact is not None
    engine.touch(contact, date(2026, 11, 18), "coffee at the airport")
    engine.state.close()
    assert world.the_open(ANN).due == date(2026, 11, 18) + timedelta(weeks=3)
    done = next(t for t in world.tasks() if t.uid == ann.uid)
    assert done.status is Status.COMPLETED
    engine = world.engine()
    touches = engine.state.touches(ANN)
    engine.state.close()
    assert [(t.day, t.note) for t in touches] == [(date(2026, 11, 18), "coffee at the airport")]


def test_avoid_weekends(world: World) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["schedule"] = {"avoid_weekends": True}
    world.write_config(data)
    world.sync()
    # Completed Friday Dec 4 -> +3 weeks = Friday Dec 25 (weekday, kept).
    world.complete_raw(world.the_open(ANN), "COMPLETED:20261205T100000Z")  # Saturday
    world.at(datetime(2026, 12, 6, tzinfo=UTC))
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 28)  # Sat Dec 26 -> Mon Dec 28


def test_unreadable_own_item_blocks_only_that_contact(world: World) -> None:
    world.sync()
    ann = world.the_open(ANN)
    (world.folder / ann.href).write_text(
        f"BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:{ann.uid}\nX-KIT-SYNC-CONTACT:{ANN}\nDUE:garbage\n"
    )
    result = world.sync()
    assert result.plan.skipped and ANN in result.plan.skipped[0]
    assert not [a for a in result.plan.actions if a.contact_id == ANN]
    assert result.problems


def test_an_action_a_crash_left_pending_is_reported_by_the_next_cycle(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = world.engine()

    def crash(news):  # type: ignore[no-untyped-def]
        raise RuntimeError("the process dies here")  # as a kill -9 would leave it

    monkeypatch.setattr(engine.backend, "create_tasks", crash)
    with pytest.raises(RuntimeError):
        engine.run_cycle()
    monkeypatch.undo()
    result = engine.run_cycle()
    assert result.interrupted == 2 and result.counts["created"] == 2
    assert engine.run_cycle().interrupted == 0  # reported once
    engine.state.close()


def test_the_cycle_history_keeps_the_last_cycles_and_their_actions(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruned once a few more than KEEP_CYCLES have piled up (not at every cycle),
    back to the newest KEEP_CYCLES; the actions of the pruned cycles go with them."""
    import kit_sync.cycles as cycles_module

    monkeypatch.setattr(cycles_module, "KEEP_CYCLES", 5)
    monkeypatch.setattr(cycles_module, "PRUNE_SLACK", 2)
    engine = world.engine()
    first = engine.state.begin_cycle()
    engine.state.begin_action(first, "create", ANN, None)
    engine.state.end_cycle(first, True, {})
    db = engine.state.db
    counts = []
    for _ in range(8):
        engine.run_cycle()
        counts.append(db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0])
    assert counts == [2, 3, 4, 5, 6, 7, 5, 6]
    assert db.execute("SELECT COUNT(*) FROM cycles WHERE id = ?", (first,)).fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM actions WHERE cycle = ?", (first,)).fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 0  # all pruned
    recent = engine.state.begin_cycle()
    engine.state.begin_action(recent, "create", ANN, None)
    engine.state.end_cycle(recent, True, {})
    engine.run_cycle()  # 8 > 5 + 2: pruned again, the recent cycle and its action stay
    assert db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0] == 5
    assert [tuple(r) for r in db.execute("SELECT cycle FROM actions")] == [(recent,)]
    engine.state.close()
