"""The CLI behaves like its neighbours (todoman, khal, vdirsyncer), in-process through
typer's CliRunner: usage errors, --version, -h, help in a pipe, colour, the config
search, the output people read, and touch/history/untouch. The clock is the `clock`
fixture's (marker `dates`), so scripts/test.sh can run these at awkward days too."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner, Result

from kit_sync.cadence import Interval, next_due
from kit_sync.cli import Color, app, use_color
from kit_sync.formatters import MIN_NAME

pytestmark = pytest.mark.dates

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")
LONG_NAME = "Maximiliane Theodora von Hohenzollern-Sigmaringen"
CONFIG: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "backend": {"type": "local", "path": "tasks"},
    "state": "state.sqlite",
    "tiers": {
        "inner": {"every": "3 weeks", "channel": "lunch"},
        "wide": {"every": "2 months", "channel": "email"},
    },
    "contacts": [
        {
            "name": "Siobhán Ó Briain",
            "email": "sio@example.com",
            "tier": "inner",
            "notes": "Ask about Lisbon\nLikes jazz, hates phone calls",
            "phone": "+353 1 555 0100",
        },
        {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "wide"},
        {"name": "Bob Stone", "id": "bob", "tier": "inner"},
        {"name": LONG_NAME, "id": "max", "tier": "wide"},
        {"name": "Paula Paused", "id": "paula", "tier": "inner", "paused": True},
    ],
}
#: Every command, as registered (a command added later is covered without a list
#: to keep up to date), and those with a required argument.
_GROUP = get_command(app)
COMMANDS: list[str] = sorted(_GROUP.commands)
NEEDS_ARGUMENT = sorted(
    name
    for name, command in _GROUP.commands.items()
    if any(p.param_type_name == "argument" and p.required for p in command.params)
)


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        base: dict[str, str | None] = {"KIT_SYNC_CONFIG": None, "NO_COLOR": None, "COLUMNS": None}
        return self.runner.invoke(
            app, ["--config", str(self.home / "config.yaml"), *args], env=base | (env or {})
        )

    def bare(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        return self.runner.invoke(app, list(args), env={"KIT_SYNC_CONFIG": None} | (env or {}))

    def ok(self, *args: str, **kw: Any) -> Result:
        done = self(*args, **kw)
        assert done.exit_code == 0, (done.stdout, done.stderr, done.exception)
        return done


@pytest.fixture
def cli(tmp_path: Path, clock: datetime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG, allow_unicode=True))
    monkeypatch.chdir(tmp_path)
    yield Cli(tmp_path)


def today() -> date:
    return datetime.now(BERLIN).date()


# --- usage errors, --version, -h -----------------------------------------------------------


def assert_usage_error(done: Result, what: str) -> None:
    assert done.exit_code == 2, (what, done.output)
    assert ("Traceback" not in done.output and done.exception is None) or isinstance(
        done.exception, SystemExit
    ), what
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, (what, done.stderr)
    assert done.stderr.startswith("Usage: kit-sync"), (what, done.stderr)
    assert "-h' for help" in done.stderr or "--help' for help" in done.stderr, what


def test_an_unknown_option_or_command_is_one_error_line_and_exit_2(cli: Cli) -> None:
    assert_usage_error(cli.bare("--bogus"), "--bogus")
    assert_usage_error(cli.bare("nope"), "unknown command")
    assert_usage_error(cli("due", "--within", "-1"), "due --within -1")
    assert_usage_error(cli("touch", "bob", "--on"), "--on without its value")


def test_the_command_list_is_complete() -> None:
    assert {"touch", "untouch", "history", "status", "due", "sync", "check"} <= set(COMMANDS)
    assert {"touch", "untouch", "history"} <= set(NEEDS_ARGUMENT)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_rejects_a_bad_option_with_exit_2(cli: Cli, command: str) -> None:
    # Options are parsed before arguments are checked: no argument is needed here.
    assert_usage_error(cli(command, "--bogus"), f"{command} --bogus")


@pytest.mark.parametrize("command", NEEDS_ARGUMENT)
def test_every_command_names_its_missing_argument_with_exit_2(cli: Cli, command: str) -> None:
    done = cli(command)
    assert_usage_error(done, f"{command} without its argument")
    assert "Missing argument" in done.stderr


def test_version_comes_from_the_installed_metadata_that_pyproject_sets(cli: Cli) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = cli.bare("--version")
    assert done.exit_code == 0
    assert done.stdout.strip() == f"kit-sync {version}"
    import kit_sync

    assert not hasattr(kit_sync, "__version__")  # one place: pyproject.toml


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_h_is_help_on_every_command_and_help_in_a_pipe_has_no_boxes(cli: Cli, command: str) -> None:
    args = [command] if command else []
    short, long = cli.bare(*args, "-h"), cli.bare(*args, "--help")
    assert short.exit_code == long.exit_code == 0
    assert short.stdout == long.stdout
    assert short.stdout.startswith(f"Usage: kit-sync {command}".rstrip())
    assert not re.search("[\u2500-\u257f]", short.stdout), short.stdout  # box drawing
    assert "\x1b[" not in short.stdout


# --- colour, config search -------------------------------------------------------------------


class Tty:
    def isatty(self) -> bool:
        return True


def test_color_auto_follows_the_terminal_and_no_color() -> None:
    assert use_color(Color.AUTO, Tty(), {}) is True
    assert use_color(Color.AUTO, Tty(), {"NO_COLOR": "1"}) is False
    assert use_color(Color.AUTO, Tty(), {"TERM": "dumb"}) is False
    assert use_color(Color.AUTO, object(), {}) is False  # a pipe
    assert use_color(Color.ALWAYS, object(), {"NO_COLOR": "1"}) is True
    assert use_color(Color.NEVER, Tty(), {}) is False


def test_color_always_and_never_on_status(cli: Cli) -> None:
    cli.ok("sync")
    assert "\x1b[" in cli.ok("--color", "always", "status").stdout
    assert "\x1b[" not in cli.ok("--color", "never", "status").stdout
    assert "\x1b[" not in cli.ok("status").stdout  # auto, and CliRunner is no terminal
    assert "\x1b[" not in cli.ok("--color", "auto", "status", env={"NO_COLOR": "1"}).stdout


def test_the_config_is_found_in_xdg_config_home_and_the_error_lists_every_place(
    cli: Cli, tmp_path: Path
) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "kit-sync").mkdir(parents=True)
    env: dict[str, str | None] = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path / "home")}
    missing = cli.bare("check", env=env)
    assert missing.exit_code == 2
    assert "no config file found" in missing.stderr
    for place in (
        "--config",
        "$KIT_SYNC_CONFIG",
        str(tmp_path / "kit-sync.yaml"),
        str(xdg / "kit-sync" / "config.yaml"),
    ):
        assert place in missing.stderr, place
    (tmp_path / "config.yaml").rename(xdg / "kit-sync" / "config.yaml")
    found = cli.bare("check", env=env)
    assert found.exit_code == 0, found.stderr
    assert str(xdg / "kit-sync" / "config.yaml") in found.stdout


# --- output a person reads -------------------------------------------------------------------


def test_status_fits_80_columns_one_row_per_person(cli: Cli) -> None:
    cli.ok("sync")
    for width in (80, 60, 40):
        lines = cli.ok("status", env={"COLUMNS": str(width)}).stdout.splitlines()
        assert len(lines) == 1 + len(CONFIG["contacts"]), lines  # header + one row each
        assert all(len(line) <= width for line in lines), (width, lines)
        assert not any(re.search("[\u2500-\u257f]", line) for line in lines)
        row = next(line for line in lines if line.startswith(LONG_NAME[:MIN_NAME]))
        assert "…" in row or LONG_NAME in row  # cut with an ellipsis, never to nothing
    wide = cli.ok("status").stdout  # a pipe without $COLUMNS: nothing is cut
    assert LONG_NAME in wide and "inner" in wide


def test_dry_run_names_people_and_writes_nothing(cli: Cli) -> None:
    done = cli.ok("sync", "--dry-run")
    assert "would create Siobhán Ó Briain (sio-example-com): new contact" in done.stdout
    assert "would create Bob Stone (bob)" in done.stdout
    assert not (cli.home / "tasks").exists() or not any((cli.home / "tasks").iterdir())


def test_sync_check_and_due_json_have_the_documented_keys(cli: Cli) -> None:
    dry = json.loads(cli.ok("sync", "--dry-run", "--json").stdout)
    assert list(dry) == [
        "dry_run",
        "counts",
        "actions",
        "touches",
        "detected",
        "problems",
        "failures",
        "skipped",
        "warnings",
    ]
    assert dry["dry_run"] is True and dry["counts"]["created"] == 4
    counted = ["created", "regenerated", "updated", "cancelled", "failed"]
    assert sorted(dry["counts"]) == sorted(counted), dry["counts"]
    assert set(dry["actions"][0]) == {"kind", "verb", "id", "name", "reason", "due"}
    done = json.loads(cli.ok("sync", "--json").stdout)
    assert done["dry_run"] is False and done["counts"]["created"] == 4
    assert sorted(done["counts"]) == sorted(counted), done["counts"]
    check = json.loads(cli.ok("check", "--json").stdout)
    assert list(check) == [
        "ok",
        "config",
        "contacts",
        "active",
        "paused",
        "backend",
        "timezone",
        "warnings",
        "files",
    ]
    assert check["ok"] is True and check["contacts"] == 5 and check["paused"] == 1
    due = json.loads(cli.ok("due", "--within", "90", "--json").stdout)
    assert {r["id"] for r in due} == {"sio-example-com", "ada-example-com", "bob", "max"}
    assert list(due[0]) == [
        "id",
        "name",
        "tier",
        "channel",
        "next_due",
        "days_overdue",
        "last_touch",
        "last_note",
        "notes",
        "emails",
        "phone",
    ]


def test_check_json_reports_a_broken_config_as_json(cli: Cli) -> None:
    (cli.home / "config.yaml").write_text("timezone: Mars/Olympus\n")
    done = cli("check", "--json")
    assert done.exit_code == 2
    out = json.loads(done.stdout)
    assert out["ok"] is False and out["problems"] and "config.yaml" in out["config"]


def test_due_shows_whole_notes_the_last_note_and_filters(cli: Cli) -> None:
    cli.ok("sync")
    long_ago = (today() - timedelta(days=100)).isoformat()
    cli.ok("touch", "sio", "bob", "--on", long_ago, "--note", "dinner at Rosa's")
    done = cli.ok("due")
    assert "lunch (2)" in done.stdout
    assert "Siobhán Ó Briain — " in done.stdout and "days overdue" in done.stdout
    assert f"last contact {long_ago} (dinner at Rosa's)" in done.stdout
    assert "Ask about Lisbon" in done.stdout and "Likes jazz, hates phone calls" in done.stdout
    assert "sio@example.com · +353 1 555 0100" in done.stdout
    both = json.loads(cli.ok("due", "--json").stdout)
    assert [r["id"] for r in both] == ["bob", "sio-example-com"]  # equally late: by name
    assert both[1]["notes"] == "Ask about Lisbon\nLikes jazz, hates phone calls"
    one = json.loads(cli.ok("due", "--limit", "1", "--json").stdout)
    assert len(one) == 1 and one[0]["id"] == "bob"
    assert one[0]["last_note"] == "dinner at Rosa's"
    in_60 = json.loads(cli.ok("due", "--within", "62", "--json").stdout)
    wide = json.loads(cli.ok("due", "--within", "62", "--tier", "wide", "--json").stdout)
    assert {r["id"] for r in wide} == {r["id"] for r in in_60 if r["tier"] == "wide"}
    email = json.loads(cli.ok("due", "--within", "62", "--channel", "EMAIL", "--json").stdout)
    assert {r["channel"] for r in email} == {"email"}
    # (a word no other test uses as a password: logs mask registered secrets)
    bad = cli("due", "--tier", "no-such-tier")
    assert bad.exit_code == 2 and "no tier named no-such-tier" in bad.stderr
    fax = cli("due", "--channel", "carrier-pigeon")
    assert fax.exit_code == 2 and "no channel named carrier-pigeon" in fax.stderr


def test_sync_logs_one_line_per_task_only_with_v(cli: Cli) -> None:
    quiet = cli.ok("sync")
    assert "created 4" in quiet.stdout
    assert "create bob" not in quiet.stderr
    (cli.home / "config.yaml").write_text(
        yaml.safe_dump(
            CONFIG | {"contacts": [*CONFIG["contacts"], {"name": "Cy", "tier": "inner"}]},
            allow_unicode=True,
        )
    )
    loud = cli.ok("-v", "sync")
    assert "create cy: new contact" in loud.stderr


# --- touch, history, untouch -----------------------------------------------------------------


def test_touch_ignores_case_and_accents_and_takes_several_people(cli: Cli) -> None:
    cli.ok("sync")
    day = today() - timedelta(days=2)
    done = cli.ok("touch", "SIOBHAN", "ada", "--on", day.isoformat(), "--note", "dinner")
    sio_due = next_due(day, Interval(days=21))
    ada_due = next_due(day, Interval(months=2))
    assert f"touched Siobhán Ó Briain on {day}; next due {sio_due}" in done.stdout
    assert f"touched Ada Lovelace on {day}; next due {ada_due}" in done.stdout
    rows = {r["id"]: r for r in json.loads(cli.ok("status", "--json").stdout)}
    assert rows["sio-example-com"]["next_due"] == sio_due.isoformat()
    assert rows["ada-example-com"]["last_touch"] == day.isoformat()


def test_a_typo_among_several_touches_nobody(cli: Cli) -> None:
    cli.ok("sync")
    done = cli("touch", "bob", "zed")
    assert done.exit_code == 2 and "no contact matches 'zed'" in done.stderr
    assert json.loads(cli.ok("history", "bob", "--json").stdout)["touches"] == []


def test_a_second_touch_on_the_same_day_says_so_and_changes_nothing(cli: Cli) -> None:
    cli.ok("sync")
    cli.ok("touch", "bob", "--note", "coffee")
    before = sorted(p.name for p in (cli.home / "tasks").iterdir())
    again = cli.ok("touch", "bob")
    assert f"Bob Stone was already touched on {today()} (note: coffee)" in again.stdout
    assert sorted(p.name for p in (cli.home / "tasks").iterdir()) == before
    assert len(json.loads(cli.ok("history", "bob", "--json").stdout)["touches"]) == 1


def test_history_lists_touches_newest_first_with_source_and_note(cli: Cli) -> None:
    cli.ok("sync")
    first, second = today() - timedelta(days=30), today() - timedelta(days=3)
    cli.ok("touch", "bob", "--on", first.isoformat(), "--note", "lunch")
    cli.ok("touch", "bob", "--on", second.isoformat(), "--note", "call about the move")
    # Then the task is ticked off in a client (todoman-style edit of the .ics file).
    (task,) = [
        p
        for p in (cli.home / "tasks").iterdir()
        if "X-KIT-SYNC-CONTACT:bob" in p.read_text() and "NEEDS-ACTION" in p.read_text()
    ]
    stamp = datetime.now(BERLIN).astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    task.write_text(
        task.read_text().replace("STATUS:NEEDS-ACTION", f"STATUS:COMPLETED\r\nCOMPLETED:{stamp}")
    )
    cli.ok("sync")
    out = json.loads(cli.ok("history", "BOB", "--json").stdout)
    assert out["id"] == "bob" and out["name"] == "Bob Stone"
    days = [t["day"] for t in out["touches"]]
    assert days == sorted(days, reverse=True)
    assert [(t["how"], t["note"]) for t in out["touches"]] == [
        ("task completed on local", ""),
        ("touch command", "call about the move"),
        ("touch command", "lunch"),
    ]
    text = cli.ok("history", "bob").stdout
    assert "Bob Stone (bob): 3 touch(es)" in text
    assert f"{second}  touch command  call about the move" in text


def test_untouch_removes_the_last_touch_and_restores_the_due_date(cli: Cli) -> None:
    cli.ok("sync")
    before = {r["id"]: r for r in json.loads(cli.ok("status", "--json").stdout)}["bob"]
    cli.ok("touch", "bob", "--note", "oops, wrong person")
    moved = {r["id"]: r for r in json.loads(cli.ok("status", "--json").stdout)}["bob"]
    assert moved["next_due"] != before["next_due"]
    done = cli.ok("untouch", "bob")
    assert f"removed the touch of Bob Stone on {today()}; due {before['next_due']}" in done.stdout
    after = {r["id"]: r for r in json.loads(cli.ok("status", "--json").stdout)}["bob"]
    assert after["next_due"] == before["next_due"] and after["last_touch"] is None
    assert json.loads(cli.ok("history", "bob", "--json").stdout)["touches"] == []
    # Still exactly one open task, and a sync afterwards changes nothing.
    counts = json.loads(cli.ok("sync", "--json").stdout)["counts"]
    assert set(counts.values()) == {0}, counts
    nothing = cli("untouch", "bob")
    assert nothing.exit_code == 2 and "no touch recorded by 'kit-sync touch'" in nothing.stderr


def test_a_dry_run_names_the_person_of_a_birthday_task(cli: Cli) -> None:
    config = dict(CONFIG, birthdays={"tasks": True})
    config["contacts"] = [dict(CONFIG["contacts"][1], birthday="1815-12-10")]
    (cli.home / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    text = cli.ok("sync", "--dry-run").stdout
    assert "would create Ada Lovelace (ada-example-com#birthday): " in text, text
    dry = json.loads(cli.ok("sync", "--dry-run", "--json").stdout)
    names = {a["id"]: a["name"] for a in dry["actions"]}
    assert names == {"ada-example-com": "Ada Lovelace", "ada-example-com#birthday": "Ada Lovelace"}
