"""The daemon's cycle: failures are logged and retried with back-off, the daemon
keeps running, and it converges when the backend is back."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kit import BASE_CONFIG, World

from kit_sync.backends.base import BackendUnavailable, Throttled
from kit_sync.daemon import Daemon
from kit_sync.model import Touch


class Flaky:
    """Wraps a real backend; the first `fail` listings raise `error`."""

    def __init__(self, inner: Any, fail: int, error: Exception) -> None:
        self.inner = inner
        self.fail = fail
        self.error = error
        self.regenerates_itself = inner.regenerates_itself

    def fetch_listing(self) -> Any:
        if self.fail > 0:
            self.fail -= 1
            raise self.error
        return self.inner.fetch_listing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, copy.deepcopy(BASE_CONFIG))


def daemon_for(world: World, fail: int, error: Exception) -> Daemon:
    engine = world.engine()
    engine.backend = Flaky(engine.backend, fail, error)  # type: ignore[assignment]
    return Daemon(engine, engine.config)


def test_failing_cycles_back_off_and_recover(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemon_for(world, 2, BackendUnavailable("server down (connection refused)"))
    with caplog.at_level(logging.ERROR, logger="kit_sync"):
        daemon.cycle()
    assert daemon.failures == 1
    assert "sync failed: server down (connection refused); retrying in 30 s" in caplog.text
    assert not world.folder.exists() or not list(world.folder.glob("*.ics"))
    # During the back-off the interval job does nothing.
    daemon.cycle()
    assert daemon.failures == 1
    # When the retry time comes, it tries again; fails; waits twice as long.
    daemon.not_before = datetime.now(UTC) - timedelta(seconds=1)
    daemon.cycle()
    assert daemon.failures == 2
    assert daemon.backoff_seconds(None) == 60
    # The backend is back: the next attempt converges and resets the back-off.
    daemon.not_before = datetime.now(UTC) - timedelta(seconds=1)
    daemon.cycle()
    assert daemon.failures == 0 and daemon.not_before is None
    assert len(world.open_tasks()) == 2
    last = daemon.engine.state.last_cycle()
    assert last is not None and last.ok
    daemon.engine.state.close()


def test_backoff_is_capped_and_honours_retry_after(world: World) -> None:
    daemon = daemon_for(world, 0, BackendUnavailable("x"))
    daemon.failures = 20
    assert daemon.backoff_seconds(None) == 3600  # sync.max_backoff default: 1 hour
    daemon.failures = 1
    assert daemon.backoff_seconds(120.0) == 120.0
    daemon.engine.state.close()


def test_throttled_waits_at_least_retry_after(world: World) -> None:
    daemon = daemon_for(world, 1, Throttled("429 Too Many Requests", retry_after=300))
    before = datetime.now(UTC)
    daemon.cycle()
    assert daemon.not_before is not None
    assert daemon.not_before - before >= timedelta(seconds=299)
    daemon.engine.state.close()


def test_internal_errors_do_not_kill_the_daemon(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemon_for(world, 1, RuntimeError("bug"))
    with caplog.at_level(logging.ERROR, logger="kit_sync"):
        daemon.cycle()
    assert daemon.failures == 1
    assert "internal error in a sync cycle" in caplog.text
    failed = daemon.engine.state.last_cycle()
    assert failed is not None and not failed.ok and "bug" in (failed.error or "")
    daemon.engine.state.close()


def test_stop_event_stops_a_cycle_between_actions(world: World) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"] = [{"name": f"P{i}", "every": "2 weeks"} for i in range(50)]
    world.write_config(data)
    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    # The local backend creates in batches: the cycle stops between two of them.
    engine.backend.batch_size = 5  # type: ignore[misc]
    real_create = engine.backend.create_tasks
    made = {"n": 0}

    def create(news: Any) -> Any:
        made["n"] += len(news)
        if made["n"] == 10:
            daemon.stop.set()  # SIGTERM arrives mid-cycle
        return real_create(news)

    engine.backend.create_tasks = create  # type: ignore[method-assign]
    result = engine.run_cycle(stop=daemon.stop)
    assert result.stopped and made["n"] == 10
    engine.state.close()
    assert len(world.open_tasks()) == 10
    assert world.sync().counts["created"] == 40  # the rest is done by the next cycle


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """{"n": how many plans the engine built}."""
    import kit_sync.engine as engine_module

    counted = {"n": 0}
    real = engine_module.build_plan

    def counting(inputs: Any) -> Any:
        counted["n"] += 1
        return real(inputs)

    monkeypatch.setattr(engine_module, "build_plan", counting)
    return counted


def test_idle_cycles_skip_planning_until_something_changes(
    world: World, calls: dict[str, int]
) -> None:
    engine = world.engine()
    assert engine.run_cycle().counts["created"] == 2
    engine.run_cycle()  # finds nothing to do: remembered as idle
    planned = calls["n"]
    assert engine.run_cycle().plan.actions == []
    assert calls["n"] == planned  # skipped
    # A completion on the phone changes an etag: planned again, and regenerated.
    world.complete_raw(world.the_open("ann-example-com"), "COMPLETED:20261121T120000Z")
    assert engine.run_cycle().counts["regenerated"] == 1
    engine.run_cycle()
    planned = calls["n"]
    engine.run_cycle()
    assert calls["n"] == planned
    # A new day, a touch in the journal, a reloaded roster: each plans again.
    world.advance(days=1)
    engine.run_cycle()
    assert calls["n"] == planned + 1
    engine.state.add_touch(Touch("bob-example-com", world.today(), "cli", "cli:x"))
    assert engine.run_cycle().counts["updated"] == 1
    engine.run_cycle()
    planned = calls["n"]
    engine.reload(engine.config, engine.roster)
    engine.run_cycle()
    assert calls["n"] == planned + 1
    engine.state.close()


def test_an_idle_listing_is_recognised_by_value_not_only_by_identity(
    world: World, monkeypatch: pytest.MonkeyPatch, calls: dict[str, int]
) -> None:
    """A backend that builds new task objects each listing (same uids and etags, in
    another order) is idle too; one changed etag, or one task listed twice instead
    of two tasks, is not."""
    import dataclasses

    engine = world.engine()
    engine.run_cycle()
    engine.run_cycle()  # idle: remembered
    inner = engine.backend.fetch_listing
    listed = inner()
    copies = {"on": True, "edit": None}

    def fetch_listing() -> Any:
        listing = inner()
        if copies["on"]:  # new objects, in another order
            listing.tasks = [dataclasses.replace(t) for t in reversed(listing.tasks)]
        if copies["edit"] is not None:
            listing.tasks = copies["edit"]
        return listing

    engine.backend.fetch_listing = fetch_listing  # type: ignore[method-assign]
    planned = calls["n"]
    assert engine.run_cycle().idle
    assert engine.run_cycle().idle
    assert calls["n"] == planned  # equal uids and etags: not planned again
    a, b = sorted(listed.tasks, key=lambda t: t.uid)
    copies["edit"] = [a, dataclasses.replace(b, etag=b.etag + "x")]
    engine.run_cycle()
    assert calls["n"] == planned + 1  # a changed etag is planned
    copies["edit"] = None
    engine.run_cycle()  # idle again, remembered
    planned = calls["n"]
    copies["edit"] = [a, a]
    engine.run_cycle()
    assert calls["n"] > planned  # the same count of tasks, not the same tasks
    engine.state.close()


def test_daemon_picks_up_roster_edits_and_keeps_the_last_good_config(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    daemon.cycle()
    assert len(world.open_tasks()) == 2
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"].append({"name": "Cleo Park", "email": "cleo@example.com", "tier": "core"})
    world.write_config(data)
    daemon.cycle()
    assert len(world.open_tasks("cleo-example-com")) == 1
    # A half-edited, broken file: reported, nothing changes, the old roster stays.
    world.config_path.write_text(world.config_path.read_text() + "contacts: [oops\n")
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        daemon.cycle()
    assert "the config changed but cannot be used" in caplog.text
    opens = [t for t in daemon.engine.backend.fetch_listing().tasks if t.status.value == "open"]
    assert len(opens) == 3
    # Settings read at start-up need a restart, and the daemon says so.
    data["sync"] = {"every": "5 minutes"}
    data["contacts"] = data["contacts"][:2]
    world.write_config(data)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kit_sync"):
        daemon.cycle()
    assert "sync changed in config.yaml: restart kit-sync to apply that" in caplog.text
    assert world.open_tasks("cleo-example-com") == []  # the roster edit is applied
    daemon.engine.state.close()
