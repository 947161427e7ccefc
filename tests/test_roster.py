"""Roster loading: inline contacts, included files, merging, ids, filters."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_sync.app import load
from kit_sync.cadence import Interval
from kit_sync.config import Channel, load_config
from kit_sync.errors import ConfigError
from kit_sync.model import Touch
from kit_sync.roster import Roster, load_roster
from kit_sync.state import State

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
        f"include:\n  - {{path: {name}, tier: wide, date_order: mdy}}\n",
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
        "name,email,phone,city,notes\nANN LEE,ann@x.org,+1 555,Lisbon,csv notes\nCy,cy@x.org,,,\n"
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


# --------------------------------------------------------------------------- identity

OUTLOOK_COLUMNS = (
    "Title,First Name,Middle Name,Last Name,Company,Birthday,Categories,"
    "E-mail Address,E-mail Type,E-mail 2 Address,E-mail 2 Type,Notes"
)


def outlook(tmp_path: Path, rows: list[dict[str, str]], name: str = "outlook.csv") -> None:
    """An Outlook export (Windows-1252, CRLF, every cell quoted as Outlook writes it)."""
    cols = OUTLOOK_COLUMNS.split(",")
    lines = [",".join(f'"{c}"' for c in cols)]
    lines += [",".join(f'"{row.get(c, "")}"' for c in cols) for row in rows]
    (tmp_path / name).write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))


def person(first: str, last: str, email: str = "", email2: str = "", **more: str) -> dict[str, str]:
    return {
        "First Name": first,
        "Last Name": last,
        "E-mail Address": email,
        "E-mail Type": "SMTP" if email else "",
        "E-mail 2 Address": email2,
        "E-mail 2 Type": "SMTP" if email2 else "",
        **more,
    }


def test_a_shared_secondary_address_never_merges_people(tmp_path: Path) -> None:
    outlook(
        tmp_path,
        [
            person("Anna", "Berg", "anna@berg.example", "family@berg.example"),
            person("Lars", "Berg", "lars@berg.example", "family@berg.example"),
        ],
    )
    r = roster(tmp_path, "include:\n  - {path: outlook.csv, tier: wide}\n")
    assert [(c.id, c.name, c.emails) for c in r.contacts] == [
        ("anna-berg-example", "Anna Berg", ("anna@berg.example", "family@berg.example")),
        ("lars-berg-example", "Lars Berg", ("lars@berg.example", "family@berg.example")),
    ]
    (report,) = r.reports
    assert (report.rows, report.kept, report.duplicates, report.warnings) == (2, 2, [], [])


def test_same_primary_email_and_folded_name_is_one_person(tmp_path: Path) -> None:
    outlook(
        tmp_path,
        [
            person("José", "Núñez", "jose@nunez.example", Notes="first"),
            person("Ann", "Lee", "ann@lee.example"),
            person("JOSE", "NUNEZ", "Jose@Nunez.example", "jn@home.example", Company="Acme"),
            person("", "", "ann@lee.example"),  # no name: the address decides
        ],
    )
    r = roster(tmp_path, "include:\n  - {path: outlook.csv, tier: wide}\n")
    jose, ann = r.contacts
    assert (jose.name, jose.notes, jose.company) == ("José Núñez", "first", "Acme")
    assert jose.emails == ("jose@nunez.example", "jn@home.example")
    assert ann.name == "Ann Lee"
    (report,) = r.reports
    assert [m.describe() for m in report.duplicates] == [
        "outlook.csv:4 JOSE NUNEZ -> outlook.csv:2 José Núñez "
        "(id jose-nunez-example; same primary email Jose@Nunez.example)",
        "outlook.csv:5 ann@lee.example -> outlook.csv:3 Ann Lee "
        "(id ann-lee-example; same primary email ann@lee.example)",
    ]
    assert (report.rows, report.kept, len(report.duplicates)) == (4, 2, 2)


def test_imported_rows_sharing_a_primary_email_with_other_names_are_both_kept(
    tmp_path: Path,
) -> None:
    outlook(
        tmp_path,
        [
            person("Ngozi", "Okafor", "family@okafor.example"),
            person("Emeka", "Okafor", "family@okafor.example"),
        ],
    )
    r = roster(tmp_path, "include:\n  - {path: outlook.csv, tier: wide}\n")
    assert [(c.id, c.name) for c in r.contacts] == [
        ("family-okafor-example", "Ngozi Okafor"),
        ("family-okafor-example-emeka-okafor", "Emeka Okafor"),
    ]
    (report,) = r.reports
    assert report.warnings == [
        "outlook.csv:3 Emeka Okafor and outlook.csv:2 Ngozi Okafor are different people; "
        "they share the primary email family@okafor.example but not the name ('Ngozi "
        "Okafor', 'Emeka Okafor'): kept both, as 'family-okafor-example' and "
        "'family-okafor-example-emeka-okafor' (to pin these ids, add inline entries with "
        "an id and the same email)"
    ]
    assert r.warnings == report.warnings  # logged by sync and run too


def test_two_inline_entries_with_one_email_and_different_names_fail(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        roster(
            tmp_path,
            """\
            contacts:
              - {name: Tom Becker, email: tom@becker.example, tier: inner}
              - {name: Tom B. work, email: TOM@becker.example, tier: wide}
            """,
        )
    assert err.value.problems == [
        "config.yaml:8 id: two contacts have the id 'tom-becker-example' (the other is at "
        "config.yaml:7); they share the primary email TOM@becker.example but not the name "
        "('Tom Becker', 'Tom B. work'); give one of them its own id"
    ]


def test_one_person_written_twice_inline_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        roster(
            tmp_path,
            """\
            contacts:
              - {name: Zoë Brandt, email: zoe@b.example, tier: inner}
              - {name: zoe brandt, email: [Zoe@B.example, z@home.example], tier: wide}
            """,
        )
    assert err.value.problems == [
        "config.yaml:8: zoe brandt is written twice (also at config.yaml:7, same primary "
        "email Zoe@B.example); keep one of the two entries"
    ]


def test_inline_entries_absorb_rows_by_id_or_primary_email(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        "id,name,email,phone\n"
        "ann,Ann Lee,ann@x.org,+1 1\n"  # same explicit id (the name may differ)
        "bo2,Bo Chen,bo@x.org,+1 2\n"  # a different explicit id: another person
        ",Cy Diaz,cy@x.org,+1 3\n"  # primary email and name
        ",Di Ek,di@x.org,+1 4\n"  # primary email, but another name: another person
        ",Ed Fox,ed@home.org,+1 5\n"  # Ed's *secondary* address: another person
    )
    r = roster(
        tmp_path,
        """\
        contacts:
          - {id: ann, name: Ann L, tier: inner}
          - {id: bo, name: Bo Chen, email: bo@x.org, tier: inner}
          - {name: Cy Diaz, email: cy@x.org, tier: inner}
          - {name: Dina Ek, email: di@x.org, tier: inner}
          - {name: Ed Fox, email: [ed@work.org, ed@home.org], tier: inner}
        include:
          - {path: people.csv, tier: wide}
        """,
    )
    by_id = {c.id: c for c in r.contacts}
    assert by_id["ann"].phone == "+1 1" and by_id["ann"].name == "Ann L"
    assert by_id["cy-x-org"].phone == "+1 3"
    assert by_id["bo"].phone is None and by_id["bo2"].phone == "+1 2"
    assert by_id["di-x-org-di-ek"].name == "Di Ek" and by_id["di-x-org"].name == "Dina Ek"
    assert by_id["ed-home-org"].name == "Ed Fox"
    (report,) = r.reports
    assert [(m.row, m.into, m.into_id, m.why) for m in report.merged] == [
        ("people.csv:2", "config.yaml:7", "ann", "same id 'ann'"),
        ("people.csv:4", "config.yaml:9", "cy-x-org", "same primary email cy@x.org"),
    ]
    assert report.kept == 3
    assert len(report.warnings) == 3  # Di's id, Bo Chen and Ed Fox written twice
    assert any("people.csv:6 Ed Fox has the same name as config.yaml:11" in w for w in r.warnings)


# --------------------------------------------------------------------------- filters


def test_a_category_matching_no_row_is_an_error_listing_the_real_ones(tmp_path: Path) -> None:
    outlook(
        tmp_path,
        [
            person("Ann", "Lee", "ann@x.org", Categories="Network;VIP"),
            person("Bo", "Chen", "bo@x.org", Categories="Family"),
        ],
    )
    with pytest.raises(ConfigError) as err:
        roster(
            tmp_path,
            "include:\n  - path: outlook.csv\n    tier: wide\n"
            "    only: {categories: [VIP, Netwrok]}\n",
        )
    assert err.value.problems == [
        "config.yaml:9 include[0].only.categories: 'Netwrok' matches no row of outlook.csv; "
        "did you mean 'Network'? (the file's categories: Family, Network, VIP)"
    ]


def test_rows_excluded_by_a_filter_are_not_validated(tmp_path: Path) -> None:
    outlook(
        tmp_path,
        [
            person("Ann", "Lee", "ann@x.org", Categories="Network", Birthday="14/03/1985"),
            person("Bo", "Chen", "bo-at-x.org", Categories="Family", Birthday="31/02/1980"),
            person("", "", "", Company="Ghost Inc", Categories="Vendors"),
        ],
    )
    body = "include:\n  - {path: outlook.csv, tier: wide, only: {categories: [network]}}\n"
    r = roster(tmp_path, body)
    assert [(c.name, c.birthday) for c in r.contacts] == [("Ann Lee", date(1985, 3, 14))]
    (report,) = r.reports
    assert (report.rows, report.kept, report.filtered_out, report.skipped) == (3, 1, 2, [])
    assert report.dates == "day first (dmy, detected from line 2: 14/03/1985)"
    with pytest.raises(ConfigError) as err:  # without the filter, Bo's row is checked
        roster(tmp_path, "include:\n  - {path: outlook.csv, tier: wide}\n")
    assert [p.split(" ", 1)[0] for p in err.value.problems] == ["outlook.csv:3:", "outlook.csv:4:"]


@pytest.mark.parametrize(
    "where",
    [
        "tiers:\n  close: {every: 2}\ncontacts:\n  - {name: Ann, tier: close}\n",
        "contacts:\n  - {name: Ann, every: 2}\n",
        "include:\n  - {path: p.csv, every: 2}\n",
    ],
)
def test_every_without_a_unit_fails(tmp_path: Path, where: str) -> None:
    (tmp_path / "p.csv").write_text("name\nAnn\n")
    (tmp_path / "config.yaml").write_text("timezone: UTC\n" + where)
    with pytest.raises(ConfigError) as err:
        config, located = load_config(tmp_path / "config.yaml")
        load_roster(config, located)
    assert len(err.value.problems) == 1
    assert '\'2\' has no unit; write it with one, like "2 weeks" or "2 months"' in str(err.value)


def test_every_without_a_unit_in_a_csv_row_fails(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("name,every\nAnn,2\n")
    with pytest.raises(ConfigError, match=r"p\.csv:2 every: '2' has no unit"):
        roster(tmp_path, "include:\n  - {path: p.csv}\n")


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("cell", "setting", "expected"),
    [
        ("14/03/1985", "", date(1985, 3, 14)),  # UK export
        ("3/14/1985", "", date(1985, 3, 14)),  # US export
        ("03/04/1985", ", date_order: dmy", date(1985, 4, 3)),
        ("03/04/1985", ", date_order: mdy", date(1985, 3, 4)),
        ("0/0/00", "", None),  # Outlook's "no birthday"
        ("", "", None),
    ],
)
def test_export_birthdays(tmp_path: Path, cell: str, setting: str, expected: date | None) -> None:
    outlook(tmp_path, [person("Ann", "Lee", "ann@x.org", Birthday=cell)])
    r = roster(tmp_path, f"include:\n  - {{path: outlook.csv, tier: wide{setting}}}\n")
    assert r.contacts[0].birthday == expected


def test_an_ambiguous_export_without_date_order_is_an_error(tmp_path: Path) -> None:
    outlook(tmp_path, [person("Ann", "Lee", "ann@x.org", Birthday="03/04/1985")])
    with pytest.raises(ConfigError) as err:
        roster(tmp_path, "include:\n  - {path: outlook.csv, tier: wide}\n")
    (problem,) = err.value.problems
    assert problem.startswith(
        "outlook.csv:2: Birthday '03/04/1985' could be 3 April or 4 March, and no date in "
        "this file has a day over 12 to tell the order; set date_order: dmy"
    )


# --------------------------------------------------------------------------- seen_within

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_seen_within_keeps_people_touched_in_the_window(tmp_path: Path) -> None:
    outlook(
        tmp_path,
        [
            person("Ann", "Lee", "ann@x.org", Categories="Network"),  # touched last year
            person("Bo", "Chen", "bo@x.org", Categories="Network"),  # touched 3 years ago
            person("Cy", "Diaz", "cy@x.org", Categories="Network"),  # never
            person("Di", "Ek", "di@x.org", Categories="Network"),  # inline: always kept
            person("Di", "Ek", "di@x.org", Categories="Network"),
        ],
    )
    (tmp_path / "config.yaml").write_text(
        HEAD + "state: state.sqlite\ncontacts:\n  - {name: Di Ek, email: di@x.org, tier: inner}\n"
        "include:\n  - path: outlook.csv\n    tier: wide\n"
        "    only: {categories: [Network], seen_within: 2 years}\n"
    )
    state = State(tmp_path / "state.sqlite")
    for cid, day in [
        ("ann-x-org", date(2025, 7, 1)),
        ("bo-x-org", date(2023, 6, 1)),
        ("di-x-org", date(2020, 1, 1)),
    ]:
        state.add_touch(Touch(cid, day, "cli", State.new_touch_id()))
    state.close()
    before = (tmp_path / "state.sqlite").read_bytes()

    loaded = load(tmp_path / "config.yaml", clock=lambda: NOW)

    assert [c.id for c in loaded.roster.contacts] == ["di-x-org", "ann-x-org"]
    (report,) = loaded.roster.reports
    assert (report.rows, report.kept, report.pruned, len(report.merged)) == (5, 1, 2, 2)
    assert report.filter == "categories Network; seen within 2 years"
    assert "2 pruned (not seen recently)" in report.summary()
    assert (tmp_path / "state.sqlite").read_bytes() == before  # read only
    # The window is counted back from the clock the code takes.
    later = load(tmp_path / "config.yaml", clock=lambda: datetime(2027, 7, 2, tzinfo=UTC))
    assert [c.id for c in later.roster.contacts] == ["di-x-org"]


def test_seen_within_uses_a_last_contact_column(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        "name,email,last contact\n"
        "Ann Lee,ann@x.org,2025-01-01\n"
        "Bo Chen,bo@x.org,14/03/2020\n"
        "Cy Diaz,cy@x.org,\n"
    )
    (tmp_path / "config.yaml").write_text(
        HEAD + "include:\n  - {path: people.csv, tier: wide, only: {seen_within: 2 years}}\n"
    )
    config, located = load_config(tmp_path / "config.yaml")
    r = load_roster(config, located, today=date(2026, 6, 15))
    assert [c.name for c in r.contacts] == ["Ann Lee"]
    assert r.reports[0].pruned == 2
    assert r.reports[0].pruned_rows == ["people.csv:3 Bo Chen", "people.csv:4 Cy Diaz"]
    # The journal counts as well as the column.
    r = load_roster(
        config, located, today=date(2026, 6, 15), journal={"cy-x-org": date(2026, 1, 1)}
    )
    assert [c.name for c in r.contacts] == ["Ann Lee", "Cy Diaz"]


def test_seen_within_with_nothing_to_go_by_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name,email\nAnn Lee,ann@x.org\n")
    (tmp_path / "config.yaml").write_text(
        HEAD + "include:\n  - {path: people.csv, tier: wide, only: {seen_within: 2 years}}\n"
    )
    config, located = load_config(tmp_path / "config.yaml")
    with pytest.raises(ConfigError) as err:
        load_roster(config, located, today=date(2026, 6, 15))
    assert err.value.problems[0] == (
        "config.yaml:7 include[0].only.seen_within: nobody in people.csv can count as seen "
        "within 2 years: the touch journal has no touches yet and the file has no "
        "last-modified or last-contact dates; remove seen_within until kit-sync has "
        "recorded touches, or export a file with such a column"
    )


def test_seen_within_checks_the_date_column_only_where_it_is_used(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name,email,modified\nAnn Lee,ann@x.org,soon\n")
    assert [
        c.name for c in roster(tmp_path, "include:\n  - {path: people.csv, tier: wide}\n").contacts
    ] == ["Ann Lee"]
    with pytest.raises(ConfigError, match=r"people\.csv:2: last modified/contact date 'soon'"):
        roster(
            tmp_path, "include:\n  - {path: people.csv, tier: wide, only: {seen_within: 1 year}}\n"
        )


@settings(max_examples=40)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=25),
    st.randoms(use_true_random=False),
)
def test_identity_rules_hold_for_any_export(people: list[tuple[int, bool, bool]], rnd: Any) -> None:
    """Each person: a family address index (shared secondary), whether the export
    holds them twice (name in other case and accents), and whether they are also
    written inline. Nobody is lost, merged with another person, or invented."""
    rows, inline = [], []
    for i, (family, twice, is_inline) in enumerate(people):
        name, primary = f"Zoë Person{i}", f"p{i}@x.example"
        rows.append(f"{name},{primary}; family{family}@home.example")
        if twice:
            rows.append(f"ZOE PERSON{i},{primary.upper()}")
        if is_inline:
            inline.append(f"  - {{name: {name}, email: {primary}, tier: inner}}")
    rnd.shuffle(rows)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "people.csv").write_text("name,email\n" + "\n".join(rows) + "\n")
        body = ("contacts:\n" + "\n".join(inline) + "\n" if inline else "") + (
            "include:\n  - {path: people.csv, tier: wide}\n"
        )
        r = roster(home, body)
    assert sorted(c.emails[0].lower() for c in r.contacts) == sorted(
        f"p{i}@x.example" for i in range(len(people))
    )
    (report,) = r.reports
    assert report.rows == len(rows)
    assert report.kept + len(report.merged) + len(report.duplicates) == len(rows)
    assert len(report.merged) == sum((1 + twice) for _, twice, is_inline in people if is_inline)
    assert report.warnings == []


def test_a_bad_row_counts_once_whatever_its_problems_and_file_name(tmp_path: Path) -> None:
    (tmp_path / "My Contacts.csv").write_text(
        "name,email,birthday\nAnn,ann@x.org,\n,,31/02/1980\nBo,not-an-address,\n"
    )
    r = roster(tmp_path, 'include:\n  - {path: "My Contacts.csv", tier: wide}\n', True)
    (report,) = r.reports
    assert len(report.skipped) == 3  # two problems on line 3, one on line 4
    assert (report.rows, report.kept, report.bad_rows) == (3, 1, 2)
    assert "2 skipped" in report.summary()


def test_rows_without_a_persons_name_are_called_by_company_or_address(tmp_path: Path) -> None:
    outlook(
        tmp_path,
        [
            person("", "", "info@acme.example", Company="Acme Ltd"),
            person("", "", "orders@shop.example"),
            person("Ann", "Lee", "info@acme.example"),  # no name on one side: one person
        ],
    )
    r = roster(tmp_path, "include:\n  - {path: outlook.csv, tier: wide}\n")
    assert [(c.id, c.name) for c in r.contacts] == [
        ("info-acme-example", "Ann Lee"),
        ("orders-shop-example", "orders@shop.example"),
    ]
    assert r.reports[0].duplicates[0].row == "outlook.csv:4"
