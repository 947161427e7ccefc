"""Health: `kit-sync health`, the daemon's /healthz and /metrics, and `kit-sync run`
as a process that starts, reports, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kit import BASE_CONFIG, World

from kit_sync.daemon import Daemon
from kit_sync.health import assess
from kit_sync.state import CycleRecord

# --- helpers (also used by test_logs.py and test_secrets.py) ---------------------------


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(capfd: pytest.CaptureFixture[str], *args: str) -> Ran:
    """Run the kit-sync CLI in this process (faster than a subprocess), capturing
    everything written to stdout/stderr, and restore logging afterwards."""
    from kit_sync.cli import main

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("kit_sync").level)
    capfd.readouterr()
    code: Any = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("kit_sync").setLevel(saved[2])
    out, err = capfd.readouterr()
    return Ran(int(code or 0), out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until `check()` is truthy (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric_values(text: str) -> dict[str, float]:
    """`name{labels}` -> value, from Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def break_backend(world: World) -> None:
    """The task folder disappears and a file takes its place: every listing fails."""
    world.folder.rename(world.dir / "tasks.away")
    world.folder.write_text("not a folder\n")


def mend_backend(world: World) -> None:
    world.folder.unlink()
    (world.dir / "tasks.away").rename(world.folder)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, copy.deepcopy(BASE_CONFIG))


def health(capfd: pytest.CaptureFixture[str], world: World, *args: str) -> Ran:
    return cli(capfd, "--config", str(world.config_path), "health", *args)


# --- the rule ------------------------------------------------------------------------

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=10)


def cycle(ago: timedelta, ok: bool = True, error: str | None = None) -> CycleRecord:
    end = NOW - ago
    counts = {"created": 1, "regenerated": 2, "failed": 0 if ok else 1}
    return CycleRecord("c1", end - timedelta(seconds=3), end, ok, counts, error)


@pytest.mark.parametrize(
    ("last", "healthy", "says"),
    [
        (None, False, "no sync cycle has finished yet"),
        (cycle(timedelta(minutes=1)), True, "created 1, regenerated 2"),
        (cycle(timedelta(minutes=29)), True, "29 min ago"),
        (cycle(timedelta(minutes=31)), False, "none finished within 0:30:00"),
        (cycle(timedelta(days=3)), False, "3 days ago"),
        (
            cycle(timedelta(seconds=5), ok=False, error="cannot reach the server"),
            False,
            "failed: cannot reach the server",
        ),
    ],
    ids=["never", "fresh", "just-in-time", "stale", "long-dead", "failed"],
)
def test_healthy_means_the_last_cycle_succeeded_within_three_intervals(
    last: CycleRecord | None, healthy: bool, says: str
) -> None:
    verdict = assess(last, EVERY, NOW)
    assert verdict.ok is healthy
    assert says in verdict.reason


# --- kit-sync health -------------------------------------------------------------------


def test_health_before_any_cycle_is_unhealthy(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    ran = health(capfd, world)
    assert ran.code == 1
    assert "unhealthy: no sync cycle has run yet" in ran.out
    assert not (world.dir / "state.sqlite").exists(), "health must not create the state file"


def test_health_after_a_successful_cycle(world: World, capfd: pytest.CaptureFixture[str]) -> None:
    world.sync()
    ran = health(capfd, world)
    assert ran.code == 0, ran.text
    assert ran.out.startswith("healthy: last sync cycle ")
    assert "created 2, regenerated 0" in ran.out
    as_json = json.loads(health(capfd, world, "--json").out)
    assert as_json["status"] == "healthy"
    assert as_json["last_cycle"]["counts"]["created"] == 2


def test_health_reflects_a_failing_backend_within_one_cycle(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    daemon.cycle()
    assert health(capfd, world).code == 0

    break_backend(world)
    daemon.cycle()  # one cycle
    ran = health(capfd, world)
    assert ran.code == 1
    assert "unhealthy: the last sync cycle" in ran.out
    assert "failed: cannot read the task folder" in ran.out
    verdict = json.loads(health(capfd, world, "--json").out)
    assert verdict["status"] == "unhealthy"
    assert verdict["last_cycle"]["ok"] is False

    mend_backend(world)
    daemon.not_before = None  # skip the back-off wait
    daemon.cycle()
    assert health(capfd, world).code == 0
    engine.state.close()


def test_health_is_unhealthy_when_no_cycle_succeeded_for_three_intervals(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    world.sync()

    def finished(ago: timedelta) -> None:
        stamp = (datetime.now(UTC) - ago).isoformat(timespec="seconds")
        with sqlite3.connect(world.dir / "state.sqlite") as db:
            db.execute("UPDATE cycles SET started = ?, finished = ?", (stamp, stamp))

    finished(timedelta(minutes=25))  # sync.every is 10 minutes
    assert health(capfd, world).code == 0
    finished(timedelta(minutes=35))
    ran = health(capfd, world)
    assert ran.code == 1
    assert "one is expected every 0:10:00, and none finished within 0:30:00" in ran.out


def test_health_follows_sync_every(world: World, capfd: pytest.CaptureFixture[str]) -> None:
    world.edit_config(sync={"every": "1 hour"})
    world.sync()
    with sqlite3.connect(world.dir / "state.sqlite") as db:
        stamp = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
        db.execute("UPDATE cycles SET finished = ?", (stamp,))
    assert health(capfd, world).code == 0


def test_health_never_exits_2_even_for_a_broken_config(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    """Docker reserves exit code 2 for health checks; a config error is unhealthy."""
    world.config_path.write_text("timezone: Mars/Olympus\n")
    ran = health(capfd, world)
    assert ran.code == 1
    assert "unhealthy: cannot check:" in ran.out
    assert "timezone" in ran.out


def test_health_listen_must_be_host_and_port(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    world.edit_config(health={"listen": "8765"})
    ran = cli(capfd, "--config", str(world.config_path), "check")
    assert ran.code == 2
    assert "health.listen: listen '8765' is not host:port" in ran.err


# --- the daemon's /healthz and /metrics --------------------------------------------------


def test_backend_calls_are_timed_by_the_engine_and_the_backend_stays_itself(
    world: World,
) -> None:
    engine = world.engine()
    backend = engine.backend
    calls: list[str] = []

    @contextmanager
    def timing(operation: str) -> Iterator[None]:
        calls.append(operation)
        yield

    engine.timing = timing
    assert engine.run_cycle().counts["created"] == 2
    assert engine.backend is backend  # nothing wraps or replaces the backend
    # The local backend creates in batches (one folder fsync per batch).
    assert calls.count("create_tasks") == 1 and calls[0] == "fetch_listing"
    engine.state.close()


@pytest.fixture
def running_daemon(world: World) -> Iterator[tuple[Daemon, str]]:
    """`Daemon.run_forever` in this (main) thread's place: it runs in a helper
    thread here would lose signal handling, so the test body runs in the helper."""
    port = free_port()
    world.edit_config(sync={"every": "1 second"}, health={"listen": f"127.0.0.1:{port}"})
    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    yield daemon, f"http://127.0.0.1:{port}"
    engine.state.close()


def test_the_daemon_serves_healthz_and_metrics(
    world: World, running_daemon: tuple[Daemon, str]
) -> None:
    daemon, base = running_daemon
    seen: dict[str, Any] = {}

    def body() -> None:
        try:
            wait_for(lambda: http_get(base + "/healthz")[0] == 200, "a healthy /healthz")
            seen["healthy"] = json.loads(http_get(base + "/healthz")[1])
            seen["metrics"] = metric_values(http_get(base + "/metrics")[1])
            seen["404"] = http_get(base + "/nothing")[0]
            break_backend(world)
            wait_for(lambda: http_get(base + "/healthz")[0] == 503, "an unhealthy /healthz")
            seen["unhealthy"] = json.loads(http_get(base + "/healthz")[1])
            seen["failing"] = metric_values(http_get(base + "/metrics")[1])
            mend_backend(world)
            daemon.not_before = None  # skip the back-off wait
            wait_for(lambda: http_get(base + "/healthz")[0] == 200, "recovery")
        except BaseException as exc:  # reported by the main thread
            seen["error"] = exc
        finally:
            daemon.stop.set()

    helper = threading.Thread(target=body)
    helper.start()
    daemon.run_forever()
    helper.join()
    if "error" in seen:
        raise seen["error"]

    assert seen["healthy"]["status"] == "healthy"
    assert seen["healthy"]["last_cycle"]["counts"]["created"] == 2
    m = seen["metrics"]
    assert m["kit_sync_cycles_total"] >= 1
    assert m["kit_sync_cycle_failures_total"] == 0
    assert m["kit_sync_tasks_created_total"] == 2
    assert m["kit_sync_tasks_regenerated_total"] == 0
    # The local backend writes creates in batches (one folder fsync per batch).
    assert m['kit_sync_backend_request_seconds_count{operation="create_tasks"}'] == 1
    assert m['kit_sync_backend_request_seconds_count{operation="fetch_listing"}'] >= 1
    assert m["kit_sync_healthy"] == 1
    assert m["kit_sync_last_success_timestamp_seconds"] > 0
    assert seen["404"] == 404

    assert seen["unhealthy"]["status"] == "unhealthy"
    assert "cannot read the task folder" in seen["unhealthy"]["reason"]
    f = seen["failing"]
    assert f["kit_sync_cycle_failures_total"] >= 1
    assert f['kit_sync_backend_errors_total{operation="fetch_listing"}'] >= 1
    assert f["kit_sync_tasks_created_total"] == 2  # nothing was created twice
    assert f["kit_sync_healthy"] == 0
    # The server is gone after the daemon stopped.
    assert http_get(base + "/healthz")[0] == 0


def test_a_busy_health_port_is_a_clear_error(
    world: World, running_daemon: tuple[Daemon, str]
) -> None:
    from kit_sync.errors import UsageError

    daemon, base = running_daemon
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(UsageError, match=f"cannot serve health.listen 127.0.0.1:{port}"):
            daemon.run_forever()


# --- `kit-sync run` as a process -----------------------------------------------------------


def start_run(world: World, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = world.dir / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_SYNC")}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "kit_sync", "--log-format", "json", *extra),
            *("--config", str(world.config_path), "run"),
        ],
        cwd=world.dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return proc, log


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line is one JSON object


def stop(proc: subprocess.Popen[bytes], signum: int) -> int:
    proc.send_signal(signum)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"kit-sync run did not stop within 10 s of {signum}") from None


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_stops_cleanly_on_a_signal(world: World, signum: signal.Signals) -> None:
    world.edit_config(sync={"every": "1 hour"})
    proc, log = start_run(world)
    try:
        wait_for(lambda: len(list(world.folder.glob("*.ics"))) == 2, "two tasks")
        # (the raw text while it is written: the last line may be unfinished)
        wait_for(lambda: '"message": "cycle done' in log.read_text(), "the first cycle to end")
    finally:
        code = stop(proc, signum)
    assert code == 0
    records = json_lines(log)
    messages = [r["message"] for r in records]
    assert f"received {signum.name}; stopping" in messages
    assert messages[-1] == "kit-sync stopped"
    assert not [r for r in records if r["level"] in ("error", "critical")]


@pytest.mark.slow
def test_run_reports_a_failing_backend_within_one_cycle(world: World) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world.edit_config(sync={"every": "2 seconds"}, health={"listen": f"127.0.0.1:{port}"})
    proc, log = start_run(world)
    try:
        wait_for(lambda: http_get(base + "/healthz")[0] == 200, "a healthy /healthz")
        metrics = metric_values(http_get(base + "/metrics")[1])
        assert metrics["kit_sync_tasks_created_total"] == 2

        break_backend(world)
        wait_for(lambda: http_get(base + "/healthz")[0] == 503, "an unhealthy /healthz")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_SYNC")}
        done = subprocess.run(
            [sys.executable, "-m", "kit_sync", "--config", str(world.config_path), "health"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "unhealthy: the last sync cycle" in done.stdout
        assert "cannot read the task folder" in done.stdout
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0
    records = json_lines(log)
    failures = [r for r in records if r["message"].startswith("sync failed")]
    assert failures and "cannot read the task folder" in failures[0]["message"]
