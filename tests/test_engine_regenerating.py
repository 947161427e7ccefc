"""The engine over a backend that regenerates tasks itself (as Exchange does):
completing the open task makes the server store a completed copy and move the
task's own due date, computed in UTC. The engine must record the copy as the touch
and correct the due date to `local touch day + every`."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kit import BASE_CONFIG, World

from kit_sync.backends.local import LocalBackend
from kit_sync.cadence import Interval
from kit_sync.engine import Engine
from kit_sync.model import KitTask, NewTask, Status, TaskChange, TaskContent, make_uid
from kit_sync.state import State

ANN = "ann-example-com"


class RegeneratingLocal(LocalBackend):
    """A local folder that behaves like Exchange's regenerating tasks."""

    regenerates_itself: ClassVar[bool] = True

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        if change.status is not Status.COMPLETED:
            return super().update_task(task, change)
        now = self._clock()
        copy_new = NewTask(
            make_uid(task.contact_id, f"copy-{task.uid}-{now.isoformat()}"),
            task.due or now.date(),
            TaskContent(task.summary, ""),
            task.meta,
        )
        made = self.create_task(copy_new)
        # The server ignores the client's stamp and uses its own clock.
        super().update_task(made, TaskChange(status=Status.COMPLETED, completed_at=now))
        # ...and moves the master on, counting in UTC.
        every = Interval.parse(task.meta.every or "P21D")
        return super().update_task(task, TaskChange(due=every.after(now.astimezone(UTC).date())))


def engine_for(world: World) -> Engine:
    from kit_sync.app import load

    loaded = load(world.config_path)
    backend = RegeneratingLocal(loaded.config.backend, loaded.tz, clock=lambda: world.now)
    return Engine(
        loaded.config,
        loaded.roster,
        backend,
        State(loaded.config.state_path()),
        loaded.tz,
        clock=lambda: world.now,
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    data = copy.deepcopy(BASE_CONFIG)
    data["timezone"] = "Pacific/Auckland"
    data["contacts"] = data["contacts"][:1]
    return World(tmp_path, data)


def run(world: World, fn: Any = None) -> Any:
    engine = engine_for(world)
    try:
        return fn(engine) if fn else engine.run_cycle()
    finally:
        engine.state.close()


def test_completion_near_midnight_gets_the_local_day(world: World) -> None:
    run(world)
    master = world.the_open(ANN)
    # 08:30 Auckland on Dec 3 is still Dec 2 in UTC: the server's due is a day early.
    world.at(datetime(2026, 12, 2, 19, 30, tzinfo=UTC))
    run(world, lambda e: e.backend.update_task(master, TaskChange(status=Status.COMPLETED)))
    assert world.the_open(ANN).due == date(2026, 12, 2) + timedelta(weeks=3)  # server: UTC
    result = run(world)
    assert [a.reason.split(";")[0] for a in result.plan.actions] == ["touched on 2026-12-03"]
    fixed = world.the_open(ANN)
    assert fixed.uid == master.uid  # the same task, moved, not a new one
    assert fixed.due == date(2026, 12, 3) + timedelta(weeks=3)
    assert run(world).plan.actions == []
    done = [t for t in world.tasks() if t.status is Status.COMPLETED]
    assert len(done) == 1


def test_touch_on_an_earlier_day_wins_over_the_servers_stamp(world: World) -> None:
    run(world)
    world.at(datetime(2026, 12, 10, 1, 0, tzinfo=UTC))

    def touch(engine: Engine) -> Any:
        contact = engine.roster.get(ANN)
        assert contact is not None
        return engine.touch(contact, date(2026, 12, 4), "lunch")

    run(world, touch)
    assert world.the_open(ANN).due == date(2026, 12, 4) + timedelta(weeks=3)
    engine = engine_for(world)
    assert [t.day for t in engine.state.touches(ANN)] == [date(2026, 12, 4)]
    engine.state.close()
    assert run(world).plan.actions == []


def test_snoozed_master_is_left_alone_until_completed(world: World) -> None:
    run(world)
    master = world.the_open(ANN)
    world.set_due_raw(master, date(2027, 2, 1))
    assert run(world).plan.actions == []
    master = world.the_open(ANN)
    world.at(datetime(2026, 12, 20, 22, 0, tzinfo=UTC))  # Dec 21 in Auckland
    run(world, lambda e: e.backend.update_task(master, TaskChange(status=Status.COMPLETED)))
    run(world)
    assert world.the_open(ANN).due == date(2026, 12, 21) + timedelta(weeks=3)


def test_contract_meta_survives_the_copy(world: World) -> None:
    run(world)
    master = world.the_open(ANN)
    run(world, lambda e: e.backend.update_task(master, TaskChange(status=Status.COMPLETED)))
    done = next(t for t in world.tasks() if t.status is Status.COMPLETED)
    assert done.contact_id == ANN and done.uid != master.uid
    assert replace(done.meta) == master.meta
