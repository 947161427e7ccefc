"""The whole story for a Microsoft 365 user, with real processes: `kit-sync login`
once, then `kit-sync run` keeps one To Do task per contact, regenerates a task
ticked off in the app from that day, and an idle cycle costs one request."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from graph_server import USER, FakeMicrosoft
from graph_server.fixtures import fresh, ms  # noqa: F401
from graph_server.world import GraphWorld
from test_graph_auth import login

from kit_sync.backends.graph_auth import StaticToken
from kit_sync.model import Status

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(what: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


@pytest.fixture
def person(tmp_path: Path, fresh: FakeMicrosoft) -> Iterator[GraphWorld]:  # noqa: F811
    name = f"kit {tmp_path.name}"
    backend = fresh.backend_config(
        "login", token_cache=str(tmp_path / "tokens.json"), task_list=name
    )
    tokens = StaticToken(fresh.entra.mint(USER))
    world = GraphWorld(tmp_path, fresh, USER, tokens, backend=backend)
    world.config["sync"] = {"every": "1 second"}
    world.write()
    yield world


def test_login_once_then_the_daemon_keeps_the_list(person: GraphWorld) -> None:
    assert login(person)[0] == 0
    graph = person.ms.graph
    task_list = person.config["backend"]["task_list"]
    daemon = person.popen("run")
    try:
        wait_for(lambda: len(person.server_tasks()) == 3)
        opened = person.the_open("person-0002")
        berlin = ZoneInfo("Europe/Berlin")
        done = datetime.now(berlin).replace(microsecond=0)
        graph.app_complete(USER, opened.href, done, task_list)
        wait_for(lambda: len(person.server_tasks()) == 4)
        new = person.the_open("person-0002")
        assert new.due == done.date() + timedelta(weeks=3)
        history = [t for t in person.tasks() if t.status is Status.COMPLETED]
        assert [t.href for t in history] == [opened.href]

        time.sleep(1.5)  # let it read back its own regeneration
        graph.clear_log()
        time.sleep(3.5)  # idle cycles
        polls = graph.requests(batch=False)
        assert polls, "no cycle ran"
        assert {r["path"].rsplit("/", 1)[-1] for r in polls} == {"delta"}
        assert all(r["status"] == 200 for r in polls)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert len(person.server_tasks()) == 4
