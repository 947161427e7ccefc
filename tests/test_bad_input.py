"""Broken config and roster files: exit 2, one clear line per problem, no traceback,
nothing written to the backend. Runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD_HEAD = """\
timezone: Europe/Berlin
backend: {type: local, path: tasks}
state: state.sqlite
tiers:
  inner: {every: 3 weeks, channel: lunch}
  core: {every: 2 months}
  wide: {every: quarterly}
"""


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", str(tmp_path / "config.yaml"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=full_env,
        timeout=60,
        check=False,
    )


CASES = {
    "bad_yaml": (
        GOOD_HEAD + "contacts:\n  - name: Ann\n   tier: inner\n",
        {},
        ["config.yaml:10", "not valid YAML"],
    ),
    "unknown_key": (
        GOOD_HEAD + "contacts:\n  - {name: Ann, tier: inner}\nsyncc: {every: 5 minutes}\n",
        {},
        ["config.yaml:10 syncc: unknown option 'syncc'; did you mean 'sync'?"],
    ),
    "bad_interval": (
        GOOD_HEAD + "contacts:\n  - name: Ann\n    every: 3 wekes\n",
        {},
        ["config.yaml:10 contacts[0].every: '3 wekes' is not an interval"],
    ),
    "unknown_tier": (
        GOOD_HEAD + "contacts:\n  - {name: Ann, tier: inner}\n  - {name: Bo, tier: core}\n"
        "  - {name: Cy, tier: wide}\n  - {name: Di, tier: quartely}\n",
        {},
        ["config.yaml:12 tier: unknown tier 'quartely' (known: inner, core, wide)"],
    ),
    "duplicate_id": (
        GOOD_HEAD + "contacts:\n  - {name: Ann, id: ann, tier: inner}\n"
        "  - {name: Ann B, id: ann, tier: core}\n",
        {},
        ["config.yaml:10 id: two contacts have the id 'ann' (the other is at config.yaml:9)"],
    ),
    "bad_csv_row": (
        GOOD_HEAD + "include:\n  - {path: people.csv, tier: wide}\n",
        {"people.csv": "name,email\nAnn Lee,ann@example.com\n,\nCy,cy@example.com,extra\n"},
        ["people.csv:4", "--skip-bad-rows"],
    ),
    "missing_file": (
        GOOD_HEAD + "include:\n  - {path: nowhere.csv, tier: wide}\n",
        {},
        ["config.yaml:9 include[0].path:", "nowhere.csv"],
    ),
    "bad_time_zone": (
        GOOD_HEAD.replace("Europe/Berlin", "Europe/Berln") + "contacts:\n  - {name: A, "
        "tier: inner}\n",
        {},
        ["config.yaml:1 timezone: 'Europe/Berln' is not a time zone"],
    ),
    "missing_env": (
        GOOD_HEAD.replace(
            "backend: {type: local, path: tasks}",
            "backend:\n  type: local\n  path: ${KIT_TEST_NOPE}/tasks",
        )
        + "contacts:\n  - {name: A, tier: inner}\n",
        {},
        ["config.yaml:4 backend.path: environment variable KIT_TEST_NOPE is not set"],
    ),
    "empty_roster": (GOOD_HEAD + "contacts: []\n", {}, ["the roster is empty"]),
    "bad_backend_type": (
        GOOD_HEAD.replace("type: local", "type: lokal") + "contacts:\n  - {name: A, tier: inner}\n",
        {},
        [
            "config.yaml:2 backend.type: unknown backend type 'lokal' (known: local, "
            "caldav, exchange, graph)"
        ],
    ),
    "bad_channel_and_email": (
        GOOD_HEAD + "contacts:\n  - name: Ann\n    tier: inner\n    channel: pigeon\n"
        "    email: ann-at-example.com\n",
        {},
        [
            "config.yaml:11 contacts[0].channel: 'pigeon' is not allowed",
            "config.yaml:12 contacts[0].email: 'ann-at-example.com' is not an email",
        ],
    ),
    "missing_name": (
        GOOD_HEAD + "contacts:\n  - {email: a@example.com, tier: inner}\n",
        {},
        ["config.yaml:9 contacts[0].name: is required but missing"],
    ),
    "missing_config": (None, {}, ["config file", "does not exist"]),
    "not_a_mapping": ("- just\n- a list\n", {}, ["must be a mapping"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_input_exits_2_with_clear_lines(tmp_path: Path, case: str) -> None:
    text, files, expected = CASES[case]
    if text is not None:
        (tmp_path / "config.yaml").write_text(text)
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    for command in (["check"], ["sync"]):
        done = run_cli(tmp_path, *command)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        for piece in expected:
            assert piece in done.stderr, done.stderr
        assert not (tmp_path / "tasks").exists()  # nothing written to the backend
        assert not (tmp_path / "state.sqlite").exists()


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent("""\
        timezone: Mars/Olympus
        backend: {type: local}
        tiers:
          inner: {every: sometimes}
        sync: {every: often}
        task: {title: "Hi {nam}", alarm: "25:00"}
        """)
    )
    done = run_cli(tmp_path, "check")
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("  - ")]
    assert len(lines) == 6, done.stderr
    assert any("config.yaml:2 backend.path: is required" in ln for ln in lines)
    assert any("config.yaml:6 task.alarm: alarm '25:00' is not a time" in ln for ln in lines)


def test_skip_bad_rows_loads_the_rest_with_warnings(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        GOOD_HEAD + "include:\n  - {path: people.csv, tier: wide}\n"
    )
    (tmp_path / "people.csv").write_text(
        "name,email\nAnn Lee,ann@example.com\n,\nCy,cy@example.com,extra\nDi,di@example.com\n"
    )
    done = run_cli(tmp_path, "--skip-bad-rows", "sync")
    assert done.returncode == 0, done.stderr
    assert "skipped people.csv:4" in done.stderr
    assert "created 2" in done.stdout


def test_secret_sources(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s3cret-from-file\n")
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent("""\
        backend:
          type: caldav
          url: http://127.0.0.1:9/
          password: {file: pw.txt}
        contacts: [{name: A, every: 2 weeks}]
        """)
    )
    from kit_sync.config import load_config

    config, _ = load_config(tmp_path / "config.yaml")
    assert config.backend.password.get_secret_value() == "s3cret-from-file"  # type: ignore[union-attr]
    assert "s3cret" not in repr(config)
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent("""\
        backend:
          type: caldav
          url: http://127.0.0.1:9/
          password: {command: [sh, -c, "echo from-command"]}
        contacts: [{name: A, every: 2 weeks}]
        """)
    )
    config, _ = load_config(tmp_path / "config.yaml")
    assert config.backend.password.get_secret_value() == "from-command"  # type: ignore[union-attr]
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent("""\
        backend:
          type: caldav
          url: http://127.0.0.1:9/
          password: {command: [sh, -c, "echo leaked-secret >&2; exit 4"]}
        contacts: [{name: A, every: 2 weeks}]
        """)
    )
    done = run_cli(tmp_path, "check")
    assert done.returncode == 2
    assert (
        "config.yaml:4 backend.password: secret command 'sh' failed with exit code 4" in done.stderr
    )
    assert "leaked-secret" not in done.stderr + done.stdout
