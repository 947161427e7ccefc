"""`kit-sync add` (a round-trip edit that keeps the file's comments byte-for-byte and
writes nothing when the result would be invalid) and `kit-sync init`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit_sync.app import load
from kit_sync.editconfig import append_contact

ROOT = Path(__file__).resolve().parent.parent


def _cli(
    cwd: Path, *args: str, config: Path | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "XDG_"))}
    if home is not None:
        env["HOME"] = str(home)
    argv = [sys.executable, "-m", "kit_sync"]
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "config.example.yaml"
    shutil.copyfile(ROOT / "config.example.yaml", path)
    return path


def test_add_keeps_every_comment_byte_for_byte(tmp_path: Path, example: Path) -> None:
    original = example.read_text(encoding="utf-8")
    done = _cli(
        tmp_path,
        "add",
        "Zoë Nakamura",
        "--email",
        "zoe@example.com",
        "--email",
        "zoe.n@example.org",
        "--tier",
        "core",
        "--notes",
        'Met at PyCon: ask about "Rust" # not a comment',
        "--city",
        "Lisbon",
        config=example,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "zoe-example-com"
    new = example.read_text(encoding="utf-8")
    lines = new.splitlines(keepends=True)
    start = lines.index("  - name: Zoë Nakamura\n")
    end = start + 1
    while lines[end].startswith("    "):
        end += 1
    assert lines[start:end] == [
        "  - name: Zoë Nakamura\n",
        "    email: [zoe@example.com, zoe.n@example.org]\n",
        "    tier: core\n",
        "    city: Lisbon\n",
        "    notes: 'Met at PyCon: ask about \"Rust\" # not a comment'\n",
    ]
    # Take the new lines out again: what is left is the original, byte for byte.
    assert "".join(lines[:start] + lines[end:]) == original
    # ... so every comment is there, and the new person sits at the end of contacts:.
    assert lines[start - 1].strip().startswith("paused: true")
    assert "# Contacts from exported address books" in lines[end + 1]
    check = _cli(tmp_path, "check", config=example)
    assert check.returncode == 0, check.stderr
    contact = load(example).roster.get("zoe-example-com")
    assert contact is not None
    assert contact.tier == "core" and contact.city == "Lisbon"
    assert contact.emails == ("zoe@example.com", "zoe.n@example.org")
    assert contact.notes == 'Met at PyCon: ask about "Rust" # not a comment'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Ann Other", "--tier", "nosuch"], "the new entry: tier: unknown tier 'nosuch'"),
        (["Ann Other"], "needs a tier or an every"),
        (["Ann Other", "--every", "often"], "'often' is not an interval"),
        (["Ann Other", "--tier", "core", "--every", "2 weeks"], "not both"),
        (["Ann Other", "--tier", "core", "--email", "not-an-address"], "is not an email"),
        (["Ann Other", "--tier", "core", "--channel", "pigeon"], "pigeon"),
        # the same person as an existing entry
        (["Priya Raman", "--tier", "core", "--email", "priya.raman@example.com"], "Priya"),
    ],
)
def test_an_add_that_would_be_invalid_writes_nothing(
    tmp_path: Path, example: Path, args: list[str], message: str
) -> None:
    example.chmod(0o600)
    before = example.read_bytes()
    done = _cli(tmp_path, "add", *args, config=example)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr, done.stderr
    assert "nothing was written" in done.stderr or "not both" in done.stderr
    assert "Traceback" not in done.stderr
    assert example.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.example.yaml"]


def test_add_keeps_the_file_mode(tmp_path: Path, example: Path) -> None:
    example.chmod(0o600)
    done = _cli(tmp_path, "add", "Kim Park", "--every", "6 weeks", config=example)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kim-park"
    assert example.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "text",
    [
        "",
        "timezone: UTC\n",
        "contacts: []\n",
        "# mine\ncontacts:\n- name: A  # first\n  every: 2 weeks\n# after\nsync: {every: 5 min}\n",
        "contacts:\n    -   name: A\n        every: 2 weeks\n",
        "# windows\r\ncontacts:\r\n  - name: A   # eol\r\n    every: 2 weeks\r\n",
    ],
)
def test_append_keeps_any_layout(text: str) -> None:
    out = append_contact(text, {"name": "B", "every": "3 weeks"})
    import yaml

    data = yaml.safe_load(out)
    assert data["contacts"][-1] == {"name": "B", "every": "3 weeks"}
    for line in text.splitlines():
        if line.strip().startswith("#") or "#" in line:
            assert line in out.splitlines()
    if "\r\n" in text:
        assert out.count("\r\n") == out.count("\n") and out.startswith(text.split("  - ")[0])
    if "# after" in text:
        assert out.index("name: B") < out.index("# after")


def test_init_writes_a_commented_starter_that_checks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = _cli(tmp_path, "init", home=home)
    assert done.returncode == 0, done.stderr
    path = home / ".config" / "kit-sync" / "config.yaml"
    assert f"wrote {path}" in done.stdout
    text = path.read_text()
    assert text.count("\n#") >= 10 and "timezone:" in text
    assert path.stat().st_mode & 0o777 == 0o600
    # Found by every command without --config, and valid.
    check = _cli(tmp_path, "check", home=home)
    assert check.returncode == 0, check.stderr
    assert str(path) in check.stdout
    # The next step it suggests works on it.
    added = _cli(tmp_path, "add", "Kim Park", "--tier", "inner", home=home)
    assert added.returncode == 0 and added.stdout.strip() == "kim-park", added.stderr
    # Never overwritten.
    before = path.read_bytes()
    again = _cli(tmp_path, "init", home=home)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert path.read_bytes() == before
    # --config PATH writes there instead.
    other = tmp_path / "elsewhere" / "kit.yaml"
    done = _cli(tmp_path, "init", config=other, home=home)
    assert done.returncode == 0 and other.is_file()


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "null", "12", "2026-01-02"])
def test_words_a_yaml_reader_would_retype_stay_text(word: str) -> None:
    import yaml

    out = append_contact(
        "contacts: []\n", {"name": "Ann", "every": "3 weeks", "notes": word, "city": word}
    )
    [entry] = yaml.safe_load(out)["contacts"]
    assert entry["notes"] == word and entry["city"] == word
