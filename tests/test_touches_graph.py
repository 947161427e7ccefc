"""Sent Items and meetings of a Microsoft 365 account reset a person's clock: the
graph touch source against the project's fake Graph (tests/graph_server, extended
with Sent Items message delta and calendarView)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from graph_server import FakeMicrosoft
from graph_server.fixtures import mailbox, ms  # noqa: F401 - fixtures
from kit import BASE_CONFIG, World

from kit_sync.model import Status
from kit_sync.state import State

pytestmark = pytest.mark.integration

NY = ZoneInfo("America/New_York")
ANN = "ann-example-com"
BOB = "bob-example-com"


def source_section(ms: FakeMicrosoft, upn: str) -> dict[str, Any]:  # noqa: F811
    section = ms.backend_config("secret", user=upn)
    section["type"] = "graph"
    return section


@pytest.fixture
def world(tmp_path: Path, ms: FakeMicrosoft, mailbox: str) -> Iterator[World]:  # noqa: F811
    config = copy.deepcopy(BASE_CONFIG)
    config["timezone"] = "America/New_York"
    config["touches"] = [source_section(ms, mailbox)]
    w = World(tmp_path, config)
    w.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    yield w
    if w.sources is not None:
        w.sources.close()


def completed(world: World, contact: str) -> list[Any]:
    return [t for t in world.tasks() if t.contact_id == contact and t.status is Status.COMPLETED]


def test_sent_mail_at_2330_new_york_completes_the_task_as_of_that_day(
    world: World,
    ms: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
) -> None:
    world.sync()
    first = world.the_open(ANN)
    sent = datetime(2026, 3, 10, 23, 30, tzinfo=NY)
    ms.graph.add_message(mailbox, sent, to=("ANN@example.com",), cc=("x@elsewhere.example",))
    ms.graph.add_message(mailbox, sent, to=("stranger@elsewhere.example",))
    world.at(datetime(2026, 3, 12, 14, 0, tzinfo=UTC))
    result = world.sync()
    assert result.source_failures == []
    assert [(t.contact_id, t.day, t.kind) for t in result.detected] == [
        (ANN, date(2026, 3, 10), "email sent")
    ]
    (done,) = completed(world, ANN)
    assert done.uid == first.uid and done.completed == sent.astimezone(UTC)
    assert world.the_open(ANN).due == date(2026, 3, 31)
    for path in world.dir.glob("state.sqlite*"):
        assert b"elsewhere" not in path.read_bytes()


def test_meetings_count_once_ended_and_not_when_cancelled_or_declined(
    world: World,
    ms: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
) -> None:
    world.sync()
    start = datetime(2026, 3, 5, 10, 0, tzinfo=NY)
    end = start + timedelta(hours=1)
    add = ms.graph.add_event
    add(mailbox, start, end, organizer=mailbox, attendees={"bob@example.com": "accepted"})
    add(mailbox, start, end, organizer="ann@example.com", cancelled=True)
    add(mailbox, start, end, organizer="ann@example.com", my_response="declined")
    add(mailbox, start, end, organizer=mailbox, attendees={"ann@example.com": "declined"})
    later = datetime(2026, 3, 9, 16, 0, tzinfo=NY)
    add(mailbox, later, later + timedelta(hours=1), organizer="ann@example.com")
    world.at(datetime(2026, 3, 9, 12, 0, tzinfo=UTC))  # the 9 March meeting is ahead
    world.sync()
    (bob_done,) = completed(world, BOB)
    assert bob_done.completed == start.astimezone(UTC)
    assert completed(world, ANN) == []
    world.at(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    world.sync()
    (ann_done,) = completed(world, ANN)
    assert ann_done.completed == later.astimezone(UTC)
    assert world.the_open(ANN).due == date(2026, 3, 30)
    assert sum(world.sync().counts.values()) == 0


def test_idle_check_expired_delta_and_lost_state_count_nothing_twice(
    world: World,
    ms: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
) -> None:
    world.sync()
    ms.graph.add_message(mailbox, datetime(2026, 3, 3, 9, 0, tzinfo=NY), to=("bob@example.com",))
    world.at(datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
    world.sync()
    tasks = {t.uid: (t.status, t.due) for t in world.tasks()}

    ms.graph.clear_log()
    world.advance(minutes=10)
    assert world.sync().detected == []
    reads = [r["path"] for r in ms.graph.requests("GET") if "/todo/" not in r["path"]]
    assert len(reads) == 2, reads  # the messages delta and the calendar view

    ms.graph.expire_delta_tokens()
    world.advance(minutes=10)
    again = world.sync()
    assert again.source_failures == [] and again.detected == []

    assert world.sources is not None
    world.sources.close()
    world.sources = None
    for path in world.dir.glob("state.sqlite*"):
        path.unlink()
    world.advance(hours=1)
    rebuilt = world.sync()
    assert len(rebuilt.detected) == 1
    assert rebuilt.counts["regenerated"] == 0 and rebuilt.counts["created"] == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks


def test_with_the_graph_backend_the_source_shares_its_client(
    tmp_path: Path,
    ms: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
) -> None:
    from kit_sync.app import load
    from kit_sync.backends.graph import GraphBackend
    from kit_sync.backends.graph_auth import AppTokens
    from kit_sync.engine import Engine
    from kit_sync.touches.runner import SourceRunner

    config = copy.deepcopy(BASE_CONFIG)
    config["timezone"] = "America/New_York"
    config["backend"] = ms.backend_config("secret", user=mailbox)
    config["touches"] = [{"type": "graph"}]
    world = World(tmp_path, config)
    world.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    loaded = load(world.config_path)
    backend = GraphBackend(
        loaded.config.backend,  # type: ignore[arg-type]
        loaded.tz,
        tokens=AppTokens(loaded.config.backend),  # type: ignore[arg-type]
        clock=lambda: world.now,
    )
    sources = SourceRunner(loaded.config.touches, loaded.tz, backend=backend)
    engine = Engine(  # one engine, as the daemon keeps it
        loaded.config,
        loaded.roster,
        backend,
        State(loaded.config.state_path()),
        loaded.tz,
        clock=lambda: world.now,
        sources=sources,
    )
    sync = engine.run_cycle
    try:
        sync()
        ms.graph.add_message(
            mailbox, datetime(2026, 3, 10, 23, 30, tzinfo=NY), to=("ann@example.com",)
        )
        world.now = datetime(2026, 3, 12, 14, 0, tzinfo=UTC)
        result = sync()
        assert result.source_failures == []
        assert [t.contact_id for t in result.detected] == [ANN]
        assert result.counts["regenerated"] == 1
        listing = backend.fetch_listing().tasks
        opens = [t for t in listing if t.contact_id == ANN and t.status is Status.OPEN]
        assert [t.due for t in opens] == [date(2026, 3, 31)]
        assert sum(sync().counts.values()) == 0
    finally:
        sources.close()
        backend.close()
        engine.state.close()


def test_a_shared_sign_in_asks_for_mail_and_calendar_too(
    tmp_path: Path,
    ms: FakeMicrosoft,  # noqa: F811
) -> None:
    from kit_sync.backends.graph_auth import graph_scopes
    from kit_sync.config import load_config

    config = copy.deepcopy(BASE_CONFIG)
    config["backend"] = ms.backend_config("login")
    World(tmp_path, config)
    plain, _ = load_config(tmp_path / "config.yaml")
    assert [s.rsplit("/", 1)[1] for s in graph_scopes(plain.backend, app_only=False)] == [  # type: ignore[arg-type]
        "Tasks.ReadWrite"
    ]
    config["touches"] = [{"type": "graph"}]
    World(tmp_path, config)
    shared, _ = load_config(tmp_path / "config.yaml")
    assert [s.rsplit("/", 1)[1] for s in graph_scopes(shared.backend, app_only=False)] == [  # type: ignore[arg-type]
        "Tasks.ReadWrite",
        "Mail.ReadBasic",
        "Calendars.Read",
    ]


def test_config_rules_for_a_graph_source(tmp_path: Path) -> None:
    from kit_sync.config import load_config
    from kit_sync.errors import ConfigError

    config = copy.deepcopy(BASE_CONFIG)
    for entry, message in [
        ({"type": "graph"}, "touches[0] (type graph) has no account of its own"),
        ({"type": "graph", "tenant": "contoso"}, "connection keys without client_id"),
        ({"type": "graph", "client_id": "x"}, "app-only access: give client_secret"),
    ]:
        config["touches"] = [entry]
        World(tmp_path, config)
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "config.yaml")
        assert message in str(err.value)
    assert json.dumps(config)  # (the loop wrote each config as YAML)
