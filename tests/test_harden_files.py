"""Hardening (issue 11): special and oversized files, hostile YAML.

Only regular files are read, without blocking and up to a cap (kit_sync.files);
YAML aliases and nesting are bounded (kit_sync.yamlsrc). Each test failed on the
main of 2026-12-02 (7343a71): a hang, a MemoryError or a RecursionError traceback.
The commands run as real processes with a memory cap, so a regression fails the
test instead of the machine."""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from kit import BASE_CONFIG, World

from kit_sync.files import MAX_ITEM_BYTES

ANN = "ann-example-com"
BOB = "bob-example-com"


def kit(world_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`kit-sync ARGS` in a process limited to 1 GB of memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_SYNC")}
    return subprocess.run(
        [sys.executable, "-m", "kit_sync", *args],
        cwd=world_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path, copy.deepcopy(BASE_CONFIG))
    w.folder.mkdir()
    return w


# --- 7: special files in the task folder ----------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "too-large"])
def test_a_special_or_huge_file_in_the_task_folder_is_skipped_and_reported(
    world: World, kind: str
) -> None:
    odd = world.folder / "x.ics"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "dev-zero":
        odd.symlink_to("/dev/zero")
    elif kind == "folder":
        odd.mkdir()
    else:
        with odd.open("wb") as fh:
            fh.write(b"BEGIN:VCALENDAR\r\n")
            fh.truncate(MAX_ITEM_BYTES + 1)
    done = kit(world.dir, "--config", str(world.config_path), "sync")
    assert done.returncode == 0, done.stderr
    assert "created 2," in done.stdout
    assert {t.contact_id for t in world.open_tasks()} == {ANN, BOB}
    if kind != "folder":  # a folder named x.ics is none of kit-sync's business
        says = {"fifo": "named pipe", "dev-zero": "a device", "too-large": "too large"}[kind]
        assert "x.ics" in done.stderr and says in done.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "too-large"])
def test_an_include_or_a_config_that_is_not_a_file_is_a_config_error(
    world: World, kind: str
) -> None:
    odd = world.dir / "people.csv"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "dev-zero":
        odd.symlink_to("/dev/zero")
    else:
        with odd.open("wb") as fh:
            fh.write(b"name,email\r\n")
            fh.truncate(100 * 1024 * 1024 + 1)
    data = copy.deepcopy(BASE_CONFIG)
    data["include"] = [{"path": "people.csv", "tier": "core"}]
    world.write_config(data)
    done = kit(world.dir, "--config", str(world.config_path), "check")
    assert done.returncode == 2, done.stderr
    assert "people.csv" in done.stderr and "Traceback" not in done.stderr
    done = kit(world.dir, "--config", str(odd), "check")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


# --- 8: hostile YAML ------------------------------------------------------------------------

LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["contacts: *a9"]
)

MERGES = "\n".join(
    ["m0: &m0 {x: 1, y: 2}"]
    + [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}, *m{i - 1}]}}" for i in range(1, 30)]
    + ["contacts: [*m29]"]
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (LAUGHS, "expand to more than"),
        (MERGES, "expand to more than"),
        ("contacts: " + "[" * 5000 + "]" * 5000, "nested deeper than"),
        ("contacts:\n" + "- " * 3000 + "x\n", "nested deeper than"),
    ],
    ids=["billion-laughs", "merge-keys", "5000-flow-levels", "3000-block-levels"],
)
def test_yaml_bombs_are_config_errors(tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert len(text) < 300_000
    done = kit(tmp_path, "--config", str(config), "check", timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "config.yaml" in done.stderr and says in done.stderr
    assert "Traceback" not in done.stderr


def test_yaml_merge_keys_and_aliases_still_work() -> None:
    from kit_sync.yamlsrc import load_yaml

    text = (
        "base: &base {every: 6 weeks, channel: call}\n"
        "more: &more {channel: lunch, tier: inner}\n"
        "contacts:\n"
        "- {<<: *base, name: Cid Poe}\n"
        "- <<: [*more, *base]\n"
        "  name: Dee Roe\n"
        "  every: 1 week\n"
        "- {name: Eve, tags: &t [a, b]}\n"
        "- {name: Fay, tags: *t}\n"
    )
    located = load_yaml(text)
    contacts = located.data["contacts"]
    assert contacts[0] == {"every": "6 weeks", "channel": "call", "name": "Cid Poe"}
    # the first merged mapping wins over the later one, the own keys over both
    assert contacts[1] == {
        "every": "1 week",
        "channel": "lunch",
        "tier": "inner",
        "name": "Dee Roe",
    }
    assert contacts[3]["tags"] == ["a", "b"]
    assert located.line_of(("contacts", 1, "every")) == 7
    assert located.problems == []
