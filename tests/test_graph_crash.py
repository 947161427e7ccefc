"""kill -9 of a real `kit-sync sync` process at the worst moments: the fake Graph
has just carried out a request (a create inside a $batch, a task update, a delta
page) and the client dies before it reads the answer. The next run must create no
duplicate, lose no completion, and leave kit-sync's bookkeeping consistent."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from graph_server import FakeMicrosoft
from graph_server.fixtures import fresh, mailbox, ms  # noqa: F401
from graph_server.world import GraphWorld, roster

from kit_sync.backends.graph_auth import StaticToken
from kit_sync.model import Status

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def world(
    tmp_path: Path,
    fresh: FakeMicrosoft,  # noqa: F811
    mailbox: str,  # noqa: F811
) -> Iterator[GraphWorld]:
    # The CLI runs with real MSAL (client secret); in-process reads use a minted token.
    tokens = StaticToken(fresh.entra.mint(mailbox))
    w = GraphWorld(tmp_path, fresh, mailbox, tokens, contacts=roster(12))
    # The subprocess runs at the real time; keep the in-process clock there too.
    w.now = datetime.now(UTC)
    yield w


def kill_when(
    world: GraphWorld, method: str, path_part: str, nth: int
) -> Callable[[], subprocess.CompletedProcess[str]]:
    """Start `kit-sync sync`; kill -9 it right after the server carried out the nth
    matching request (before the answer goes back). Returns a waiter."""
    seen = {"n": 0}
    proc_box: dict[str, subprocess.Popen[str]] = {}

    def match(m: str, p: str) -> bool:
        if m == method and path_part in p:
            seen["n"] += 1
            return seen["n"] == nth
        return False

    def kill() -> None:
        os.kill(proc_box["p"].pid, signal.SIGKILL)

    world.ms.graph.after(match, kill)
    proc_box["p"] = world.popen("sync")

    def wait() -> subprocess.CompletedProcess[str]:
        out, err = proc_box["p"].communicate(timeout=120)
        return subprocess.CompletedProcess([], proc_box["p"].returncode, out, err)

    return wait


def assert_consistent(world: GraphWorld, contacts: int, completed: int = 0) -> None:
    tasks = world.tasks()
    opens = Counter(t.contact_id for t in tasks if t.status is Status.OPEN)
    assert len(opens) == contacts and set(opens.values()) == {1}, opens
    assert sum(1 for t in tasks if t.status is Status.COMPLETED) == completed
    assert len(world.server_tasks()) == contacts + completed  # no duplicate anywhere
    assert not [t for t in tasks if t.status is Status.OPEN and t.snoozed]


def rerun(world: GraphWorld) -> None:
    done = world.cli("sync")
    assert done.returncode == 0, done.stderr
    done = world.cli("sync")
    assert done.returncode == 0, done.stderr
    assert "created 0, regenerated 0, updated 0, cancelled 0, failed 0" in done.stdout


@pytest.mark.parametrize(("contacts", "nth"), [(12, 1), (12, 7), (25, 23)])
def test_killed_while_provisioning(world: GraphWorld, contacts: int, nth: int) -> None:
    world.config["contacts"] = roster(contacts)
    world.write()
    wait = kill_when(world, "POST", "/tasks", nth)
    assert wait().returncode == -signal.SIGKILL
    assert nth <= len(world.server_tasks()) <= contacts  # created, unseen by the client
    rerun(world)
    assert_consistent(world, contacts)


def test_killed_while_regenerating_loses_no_completion(world: GraphWorld) -> None:
    assert world.cli("sync").returncode == 0
    now = datetime.now(BERLIN).replace(microsecond=0)
    for i in (1, 4, 9):
        world.complete_on_phone(f"person-{i:04d}", now - timedelta(hours=i))
    wait = kill_when(world, "POST", "/tasks", 2)  # the second regeneration
    assert wait().returncode == -signal.SIGKILL
    rerun(world)
    assert_consistent(world, 12, completed=3)
    state = world.state()
    try:
        touched = sorted(t.contact_id for t in state.touches())
    finally:
        state.close()
    assert touched == ["person-0001", "person-0004", "person-0009"]
    for i in (1, 4, 9):
        new = world.the_open(f"person-{i:04d}")
        assert new.meta.anchor == (now - timedelta(hours=i)).date()
        assert new.meta.anchor is not None
        assert new.due == new.meta.anchor + timedelta(weeks=3)


@pytest.mark.parametrize(("method", "part"), [("PATCH", "/tasks/"), ("PATCH", "/linkedResources/")])
def test_killed_while_updating_for_a_new_cadence(world: GraphWorld, method: str, part: str) -> None:
    assert world.cli("sync").returncode == 0
    world.config["tiers"]["inner"]["every"] = "5 weeks"
    world.write()
    wait = kill_when(world, method, part, 4)
    assert wait().returncode == -signal.SIGKILL
    rerun(world)
    assert_consistent(world, 12)
    for task in world.open_tasks():
        assert task.meta.every == "P35D"


def test_killed_while_reading_the_delta(world: GraphWorld) -> None:
    assert world.cli("sync").returncode == 0
    world.complete_on_phone("person-0003", datetime.now(BERLIN).replace(microsecond=0))
    wait = kill_when(world, "GET", "/delta", 1)
    assert wait().returncode == -signal.SIGKILL
    rerun(world)
    assert_consistent(world, 12, completed=1)
