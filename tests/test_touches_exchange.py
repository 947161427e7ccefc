"""Sent Items and meetings of an Exchange mailbox reset a person's clock: the
exchange touch source running exchangelib against the project's EWS endpoint
(tests/ews_server, extended with Sent Items, messages and CalendarView)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ews_server import EwsServer
from ews_server.testing import PASSWORD, new_mailbox
from kit import BASE_CONFIG, World

from kit_sync.app import load
from kit_sync.backends.exchange import ExchangeBackend
from kit_sync.engine import Engine
from kit_sync.model import Status
from kit_sync.state import State
from kit_sync.touches.match import AddressBook
from kit_sync.touches.runner import SourceRunner

pytestmark = pytest.mark.integration

NY = ZoneInfo("America/New_York")
ANN = "ann-example-com"
BOB = "bob-example-com"


@pytest.fixture(scope="module")
def ews() -> Iterator[EwsServer]:
    with EwsServer() as server:
        yield server


def own_mailbox(server: EwsServer, email: str) -> dict[str, Any]:
    return {
        "type": "exchange",
        "email": email,
        "service_endpoint": server.url,
        "password": PASSWORD,
        "auth": "basic",
        "version": "2016",
        "max_retry_wait": 5,
        "timeout": 10,
    }


@pytest.fixture
def mailbox(ews: EwsServer) -> str:
    return new_mailbox(ews, "me")


@pytest.fixture
def world(tmp_path: Path, ews: EwsServer, mailbox: str) -> Iterator[World]:
    config = copy.deepcopy(BASE_CONFIG)
    config["timezone"] = "America/New_York"
    config["touches"] = [own_mailbox(ews, mailbox)]
    w = World(tmp_path, config)
    w.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    yield w
    if w.sources is not None:
        w.sources.close()


def _cursor(world: World, key: str) -> str | None:
    """The source's own cursor as the runner stored it."""
    import json

    state = State(world.dir / "state.sqlite")
    try:
        stored = state.get_token(key)
    finally:
        state.close()
    return json.loads(stored)["cursor"] if stored else None


def completed(world: World, contact: str) -> list[Any]:
    return [t for t in world.tasks() if t.contact_id == contact and t.status is Status.COMPLETED]


def test_sent_mail_at_2330_new_york_completes_the_task_as_of_that_day(
    world: World, ews: EwsServer, mailbox: str
) -> None:
    world.sync()
    first = world.the_open(ANN)
    sent = datetime(2026, 3, 10, 23, 30, tzinfo=NY)
    ews.store.add_message(mailbox, sent, to=("Ann@Example.com",), cc=("x@elsewhere.example",))
    ews.store.add_message(mailbox, sent, to=("stranger@elsewhere.example",))
    ews.store.add_message(  # received, in the Inbox: never a sent touch
        mailbox, sent, to=(mailbox,), sender="bob@example.com", folder="inbox"
    )
    world.at(datetime(2026, 3, 12, 14, 0, tzinfo=UTC))
    result = world.sync()
    assert result.source_failures == []
    assert [(t.contact_id, t.day, t.kind) for t in result.detected] == [
        (ANN, date(2026, 3, 10), "email sent")
    ]
    (done,) = completed(world, ANN)
    assert done.uid == first.uid and done.completed == sent.astimezone(UTC)
    assert world.the_open(ANN).due == date(2026, 3, 31)
    assert completed(world, BOB) == []
    for path in world.dir.glob("state.sqlite*"):
        assert b"elsewhere" not in path.read_bytes()


def test_meetings_count_once_ended_and_not_when_cancelled_or_declined(
    world: World, ews: EwsServer, mailbox: str
) -> None:
    world.sync()
    start = datetime(2026, 3, 5, 10, 0, tzinfo=NY)
    end = start + timedelta(hours=1)
    ews.store.add_meeting(
        mailbox,
        start,
        end,
        organizer=mailbox,
        attendees={"bob@example.com": "Accept", "x@elsewhere.example": "Accept"},
    )
    ews.store.add_meeting(mailbox, start, end, organizer="ann@example.com", cancelled=True)
    ews.store.add_meeting(mailbox, start, end, organizer="ann@example.com", my_response="Decline")
    ews.store.add_meeting(
        mailbox, start, end, organizer=mailbox, attendees={"ann@example.com": "Decline"}
    )
    later = datetime(2026, 3, 9, 16, 0, tzinfo=NY)
    ews.store.add_meeting(mailbox, later, later + timedelta(hours=1), organizer="ann@example.com")
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


def test_idle_check_and_lost_state_count_nothing_twice(
    world: World, ews: EwsServer, mailbox: str
) -> None:
    world.sync()
    ews.store.add_message(mailbox, datetime(2026, 3, 3, 9, 0, tzinfo=NY), to=("bob@example.com",))
    world.at(datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
    world.sync()
    tasks = {t.uid: (t.status, t.due) for t in world.tasks()}
    assert world.sources is not None
    source = world.sources._source(0)
    cursor = _cursor(world, source.key)
    before = len(ews.requests)
    idle = source.fetch_touches(
        AddressBook([("bob@example.com", BOB)]), datetime(2026, 1, 1, tzinfo=UTC), world.now, cursor
    )
    assert idle.touches == []
    # One SyncFolderItems (Sent Items) and one FindItem (CalendarView).
    assert ews.requests[before:] == ["SyncFolderItems", "FindItem"]
    world.sources.close()
    world.sources = None
    for path in world.dir.glob("state.sqlite*"):
        path.unlink()
    world.advance(hours=1)
    again = world.sync()
    assert len(again.detected) == 1
    assert again.counts["regenerated"] == 0 and again.counts["created"] == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks


def test_wrong_password_is_a_clear_line_and_tasks_still_sync(
    world: World, ews: EwsServer, mailbox: str
) -> None:
    world.edit_config(touches=[own_mailbox(ews, mailbox) | {"password": "nope"}])
    result = world.sync()
    assert len(world.open_tasks()) == 2
    (line,) = result.source_failures
    assert line.startswith(f"exchange {mailbox}:") and "nope" not in line


class SharedWorld(World):
    """The Exchange backend and an exchange touch source sharing its mailbox."""

    def __init__(self, tmp_path: Path, server: EwsServer, email: str) -> None:
        config = copy.deepcopy(BASE_CONFIG)
        config["timezone"] = "America/New_York"
        config["backend"] = own_mailbox(server, email)
        config["touches"] = [{"type": "exchange"}]
        server.store.clock = lambda: self.now
        super().__init__(tmp_path, config)
        self.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
        self.backend: ExchangeBackend | None = None

    def engine(self) -> Engine:
        loaded = load(self.config_path)
        if self.backend is None:  # one backend, as the daemon keeps it
            self.backend = ExchangeBackend(loaded.config.backend, loaded.tz)
            self.sources = SourceRunner(loaded.config.touches, loaded.tz, backend=self.backend)
        return Engine(
            loaded.config,
            loaded.roster,
            self.backend,
            State(loaded.config.state_path()),
            loaded.tz,
            clock=lambda: self.now,
            sources=self.sources,
        )


def test_with_the_exchange_backend_the_source_shares_its_mailbox_and_moves_the_due(
    tmp_path: Path, ews: EwsServer, mailbox: str
) -> None:
    world = SharedWorld(tmp_path, ews, mailbox)
    try:
        world.sync()
        (before,) = [t for t in world.tasks() if t.contact_id == ANN and t.status is Status.OPEN]
        ews.store.add_message(
            mailbox, datetime(2026, 3, 10, 23, 30, tzinfo=NY), to=("ann@example.com",)
        )
        world.at(datetime(2026, 3, 12, 14, 0, tzinfo=UTC))
        result = world.sync()
        assert [t.contact_id for t in result.detected] == [ANN]
        opens = [t for t in world.tasks() if t.contact_id == ANN and t.status is Status.OPEN]
        # Outlook regenerates a completed task itself and would stamp the copy with the
        # server's date: the regenerating task's due date moves instead.
        assert [(t.uid, t.due) for t in opens] == [(before.uid, date(2026, 3, 31))]
        assert sum(world.sync().counts.values()) == 0
    finally:
        if world.sources is not None:
            world.sources.close()
        if world.backend is not None:
            world.backend.close()


def test_config_needs_a_mailbox_when_the_backend_is_not_exchange(tmp_path: Path) -> None:
    from kit_sync.config import load_config
    from kit_sync.errors import ConfigError

    config = copy.deepcopy(BASE_CONFIG)
    config["touches"] = [{"type": "exchange"}]
    World(tmp_path, config)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "config.yaml")
    assert "touches[0] (type exchange) has no mailbox of its own" in str(err.value)
    config["touches"] = [{"type": "exchange", "server": "mail.example.com"}]
    World(tmp_path, config)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "config.yaml")
    assert "connection keys without email" in str(err.value)
