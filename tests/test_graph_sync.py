"""kit-sync cycles on the Graph backend against the fake Graph: provisioning with
$batch, idle cycles, completions from the To Do apps (early, late, near midnight in
non-UTC zones), throttling, stale delta links, conflicts, deletions and lost state."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from graph_server import FakeMicrosoft
from graph_server.fixtures import fresh, mailbox, ms  # noqa: F401
from graph_server.world import GraphWorld, roster

from kit_sync.backends.base import Throttled
from kit_sync.backends.graph import GraphBackend
from kit_sync.backends.graph_auth import AppTokens
from kit_sync.config import GraphConfig
from kit_sync.model import Status, make_uid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_tokens(ms: FakeMicrosoft) -> AppTokens:  # noqa: F811
    return AppTokens(GraphConfig.model_validate(ms.backend_config("secret")))


@pytest.fixture
def world(
    tmp_path: Path,
    fresh: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
    app_tokens: AppTokens,
) -> Iterator[GraphWorld]:
    yield GraphWorld(tmp_path, fresh, mailbox, app_tokens)


def graph_requests(fake: FakeMicrosoft) -> list[str]:
    """Top-level requests to Graph (a $batch counts once) as 'METHOD tail'."""
    return [
        f"{r['method']} {r['path'].rsplit('/', 1)[-1]}" for r in fake.graph.requests(batch=False)
    ]


# --- provisioning and idle cycles ------------------------------------------------------


def test_first_sync_creates_one_task_per_contact_with_batches(world: GraphWorld) -> None:
    world.config["contacts"] = roster(45)
    world.write()
    result = world.sync()
    assert result.ok and result.counts["created"] == 45
    batches = world.ms.graph.requests("POST", "$batch", batch=False)
    assert len(batches) == 3  # 20 + 20 + 5
    assert not world.ms.graph.requests("POST", "/tasks", batch=False)  # no single POSTs
    opens = world.open_tasks()
    assert len(opens) == 45 and len({t.contact_id for t in opens}) == 45
    task = world.server_tasks("person-0000")[0]
    assert task.props["title"] == "Keep in touch with Person 0000"
    assert task.props["importance"] == "high"
    assert task.props["categories"] == ["Keep in touch", "inner"]
    assert "How: lunch" in task.props["body"]["content"]
    assert "Email: p0@example.com" in task.props["body"]["content"]
    link = task.links[0]
    assert link["applicationName"] == "kit-sync" and link["externalId"] == "person-0000"


def test_idle_cycle_is_one_request(world: GraphWorld) -> None:
    world.sync()  # provisions
    world.sync()  # reads back its own creations through the delta query
    world.ms.graph.clear_log()
    auth_before = len(world.ms.entra.log)
    result = world.sync()
    assert result.ok and sum(result.counts.values()) == 0
    assert len(graph_requests(world.ms)) <= 1  # one delta request
    assert len(world.ms.entra.log) == auth_before  # the token came from MSAL's cache


def test_idle_cycle_after_a_phone_edit_reads_only_the_change(world: GraphWorld) -> None:
    world.sync()
    world.sync()
    opened = world.the_open("person-0001")
    world.ms.graph.app_edit(world.mailbox, opened.href, {"title": "Call Person 0001!"})
    world.ms.graph.clear_log()
    world.sync()
    delta = world.ms.graph.requests("GET", "delta")
    assert len(delta) == 1
    assert world.the_open("person-0001").summary == "Call Person 0001!"


def test_reminder_on_the_due_day(world: GraphWorld) -> None:
    world.config["task"] = {"alarm": "09:30"}
    world.write()
    world.sync()
    task = world.server_tasks("person-0000")[0]
    assert task.props["isReminderOn"] is True
    berlin = ZoneInfo("Europe/Berlin")
    due = task.props["dueDateTime"].astimezone(berlin)
    remind = task.props["reminderDateTime"].astimezone(berlin)
    assert (due.time(), remind.time()) == (time(0), time(9, 30))
    assert remind.date() == due.date()


# --- completions -----------------------------------------------------------------------


@pytest.mark.parametrize("completion", ["date", "exact"])
@pytest.mark.parametrize(
    ("zone", "done_local", "touch_day"),
    [
        # early: well before the due date
        ("Europe/Berlin", datetime(2026, 11, 25, 10, 0), date(2026, 11, 25)),
        # late: weeks after the due date
        ("Europe/Berlin", datetime(2027, 1, 20, 16, 45), date(2027, 1, 20)),
        # 23:50 in Los Angeles is already the next day in UTC
        ("America/Los_Angeles", datetime(2026, 11, 30, 23, 50), date(2026, 11, 30)),
        # 00:10 in Auckland is still the previous day in UTC
        ("Pacific/Auckland", datetime(2026, 12, 1, 0, 10), date(2026, 12, 1)),
        # near midnight on the night the clocks change (Berlin, end of DST)
        ("Europe/Berlin", datetime(2027, 10, 30, 23, 59), date(2027, 10, 30)),
    ],
)
def test_completion_in_the_app_regenerates_from_the_local_day(
    world: GraphWorld, completion: str, zone: str, done_local: datetime, touch_day: date
) -> None:
    world.ms.graph.completion = completion
    world.config["timezone"] = zone
    world.write()
    world.sync()
    done = done_local.replace(tzinfo=ZoneInfo(zone))
    world.complete_on_phone("person-0000", done)
    world.now = done.astimezone(UTC) + timedelta(minutes=20)
    result = world.sync()
    assert result.ok and result.counts["regenerated"] == 1
    new = world.the_open("person-0000")
    assert new.due == touch_day + timedelta(weeks=3)
    assert new.meta.anchor == touch_day
    done_tasks = [t for t in world.tasks() if t.status is Status.COMPLETED]
    assert [t.contact_id for t in done_tasks] == ["person-0000"]  # kept as history
    assert new.meta.from_uid == done_tasks[0].uid
    # The day is stable: more cycles change nothing.
    assert sum(world.sync().counts.values()) == 0


def test_touch_command_completes_and_regenerates(world: GraphWorld) -> None:
    world.config["timezone"] = "America/Denver"
    world.write()
    world.sync()
    world.now = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # 23:30 on Dec 1 in Denver
    world.touch("person-0002", date(2026, 12, 1))
    assert world.the_open("person-0002").due == date(2026, 12, 22)
    done = [t for t in world.tasks() if t.status is Status.COMPLETED]
    assert [t.contact_id for t in done] == ["person-0002"]


def test_recurring_task_completed_in_the_app_becomes_plain_history(world: GraphWorld) -> None:
    world.sync()
    task = world.the_open("person-0000")
    world.ms.graph.app_edit(
        world.mailbox,
        task.href,
        {
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "noEnd", "startDate": "2026-11-23"},
            }
        },
    )
    world.complete_on_phone(
        "person-0000", datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    )
    world.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert world.sync().ok
    server = {t.id: t for t in world.server_tasks("person-0000")}
    assert "recurrence" not in server[task.href].props or not server[task.href].props["recurrence"]
    assert world.the_open("person-0000").due == date(2026, 12, 15)


# --- throttling ------------------------------------------------------------------------


def test_429_on_the_listing_is_waited_out(world: GraphWorld) -> None:
    world.sync()
    world.ms.graph.throttle(2, retry_after=1, match=lambda m, p: p.endswith("/delta"))
    result = world.sync()
    assert result.ok
    assert world.waits == [1.0, 1.0]
    statuses = [r["status"] for r in world.ms.graph.requests("GET", "delta")]
    assert statuses[-3:] == [429, 429, 200]


def test_throttled_batch_items_are_sent_again_and_created_once(world: GraphWorld) -> None:
    world.config["contacts"] = roster(30)
    world.write()
    world.ms.graph.throttle_batch_items(7, retry_after=1)
    world.ms.graph.throttle(1, retry_after=1, status=503, match=lambda m, p: p == "/$batch")
    result = world.sync()
    assert result.ok and result.counts["created"] == 30
    assert len(world.server_tasks()) == 30
    assert len({t.contact_id for t in world.open_tasks()}) == 30
    assert world.waits and all(w == 1.0 for w in world.waits)


def test_throttling_longer_than_the_budget_stops_the_cycle_and_loses_nothing(
    world: GraphWorld,
) -> None:
    world.config["backend"]["max_retry_wait"] = 5
    world.write()
    world.sync()
    world.complete_on_phone(
        "person-0001", datetime(2026, 11, 22, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    )
    world.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    world.ms.graph.throttle(1, retry_after=120)
    with pytest.raises(Throttled) as caught:
        world.sync()
    assert caught.value.retry_after == 120
    assert world.waits == []  # never slept past the budget
    result = world.sync()  # the next cycle (the daemon waits Retry-After first)
    assert result.counts["regenerated"] == 1
    assert world.the_open("person-0001").due == date(2026, 12, 13)


def test_cli_exits_3_when_throttled(world: GraphWorld) -> None:
    world.config["backend"]["max_retry_wait"] = 0
    world.write()
    world.ms.graph.throttle(1, retry_after=30)
    done = world.cli("sync")
    assert done.returncode == 3, done.stderr
    assert "throttling" in done.stderr


# --- stale delta links -----------------------------------------------------------------


def test_expired_delta_link_resets_to_one_full_listing(world: GraphWorld) -> None:
    world.sync()
    world.sync()
    world.complete_on_phone(
        "person-0002", datetime(2026, 11, 21, 19, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    )
    # (within a day of the first listing: no daily full listing gets in the way)
    world.now = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    world.ms.graph.expire_delta_tokens()
    world.ms.graph.clear_log()
    result = world.sync()
    assert result.ok and result.counts["regenerated"] == 1
    delta = [
        (r["status"], "$deltatoken" in r["query"]) for r in world.ms.graph.requests("GET", "delta")
    ]
    assert delta[0] == (410, True)  # the stored link is Gone
    assert delta[1] == (200, False)  # one full listing, then a fresh link
    assert len(world.server_tasks()) == 4
    assert len(world.open_tasks()) == 3
    world.sync()  # reads back its regeneration
    world.ms.graph.clear_log()
    world.sync()
    assert len(graph_requests(world.ms)) <= 1  # one delta request


def test_garbled_delta_link_resets_too(world: GraphWorld) -> None:
    world.sync()
    state = world.state()
    cache = state.listing_cache()
    (scope,) = {r[0] for r in state.db.execute("SELECT scope FROM listing_meta")}
    link = cache.get(scope, "token")
    assert link
    cache.put(scope, "token", link.split("$deltatoken=")[0] + "$deltatoken=not-a-token")
    state.close()
    result = world.sync()
    assert result.ok and sum(result.counts.values()) == 0
    assert [r["status"] for r in world.ms.graph.requests("GET", "delta")][-2:] == [400, 200]


def test_server_without_expand_in_delta_is_read_task_by_task(world: GraphWorld) -> None:
    world.ms.graph.delta_expands = False
    world.sync()
    opens = world.open_tasks()
    assert len(opens) == 3
    assert world.ms.graph.requests("GET", "/tasks/", batch=True)  # looked up in a $batch
    assert sum(world.sync().counts.values()) == 0


# --- conflicts, deletions, lost state --------------------------------------------------


def test_phone_snooze_during_our_update_wins(world: GraphWorld) -> None:
    world.sync()
    target = world.the_open("person-0000")
    snoozed = target.due + timedelta(days=9)  # type: ignore[operator]

    def snooze() -> None:
        world.ms.graph.app_edit(
            world.mailbox,
            target.href,
            {
                "dueDateTime": {
                    "dateTime": f"{snoozed}T00:00:00",
                    "timeZone": "W. Europe Standard Time",
                }
            },
        )

    world.ms.graph.before(lambda m, p: m == "PATCH" and p.endswith(target.href), snooze)
    world.config["tiers"]["inner"]["every"] = "4 weeks"  # a cadence change moves open tasks
    world.write()
    result = world.sync()
    assert result.ok
    assert ("updated", "person-0000", "retry") in world.actions()
    after = world.the_open("person-0000")
    assert after.due == snoozed  # the user's edit was not overwritten
    assert after.snoozed
    statuses = [r["status"] for r in world.ms.graph.requests("PATCH", target.href, batch=True)]
    assert statuses[0] == 412


def test_task_deleted_in_the_app_is_recreated(world: GraphWorld) -> None:
    world.sync()
    gone = world.the_open("person-0001")
    world.ms.graph.app_delete(world.mailbox, gone.href)
    result = world.sync()
    assert result.counts["created"] == 1
    again = world.the_open("person-0001")
    assert again.href != gone.href


def test_removed_contact_is_cancelled_not_touched(world: GraphWorld) -> None:
    world.sync()
    world.config["contacts"] = roster(3)[:2]
    world.write()
    result = world.sync()
    assert result.counts["cancelled"] == 1
    [task] = [t for t in world.tasks() if t.contact_id == "person-0002"]
    assert task.status is Status.CANCELLED
    assert world.server_tasks("person-0002")[0].props["status"] == "completed"
    state = world.state()
    try:
        assert state.touches("person-0002") == []
    finally:
        state.close()


def test_lost_state_db_creates_no_duplicates(world: GraphWorld) -> None:
    world.sync()
    (world.dir / "state.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (world.dir / f"state.sqlite{suffix}").unlink(missing_ok=True)
    result = world.sync()
    assert sum(result.counts.values()) == 0
    assert len(world.server_tasks()) == 3


def test_foreign_task_with_the_same_title_is_untouched(world: GraphWorld) -> None:
    foreign = world.ms.graph.add_task(world.mailbox, {"title": "Keep in touch with Person 0000"})
    before = world.ms.graph.render(world.mailbox, foreign.id)
    world.sync()
    world.config["tiers"]["inner"]["every"] = "5 weeks"
    world.write()
    world.sync()
    assert world.ms.graph.render(world.mailbox, foreign.id) == before
    assert len(world.open_tasks()) == 3


def test_named_list_is_created_when_missing(world: GraphWorld) -> None:
    world.config["backend"]["task_list"] = "Keep in touch"
    world.write()
    world.sync()
    names = [x.name for x in world.ms.graph.lists_of(world.mailbox).values()]
    assert "Keep in touch" in names
    assert len(world.ms.graph.tasks(world.mailbox, "Keep in touch")) == 3
    assert world.ms.graph.tasks(world.mailbox) == []


@pytest.mark.slow
def test_a_thousand_contacts_take_fifty_batch_requests(world: GraphWorld) -> None:
    world.config["contacts"] = roster(1000)
    world.write()
    result = world.sync()
    assert result.ok and result.counts["created"] == 1000
    top = graph_requests(world.ms)
    assert top.count("POST $batch") == 50
    assert len(top) == 52  # + the list lookup and the (empty) first delta round
    world.ms.graph.clear_log()
    world.sync()  # reads its 1000 creations back: delta pages of 100
    assert len(graph_requests(world.ms)) <= 10  # one delta request per cycle
    world.ms.graph.clear_log()
    assert sum(world.sync().counts.values()) == 0
    assert len(graph_requests(world.ms)) <= 1  # one delta request


def test_task_whose_link_a_client_removed_stays_ours(world: GraphWorld) -> None:
    world.sync()
    target = world.the_open("person-0001")
    lst = world.ms.graph.list_named(world.mailbox)
    task = lst.tasks[target.href]
    task.links.clear()
    world.ms.graph._touch(lst, task)
    result = world.sync()  # the mirror still knows it is ours: no duplicate
    assert result.ok and sum(result.counts.values()) == 0
    world.config["tiers"]["inner"]["every"] = "4 weeks"
    world.write()
    result = world.sync()  # the update adds kit-sync's link back
    assert result.ok and result.counts["created"] == 0
    assert len(world.ms.graph.tasks(world.mailbox)) == 3  # no duplicate on the server
    again = world.the_open("person-0001")
    assert again.href == target.href and again.meta.every == "P28D"
    assert len(task.links) == 1


@pytest.mark.parametrize(
    "web_url",
    [
        "https://example.org/another-app/task/17",
        "https://kit-sync.invalid/task#v=1&uid=made-by-another-app-1%40example.org",
        f"https://kit-sync.invalid/task#v=1&uid={make_uid('person-0001', 'x')}",
    ],
    ids=["no-uid", "its-own-uid", "another-contacts-kit-uid"],
)
def test_a_task_with_a_copied_marker_under_its_own_identity_is_foreign_and_reported_once(
    world: GraphWorld, caplog: pytest.LogCaptureFixture, web_url: str
) -> None:
    """Issue 11, defect 3: kit-sync's marker (applicationName kit-sync, externalId the
    contact) alone does not make a task kit-sync's; a kit UID of that contact in the
    link is needed too. Nor does removing that link later make it kit-sync's (the link
    is added back only on a task kit-sync saw with its full link)."""
    graph = world.ms.graph
    marker = {
        "applicationName": "kit-sync",
        "externalId": "person-0000",
        "displayName": "kit-sync: keep in touch every 3 weeks",
        "webUrl": web_url,
    }
    foreign = graph.add_task(
        world.mailbox,
        {
            "title": "Lunch with Person 0000 (copied)",
            "dueDateTime": {"dateTime": "2026-12-01T00:00:00", "timeZone": "UTC"},
            "linkedResources": [marker],
        },
    )
    before = graph.render(world.mailbox, foreign.id)
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        first = world.sync()
        assert first.ok and first.counts["created"] == 3  # person-0000 gets a task of their own
        assert world.the_open("person-0000").href != foreign.id
        assert sum(world.sync().counts.values()) == 0
        world.advance(days=1, hours=1)  # the daily full listing reads it again
        assert sum(world.sync().counts.values()) == 0
        assert graph.render(world.mailbox, foreign.id) == before
        # Completing it is not a touch of person-0000's.
        graph.app_complete(
            world.mailbox,
            foreign.id,
            datetime(2026, 11, 22, 18, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        )
        assert sum(world.sync().counts.values()) == 0
        # Its app removes the link: still not kit-sync's (never mirrored as ours).
        graph.app_remove_link(world.mailbox, foreign.id)
        before = graph.render(world.mailbox, foreign.id)
        world.advance(days=1, hours=1)
        assert sum(world.sync().counts.values()) == 0
        world.config["tiers"]["inner"]["every"] = "5 weeks"  # every kit task is written
        world.write()
        assert world.sync().counts["updated"] == 3
        world.config["contacts"] = roster(3)[1:]
        world.write()
        assert world.sync().counts["cancelled"] == 1
        assert sum(world.sync().counts.values()) == 0
    assert graph.render(world.mailbox, foreign.id) == before  # never written to
    assert all(t.href != foreign.id for t in world.tasks())
    [own] = [t for t in world.tasks() if t.contact_id == "person-0000"]
    assert own.status is Status.CANCELLED
    state = world.state()
    try:
        assert state.touches("person-0000") == []
    finally:
        state.close()
    warned = [r.getMessage() for r in caplog.records if "not a kit-sync UID" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "'Lunch with Person 0000 (copied)'" in warned[0] and "person-0000" in warned[0]


def test_a_marker_only_task_a_former_version_mirrored_is_dropped(
    world: GraphWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """kit-sync before this rule went by the marker alone and kept such a task in its
    mirror; delta never reports it again unless it changes."""
    import json

    from kit_sync.backends.graph import _warned_foreign, compact

    graph = world.ms.graph
    world.sync()
    foreign = graph.add_task(
        world.mailbox,
        {
            "title": "Lunch with Person 0001 (my list)",
            "linkedResources": [
                {
                    "applicationName": "kit-sync",
                    "externalId": "person-0001",
                    "displayName": "copied",
                    "webUrl": "https://example.org/another-app/task/18",
                }
            ],
        },
    )
    world.sync()
    raw = json.loads(graph.render(world.mailbox, foreign.id))
    engine = world.engine()  # binds the state: the mirror as the last cycle left it
    try:
        backend = engine.backend
        assert isinstance(backend, GraphBackend)
        backend._tasks[foreign.id] = {**compact(raw), "linkedResources": raw["linkedResources"]}
        backend._persist({foreign.id}, set())
    finally:
        engine.state.close()
        engine.backend.close()
    _warned_foreign.discard(foreign.id)  # as in a new process
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        assert sum(world.sync().counts.values()) == 0
        graph.app_remove_link(world.mailbox, foreign.id)  # and then its link goes
        before = graph.render(world.mailbox, foreign.id)
        world.config["tiers"]["inner"]["every"] = "5 weeks"  # every kit task is written
        world.write()
        assert world.sync().counts["updated"] == 3
    assert graph.render(world.mailbox, foreign.id) == before
    assert len(world.open_tasks("person-0001")) == 1
    warned = [r.getMessage() for r in caplog.records if "not a kit-sync UID" in r.getMessage()]
    assert len(warned) == 1 and "Lunch with Person 0001" in warned[0]


def test_half_done_update_is_finished_at_the_next_listing(world: GraphWorld) -> None:
    """The task PATCH went through, the link PATCH in the same $batch was refused:
    without the pending record the new due date would read as a user's snooze."""
    world.config["backend"]["max_retry_wait"] = 0
    world.write()
    world.sync()
    world.complete_on_phone(
        "person-0000", datetime(2026, 11, 22, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    )
    world.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    world.sync()  # regenerated: due counted from Nov 22
    assert world.the_open("person-0000").due == date(2026, 12, 13)
    world.config["tiers"]["inner"]["every"] = "4 weeks"
    world.write()
    world.ms.graph.throttle_batch_items(
        1, retry_after=30, match=lambda m, p: m == "PATCH" and "/linkedResources/" in p
    )
    with pytest.raises(Throttled):
        world.sync()
    half = world.the_open("person-0000")
    assert half.due == date(2026, 12, 20) and half.meta.every == "P21D"
    assert half.snoozed  # due moved, bookkeeping not: it reads as a snooze
    world.ms.graph.clear_log()
    assert world.sync().ok
    links = world.ms.graph.requests("PATCH", "/linkedResources/", batch=True)
    assert links[0]["path"].split("/tasks/")[1].startswith(half.href)
    fixed = world.the_open("person-0000")
    assert fixed.meta.every == "P28D" and not fixed.snoozed
    assert fixed.due == fixed.meta.planned_due == date(2026, 12, 20)
