"""The README's two commands: the run command works on the example config, and
.ci/run calls exactly the test command."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("---", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", head, flags=re.S)


def test_readme_starts_with_run_and_test_commands() -> None:
    run, test = readme_commands()
    assert run.endswith("kit-sync --config config.example.yaml run")
    assert "pip install ." in run
    assert test == "bash scripts/test.sh"
    ci = (ROOT / ".ci" / "run").read_text()
    assert [ln for ln in ci.splitlines() if ln and not ln.startswith(("#", "set ", "cd "))] == [
        test
    ]


def test_example_config_runs_as_the_daemon(tmp_path: Path) -> None:
    # The run command's last step, on a copy of the example config (so the test does
    # not write into the checkout): tasks appear in ./kit-data/tasks, SIGTERM stops it.
    shutil.copy(ROOT / "config.example.yaml", tmp_path / "config.example.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit_sync", "--config", "config.example.yaml", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tasks = tmp_path / "kit-data" / "tasks"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if tasks.is_dir() and len(list(tasks.glob("*.ics"))) == 10:
                break
            time.sleep(0.1)
        # ten contacts, one paused; and one birthday task (one contact has a birthday)
        assert len(list(tasks.glob("*.ics"))) == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "kit-sync stopped" in err
    assert (tmp_path / "kit-data" / "state.sqlite").exists()
