"""The CLI's names, flags, outputs and exit codes (kept stable). In-process through
typer's CliRunner, except the checks of what a fresh process imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kit_sync.cli import app

CONFIG = {
    "timezone": "Europe/Berlin",
    "backend": {"type": "local", "path": "tasks"},
    "state": "state.sqlite",
    "tiers": {"inner": {"every": "3 weeks", "channel": "lunch", "priority": "high"}},
    "contacts": [
        {
            "name": "Ann Lee",
            "email": "ann@example.com",
            "tier": "inner",
            "notes": "Ask about Lisbon",
            "phone": "+1 555 0100",
        },
        {
            "name": "Ann Marsh",
            "email": "marsh@example.com",
            "every": "2 months",
            "channel": "email",
        },
        {"name": "Bob Stone", "id": "bob", "tier": "inner", "paused": True},
    ],
}


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, config: bool = True) -> Done:
    """The command in this process (typer's CliRunner), run from `tmp_path`."""
    argv = ["--config", str(tmp_path / "config.yaml")] if config else []
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KIT_")}
    overrides.update(env or {})
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, [*argv, *args], env=overrides)
    finally:
        os.chdir(before)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def home(tmp_path: Path, clock: object) -> Path:
    """A config in tmp_path; this process's clock at the `clock` fixture's instant."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return tmp_path


def test_help_does_not_import_backend_libraries() -> None:
    code = (
        "import sys; from kit_sync.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('exchangelib', 'caldav', 'msal', 'httpx') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "HEAVY []" in done.stdout
    assert "sync" in done.stdout and "touch" in done.stdout


def test_local_sync_does_not_import_backend_libraries(home: Path) -> None:
    code = (
        "import sys; from kit_sync.cli import main\n"
        f"try:\n    main(['--config', {str(home / 'config.yaml')!r}, 'sync'])\n"
        "except SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('exchangelib', 'caldav', 'msal') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=home,
    )
    assert "HEAVY []" in done.stdout


def test_check(home: Path) -> None:
    done = cli(home, "check")
    assert done.returncode == 0
    assert "3 contacts (2 active)" in done.stdout


def test_config_from_env_and_default_locations(home: Path) -> None:
    assert (
        cli(
            home, "check", config=False, env={"KIT_SYNC_CONFIG": str(home / "config.yaml")}
        ).returncode
        == 0
    )
    (home / "config.yaml").rename(home / "kit-sync.yaml")
    assert cli(home, "check", config=False, env={"HOME": str(home)}).returncode == 0
    (home / "kit-sync.yaml").unlink()
    done = cli(home, "check", config=False, env={"HOME": str(home)})
    assert done.returncode == 2 and "no config file found" in done.stderr


def test_dry_run_writes_nothing(home: Path) -> None:
    done = cli(home, "sync", "--dry-run")
    assert done.returncode == 0
    assert "would create Ann Lee (ann-example-com): new contact" in done.stdout
    assert "dry run: created 2, regenerated 0" in done.stdout
    assert not (home / "tasks").exists() or not list((home / "tasks").iterdir())


def test_sync_prints_counts(home: Path) -> None:
    done = cli(home, "sync")
    assert done.returncode == 0
    counts, summary = done.stdout.strip().splitlines()
    assert counts == "created 2, regenerated 0, updated 0, cancelled 0, failed 0"
    assert summary.startswith("next due: Ann ")


def test_status_json_has_exactly_the_documented_keys(home: Path) -> None:
    cli(home, "sync")
    done = cli(home, "status", "--json")
    assert done.returncode == 0
    rows = json.loads(done.stdout)
    keys = [
        "id",
        "name",
        "tier",
        "every",
        "channel",
        "last_touch",
        "next_due",
        "days_overdue",
        "state",
    ]
    assert all(list(r) == keys for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert by_id["bob"]["state"] == "paused" and by_id["bob"]["next_due"] is None
    ann = by_id["ann-example-com"]
    assert ann["state"] == "open" and ann["last_touch"] is None
    assert ann["every"] == "3 weeks" and ann["channel"] == "lunch"
    assert len(ann["next_due"]) == 10 and ann["days_overdue"] == 0
    assert "Ann Lee" in cli(home, "status").stdout


def test_touch_ambiguous_unknown_and_by_email(home: Path) -> None:
    cli(home, "sync")
    amb = cli(home, "touch", "ann")
    assert amb.returncode == 2
    assert "matches 2 contacts" in amb.stderr
    assert "ann-example-com" in amb.stderr and "marsh-example-com" in amb.stderr
    unknown = cli(home, "touch", "Zed")
    assert unknown.returncode == 2 and "no contact matches 'Zed'" in unknown.stderr
    bad_day = cli(home, "touch", "marsh@example.com", "--on", "2026-13-01")
    assert bad_day.returncode == 2 and "not a date" in bad_day.stderr
    done = cli(home, "touch", "marsh@example.com", "--on", "2026-10-31", "--note", "lunch")
    assert done.returncode == 0, done.stderr
    assert "touched Ann Marsh on 2026-10-31; next due 2026-12-31" in done.stdout
    rows = {r["id"]: r for r in json.loads(cli(home, "status", "--json").stdout)}
    assert rows["marsh-example-com"]["last_touch"] == "2026-10-31"
    assert rows["marsh-example-com"]["next_due"] == "2026-12-31"


def test_due_lists_who_to_contact_grouped_by_channel(home: Path) -> None:
    cli(home, "sync")
    cli(home, "touch", "Ann Lee", "--on", "2026-01-02")  # long overdue now
    done = cli(home, "due", "--within", "0")
    assert done.returncode == 0
    assert done.stdout.startswith("lunch (1)")
    assert "Ann Lee — " in done.stdout and "days overdue" in done.stdout
    assert "ann@example.com · +1 555 0100" in done.stdout
    assert "Ask about Lisbon" in done.stdout
    later = cli(home, "due", "--within", "120")
    assert "email (1)" in later.stdout and "Ann Marsh" in later.stdout


def test_backend_unreachable_exits_3(home: Path) -> None:
    blocker = home / "blocked"
    blocker.write_text("a file where the task folder should be")
    data = dict(CONFIG, backend={"type": "local", "path": "blocked/tasks"})
    (home / "config.yaml").write_text(yaml.safe_dump(data))
    done = cli(home, "sync")
    assert done.returncode == 3
    assert "cannot create the task folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_failed_actions_exit_1_and_the_rest_is_done(home: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kit_sync.backends.local import _href_for
    from kit_sync.model import AnchorKind, make_uid

    cli(home, "sync")
    data = dict(CONFIG)
    data["contacts"] = [
        *CONFIG["contacts"],
        {"name": "Cy", "id": "cy", "tier": "inner"},
        {"name": "Di", "id": "di", "tier": "inner"},
    ]
    (home / "config.yaml").write_text(yaml.safe_dump(data))
    # Something in the way of Cy's new file (a folder of that name): that one create
    # fails, Di's succeeds.
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    uid = make_uid("cy", f"|{today}|{AnchorKind.NEW}|0")
    (home / "tasks" / _href_for(uid)).mkdir()
    done = cli(home, "sync")
    assert done.returncode == 1, done.stderr
    assert "created 1, regenerated 0, updated 0, cancelled 0, failed 1" in done.stdout
    assert "1 action(s) failed" in done.stderr and "create cy: new contact" in done.stderr
    assert "Traceback" not in done.stderr
