"""Interoperability with todoman, a real client of the vdir format: it lists our
tasks, completes one with `todo done`, and kit-sync regenerates from that day."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from kit import BASE_CONFIG, World

from kit_sync.cadence import local_day
from kit_sync.model import Status

TODO = shutil.which("todo") or str(Path(sys.executable).parent / "todo")


def todo(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    config = world.dir / "todoman.py"
    config.write_text(
        f'path = "{world.dir}/*"\n'
        'date_format = "%Y-%m-%d"\ntime_format = "%H:%M"\n'
        f'cache_path = "{world.dir}/todoman-cache.sqlite3"\n'
        'default_list = "tasks"\n'
    )
    env = dict(os.environ, TZ="Europe/Berlin")
    return subprocess.run(
        [TODO, "--config", str(config), "--porcelain", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    if not Path(TODO).exists():
        pytest.fail("todoman is not installed: the test dependencies are incomplete")
    return World(tmp_path, copy.deepcopy(BASE_CONFIG))


def test_todoman_lists_and_completes_kit_tasks(world: World) -> None:
    world.sync()
    listed = json.loads(todo(world, "list").stdout)
    summaries = sorted(t["summary"] for t in listed)
    assert summaries == ["Keep in touch with Ann Lee", "Keep in touch with Bob Stone"]
    ann = next(t for t in listed if t["summary"].endswith("Ann Lee"))
    assert ann["list"] == "tasks"

    todo(world, "done", str(ann["id"]))  # todoman stamps COMPLETED with its own clock
    completed = [t for t in world.tasks() if t.status is Status.COMPLETED]
    assert [t.contact_id for t in completed] == ["ann-example-com"]

    world.at(datetime.now(UTC))  # todoman's clock is the real one; so is kit-sync's
    result = world.sync()
    assert result.counts["regenerated"] == 1
    # The touch day is the day of todoman's stamp in the configured zone.
    nxt = world.the_open("ann-example-com")
    stamp = completed[0].completed
    assert stamp is not None
    assert nxt.due == local_day(stamp, ZoneInfo("Europe/Berlin")) + timedelta(weeks=3)
    # todoman sees the new task; the completed one is history.
    listed = json.loads(todo(world, "list").stdout)
    assert sorted(t["summary"] for t in listed) == sorted(summaries)
    # todoman kept our private properties when it rewrote the file.
    assert completed[0].meta.every == "P21D"
