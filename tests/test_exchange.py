"""The Exchange backend through the engine, against the fake EWS server.

The test plays the other parties on the same mailbox: Outlook (completes a task and
regenerates it counting in the user's zone), a phone or another EWS client
(the server regenerates, counting in UTC), and a user editing tasks by hand.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ews_server import EwsServer, Item
from ews_server.store import t
from ews_server.testing import PASSWORD, new_mailbox, second_client
from kit import BASE_CONFIG, World

from kit_sync.app import load
from kit_sync.backends.base import AuthFailed, BackendUnavailable, Throttled
from kit_sync.backends.exchange import ExchangeBackend, importance_for, regeneration_for
from kit_sync.engine import CycleResult, Engine
from kit_sync.model import KitTask, Status, make_uid
from kit_sync.state import State

pytestmark = pytest.mark.integration

ANN = "ann-example-com"
BOB = "bob-example-com"


@pytest.fixture(scope="module")
def ews() -> Iterator[EwsServer]:
    with EwsServer() as server:
        yield server


class ExchangeWorld(World):
    """kit's test world with the Exchange backend on a fresh mailbox of the fake server.
    The server's clock is the world's clock."""

    def __init__(self, tmp_path: Path, server: EwsServer, config: dict[str, Any]) -> None:
        self.server = server
        self.email = new_mailbox(server)
        server.store.clock = lambda: self.now
        config = copy.deepcopy(config)
        config["backend"] = {
            "type": "exchange",
            "email": self.email,
            "service_endpoint": server.url,
            "password": PASSWORD,
            "auth": "basic",
            "version": "2016",
            "max_retry_wait": 5,
            "timeout": 10,
        } | config.get("backend_extra", {})
        config.pop("backend_extra", None)
        super().__init__(tmp_path, config)

    def engine(self) -> Engine:
        loaded = load(self.config_path)
        backend = ExchangeBackend(loaded.config.backend, loaded.tz)
        state = State(loaded.config.state_path())
        return Engine(
            loaded.config, loaded.roster, backend, state, loaded.tz, clock=lambda: self.now
        )

    def run(self, fn: Any) -> Any:
        engine = self.engine()
        try:
            return fn(engine)
        finally:
            engine.backend.close()
            engine.state.close()

    def sync(self) -> CycleResult:
        result: CycleResult = self.run(lambda e: e.run_cycle())
        return result

    def tasks(self) -> list[KitTask]:
        tasks: list[KitTask] = self.run(lambda e: e.backend.fetch_listing().tasks)
        return tasks

    # --- the mailbox as the server holds it ---------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config_data["timezone"])

    def folder_items(self, name: str = "tasks") -> list[Item]:
        store = self.server.store
        folder = store.distinguished(self.email, name)
        return sorted(store.items_in(folder), key=lambda i: i.created_seq)

    def item(self, task: KitTask) -> Item:
        return self.server.store.item(task.href)

    def touches(self) -> list[tuple[str, date]]:
        state = State(self.dir / "state.sqlite")
        try:
            return [(x.contact_id, x.day) for x in state.touches()]
        finally:
            state.close()


def base_config(zone: str = "Europe/Berlin", **extra: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    data["timezone"] = zone
    data.update(extra)
    return data


@pytest.fixture
def world(tmp_path: Path, ews: EwsServer) -> ExchangeWorld:
    return ExchangeWorld(tmp_path, ews, base_config())


def assert_one_open_each(world: ExchangeWorld, *contacts: str) -> dict[str, KitTask]:
    opens: dict[str, list[KitTask]] = {}
    for task in world.tasks():
        if task.status is Status.OPEN:
            opens.setdefault(task.contact_id, []).append(task)
    assert sorted(opens) == sorted(contacts)
    for cid, tasks in opens.items():
        assert len(tasks) == 1, (cid, tasks)
    return {cid: tasks[0] for cid, tasks in opens.items()}


# --- representation ---------------------------------------------------------------------


def test_exchangelib_creates_regenerating_tasks_with_the_marker(world: ExchangeWorld) -> None:
    world.edit_config(task={"alarm": "09:00"})
    result = world.sync()
    assert result.counts["created"] == 2
    items = world.folder_items()
    assert len(items) == 2
    by_contact = {i.ext_value("X-KIT-SYNC-CONTACT"): i for i in items}
    assert set(by_contact) == {ANN, BOB}
    ann, bob = by_contact[ANN], by_contact[BOB]
    # Native regenerating tasks: "Regenerate new task 3 weeks / 2 months after each
    # task is completed".
    assert ann.regeneration() == ("WeeklyRegeneration", 3)
    assert bob.regeneration() == ("MonthlyRegeneration", 2)
    assert ann.text("Subject") == "Keep in touch with Ann Lee"
    body = ann.props["Body"]
    assert body.get("BodyType") == "Text"
    assert "How: lunch" in (body.text or "")
    assert "Email: ann@example.com" in (body.text or "")
    assert "Last contacted: not yet" in (body.text or "")
    assert [c.text for c in ann.props["Categories"]] == ["Keep in touch", "inner"]
    assert ann.text("Importance") == "High"
    assert bob.text("Importance") == "Normal"
    assert ann.status == "NotStarted"
    # The reminder is on the due day at 09:00 in the user's zone.
    reminder = datetime.fromisoformat((ann.text("ReminderDueBy") or "").replace("Z", "+00:00"))
    assert ann.text("ReminderIsSet") in ("1", "true")
    assert reminder.astimezone(world.tz).time().isoformat() == "09:00:00"
    assert reminder.astimezone(world.tz).date() == ann.due

    # Another EWS client (Outlook Web, a script) sees native recurring tasks.
    from exchangelib.recurrence import MonthlyRegeneration, WeeklyRegeneration

    account = second_client(world.server, world.email)
    seen = {i.subject: i for i in account.tasks.all()}
    assert seen["Keep in touch with Ann Lee"].is_recurring is True
    assert isinstance(seen["Keep in touch with Ann Lee"].recurrence.pattern, WeeklyRegeneration)
    assert isinstance(seen["Keep in touch with Bob Stone"].recurrence.pattern, MonthlyRegeneration)
    assert seen["Keep in touch with Ann Lee"].due_date == ann.due


@pytest.mark.parametrize(
    ("every", "pattern"),
    [
        ("P21D", ("WeeklyRegeneration", 3)),
        ("P10D", ("DailyRegeneration", 10)),
        ("P2M", ("MonthlyRegeneration", 2)),
        ("P12M", ("YearlyRegeneration", 1)),
        ("P24M", ("YearlyRegeneration", 2)),
        ("P1M15D", ("DailyRegeneration", 45)),
    ],
)
def test_regeneration_pattern_from_the_interval(every: str, pattern: tuple[str, int]) -> None:
    made = regeneration_for(every)
    assert (type(made).__name__, made.interval) == pattern


def test_importance_from_priority() -> None:
    assert [importance_for(p) for p in (0, 1, 4, 5, 6, 9)] == [
        "Normal",
        "High",
        "High",
        "Normal",
        "Low",
        "Low",
    ]


# --- change detection -------------------------------------------------------------------


def test_an_idle_cycle_is_one_request_also_in_a_new_process(world: ExchangeWorld) -> None:
    world.sync()
    world.sync()  # reads back what the first cycle wrote
    world.server.reset_log()
    engine = world.engine()  # a new backend object, cache and sync state from the DB
    try:
        result = engine.run_cycle()
        assert result.plan.actions == []
        assert len(world.server.requests) <= 1  # one SyncFolderItems
        world.server.reset_log()
        engine.run_cycle()
        assert len(world.server.requests) <= 1  # one SyncFolderItems
    finally:
        engine.backend.close()
        engine.state.close()


def test_a_changed_task_is_read_with_one_getitem(world: ExchangeWorld) -> None:
    world.sync()
    world.sync()
    ann = world.the_open(ANN)
    world.server.store.edit(ann.href, Subject="Keep in touch with Ann (lunch in May)")
    world.server.reset_log()
    world.sync()
    assert len(world.server.requests) <= 2  # SyncFolderItems + one GetItem


def test_lost_state_db_rebuilds_from_the_mailbox_without_duplicates(world: ExchangeWorld) -> None:
    world.sync()
    before = [i.id for i in world.folder_items()]
    (world.dir / "state.sqlite").unlink()
    result = world.sync()
    assert result.plan.actions == []
    assert [i.id for i in world.folder_items()] == before


def test_a_sync_state_the_server_rejects_means_reading_the_folder_again(
    world: ExchangeWorld,
) -> None:
    world.sync()
    scope = f"exchange:{world.email.lower()}:"
    state = State(world.dir / "state.sqlite")
    state.listing_cache().put(scope, "token", "bm90IGEgc3luYyBzdGF0ZQ==")
    state.close()
    world.server.reset_log()
    result = world.sync()
    assert result.plan.actions == []
    assert_one_open_each(world, ANN, BOB)


# --- completion paths ------------------------------------------------------------------


def test_completion_in_outlook_counts_from_the_local_day(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    # Outlook, in Berlin, on Dec 2: marks the task complete. Outlook regenerates it
    # itself: the same item moves on, a completed copy stays as history.
    world.at(datetime(2026, 12, 2, 17, 0, tzinfo=UTC))
    copy_ = world.server.store.complete_like_outlook(ann.href, date(2026, 12, 2), world.tz)
    result = world.sync()
    opens = assert_one_open_each(world, ANN, BOB)
    master = opens[ANN]
    assert master.href == ann.href  # the same Outlook item, not a new one
    assert master.due == date(2026, 12, 2) + timedelta(weeks=3)
    assert master.meta.anchor == date(2026, 12, 2)
    assert (ANN, date(2026, 12, 2)) in world.touches()
    done = [x for x in world.tasks() if x.status is Status.COMPLETED]
    assert [x.href for x in done] == [copy_.id]
    assert done[0].contact_id == ANN  # the copy carries the marker
    # Body now says when Ann was last contacted.
    assert "Last contacted: 2026-12-02" in (world.item(master).props["Body"].text or "")
    assert result.counts["failed"] == 0
    # Nothing more to do afterwards.
    assert world.sync().plan.actions == []


def test_outlook_regeneration_on_a_weekend_is_moved_by_the_project_rules(
    tmp_path: Path, ews: EwsServer
) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config(schedule={"avoid_weekends": True}))
    world.sync()
    ann = world.the_open(ANN)
    # Completed on Saturday Dec 5, 2026: Outlook regenerates for Saturday Dec 26.
    world.at(datetime(2026, 12, 5, 12, 0, tzinfo=UTC))
    world.server.store.complete_like_outlook(ann.href, date(2026, 12, 5), world.tz)
    assert world.item(ann).due == date(2026, 12, 26)
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 28)  # the Monday after


@pytest.mark.parametrize(
    ("zone", "local_done", "server_due", "kit_due"),
    [
        # 08:30 on Dec 10 in Auckland is still Dec 9 in UTC: the server counts from
        # the 9th; kit-sync corrects to the user's day.
        ("Pacific/Auckland", datetime(2026, 12, 10, 8, 30), date(2026, 12, 30), date(2026, 12, 31)),
        # 20:00 on Dec 9 in Los Angeles is already Dec 10 in UTC.
        (
            "America/Los_Angeles",
            datetime(2026, 12, 9, 20, 0),
            date(2026, 12, 31),
            date(2026, 12, 30),
        ),
    ],
)
def test_completion_through_ews_near_midnight_gets_the_due_date_corrected(
    tmp_path: Path,
    ews: EwsServer,
    zone: str,
    local_done: datetime,
    server_due: date,
    kit_due: date,
) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config(zone))
    world.sync()
    ann = world.the_open(ANN)
    world.at(local_done.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC))
    # Another EWS client (exchangelib, unmodified) completes the task, as Outlook
    # on the web or a script would: the server regenerates it.
    from exchangelib import Task

    account = second_client(world.server, world.email)
    item = account.tasks.get(id=ann.href)
    item.status = Task.COMPLETED
    item.save(update_fields=["status", "percent_complete"])
    assert world.item(ann).due == server_due
    world.sync()
    master = world.the_open(ANN)
    assert master.href == ann.href
    assert master.due == kit_due
    assert (ANN, local_done.date()) in world.touches()
    assert len([x for x in world.tasks() if x.status is Status.COMPLETED]) == 1


def test_completion_on_a_phone_then_outlook_the_same_evening(
    tmp_path: Path, ews: EwsServer
) -> None:
    """A second completion the same local day must not read as a snooze."""
    world = ExchangeWorld(tmp_path, ews, base_config("Pacific/Auckland"))
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 12, 10, 8, 30, tzinfo=world.tz).astimezone(UTC))
    world.server.store.complete_on_server(ann.href)  # ActiveSync phone: server counts in UTC
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 31)
    world.at(datetime(2026, 12, 10, 9, 0, tzinfo=world.tz).astimezone(UTC))
    world.server.store.complete_on_server(ann.href)  # ticked again by mistake
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 31)
    assert len([x for x in world.tasks() if x.status is Status.COMPLETED]) == 2


def test_touch_on_an_earlier_day_completes_through_ews_and_counts_from_that_day(
    world: ExchangeWorld,
) -> None:
    world.sync()
    ann_contact = next(c for c in world.engine().roster.contacts if c.id == ANN)
    world.at(datetime(2026, 12, 9, 10, 0, tzinfo=UTC))
    result = world.run(lambda e: e.touch(ann_contact, date(2026, 12, 4), "coffee"))
    assert result.ok
    master = world.the_open(ANN)
    assert master.due == date(2026, 12, 4) + timedelta(weeks=3)
    done = [x for x in world.tasks() if x.status is Status.COMPLETED]
    assert len(done) == 1
    # The server stamped today's date; kit-sync's own stamp says the 4th.
    assert (
        world.server.store.item(done[0].href).text(
            "CompleteDate",
        )
        == "2026-12-09T10:00:00Z"
    )
    assert done[0].completed is not None
    assert (ANN, date(2026, 12, 4)) in world.touches()
    assert world.sync().plan.actions == []


def test_many_completions_keep_exactly_one_open_task(world: ExchangeWorld) -> None:
    world.sync()
    day = date(2026, 11, 25)
    for n in range(4):
        ann = world.the_open(ANN)
        world.at(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=11))
        if n % 2:
            world.server.store.complete_like_outlook(ann.href, day, world.tz)
        else:
            world.server.store.complete_on_server(ann.href)
        world.sync()
        opens = assert_one_open_each(world, ANN, BOB)
        assert opens[ANN].due == day + timedelta(weeks=3)
        day += timedelta(days=9)
    done = [x for x in world.tasks() if x.status is Status.COMPLETED]
    assert len(done) == 4
    assert len({x.uid for x in done}) == 4


# --- roster edits and removal ---------------------------------------------------------


def test_roster_edits_update_the_task_in_place(world: ExchangeWorld) -> None:
    world.sync()
    before = world.the_open(ANN)
    data = copy.deepcopy(world.config_data)
    data["contacts"][0] = {
        "name": "Ann Lee-Park",
        "email": "ann@example.com",
        "tier": "core",
        "notes": "Met at PyCon",
    }
    world.write_config(data)
    world.sync()
    after = world.the_open(ANN)
    assert after.href == before.href
    item = world.item(after)
    assert item.text("Subject") == "Keep in touch with Ann Lee-Park"
    assert "Met at PyCon" in (item.props["Body"].text or "")
    assert [c.text for c in item.props["Categories"]] == ["Keep in touch", "core"]
    assert item.regeneration() == ("MonthlyRegeneration", 2)
    assert item.text("Importance") == "Normal"
    assert after.meta.every == "P2M"


def test_removed_contact_is_deferred_without_recurrence(world: ExchangeWorld) -> None:
    world.edit_config(task={"alarm": "09:00"})
    world.sync()
    ann = world.the_open(ANN)
    data = copy.deepcopy(world.config_data)
    data["contacts"] = data["contacts"][1:]
    world.write_config(data)
    result = world.sync()
    assert result.counts["cancelled"] == 1
    item = world.item(ann)
    assert item.status == "Deferred"
    assert "Recurrence" not in item.props  # never a zombie that regenerates forever
    assert item.text("ReminderIsSet") in ("0", "false")
    assert [x.status for x in world.tasks() if x.contact_id == ANN] == [Status.CANCELLED]
    assert world.sync().plan.actions == []
    # Completing it in Outlook now creates nothing new.
    world.server.store.complete_like_outlook(ann.href, date(2026, 11, 30), world.tz)
    assert len([i for i in world.folder_items() if i.ext_value("X-KIT-SYNC-CONTACT") == ANN]) == 1


def test_removed_contact_deleted_when_configured(tmp_path: Path, ews: EwsServer) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config(backend_extra={"on_remove": "delete"}))
    world.sync()
    ann = world.the_open(ANN)
    data = copy.deepcopy(world.config_data)
    data["contacts"] = data["contacts"][1:]
    world.write_config(data)
    world.sync()
    assert ann.href not in {i.id for i in world.folder_items()}
    # Moved to Deleted Items, recoverable, as Outlook's delete does.
    trash = world.folder_items("deleteditems")
    assert [i.ext_value("X-KIT-SYNC-CONTACT") for i in trash] == [ANN]
    assert_one_open_each(world, BOB)


# --- ownership -----------------------------------------------------------------------------


def test_foreign_tasks_are_untouched(world: ExchangeWorld) -> None:
    from exchangelib import Task

    account = second_client(world.server, world.email)
    mine = Task(
        folder=account.tasks, subject="Keep in touch with Ann Lee", due_date=date(2026, 12, 1)
    )
    mine.save()
    done = Task(folder=account.tasks, subject="Call Bob", categories=["Keep in touch"])
    done.save()
    done.status = Task.COMPLETED
    done.save(update_fields=["status", "percent_complete"])
    store = world.server.store
    before = {i.id: store.serialise(i) for i in world.folder_items()}
    world.sync()
    ann = world.the_open(ANN)
    world.server.store.complete_like_outlook(ann.href, date(2026, 11, 28), world.tz)
    data = copy.deepcopy(world.config_data)
    data["contacts"] = data["contacts"][1:]
    world.write_config(data)
    world.sync()
    world.sync()
    after = {i.id: store.serialise(i) for i in world.folder_items() if i.id in before}
    assert after == before
    assert all(t.href not in before for t in world.tasks())


def _marked_task(world: ExchangeWorld, subject: str, **props: Any) -> Any:
    """A task another EWS client saves with kit-sync's named properties set (a script
    or an app that copied them); `props` are kit_contact, kit_uid, kit_meta, ..."""
    from exchangelib import Task

    from kit_sync.backends.exchange.items import _register_properties

    _register_properties()  # the named properties as attributes of exchangelib's Task
    account = second_client(world.server, world.email)
    item = Task(folder=account.tasks, subject=subject, due_date=date(2026, 12, 1), **props)
    item.save()
    return item


@pytest.mark.parametrize(
    "own_uid",
    [None, "made-by-a-script-1@example.org", make_uid(BOB, "a task of Bob's")],
    ids=["no-uid", "its-own-uid", "another-contacts-kit-uid"],
)
def test_a_task_with_a_copied_marker_under_its_own_uid_is_foreign_and_reported_once(
    world: ExchangeWorld, caplog: pytest.LogCaptureFixture, own_uid: str | None
) -> None:
    """Issue 11, defect 3: a marker alone does not make a task kit-sync's; the kit
    UID of that same contact is needed too."""
    foreign = _marked_task(
        world, "Keep in touch with Ann Lee (copy)", kit_contact=ANN, kit_uid=own_uid
    )
    store = world.server.store
    before = store.serialise(store.item(foreign.id))
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        first = world.sync()
        assert first.ok and first.counts["created"] == 2  # Ann gets a task of her own
        opens = assert_one_open_each(world, ANN, BOB)
        assert opens[ANN].href != foreign.id
        assert world.sync().plan.actions == []
        assert store.serialise(store.item(foreign.id)) == before
        # Completing it is not a touch of Ann's.
        world.at(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
        store.complete_like_outlook(foreign.id, date(2026, 11, 28), world.tz)
        before = store.serialise(store.item(foreign.id))
        assert world.sync().plan.actions == []
        assert (ANN, date(2026, 11, 28)) not in world.touches()
        # Ann's task follows the roster; then she is removed: only hers is cancelled.
        data = copy.deepcopy(world.config_data)
        data["contacts"][0]["notes"] = "Met at PyCon"
        world.write_config(data)
        assert world.sync().counts["updated"] == 1
        data["contacts"] = data["contacts"][1:]
        world.write_config(data)
        removed = world.sync()
        assert removed.counts["cancelled"] == 1
        assert world.sync().plan.actions == []
    assert store.serialise(store.item(foreign.id)) == before  # never written to
    assert all(task.href != foreign.id for task in world.tasks())
    assert [task.status for task in world.tasks() if task.contact_id == ANN] == [Status.CANCELLED]
    warned = [r for r in caplog.records if "not a kit-sync UID" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert "'Keep in touch with Ann Lee (copy)'" in warned[0].getMessage()
    assert ANN in warned[0].getMessage()


def test_a_marker_only_task_a_former_version_listed_is_dropped_from_the_cache(
    world: ExchangeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """kit-sync before this rule went by the marker alone and kept such a task in its
    listing cache; SyncFolderItems never reports it again unless it changes."""
    from kit_sync.backends.exchange import _warned_foreign
    from kit_sync.backends.exchange.cache import _Cache
    from kit_sync.backends.exchange.items import _Entry
    from kit_sync.model import KitMeta

    world.sync()
    foreign = _marked_task(world, "Lunch with Ann (from my old list)", kit_contact=ANN)
    world.sync()
    store = world.server.store
    before = store.serialise(store.item(foreign.id))
    scope = f"exchange:{world.email.lower()}:"
    state = State(world.dir / "state.sqlite")
    cache = _Cache.load(state.listing_cache(), scope)
    cache.items[foreign.id] = _Entry(foreign.id, store.item(foreign.id).changekey, ANN, None,
                                     Status.OPEN, date(2026, 12, 1), None,
                                     "Lunch with Ann (from my old list)", False, None,
                                     KitMeta(ANN))  # fmt: skip
    cache.save(state.listing_cache(), scope)
    state.close()
    _warned_foreign.discard(foreign.id)  # as in a new process
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        assert world.sync().plan.actions == []
        assert world.sync().plan.actions == []
    assert store.serialise(store.item(foreign.id)) == before
    assert all(task.href != foreign.id for task in world.tasks())
    warned = [r.getMessage() for r in caplog.records if "not a kit-sync UID" in r.getMessage()]
    assert len(warned) == 1 and "Lunch with Ann" in warned[0]


def test_a_copy_made_in_outlook_is_still_a_second_kit_task(world: ExchangeWorld) -> None:
    """Outlook copies named properties with a task: a copy of a kit task carries the
    marker and the same kit UID, so it is kit-sync's, and the second open task of a
    contact is cancelled (the duplicate rule), not left as a foreign one."""
    world.sync()
    ann = world.the_open(ANN)
    source = world.item(ann)
    copied = _marked_task(
        world,
        source.text("Subject") or "",
        kit_contact=ANN,
        kit_uid=ann.uid,
        kit_meta=source.ext_value("X-KIT-SYNC-META"),
    )
    result = world.sync()
    assert [a.reason for a in result.plan.actions] == ["a second open task for the same contact"]
    kept = assert_one_open_each(world, ANN, BOB)[ANN].href
    assert kept in (ann.href, copied.id)
    other = copied.id if kept == ann.href else ann.href
    assert world.server.store.item(other).status == "Deferred"
    assert {task.href for task in world.tasks()} >= {ann.href, copied.id}  # both kit-sync's


# --- concurrency, throttling, failures ----------------------------------------------------


def test_an_edit_between_read_and_write_is_a_conflict_then_replanned(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    data = copy.deepcopy(world.config_data)
    data["contacts"][0]["name"] = "Ann Lee-Park"
    world.write_config(data)

    def phone_edits_first(op: str) -> None:
        if op == "UpdateItem":
            world.server.before = None
            world.server.store.edit(ann.href, Sensitivity="Private")

    world.server.before = phone_edits_first
    world.server.reset_log()
    result = world.sync()
    assert result.ok
    # The first UpdateItem met a new change key (ErrorIrresolvableConflict), the
    # engine re-read the folder and re-planned: both edits are there.
    assert world.server.requests.count("UpdateItem") == 2
    item = world.item(ann)
    assert item.text("Sensitivity") == "Private"
    assert item.text("Subject") == "Keep in touch with Ann Lee-Park"


def test_a_busy_server_is_waited_for_within_max_retry_wait(world: ExchangeWorld) -> None:
    world.sync()
    world.server.busy(times=2, back_off_ms=200)
    world.server.reset_log()
    result = world.sync()
    assert result.ok
    assert world.server.requests[:3] == [
        "SyncFolderItems (busy)",
        "SyncFolderItems (busy)",
        "SyncFolderItems",
    ]


def test_a_long_back_off_raises_throttled_instead_of_hanging(
    tmp_path: Path, ews: EwsServer
) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config(backend_extra={"max_retry_wait": 1}))
    world.sync()
    world.server.busy(times=1, back_off_ms=120_000)
    with pytest.raises(Throttled) as caught:
        world.sync()
    assert caught.value.retry_after == 120
    assert caught.value.exit_code == 3
    assert world.sync().ok  # the next cycle goes through


def test_wrong_password_is_auth_failed(tmp_path: Path, ews: EwsServer) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config(backend_extra={"password": "wrong"}))
    with pytest.raises(AuthFailed) as caught:
        world.sync()
    assert caught.value.exit_code == 3
    assert "wrong" not in str(caught.value)


def test_unreachable_server_is_backend_unavailable(tmp_path: Path, ews: EwsServer) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = ExchangeWorld(
        tmp_path,
        ews,
        base_config(
            backend_extra={"service_endpoint": f"http://127.0.0.1:{port}/EWS/Exchange.asmx"}
        ),
    )
    with pytest.raises(BackendUnavailable) as caught:
        world.sync()
    assert not isinstance(caught.value, AuthFailed)
    assert caught.value.exit_code == 3


# --- folders and access --------------------------------------------------------------------


def test_a_named_folder_is_created_once(tmp_path: Path, ews: EwsServer) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config(backend_extra={"folder": "Keep in touch"}))
    world.sync()
    store = world.server.store
    tasks_folder = store.distinguished(world.email, "tasks")
    subs = store.children(tasks_folder, False)
    assert [(f.name, f.folder_class) for f in subs] == [("Keep in touch", "IPF.Task")]
    assert len(store.items_in(subs[0])) == 2
    assert store.items_in(tasks_folder) == []
    (world.dir / "state.sqlite").unlink()  # found again by name, not created twice
    assert world.sync().plan.actions == []
    assert len(store.children(tasks_folder, False)) == 1


def test_a_missing_folder_without_create_is_a_clear_error(tmp_path: Path, ews: EwsServer) -> None:
    world = ExchangeWorld(
        tmp_path, ews, base_config(backend_extra={"folder": "Network", "create_folder": False})
    )
    with pytest.raises(BackendUnavailable, match="'Network' does not exist"):
        world.sync()


def test_impersonation_by_a_service_account(tmp_path: Path, ews: EwsServer) -> None:
    ews.add_user("svc-kit@example.com", "svc-pw")
    ews.grant_impersonation("svc-kit@example.com")
    world = ExchangeWorld(
        tmp_path,
        ews,
        base_config(
            backend_extra={
                "username": "svc-kit@example.com",
                "password": "svc-pw",
                "access": "impersonation",
            }
        ),
    )
    world.sync()
    assert len(world.folder_items()) == 2  # in the impersonated user's mailbox
    assert (
        world.server.store.items_in(ews.store.distinguished("svc-kit@example.com", "tasks")) == []
    )


def test_delegate_access_without_rights_is_refused(tmp_path: Path, ews: EwsServer) -> None:
    ews.add_user("intern@example.com", "intern-pw")
    world = ExchangeWorld(
        tmp_path,
        ews,
        base_config(backend_extra={"username": "intern@example.com", "password": "intern-pw"}),
    )
    with pytest.raises(AuthFailed, match="access denied"):
        world.sync()


def test_server_version_is_learned_once(tmp_path: Path, ews: EwsServer) -> None:
    world = ExchangeWorld(tmp_path, ews, base_config())
    data = copy.deepcopy(world.config_data)
    del data["backend"]["version"]
    world.write_config(data)
    world.server.reset_log()
    world.sync()
    assert world.server.requests[0] == "ConvertId"  # exchangelib's version guess
    world.server.reset_log()
    world.sync()
    assert len(world.server.requests) <= 1  # one SyncFolderItems


# --- the user's own edits in Outlook ---------------------------------------------------------


def test_a_due_date_moved_in_outlook_is_a_snooze_until_the_next_completion(
    world: ExchangeWorld,
) -> None:
    world.sync()
    ann = world.the_open(ANN)
    assert ann.due is not None
    snoozed = ann.due + timedelta(days=10)
    world.server.store.edit(ann.href, DueDate=snoozed.isoformat())
    assert world.sync().plan.actions == []
    assert world.the_open(ANN).due == snoozed
    world.at(datetime(2026, 12, 20, 9, 0, tzinfo=UTC))
    world.server.store.complete_like_outlook(ann.href, date(2026, 12, 20), world.tz)
    world.sync()
    assert world.the_open(ANN).due == date(2026, 12, 20) + timedelta(weeks=3)


def test_a_task_deleted_in_outlook_is_recreated(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.server.store.delete_item(world.item(ann), "MoveToDeletedItems")
    result = world.sync()
    assert result.counts["created"] == 1
    again = assert_one_open_each(world, ANN, BOB)[ANN]
    assert again.href != ann.href
    assert world.item(again).regeneration() == ("WeeklyRegeneration", 3)


def test_recurrence_removed_by_hand_then_completed_gets_a_new_regenerating_task(
    world: ExchangeWorld,
) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.server.store.edit(ann.href, Recurrence=None)  # "Remove Recurrence" in Outlook
    world.at(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    world.server.store.complete_like_outlook(ann.href, date(2026, 11, 28), world.tz)
    result = world.sync()
    # (Reported as "created": the completed one-off gets a uid of its own, so the
    # plan sees the open uid gone. The new task still counts from the completion.)
    assert result.counts["created"] + result.counts["regenerated"] == 1
    nxt = assert_one_open_each(world, ANN, BOB)[ANN]
    assert nxt.due == date(2026, 11, 28) + timedelta(weeks=3)
    assert nxt.meta.from_uid == next(x.uid for x in world.tasks() if x.href == ann.href)
    assert world.item(nxt).regeneration() == ("WeeklyRegeneration", 3)
    assert world.item(ann).status == "Completed"  # kept as history


def test_a_completion_undone_in_outlook_leaves_one_open_task(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    copy_ = world.server.store.complete_like_outlook(ann.href, date(2026, 11, 28), world.tz)
    world.sync()
    assert (ANN, date(2026, 11, 28)) in world.touches()
    # The user marks the completed copy as not complete again.
    world.server.store.edit(copy_.id, Status="NotStarted", CompleteDate=None, PercentComplete="0")
    world.sync()
    world.sync()
    assert_one_open_each(world, ANN, BOB)
    assert (ANN, date(2026, 11, 28)) not in world.touches()


def test_unreadable_bookkeeping_is_adopted_not_duplicated(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    item = world.item(ann)
    for key, prop in item.ext.items():
        if key[1] == "X-KIT-SYNC-META":
            prop.find(t("Value")).text = "{not json"
    world.server.store.touch(item)
    world.sync()
    again = assert_one_open_each(world, ANN, BOB)[ANN]
    assert again.href == ann.href
    assert again.meta.anchor is not None  # bookkeeping restored
    assert world.sync().plan.actions == []


def test_paused_then_resumed_contact_gets_a_fresh_task(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    data = copy.deepcopy(world.config_data)
    data["contacts"][0]["paused"] = True
    world.write_config(data)
    world.sync()
    assert world.item(ann).status == "Deferred"
    data["contacts"][0]["paused"] = False
    world.write_config(data)
    world.sync()
    fresh = assert_one_open_each(world, ANN, BOB)[ANN]
    assert fresh.href != ann.href
    assert world.item(ann).status == "Deferred"


def test_changes_are_read_page_by_page(
    tmp_path: Path, ews: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kit_sync.backends.exchange as exchange

    monkeypatch.setattr(exchange, "SYNC_PAGE", 3)
    data = base_config()
    data["contacts"] = [
        {"name": f"Person {i}", "email": f"p{i}@example.com", "tier": "inner"} for i in range(8)
    ]
    world = ExchangeWorld(tmp_path, ews, data)
    from exchangelib import Task

    account = second_client(world.server, world.email)
    for n in range(4):
        Task(folder=account.tasks, subject=f"Buy milk {n}").save()
    assert world.sync().counts["created"] == 8
    (world.dir / "state.sqlite").unlink()
    world.server.reset_log()
    assert world.sync().plan.actions == []
    # 12 items, 3 changes per SyncFolderItems page, then one GetItem for the 8 of ours.
    assert len(world.server.requests) <= 5  # 4 pages of SyncFolderItems + one GetItem


def test_an_unreadable_cache_means_reading_the_folder_again(world: ExchangeWorld) -> None:
    world.sync()
    state = State(world.dir / "state.sqlite")
    state.db.execute("UPDATE listing_items SET info = '{broken' WHERE scope LIKE 'exchange:%'")
    state.close()
    assert world.sync().plan.actions == []
    assert_one_open_each(world, ANN, BOB)


def test_an_unreadable_task_blocks_only_its_contact(world: ExchangeWorld) -> None:
    world.sync()
    ann = world.the_open(ANN)
    world.server.store.corrupt.add(ann.href)
    world.server.store.edit(ann.href, Subject="Keep in touch with Ann!")
    data = copy.deepcopy(world.config_data)
    data["contacts"][0]["notes"] = "new notes"
    data["contacts"][1]["notes"] = "new notes"
    world.write_config(data)
    result = world.sync()
    assert [p.split(":")[0] for p in result.problems] == [ann.href]
    assert any(s.startswith(ANN) for s in result.plan.skipped)
    assert result.counts["updated"] == 1  # Bob only; nothing created for Ann
    assert len(world.folder_items()) == 2
    world.server.store.corrupt.clear()
    world.server.store.edit(ann.href, Subject="Keep in touch with Ann Lee")
    result = world.sync()
    assert result.problems == []
    assert result.counts["updated"] == 1  # Ann's notes, now that it reads again


# --- the fake server itself, seen through exchangelib's high-level API ---------------------


def test_fake_server_regenerates_as_the_ews_reference_says(ews: EwsServer) -> None:
    """The sequence of exchangelib's own test_recurring_item (regenerating part)."""
    from exchangelib import Task
    from exchangelib.recurrence import DailyRegeneration, TaskRecurrence

    email = new_mailbox(ews)
    ews.store.clock = lambda: datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    account = second_client(ews, email)
    master = Task(
        folder=account.tasks,
        subject="regen",
        recurrence=TaskRecurrence(
            pattern=DailyRegeneration(interval=1), start=date(2016, 1, 1), number=2
        ),
    ).save()
    master_id = master.id
    master.refresh()
    assert (master.is_recurring, master.change_count) == (True, 1)
    master.status = Task.COMPLETED
    occurrence = master.save()  # the response carries the new one-off copy's id
    assert occurrence.id != master_id
    occurrence.refresh()
    assert (occurrence.is_recurring, occurrence.status) == (False, Task.COMPLETED)
    again = account.tasks.get(id=master_id)
    assert again.change_count == 2
    assert again.due_date == date(2026, 3, 11)  # from the server's (UTC) today
    assert again.recurrence.boundary.number == 1
    # The last occurrence completes in place: same id back, no new copy.
    again.status = Task.COMPLETED
    assert again.save().id == master_id
    assert len(list(account.tasks.all())) == 2
    from exchangelib.errors import ErrorIrresolvableConflict

    with pytest.raises(ErrorIrresolvableConflict):
        stale = Task(account=account, id=master_id, changekey=occurrence.changekey, subject="x")
        stale.save(update_fields=["subject"], conflict_resolution="NeverOverwrite")


# --- provisioning in batches ------------------------------------------------------------


def many(n: int) -> dict[str, Any]:
    return base_config(
        contacts=[
            {"name": f"Person {i:03d}", "email": f"p{i}@example.com", "tier": "core"}
            for i in range(n)
        ]
    )


def person(i: int) -> str:
    return f"p{i}-example-com"


def test_provisioning_sends_a_hundred_creates_per_request(tmp_path: Path, ews: EwsServer) -> None:
    n = 230
    world = ExchangeWorld(tmp_path, ews, many(n))
    ews.reset_log()
    assert world.sync().counts["created"] == n
    # One listing, then CreateItem in batches of 100: at most ceil(n / 100) + 2.
    assert len(ews.requests) <= -(-n // 100) + 2, ews.requests
    assert ews.requests.count("CreateItem") == 3
    assert_one_open_each(world, *(person(i) for i in range(n)))
    ews.reset_log()
    assert sum(world.sync().counts.values()) == 0  # read back by change key: nothing to do
    assert sum(world.sync().counts.values()) == 0


def test_a_refused_item_fails_alone_and_the_batch_goes_through(
    tmp_path: Path, ews: EwsServer
) -> None:
    world = ExchangeWorld(tmp_path, ews, many(12))
    refused = {"Keep in touch with Person 003", "Keep in touch with Person 007"}
    for subject in refused:
        ews.store.create_refusals[subject] = ("ErrorQuotaExceeded", "The quota was exceeded.")
    try:
        result = world.sync()
    finally:
        ews.store.create_refusals.clear()
    assert result.counts["created"] == 10 and result.counts["failed"] == 2
    assert len(result.failures) == 2
    assert all("ErrorQuotaExceeded" in f for f in result.failures)
    assert {f.split(":")[0] for f in result.failures} == {
        next(a.describe() for a in result.plan.actions if a.contact_id == person(i)).split(":")[0]
        for i in (3, 7)
    }
    # The refusals were answered within the one request; no item was sent twice.
    assert len(world.folder_items()) == 10
    again = world.sync()  # the next cycle creates just those two
    assert again.counts["created"] == 2 and again.counts["failed"] == 0
    assert again.counts["cancelled"] == 0
    assert len(world.folder_items()) == 12
    assert_one_open_each(world, *(person(i) for i in range(12)))


def test_items_a_stopped_batch_did_not_process_are_sent_one_by_one(
    tmp_path: Path, ews: EwsServer
) -> None:
    world = ExchangeWorld(tmp_path, ews, many(12))
    ews.store.create_refusals["Keep in touch with Person 004"] = (
        "ErrorQuotaExceeded",
        "The quota was exceeded.",
    )
    ews.store.stop_batch_on_error = True
    ews.reset_log()
    try:
        result = world.sync()
    finally:
        ews.store.create_refusals.clear()
        ews.store.stop_batch_on_error = False
    # The items after the refused one came back ErrorBatchProcessingStopped: each was
    # sent again alone; none twice.
    order = [a.contact_id for a in result.plan.actions]
    after = len(order) - order.index(person(4)) - 1
    assert after > 0
    assert result.counts["created"] == 11 and result.counts["failed"] == 1
    assert ews.requests.count("CreateItem") == 1 + after
    assert len(world.folder_items()) == 11
    again = world.sync()
    assert again.counts["created"] == 1 and again.counts["cancelled"] == 0
    assert len(world.folder_items()) == 12
    assert_one_open_each(world, *(person(i) for i in range(12)))


def test_untouch_on_exchange_removes_the_servers_copy_and_restores_the_due_date(
    world: ExchangeWorld,
) -> None:
    """Outlook regenerates the task itself: untouch deletes the completed copy the
    server made for that touch (else it would count again) and puts the due date back."""
    world.sync()
    before = world.the_open(ANN)
    ann_contact = next(c for c in world.engine().roster.contacts if c.id == ANN)
    world.at(datetime(2026, 12, 9, 10, 0, tzinfo=UTC))
    assert world.run(lambda e: e.touch(ann_contact, date(2026, 12, 4), "coffee")).ok
    assert world.the_open(ANN).due == date(2026, 12, 4) + timedelta(weeks=3)
    removed, result = world.run(lambda e: e.untouch(ann_contact))
    assert result.ok and removed.day == date(2026, 12, 4) and removed.note == "coffee"
    assert world.the_open(ANN).due == before.due
    assert [x for x in world.tasks() if x.status is Status.COMPLETED] == []
    assert (ANN, date(2026, 12, 4)) not in world.touches()
    # Nothing counts the touch again, and the restored date holds.
    assert world.sync().plan.actions == []
    assert world.the_open(ANN).due == before.due
