"""Birthday tasks on the network backends (issue 15): real Radicale and Xandikos, and
the Exchange and Graph test endpoints driven by the real client libraries. One
open birthday task beside the keep-in-touch task; ticking it off schedules the next
year's, whatever the backend does with a completed task."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from graph_server import FakeMicrosoft
from graph_server.fixtures import fresh, mailbox, ms  # noqa: F401
from graph_server.world import GraphWorld, roster
from servers import ANN, BASE_CONTACTS, KINDS, DavServer, Kit, Phone, shared
from test_caldav_clients import _utc, href_of
from test_exchange import ExchangeWorld, base_config, ews  # noqa: F401

from kit_sync.backends.graph_auth import AppTokens
from kit_sync.config import GraphConfig
from kit_sync.model import KitTask, Status
from kit_sync.occasions import BIRTHDAY, split_key

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
BIRTHDAYS = {"tasks": True}


def birthday_tasks(tasks: list[KitTask], status: Status = Status.OPEN) -> list[KitTask]:
    return [t for t in tasks if t.status is status and split_key(t.contact_id)[1] == BIRTHDAY]


def keep_in_touch(tasks: list[KitTask]) -> dict[str, date | None]:
    return {
        t.contact_id: t.due
        for t in tasks
        if t.status is Status.OPEN and split_key(t.contact_id)[1] is None
    }


# --- CalDAV: Radicale and Xandikos --------------------------------------------------------


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


class ClockKit(Kit):
    """The CalDAV kit with the test's clock instead of the machine's."""

    now = NOW

    def engine(self) -> Any:
        engine = super().engine()
        engine.clock = lambda: self.now
        return engine


def test_birthday_task_on_caldav(tmp_path: Path, server: DavServer) -> None:
    contacts = [dict(c) for c in BASE_CONTACTS]
    contacts[0]["birthday"] = "1988-03-02"
    kit = ClockKit(tmp_path, server, server.new_collection(), contacts)
    kit.write(contacts, birthdays=BIRTHDAYS)
    kit.sync()
    tasks = kit.listing().tasks
    [bday] = birthday_tasks(tasks)
    assert (bday.due, bday.summary) == (date(2027, 3, 2), "Birthday: Ann Lee")
    assert split_key(bday.contact_id) == (ANN, BIRTHDAY)
    keep = keep_in_touch(tasks)
    assert ANN in keep
    # ticked off on a phone, a day late
    kit.now = datetime(2027, 3, 3, 19, 0, tzinfo=UTC)
    phone = Phone(server, kit.collection)
    try:
        phone.edit(href_of(bday), lambda t: _utc(t, kit.now))
    finally:
        phone.close()
    kit.sync()
    tasks = kit.listing().tasks
    [nxt] = birthday_tasks(tasks)
    assert nxt.due == date(2028, 3, 2)
    assert [t.uid for t in birthday_tasks(tasks, Status.COMPLETED)] == [bday.uid]
    assert keep_in_touch(tasks) == keep  # not a touch by default
    assert not kit.sync().plan.actions


# --- Exchange: the EWS test endpoint ---------------------------------------------------


def test_birthday_task_on_exchange(tmp_path: Path, ews: Any) -> None:  # noqa: F811
    config = base_config(birthdays=BIRTHDAYS)
    config["contacts"][0]["birthday"] = "1988-03-02"
    world = ExchangeWorld(tmp_path, ews, config)
    world.at(NOW)
    world.sync()
    tasks = world.tasks()
    [bday] = birthday_tasks(tasks)
    assert (bday.due, bday.summary) == (date(2027, 3, 2), "Birthday: Ann Lee")
    keep = keep_in_touch(tasks)
    # Outlook completes it (a regenerating task: Exchange moves the master on from
    # the completion day); kit-sync puts it on next year's birthday.
    world.at(datetime(2027, 3, 4, 17, 0, tzinfo=UTC))
    world.server.store.complete_like_outlook(bday.href, date(2027, 3, 4), world.tz)
    world.sync()
    tasks = world.tasks()
    [nxt] = birthday_tasks(tasks)
    assert nxt.due == date(2028, 3, 2)
    assert len(birthday_tasks(tasks, Status.COMPLETED)) == 1
    assert keep_in_touch(tasks) == keep
    assert not world.sync().plan.actions


# --- Microsoft 365: the Graph test endpoint ----------------------------------------------


@pytest.fixture
def graph_world(
    tmp_path: Path,
    fresh: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
    ms: FakeMicrosoft,  # noqa: F811
) -> Iterator[GraphWorld]:
    tokens = AppTokens(GraphConfig.model_validate(ms.backend_config("secret")))
    contacts = roster(2)
    contacts[0]["birthday"] = "1992-02-29"
    world = GraphWorld(tmp_path, fresh, mailbox, tokens, contacts=contacts)
    world.config["birthdays"] = BIRTHDAYS
    world.write()
    world.now = NOW
    yield world


def test_birthday_task_on_graph(graph_world: GraphWorld) -> None:
    world = graph_world
    world.sync()
    tasks = world.tasks()
    [bday] = birthday_tasks(tasks)
    assert bday.due == date(2027, 2, 28)  # 29 February in a common year
    keep = keep_in_touch(tasks)
    cid = split_key(bday.contact_id)[0]
    # ticked off in the To Do app on the day
    task = world.server_tasks(bday.contact_id)
    assert task, "the birthday task is on the server under its own link"
    world.ms.graph.app_complete(
        world.mailbox,
        bday.href,
        datetime(2027, 2, 28, 9, 0, tzinfo=world_zone(world)),
        world.config["backend"].get("task_list"),
    )
    world.now = datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    world.sync()
    tasks = world.tasks()
    [nxt] = birthday_tasks(tasks)
    assert nxt.due == date(2028, 2, 29)
    assert split_key(nxt.contact_id) == (cid, BIRTHDAY)
    assert keep_in_touch(tasks) == keep


def world_zone(world: GraphWorld) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(world.config["timezone"])
