"""An import the user can see: `kit-sync check` (per-file report, --json) and
`kit-sync import FILE` (a preview that changes nothing), on a generated 814-row
Outlook export and on small files for each rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from outlook_export import outlook_export
from typer.testing import CliRunner

from kit_sync.cli import app
from kit_sync.clock import system_clock

HEAD = """\
timezone: UTC
backend: {type: local, path: tasks}
state: state.sqlite
tiers:
  inner: {every: 3 weeks, channel: lunch}
  wide: {every: quarterly, channel: email}
"""


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """The CLI in-process, in tmp_path: exit code, stdout, stderr."""
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, ["--config", str(tmp_path / "config.yaml"), *args])
    finally:
        os.chdir(cwd)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write_config(tmp_path: Path, body: str) -> None:
    (tmp_path / "config.yaml").write_text(HEAD + body, encoding="utf-8")


@pytest.fixture
def export(tmp_path: Path) -> Path:
    data, _ = outlook_export()
    (tmp_path / "outlook.csv").write_bytes(data)
    return tmp_path / "outlook.csv"


def test_generated_export_is_a_real_outlook_file(export: Path) -> None:
    raw = export.read_bytes()
    assert raw.count(b"\r\n") > 814  # CRLF rows, plus line breaks inside notes
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # Windows-1252, as Outlook writes it
    text = raw.decode("cp1252")
    assert text.startswith('"Title","First Name","Middle Name","Last Name","Suffix"')
    assert "Zoë" in text and "Müller & Söhne" in text and '"0/0/00"' in text
    assert '"Network;VIP"' in text and '"Suppliers;Clients"' in text


def test_check_prints_the_per_file_counts_of_an_800_row_outlook_export(
    tmp_path: Path, export: Path
) -> None:
    _, x = outlook_export()
    assert x.rows >= 800
    write_config(
        tmp_path,
        "contacts:\n"
        + "\n".join(x.inline)
        + "\ninclude:\n  - {path: outlook.csv, tier: wide, only: {categories: [Network]}}\n",
    )
    # End to end, as the user runs it (a real process, the installed entry point).
    done = subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", "config.yaml", "--skip-bad-rows", "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("KIT_")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"config.yaml: ok — {x.contacts} contacts ({x.contacts} active), backend local, "
        "time zone UTC"
    )
    assert lines[1] == (
        "outlook.csv (outlook-csv, dates day first (dmy, detected from line 2: 14/03/1985), "
        "only categories Network):"
    )
    assert lines[2] == (
        f"  {x.rows} rows read, {x.kept} kept, {x.filtered_out} filtered out, "
        f"{x.merged} merged into inline entries, {x.duplicates} duplicate rows merged, "
        f"{x.skipped} skipped, {x.warnings} warnings"
    )
    assert (x.rows, x.kept, x.filtered_out, x.merged, x.duplicates, x.skipped, x.warnings) == (
        814,
        370,
        424,
        3,
        15,
        2,
        4,
    )
    details = lines[3:]
    assert sum(line.startswith("  merged ") for line in details) == x.merged
    assert sum(line.startswith("  duplicate ") for line in details) == x.duplicates
    assert sum(line.startswith("  skipped ") for line in details) == x.skipped
    assert sum(line.startswith("  warning: ") for line in details) == x.warnings
    merged = [line for line in details if line.startswith("  merged ")]
    assert merged[0].endswith(
        "-> config.yaml:8 Zoltán Kowalski (id zoltan-kowalski-356-example-org; "
        "same primary email zoltan.kowalski.356@example.org)"
    )
    skipped = [line for line in details if line.startswith("  skipped ")]
    assert all("row has no name and no email" in line for line in skipped)
    # The report is the place for the file's warnings: not repeated on stderr.
    assert "warning" not in done.stderr.lower()

    code, out, _ = run(tmp_path, "--skip-bad-rows", "check", "--json")
    assert code == 0
    report = json.loads(out)
    (f,) = report["files"]
    assert (report["ok"], report["contacts"], report["active"]) == (True, x.contacts, x.contacts)
    assert (f["rows"], f["kept"], f["filtered_out"], f["pruned"]) == (814, 370, 424, 0)
    assert (len(f["merged"]), len(f["duplicates"]), len(f["skipped"])) == (3, 15, 2)
    assert len(f["warnings"]) == 4 and set(f["warnings"]) <= set(report["warnings"])
    assert f["merged"][0]["into"] == "config.yaml:8"
    assert f["dates"] == "day first (dmy, detected from line 2: 14/03/1985)"
    assert f["rows"] == (
        f["kept"]
        + f["filtered_out"]
        + f["pruned"]
        + len(f["merged"])
        + len(f["duplicates"])
        + f["skipped_rows"]
    )


def test_the_generated_export_loads_its_birthdays_day_first(tmp_path: Path, export: Path) -> None:
    from kit_sync.app import load

    _, x = outlook_export()
    write_config(
        tmp_path,
        "include:\n  - {path: outlook.csv, tier: wide, only: {categories: [Network]}}\n",
    )
    code, _, err = run(tmp_path, "check")
    assert code == 2 and "row has no name and no email" in err  # no --skip-bad-rows
    loaded = load(tmp_path / "config.yaml", skip_bad_rows=True)
    by_name = {c.name: c for c in loaded.roster.contacts}
    for name, iso in x.birthdays.items():
        born = by_name[name].birthday
        assert (born.isoformat() if born else None) == iso


def test_check_fails_naming_both_lines_of_one_email_with_two_names(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "contacts:\n"
        "  - {name: Tom Becker, email: tom@becker.example, tier: inner}\n"
        "  - {name: Tom B. work, email: tom@becker.example, tier: wide}\n",
    )
    code, out, err = run(tmp_path, "check")
    assert code == 2 and out == ""
    assert "config.yaml:9 id: two contacts have the id 'tom-becker-example' (the other is at " in (
        err
    )
    assert "config.yaml:8)" in err
    code, out, _ = run(tmp_path, "check", "--json")
    assert code == 2
    result = json.loads(out)
    assert result["ok"] is False and "config.yaml:9 id" in result["problems"][0]


def test_check_fails_on_a_category_typo_and_a_bare_number(tmp_path: Path) -> None:
    (tmp_path / "people.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\nCATEGORIES:Network,Family\r\nEND:VCARD\r\n"
    )
    write_config(
        tmp_path,
        "include:\n  - {path: people.vcf, tier: wide, only: {categories: [Netwrok]}}\n",
    )
    code, _, err = run(tmp_path, "check")
    assert code == 2
    assert (
        "config.yaml:8 include[0].only.categories: 'Netwrok' matches no row of people.vcf; "
        "did you mean 'Network'? (the file's categories: Family, Network)"
    ) in err
    write_config(tmp_path, "contacts:\n  - {name: Ann, every: 2}\n")
    code, _, err = run(tmp_path, "check")
    assert code == 2 and "'2' has no unit" in err and '"2 weeks" or "2 months"' in err


def test_check_reports_pruned_rows(tmp_path: Path) -> None:
    # Dates relative to the clock the CLI reads, so the test holds on any day.
    today = system_clock().date()
    recent, old = today - timedelta(days=30), today - timedelta(days=3 * 366)
    (tmp_path / "people.csv").write_text(
        f"name,email,last contact\nAnn Lee,ann@x.org,{recent}\nBo Chen,bo@x.org,{old}\n"
    )
    write_config(
        tmp_path, "include:\n  - {path: people.csv, tier: wide, only: {seen_within: 2 years}}\n"
    )
    code, out, _ = run(tmp_path, "check")
    assert code == 0
    assert out.splitlines()[1:3] == [
        "people.csv (csv, only seen within 2 years):",
        "  2 rows read, 1 kept, 0 filtered out, 1 pruned (not seen recently), "
        "0 merged into inline entries, 0 skipped",
    ]


# --------------------------------------------------------------------------- import


def test_import_previews_ids_and_merges_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        "name,email,categories\n"
        "Ann Lee,ann@x.org,\n"
        "Anna Berg,anna@berg.example,\n"
        "Lars Berg,lars@berg.example,\n"
    )
    write_config(tmp_path, "contacts:\n  - {name: Ann Lee, email: ANN@x.org, tier: inner}\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    code, out, err = run(tmp_path, "import", "people.csv", "--tier", "wide")

    assert code == 0, err
    assert out.splitlines() == [
        "people.csv (csv):",
        "  3 rows read, 2 kept, 1 merged into inline entries, 0 skipped",
        "  add anna-berg-example: Anna Berg <anna@berg.example> (tier wide, every 3 months) "
        "from people.csv:3",
        "  add lars-berg-example: Lars Berg <lars@berg.example> (tier wide, every 3 months) "
        "from people.csv:4",
        "  merged people.csv:2 Ann Lee -> config.yaml:8 Ann Lee (id ann-x-org; same primary "
        "email ann@x.org)",
        f"nothing was changed; to import people.csv, add to {tmp_path / 'config.yaml'}:",
        "  include:",
        "    - {path: people.csv, tier: wide}",
    ]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no state, no tasks


def test_import_json_and_category_filter(tmp_path: Path, export: Path) -> None:
    write_config(tmp_path, "contacts:\n  - {name: Ann, tier: inner}\n")
    code, out, _ = run(
        tmp_path, "--skip-bad-rows", "import", "outlook.csv", "--tier", "wide",
        "--only-category", "network", "--json",
    )  # fmt: skip
    assert code == 0
    preview = json.loads(out)
    report = preview["report"]
    # No inline twins here: the 3 rows that merge in the check test are added.
    assert (report["rows"], report["kept"], report["filtered_out"]) == (814, 373, 424)
    assert len(report["added"]) == 373 and len(report["duplicates"]) == 15
    ids = [a["id"] for a in report["added"]]
    assert len(set(ids)) == len(ids)
    assert preview["include"] == (
        "include:\n  - {path: outlook.csv, tier: wide, only: {categories: [network]}}"
    )


def test_import_problems_exit_2_with_what_to_do(tmp_path: Path, export: Path) -> None:
    write_config(tmp_path, "contacts:\n  - {name: Ann, tier: inner}\n")
    code, _, err = run(
        tmp_path, "--skip-bad-rows", "import", "outlook.csv", "--only-category", "Netwrok"
    )
    assert code == 2
    assert (
        "--only-category: 'Netwrok' matches no row of outlook.csv; did you mean 'Network'?" in err
    )
    assert "(the file's categories: Clients, Family, Network, Suppliers, Vendors, VIP)" in err
    code, _, err = run(tmp_path, "--skip-bad-rows", "import", "outlook.csv")
    assert code == 2
    assert (
        "370 of these contacts have no tier or every: pass --tier (tiers: inner, wide)" not in err
    )
    assert "of these contacts have no tier or every: pass --tier (tiers: inner, wide)" in err
    code, _, err = run(tmp_path, "import", "outlook.csv", "--tier", "close")
    assert code == 2 and "--tier 'close' is not a tier of" in err and "inner, wide" in err
    code, _, err = run(tmp_path, "import", "missing.csv", "--tier", "wide")
    assert code == 2 and "missing.csv: roster file not found" in err


def test_import_without_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "people.csv").write_text("name,email,every\nAnn Lee,ann@x.org,2 months\n")
    monkeypatch.chdir(tmp_path)  # no ./kit-sync.yaml here
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("KIT_SYNC_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["import", "people.csv"])
    assert result.exit_code == 0, result.stderr
    assert "  add ann-x-org: Ann Lee <ann@x.org> (every 2 months) from" in result.stdout


def test_import_bad_options_are_usage_errors(tmp_path: Path) -> None:
    write_config(tmp_path, "contacts:\n  - {name: Ann, tier: inner}\n")
    (tmp_path / "p.csv").write_text("name\nBo\n")
    code, _, err = run(tmp_path, "import", "p.csv", "--date-order", "ymd")
    assert code == 2 and "--date-order: Input should be 'dmy' or 'mdy'" in err
    code, _, err = run(tmp_path, "import", "p.csv", "--format", "xls")
    assert code == 2 and "--format: Input should be 'auto', 'outlook-csv'" in err


def test_import_of_a_file_already_included_previews_it_in_place(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name,email\nAnn Lee,ann@x.org\nBo Chen,bo@x.org\n")
    write_config(tmp_path, "include:\n  - {path: people.csv, tier: inner}\n")
    code, out, _ = run(tmp_path, "import", "people.csv", "--tier", "wide")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "people.csv is included already (config.yaml:8); previewed in its place:"
    assert lines[2] == "  2 rows read, 2 kept, 0 merged into inline entries, 0 skipped"
    assert "(tier wide, every 3 months)" in lines[3]
    assert lines[-3] == "nothing was changed; to use these options, change config.yaml:8 to:"
