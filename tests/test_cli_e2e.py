"""A few end-to-end runs of the installed command in a subprocess (the rest of the CLI
is tested in-process): SIGHUP makes the daemon reload its config at once and keep
running, and `health` reports a config on disk that no longer loads, while the daemon
still syncs on the last good one, as degraded with the file:line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow  # real processes: the full run, not --fast

CONFIG: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "backend": {"type": "local", "path": "tasks"},
    "state": "state.sqlite",
    # Far longer than the test: only SIGHUP can make it reload in time.
    "sync": {"every": "6 hours"},
    "tiers": {"inner": {"every": "3 weeks", "channel": "lunch"}},
    "contacts": [
        {"name": "Ann Lee", "email": "ann@example.com", "tier": "inner"},
        {"name": "Bob Stone", "id": "bob", "tier": "inner"},
    ],
}


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KIT_")}


def kit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", str(home / "config.yaml"), *args],
        capture_output=True,
        text=True,
        cwd=home,
        env=env(),
        timeout=300,
        check=False,
    )


def wait_for_line(proc: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    """Read the daemon's log until `text` appears (bounded by the process ending)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"the daemon ended before logging {text!r}:\n{''.join(seen)}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return tmp_path


def test_sighup_reloads_the_config_now_and_the_daemon_keeps_running(home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit_sync", "--config", "config.yaml", "run"],
        cwd=home,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, "cycle done", seen)
        assert len(list((home / "tasks").glob("*.ics"))) == 2
        data = dict(CONFIG, contacts=[*CONFIG["contacts"], {"name": "Cy", "tier": "inner"}])
        (home / "config.yaml").write_text(yaml.safe_dump(data))
        proc.send_signal(signal.SIGHUP)
        wait_for_line(proc, "config reloaded: 3 contacts", seen)
        wait_for_line(proc, "cycle done", seen)
        assert len(list((home / "tasks").glob("*.ics"))) == 3
        # A second SIGHUP with nothing changed reloads again, and still does not stop it.
        proc.send_signal(signal.SIGHUP)
        wait_for_line(proc, "config reloaded: 3 contacts", seen)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, "".join(seen) + rest
    assert "kit-sync stopped" in rest


def test_health_calls_a_config_that_no_longer_loads_degraded_with_file_and_line(
    home: Path,
) -> None:
    assert kit(home, "sync").returncode == 0  # the last good config's cycle
    healthy = kit(home, "health")
    assert healthy.returncode == 0 and healthy.stdout.startswith("healthy: "), healthy.stdout
    # An edit that breaks the roster: one contact per line, so its line is known.
    broken = dict(CONFIG, contacts=[])
    text = yaml.safe_dump(broken).replace("contacts: []\n", "")
    text += "contacts:\n- {name: Ann Lee, email: ann@example.com, tier: inneer}\n"
    (home / "config.yaml").write_text(text)
    line = text.splitlines().index("- {name: Ann Lee, email: ann@example.com, tier: inneer}") + 1
    done = kit(home, "health")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("degraded: "), done.stdout
    assert f"config.yaml:{line}" in done.stdout, done.stdout
    assert "still syncing with the last config that loaded" in done.stdout
    as_json = json.loads(kit(home, "health", "--json").stdout)
    assert as_json["status"] == "degraded" and f"config.yaml:{line}" in as_json["reason"]
    # No cycle has run on any config: a config that does not load is unhealthy.
    (home / "state.sqlite").unlink()
    for extra in ("state.sqlite-wal", "state.sqlite-shm"):
        (home / extra).unlink(missing_ok=True)
    broken = kit(home, "health")
    assert broken.returncode == 1 and broken.stdout.startswith("unhealthy: cannot check")


def test_a_first_sync_on_a_terminal_shows_a_progress_bar_and_a_summary(home: Path) -> None:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit_sync", "--config", "config.yaml", "sync"],
        cwd=home,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    out, _ = proc.communicate(timeout=300)
    shown = b""
    try:
        while chunk := os.read(master, 65536):
            shown += chunk
    except OSError:  # the terminal closed with the process
        pass
    os.close(master)
    assert proc.returncode == 0
    assert b"syncing" in shown and b"2/2" in shown  # the bar, on the terminal (stderr)
    assert b"create bob" not in shown  # per-task lines only with -v
    lines = out.splitlines()
    assert lines[0] == "created 2, regenerated 0, updated 0, cancelled 0, failed 0"
    assert lines[1].startswith("next due: ")
    # In a pipe: no bar.
    (home / "config.yaml").write_text(
        yaml.safe_dump(
            dict(CONFIG, contacts=[*CONFIG["contacts"], {"name": "Cy", "tier": "inner"}])
        )
    )
    piped = kit(home, "sync")
    assert piped.returncode == 0 and "syncing" not in piped.stderr
