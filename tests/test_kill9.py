"""DESIGN rule 6: kill -9 at any instant while provisioning, then a normal run:
exactly one open task per contact, no duplicates, no lost completion."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from kit_sync.backends.local import LocalBackend
from kit_sync.model import Status

N = 300
ROUNDS = 20


def write_config(folder: Path) -> Path:
    config = {
        "timezone": "Europe/Berlin",
        "backend": {"type": "local", "path": "tasks"},
        "state": "state.sqlite",
        "tiers": {"wide": {"every": "quarterly"}},
        "contacts": [
            {"name": f"Person {i:03d}", "email": f"p{i}@example.com", "tier": "wide"}
            for i in range(N)
        ],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sync_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "kit_sync", "--quiet", "--config", str(config), "sync"]


def count_ics(folder: Path) -> int:
    try:
        return sum(1 for n in os.listdir(folder) if n.endswith(".ics"))
    except FileNotFoundError:
        return 0


def kill_when(config: Path, tasks: Path, at_files: int, rng: random.Random) -> None:
    """Start a sync and SIGKILL it once `at_files` task files exist (or at a random
    moment during start-up when at_files is 0)."""
    proc = subprocess.Popen(sync_cmd(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    if at_files == 0:
        time.sleep(rng.uniform(0.05, 0.6))
    else:
        while count_ics(tasks) < at_files and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def assert_one_open_each(tasks: Path) -> None:
    from zoneinfo import ZoneInfo

    backend = LocalBackend(type("C", (), {"path": tasks})(), ZoneInfo("Europe/Berlin"))
    listing = backend.fetch_listing()
    assert listing.problems == []
    opens = Counter(t.contact_id for t in listing.tasks if t.status is Status.OPEN)
    assert len(opens) == N
    assert set(opens.values()) == {1}
    leftovers = [n for n in os.listdir(tasks) if not n.endswith(".ics")]
    assert all(n.startswith(".kit-sync-tmp-") for n in leftovers)


@pytest.mark.slow
def test_kill_minus_9_while_provisioning(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    killed_midway = 0
    for round_ in range(ROUNDS):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        config = write_config(folder)
        tasks = folder / "tasks"
        # Two kills at random points, sometimes with the state DB lost in between.
        kill_when(config, tasks, rng.choice([0, rng.randint(1, N - 1)]), rng)
        kill_when(config, tasks, rng.randint(min(count_ics(tasks), N - 1), N - 1), rng)
        if rng.random() < 0.3:
            for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
                (folder / name).unlink(missing_ok=True)
        done = subprocess.run(
            sync_cmd(config), capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        assert_one_open_each(tasks)
        killed_midway += 0 < created_before_final(done.stdout) < N
        again = subprocess.run(
            sync_cmd(config), capture_output=True, text=True, timeout=120, check=False
        )
        assert again.returncode == 0
        assert "created 0, regenerated 0, updated 0, cancelled 0, failed 0" in again.stdout
    # The kills really landed mid-provisioning (the final run had work left).
    assert killed_midway >= ROUNDS // 2


def created_before_final(stdout: str) -> int:
    return int(stdout.split("created ")[1].split(",")[0])


@pytest.mark.slow
def test_kill_minus_9_while_regenerating_keeps_every_completion(tmp_path: Path) -> None:
    """Complete 100 tasks as a phone would, kill the regenerating sync midway,
    re-run: each completed contact has one open task due from its completion day."""
    config = write_config(tmp_path)
    tasks = tmp_path / "tasks"
    subprocess.run(sync_cmd(config), check=True, capture_output=True, timeout=120)
    files = sorted(tasks.glob("*.ics"))[:100]
    for path in files:
        text = path.read_bytes().decode()
        text = text.replace("STATUS:NEEDS-ACTION", "STATUS:COMPLETED\r\nCOMPLETED:20261120T230000Z")
        path.write_bytes(text.encode())
    rng = random.Random(7)
    kill_when(config, tasks, N + rng.randint(1, 99), rng)
    subprocess.run(sync_cmd(config), check=True, capture_output=True, timeout=120)
    assert_one_open_each(tasks)
    from datetime import date
    from zoneinfo import ZoneInfo

    backend = LocalBackend(type("C", (), {"path": tasks})(), ZoneInfo("Europe/Berlin"))
    listing = backend.fetch_listing().tasks
    done = {t.contact_id for t in listing if t.status is Status.COMPLETED}
    assert len(done) == 100
    for t in listing:
        if t.status is Status.OPEN and t.contact_id in done:
            # 23:00 UTC on Nov 20 is Nov 21 in Berlin; quarterly -> Feb 21.
            assert t.due == date(2027, 2, 21)
