"""The engine's batched creates (`create_tasks`, used by the Graph backend for
`$batch`), pinned on the local backend with a small wrapper that adds the method."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kit import BASE_CONFIG, World

from kit_sync.app import load
from kit_sync.backends.base import AlreadyExists, BackendError, BackendUnavailable, ItemRejected
from kit_sync.backends.local import LocalBackend
from kit_sync.engine import Engine
from kit_sync.model import KitTask, NewTask, Status
from kit_sync.state import State


class BatchingLocal(LocalBackend):
    """The local backend plus `create_tasks`, recording each call."""

    batch_size: ClassVar[int] = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []
        self.reject: set[str] = set()  # contact ids refused
        self.exists: set[str] = set()  # contact ids answered AlreadyExists
        self.down = False

    def create_tasks(self, news: list[NewTask]) -> list[KitTask | BackendError]:
        if self.down:
            raise BackendUnavailable("the server is down")
        self.calls.append([n.meta.contact_id for n in news])
        out: list[KitTask | BackendError] = []
        for new in news:
            if new.meta.contact_id in self.reject:
                out.append(ItemRejected(f"refused {new.meta.contact_id}"))
            elif new.meta.contact_id in self.exists:
                self.exists.discard(new.meta.contact_id)
                self.create_task(new)  # another client was faster
                out.append(AlreadyExists(f"{new.uid} exists"))
            else:
                try:
                    out.append(self.create_task(new))
                except BackendError as exc:
                    out.append(exc)
        return out


CONTACTS = [{"name": f"Person {n}", "tier": "inner"} for n in range(5)]


class BatchWorld(World):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, {**BASE_CONFIG, "contacts": CONTACTS})
        self.backend: BatchingLocal | None = None

    def engine(self) -> Engine:
        loaded = load(self.config_path)
        backend = BatchingLocal(loaded.config.backend, loaded.tz, clock=lambda: self.now)
        if self.backend is not None:
            backend.reject, backend.exists, backend.down = (
                self.backend.reject,
                self.backend.exists,
                self.backend.down,
            )
        self.backend = backend
        state = State(loaded.config.state_path())
        return Engine(
            loaded.config, loaded.roster, backend, state, loaded.tz, clock=lambda: self.now
        )

    def actions(self) -> list[tuple[str, str, str]]:
        state = State(self.dir / "state.sqlite")
        try:
            rows = state.db.execute("SELECT kind, contact_id, status FROM actions").fetchall()
            return [(r["kind"], r["contact_id"], r["status"]) for r in rows]
        finally:
            state.close()


@pytest.fixture
def world(tmp_path: Path) -> BatchWorld:
    return BatchWorld(tmp_path)


def test_creates_go_through_create_tasks_in_chunks(world: BatchWorld) -> None:
    result = world.sync()
    assert world.backend is not None
    assert [len(c) for c in world.backend.calls] == [2, 2, 1]
    assert result.counts["created"] == 5 and result.ok
    assert len(world.open_tasks()) == 5
    assert sorted(s for _, _, s in world.actions()) == ["done"] * 5
    # A second cycle has nothing to create.
    world.sync()
    assert world.backend.calls == []


def test_one_refused_item_fails_alone(world: BatchWorld) -> None:
    world.engine()
    assert world.backend is not None
    world.backend.reject.add("person-2")
    result = world.sync()
    assert result.counts["created"] == 4
    assert result.counts["failed"] == 1
    assert len(result.failures) == 1 and "person-2" in result.failures[0]
    assert ("created", "person-2", "failed") in world.actions()
    world.backend.reject.clear()
    result = world.sync()
    assert result.counts["created"] == 1 and result.ok
    assert {t.contact_id for t in world.open_tasks()} == {f"person-{n}" for n in range(5)}


def test_already_exists_is_replanned_without_a_duplicate(world: BatchWorld) -> None:
    world.engine()
    assert world.backend is not None
    world.backend.exists.add("person-1")
    result = world.sync()
    assert result.ok
    assert ("created", "person-1", "retry") in world.actions()
    assert len(world.open_tasks("person-1")) == 1
    assert len(world.open_tasks()) == 5


def test_backend_down_marks_the_chunk_failed_and_raises(world: BatchWorld) -> None:
    world.engine()
    assert world.backend is not None
    world.backend.down = True
    with pytest.raises(BackendUnavailable):
        world.sync()
    statuses = {s for _, _, s in world.actions()}
    assert statuses == {"failed"}
    assert world.open_tasks() == []
    world.backend.down = False
    assert world.sync().counts["created"] == 5
    assert all(t.status is Status.OPEN for t in world.tasks())


def test_stop_between_chunks(world: BatchWorld) -> None:
    engine = world.engine()
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        stop.set()  # asked to stop after the first chunk

    try:
        result = engine.run_cycle(progress=progress, stop=stop)
    finally:
        engine.state.close()
    assert result.stopped
    assert seen == [(2, 5)]
    assert len(world.open_tasks()) == 2
    assert world.sync().counts["created"] == 3
