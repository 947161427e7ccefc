"""The local backend's listing cache: a file is parsed again only when it changed, and
every kind of change is seen, including edits that keep the size and the mtime's
second, and a file replaced by a rename."""

from __future__ import annotations

import copy
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from kit import BASE_CONFIG, World

from kit_sync.backends import ical, local, taskjson
from kit_sync.model import KitTask


@pytest.fixture
def world(tmp_path: Path) -> World:
    config = copy.deepcopy(BASE_CONFIG)
    config["contacts"] = [
        {"name": f"Person {i}", "email": f"p{i}@example.com", "tier": "inner"} for i in range(6)
    ]
    return World(tmp_path, config)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files parsed (task_from_ical calls), in order."""
    seen: list[str] = []
    real = ical.task_from_ical

    def counted(data: bytes, href: str, etag: str) -> Any:
        seen.append(href)
        return real(data, href, etag)

    monkeypatch.setattr(ical, "task_from_ical", counted)
    return seen


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a stat key at once (in real use only one older than RACY_NS is trusted),
    so these tests see what the key alone catches."""
    monkeypatch.setattr(local, "RACY_NS", 0)


def listed(world: World) -> dict[str, KitTask]:
    return {t.href: t for t in world.tasks()}


def test_a_first_sync_parses_nothing_back_and_an_unchanged_folder_is_not_parsed(
    world: World, parses: list[str]
) -> None:
    result = world.sync()
    assert result.counts["created"] == 6
    assert parses == []  # created tasks are built from what was written
    before = listed(world)  # a new engine and backend: the cache is in the state DB
    again = listed(world)
    assert parses == []
    assert before == again and len(before) == 6
    # What the cache gives is what parsing the files gives.
    for href, task in before.items():
        data = (world.folder / href).read_bytes()
        assert ical.task_from_ical(data, href, local.etag_of(data)) == task


def _same_size_edit(path: Path) -> None:
    """Move the due date to another day: same length, so the same size."""
    data = path.read_bytes()
    start = data.index(b"DUE;VALUE=DATE:") + len(b"DUE;VALUE=DATE:")
    path.write_bytes(data[:start] + b"20300101" + data[start + 8 :])


@pytest.mark.usefixtures("trusted")
def test_an_edit_keeping_size_and_mtime_second_is_seen(world: World, parses: list[str]) -> None:
    world.sync()
    task = sorted(listed(world).values(), key=lambda t: t.href)[0]
    path = world.folder / task.href
    st = path.stat()
    _same_size_edit(path)
    # Same second, another nanosecond (what a tool that keeps seconds would leave).
    other_ns = st.st_mtime_ns // 10**9 * 10**9 + (st.st_mtime_ns + 1) % 10**9
    os.utime(path, ns=(st.st_atime_ns, other_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino) == (st.st_size, st.st_ino)
    assert after.st_mtime_ns // 10**9 == st.st_mtime_ns // 10**9
    assert listed(world)[task.href].due == date(2030, 1, 1)
    assert parses == [task.href]


@pytest.mark.usefixtures("trusted")
def test_an_edit_restoring_the_exact_mtime_is_seen(world: World, parses: list[str]) -> None:
    world.sync()
    task = sorted(listed(world).values(), key=lambda t: t.href)[1]
    path = world.folder / task.href
    st = path.stat()
    _same_size_edit(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `touch -r` or rsync -t would
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    assert listed(world)[task.href].due == date(2030, 1, 1)  # the ctime moved
    assert parses == [task.href]


@pytest.mark.usefixtures("trusted")
def test_a_file_replaced_by_a_rename_is_seen(world: World, parses: list[str]) -> None:
    world.sync()
    task = sorted(listed(world).values(), key=lambda t: t.href)[2]
    path = world.folder / task.href
    st = path.stat()
    data = path.read_bytes().replace(b"SUMMARY:Keep in touch", b"SUMMARY:Stay in touch")
    assert len(data) == st.st_size
    other = world.folder / ".editor-save.tmp"
    other.write_bytes(data)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, path)  # how editors and todoman save
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert after.st_ino != st.st_ino
    assert listed(world)[task.href].summary.startswith("Stay in touch")
    assert parses == [task.href]


def test_a_file_touched_but_unchanged_is_read_not_parsed(world: World, parses: list[str]) -> None:
    world.sync()
    task = sorted(listed(world).values(), key=lambda t: t.href)[3]
    path = world.folder / task.href
    os.utime(path, ns=(0, 10**18))
    assert listed(world)[task.href] == task
    assert parses == []


def test_deleted_and_new_files_are_seen(world: World, parses: list[str]) -> None:
    world.sync()
    tasks = sorted(listed(world).values(), key=lambda t: t.href)
    (world.folder / tasks[0].href).unlink()
    copy_of = world.folder / "copy.ics"
    copy_of.write_bytes((world.folder / tasks[1].href).read_bytes())
    now = listed(world)
    assert tasks[0].href not in now
    assert now["copy.ics"].uid == tasks[1].uid
    assert parses == ["copy.ics"]


def test_new_parsing_code_parses_everything_again(
    world: World, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.sync()
    listed(world)
    monkeypatch.setattr(taskjson, "_version", "some other reading code")
    assert len(listed(world)) == 6
    assert sorted(parses) == sorted(p.name for p in world.folder.glob("*.ics"))
    parses.clear()
    listed(world)
    assert parses == []


def test_a_batch_of_creates_fsyncs_the_folder_once_per_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file is fsynced; the folder once per batch of creates, not once per file."""
    folder_syncs = []
    real_fsync_dir = local.LocalBackend._fsync_dir

    def counted(self: local.LocalBackend) -> None:
        folder_syncs.append(len(list(self.path.glob("*.ics"))))
        real_fsync_dir(self)

    monkeypatch.setattr(local.LocalBackend, "_fsync_dir", counted)
    monkeypatch.setattr(local.LocalBackend, "batch_size", 4)
    assert world.sync().counts["created"] == 6
    assert folder_syncs == [4, 6]  # after each batch, with all of its files in place
