"""Roster loading: inline contacts, included files, merging, ids, filters."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from kit_sync.cadence import Interval
from kit_sync.config import Channel, load_config
from kit_sync.errors import ConfigError
from kit_sync.roster import Roster, load_roster

DATA = Path(__file__).parent / "data" / "roster"

HEAD = """\
timezone: UTC
backend: {type: local, path: tasks}
tiers:
  inner: {every: 3 weeks, channel: lunch, priority: high}
  wide: {every: quarterly, channel: email, priority: low}
"""


def roster(tmp_path: Path, body: str, skip_bad_rows: bool = False) -> Roster:
    (tmp_path / "config.yaml").write_text(HEAD + textwrap.dedent(body))
    config, located = load_config(tmp_path / "config.yaml")
    return load_roster(config, located, skip_bad_rows=skip_bad_rows)


def test_tier_supplies_every_channel_priority_and_contact_overrides(tmp_path: Path) -> None:
    r = roster(
        tmp_path,
        """\
        contacts:
          - {name: Ann Lee, email: Ann.Lee@Example.com, tier: inner}
          - {name: Bo, tier: inner, channel: call, priority: 5, every: 10 days}
          - {name: Cy, every: monthly}
        """,
    )
    ann, bo, cy = r.contacts
    assert (ann.id, ann.every, ann.channel, ann.priority) == (
        "ann-lee-example-com",
        Interval(days=21),
        Channel.LUNCH,
        1,
    )
    assert (bo.id, bo.every, bo.channel, bo.priority) == ("bo", Interval(days=10), Channel.CALL, 5)
    assert (cy.every, cy.channel, cy.priority, cy.tier) == (
        Interval(months=1),
        Channel.ANY,
        0,
        None,
    )
    assert ann.where == "config.yaml:7"


def test_id_is_stable_when_notes_or_tier_change(tmp_path: Path) -> None:
    a = roster(tmp_path, "contacts:\n  - {name: Ann, email: ann@x.org, tier: inner}\n")
    b = roster(
        tmp_path,
        "contacts:\n  - {name: Ann L, email: [ann@x.org, a@y.org], tier: wide, notes: hi}\n",
    )
    assert a.contacts[0].id == b.contacts[0].id == "ann-x-org"
    c = roster(tmp_path, "contacts:\n  - {name: Zoë Ångström, tier: wide}\n")
    assert c.contacts[0].id == "zoe-angstrom"


def test_find(tmp_path: Path) -> None:
    r = roster(
        tmp_path,
        """\
        contacts:
          - {name: Ann Lee, email: ann@x.org, tier: inner}
          - {name: Ann Marsh, id: marsh, tier: inner}
          - {name: Joanne, tier: inner}
        """,
    )
    assert [c.id for c in r.find("ANN@x.org")] == ["ann-x-org"]
    assert [c.id for c in r.find("marsh")] == ["marsh"]
    assert len(r.find("ann")) == 3  # substring of three names
    assert [c.id for c in r.find("ann lee")] == ["ann-x-org"]
    assert r.find("nobody") == []


@pytest.mark.parametrize(
    "name",
    [
        "outlook.csv",
        "google_old.csv",
        "google_new.csv",
        "contacts_v3.vcf",
        "contacts_v4.vcf",
        "generic.csv",
    ],
)
def test_includes_load_with_default_tier(tmp_path: Path, name: str) -> None:
    # The fixtures hold deliberately broken rows: they are skipped with a warning.
    shutil.copy(DATA / name, tmp_path / name)
    r = roster(
        tmp_path,
        "  A: {every: 2 weeks}\n  B: {every: 1 month}\n  C: {every: 2 months}\n"
        f"include:\n  - {{path: {name}, tier: wide}}\n",
        skip_bad_rows=True,
    )
    assert len(r.contacts) >= 2
    assert r.warnings and all(w.startswith(f"skipped {name}:") for w in r.warnings)
    for c in r.contacts:
        assert c.name
        assert c.tier in ("wide", "A", "B", "C")
        assert c.every == Interval(months=3) or c.tier != "wide"
        assert c.where.startswith(f"{name}:")
    ids = [c.id for c in r.contacts]
    assert len(ids) == len(set(ids))


def test_merge_inline_wins_and_fills_from_files(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        "name,email,phone,city,notes\n"
        "Ann From CSV,ann@x.org,+1 555,Lisbon,csv notes\n"
        "Cy,cy@x.org,,,\n"
    )
    r = roster(
        tmp_path,
        """\
        contacts:
          - {name: Ann Lee, email: ANN@x.org, tier: inner, notes: mine}
        include:
          - {path: people.csv, tier: wide}
        """,
    )
    ann = r.get("ann-x-org")
    assert ann is not None
    assert (ann.name, ann.notes, ann.tier) == ("Ann Lee", "mine", "inner")
    assert (ann.phone, ann.city) == ("+1 555", "Lisbon")  # filled from the file
    assert [c.id for c in r.contacts] == ["ann-x-org", "cy-x-org"]


def test_category_filter_and_tags(tmp_path: Path) -> None:
    (tmp_path / "people.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\nEMAIL:ann@x.org\r\nCATEGORIES:Network,VIP\r\n"
        "END:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bo\r\nEMAIL:bo@x.org\r\n"
        "CATEGORIES:Family\r\nEND:VCARD\r\n"
    )
    r = roster(
        tmp_path, "include:\n  - {path: people.vcf, tier: wide, only: {categories: [network]}}\n"
    )
    assert [(c.name, c.tags) for c in r.contacts] == [("Ann", ("Network", "VIP"))]


def test_problems_are_all_reported_with_places(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name,email,every\nAnn,ann@x.org,sometimes\n")
    with pytest.raises(ConfigError) as err:
        roster(
            tmp_path,
            """\
            contacts:
              - {name: Bo, tier: inner, colour: blue}
              - {name: Cy}
              - {name: Di, id: d, tier: inner}
              - {name: Di2, id: d, tier: inner}
            include:
              - {path: people.csv}
            """,
        )
    problems = err.value.problems
    assert "config.yaml:7 contacts[0].colour: unknown field 'colour'" in problems[0]
    assert any(p.startswith("config.yaml:8 Cy: needs a tier or an every") for p in problems)
    assert any(p.startswith("config.yaml:10 id: two contacts have the id 'd'") for p in problems)
    assert any(p.startswith("people.csv:2 every: 'sometimes' is not an interval") for p in problems)
    assert len(problems) == 4


def test_skip_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name,email\nAnn,ann@x.org\n,\nBo,bo@x.org,extra\n")
    with pytest.raises(ConfigError, match=r"people\.csv:4"):
        roster(tmp_path, "include:\n  - {path: people.csv, tier: wide}\n")
    r = roster(tmp_path, "include:\n  - {path: people.csv, tier: wide}\n", skip_bad_rows=True)
    assert [c.name for c in r.contacts] == ["Ann"]
    assert r.warnings and r.warnings[0].startswith("skipped people.csv:4")
