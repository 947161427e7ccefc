"""Graph behaviours Microsoft does not promise against (issue 16), each reproduced by a
mode of the fake Graph, with kit-sync holding its promises in it:

1. delta returns partial items (only the changed properties);
2. PATCH/DELETE ignore If-Match;
3. PATCH accepts only an HTML body;
4. a change to a linked resource alone does not surface in delta.

docs/graph.md lists each assumption and what the code does when it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from contract import new_task
from graph_server import FakeMicrosoft
from graph_server.fixtures import fresh, mailbox, ms  # noqa: F401
from graph_server.world import GraphWorld
from test_graph_contract import TestGraphContract, app_tokens  # noqa: F401

from kit_sync.backends.base import Conflict
from kit_sync.backends.graph import GraphBackend, find_link
from kit_sync.backends.graph.items import note_text
from kit_sync.backends.graph_auth import AppTokens
from kit_sync.config import GraphConfig
from kit_sync.model import KitTask, TaskChange

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def world(
    tmp_path: Path,
    fresh: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
    app_tokens: AppTokens,  # noqa: F811
) -> Iterator[GraphWorld]:
    yield GraphWorld(tmp_path, fresh, mailbox, app_tokens)


def kept_listing(world: GraphWorld) -> list[KitTask]:
    """What kit-sync's own mirror (state DB + delta) lists now, as the engine sees it."""
    engine = world.engine()
    try:
        return engine.backend.fetch_listing().tasks
    finally:
        engine.state.close()
        engine.backend.close()


def snooze_on_phone(world: GraphWorld, target: KitTask, days: int) -> date:
    assert target.due is not None
    snoozed = target.due + timedelta(days=days)
    world.ms.graph.app_edit(
        world.mailbox,
        target.href,
        {"dueDateTime": {"dateTime": f"{snoozed}T00:00:00", "timeZone": "W. Europe Standard Time"}},
    )
    return snoozed


# --- 1. partial delta items --------------------------------------------------------------


class TestContractWithPartialDelta(TestGraphContract):
    """The whole backend contract while delta sends only changed properties."""

    @pytest.fixture(autouse=True)
    def _partial(self, fresh: FakeMicrosoft) -> None:  # noqa: F811
        fresh.graph.delta_partial = True


def test_partial_delta_item_keeps_what_it_leaves_out(world: GraphWorld) -> None:
    world.ms.graph.delta_partial = True
    world.sync()
    before = {t.contact_id: t for t in kept_listing(world)}
    target = before["person-0000"]
    world.ms.graph.app_edit(world.mailbox, target.href, {"title": "Lunch with P0 (moved)"})
    world.ms.graph.clear_log()
    result = world.sync()
    assert result.ok, result.failures
    delta = [r for r in world.ms.graph.log if r["path"].endswith("/delta")]
    assert delta  # the edit came through delta, as a partial item
    after = {t.contact_id: t for t in kept_listing(world)}
    assert after["person-0000"].summary == "Lunch with P0 (moved)"
    assert after["person-0000"].due == target.due  # not wiped by the partial item
    assert after["person-0000"].meta == target.meta
    assert after["person-0001"] == before["person-0001"]
    assert len(world.open_tasks()) == 3


def test_partial_delta_completion_regenerates(world: GraphWorld) -> None:
    world.ms.graph.delta_partial = True
    world.sync()
    world.complete_on_phone("person-0001", datetime(2026, 11, 21, 9, 30, tzinfo=BERLIN))
    result = world.sync()
    assert result.ok and result.counts["regenerated"] == 1
    fresh_one = world.the_open("person-0001")
    assert fresh_one.due == date(2026, 11, 21) + timedelta(weeks=3)


# --- 2. If-Match ignored -------------------------------------------------------------------


class TestContractIgnoringIfMatch(TestGraphContract):
    """The contract (its stale-etag cases included) while Graph ignores If-Match."""

    @pytest.fixture(autouse=True)
    def _ignore(self, fresh: FakeMicrosoft) -> None:  # noqa: F811
        fresh.graph.honour_if_match = False

    def test_a_second_client_sees_changes_through_its_delta_link(
        self,
        backend: Any,
        fresh: FakeMicrosoft,  # noqa: F811
        mailbox: str,  # noqa: F811
        tz: ZoneInfo,
        app_tokens: AppTokens,  # noqa: F811
    ) -> None:
        """As in the contract, except for the etag: the stale write went through and
        was undone, so the task is at a newer version holding the other client's due."""
        config = GraphConfig.model_validate(fresh.backend_config("secret", user=mailbox))
        other = GraphBackend(config, tz, tokens=app_tokens)
        try:
            assert other.fetch_listing().tasks == []
            made = backend.create_task(new_task())
            [seen] = other.fetch_listing().tasks
            moved = other.update_task(seen, TaskChange(due=date(2027, 2, 2)))
            with pytest.raises(Conflict):
                backend.update_task(made, TaskChange(due=date(2027, 3, 3)))
            [again] = backend.fetch_listing().tasks
            assert again.due == date(2027, 2, 2) and again.meta == moved.meta
        finally:
            other.close()


def test_phone_snooze_meanwhile_wins_when_if_match_is_ignored(
    world: GraphWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phone moves the due date after kit-sync planned a cadence change and before
    it writes; the service ignores If-Match. The snooze must survive."""
    world.ms.graph.honour_if_match = False
    world.sync()
    target = world.the_open("person-0000")
    snoozed: list[date] = []
    original = GraphBackend.update_task

    def racing(self: GraphBackend, task: KitTask, change: TaskChange) -> KitTask:
        if task.href == target.href and not snoozed:
            snoozed.append(snooze_on_phone(world, target, 9))
        return original(self, task, change)

    monkeypatch.setattr(GraphBackend, "update_task", racing)
    world.config["tiers"]["inner"]["every"] = "4 weeks"  # moves every open task
    world.write()
    result = world.sync()
    assert result.ok, result.failures
    assert ("updated", "person-0000", "retry") in world.actions()
    after = world.the_open("person-0000")
    assert after.due == snoozed[0]  # the phone's edit is what the server holds
    assert after.snoozed
    # (the PATCH went through and was undone from the copy read in the same batch)
    patches = world.ms.graph.requests("PATCH", target.href, batch=True)
    assert [r["status"] for r in patches][:2] == [200, 200]


def test_task_completed_meanwhile_is_not_deleted_when_if_match_is_ignored(
    world: GraphWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removed contact's task is to be deleted (on_remove: delete), but the phone
    ticks it off after kit-sync planned that: the completion is history and stays."""
    world.ms.graph.honour_if_match = False
    world.config["task"] = {"on_remove": "delete"}
    world.write()
    world.sync()
    target = world.the_open("person-0002")
    original = GraphBackend.delete_task
    raced: list[str] = []

    def racing(self: GraphBackend, task: KitTask) -> None:
        if not raced:
            raced.append(task.href)
            world.ms.graph.app_complete(
                world.mailbox, target.href, datetime(2026, 11, 21, 10, 30, tzinfo=BERLIN)
            )
        original(self, task)

    monkeypatch.setattr(GraphBackend, "delete_task", racing)
    world.config["contacts"] = world.config["contacts"][:2]
    world.write()
    world.sync()
    assert raced == [target.href]
    kept = [t for t in world.ms.graph.tasks(world.mailbox) if t.id == target.href]
    assert kept and kept[0].props["status"] == "completed"


def test_task_deleted_meanwhile_is_recreated_not_a_failure(
    world: GraphWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-read of the update batch answers 404: the task was deleted after it
    was planned. That is the outcome (gone), not a failed dependency."""
    world.sync()
    target = world.the_open("person-0001")
    original = GraphBackend.update_task
    raced: list[str] = []

    def racing(self: GraphBackend, task: KitTask, change: TaskChange) -> KitTask:
        if task.href == target.href and not raced:
            raced.append(task.href)
            world.ms.graph.app_delete(world.mailbox, target.href)
        return original(self, task, change)

    monkeypatch.setattr(GraphBackend, "update_task", racing)
    world.config["tiers"]["inner"]["every"] = "4 weeks"
    world.write()
    result = world.sync()
    assert raced == [target.href]
    assert result.ok, result.failures
    assert len(world.open_tasks()) == 3
    assert world.the_open("person-0001").href != target.href


def test_a_note_edited_meanwhile_is_put_back_as_html(
    world: GraphWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If-Match ignored and updates HTML-only: the phone's note, overwritten by a
    roster edit planned before it, is written back (as HTML, the only body an update
    takes) before kit-sync re-plans. (The re-planned roster edit then rewrites the
    note, as it would after a 412: the note is rendered from the roster.)"""
    world.ms.graph.honour_if_match = False
    world.ms.graph.update_body_html_only = True
    world.sync()
    target = world.the_open("person-0000")
    original = GraphBackend.update_task
    raced: list[str] = []

    def racing(self: GraphBackend, task: KitTask, change: TaskChange) -> KitTask:
        if task.href == target.href and not raced:
            raced.append(task.href)
            world.ms.graph.app_edit(
                world.mailbox,
                target.href,
                {"body": {"content": "call about the offer", "contentType": "text"}},
            )
        return original(self, task, change)

    monkeypatch.setattr(GraphBackend, "update_task", racing)
    world.config["contacts"][0]["notes"] = "Met at the conference"
    world.write()
    world.sync()
    assert raced == [target.href]
    # our PATCH, the undo (the phone's note back, as HTML: a text body would be
    # refused), then the re-planned PATCH: none refused
    statuses = [
        r["status"]
        for r in world.ms.graph.requests("PATCH", target.href, batch=True)
        if r["path"].endswith(target.href)
    ]
    assert len(statuses) == 3 and all(200 <= s < 300 for s in statuses), statuses


# --- 3. HTML body on update ----------------------------------------------------------------


def test_update_sends_the_note_as_html_and_both_read_back(world: GraphWorld) -> None:
    world.ms.graph.update_body_html_only = True
    world.sync()
    target = world.the_open("person-0001")
    created = world.ms.graph.tasks(world.mailbox)
    body = next(t for t in created if t.id == target.href).props["body"]
    assert body["contentType"] == "text"  # creates: text, as the apps write
    assert "How: lunch" in note_text(body)
    world.config["contacts"][1]["notes"] = "Likes <b>jazz</b> & rye\nAsk about Lisbon"
    world.write()
    result = world.sync()
    assert result.ok, result.failures
    assert result.counts["updated"] >= 1
    body = next(t for t in world.ms.graph.tasks(world.mailbox) if t.id == target.href).props["body"]
    assert body["contentType"] == "html"
    assert "<b>" not in body["content"] and "&lt;b&gt;jazz&lt;/b&gt; &amp; rye" in body["content"]
    text = note_text(body)
    assert "Likes <b>jazz</b> & rye\nAsk about Lisbon" in text
    assert "How: lunch" in text


# --- 4. linked resources and delta ---------------------------------------------------------


def test_a_removed_link_is_noticed_by_the_daily_full_listing(world: GraphWorld) -> None:
    """A client removes kit-sync's link; delta does not report it (navigation
    property). The next day's full listing does, and the link is added back at the
    next write instead of patching a link that is gone."""
    world.ms.graph.link_changes_in_delta = False
    world.sync()
    target = world.the_open("person-0002")
    world.ms.graph.app_remove_link(world.mailbox, target.href)
    world.advance(days=1, hours=1)
    world.ms.graph.clear_log()
    world.sync()
    full = [r for r in world.ms.graph.requests("GET", "delta") if "$deltatoken" not in r["query"]]
    assert full, "no full listing after a day"
    world.config["tiers"]["inner"]["every"] = "5 weeks"  # every task's link changes
    world.write()
    result = world.sync()
    assert result.ok, result.failures
    server = next(t for t in world.ms.graph.tasks(world.mailbox) if t.id == target.href)
    links = [x for x in server.links if x.get("applicationName") == "kit-sync"]
    assert len(links) == 1
    assert find_link({"linkedResources": server.links}) is not None
    assert len(world.open_tasks()) == 3


def test_idle_cycles_within_a_day_stay_one_request(world: GraphWorld) -> None:
    world.sync()
    world.sync()
    world.advance(hours=20)
    world.ms.graph.clear_log()
    world.sync()
    assert [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in world.ms.graph.log] == [
        ("GET", "delta")
    ]
    assert "$deltatoken" in world.ms.graph.log[0]["query"]
