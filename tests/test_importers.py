"""Reading contact exports: Outlook CSV, Google CSV (old and new), plain CSV, vCard 3/4."""

from __future__ import annotations

import codecs
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_sync.errors import ConfigError
from kit_sync.importers import RawEntry, RowProblem, read_export, read_roster_file

DATA = Path(__file__).parent / "data" / "roster"

OUTLOOK_HEADER = (
    '"Title","First Name","Middle Name","Last Name","Suffix","Company","Department",'
    '"Job Title","Business City","Home City","Business Phone","Home Phone","Mobile Phone",'
    '"Birthday","Categories","E-mail Address","E-mail Type","E-mail 2 Address","Notes"'
)


def by_where(entries: list[RawEntry]) -> dict[str, dict[str, object]]:
    return {e.where: e.fields for e in entries}


def where_and_message(problems: list[RowProblem]) -> list[tuple[str, str]]:
    return [(p.where, p.message) for p in problems]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def outlook_row(**cells: str) -> str:
    names = [h.strip('"') for h in OUTLOOK_HEADER.split(",")]
    return ",".join(f'"{cells.get(n, "")}"' for n in names)


# --------------------------------------------------------------------------- Outlook


def test_outlook_export_full_classic_header() -> None:
    path = DATA / "outlook.csv"
    # Ann's "4/12/1985" reads both ways and no row of the file settles it: the
    # include says the export came from a US machine.
    entries, problems = read_roster_file(path, date_order="mdy")

    assert [e.where for e in entries] == [f"{path}:2", f"{path}:5", f"{path}:6"]
    ann, jurgen, orders = (e.fields for e in entries)
    assert ann == {
        "name": "Ann Marie Lee",
        "email": ["ann.lee@acme.example", "Ann@Home.example"],
        "phone": "+1 617 555 0101",  # Mobile Phone wins over Business Phone
        "company": "Acme Corp",
        "title": "Head of Operations",
        "city": "Boston",
        "birthday": date(1985, 4, 12),
        "notes": (
            "Met at KubeCon 2023, Chicago.\n"
            'Likes climbing, "the steep kind".\n'
            "Ask about the move to Denver."
        ),
        "categories": ["Clients", "VIP"],
    }
    # UTF-8 with BOM; Outlook's "0/0/00" means no birthday; the "Dr." title is not the name.
    assert jurgen == {
        "name": "Jürgen K. Müller",
        "email": ["j.mueller@soehne.example"],
        "phone": "+49 221 555 0199",
        "company": "Müller & Söhne GmbH",
        "city": "Köln",
    }
    assert orders == {"email": ["orders@vendor.example"]}
    assert where_and_message(problems) == [
        (
            f"{path}:7",
            "row has no name and no email; add a name or an email, or delete the row",
        )
    ]


def test_outlook_cp1252_export(tmp_path: Path) -> None:
    text = (
        OUTLOOK_HEADER
        + "\r\n"
        + outlook_row(**{"First Name": "Jürgen", "Last Name": "Müller", "Home City": "Köln"})
        + "\r\n"
        + outlook_row(**{"First Name": "Zoë", "E-mail Address": "zoe@example.org"})
        + "\r\n"
    )
    path = write(tmp_path, "contacts.CSV", text, encoding="cp1252")
    assert "Müller".encode("cp1252") in path.read_bytes()

    entries, problems = read_roster_file(path)

    assert problems == []
    assert by_where(entries) == {
        f"{path}:2": {"name": "Jürgen Müller", "city": "Köln"},
        f"{path}:3": {"name": "Zoë", "email": ["zoe@example.org"]},
    }


def test_outlook_birthdays_and_exchange_addresses(tmp_path: Path) -> None:
    rows = [
        outlook_row(**{"First Name": "A", "Birthday": "1/0/00"}),
        outlook_row(**{"First Name": "B", "Birthday": "12/31/1970"}),
        outlook_row(**{"First Name": "C", "Birthday": "31.12.1970"}),
        outlook_row(**{"First Name": "D", "Birthday": "31/13/1970"}),
        outlook_row(**{"First Name": "E", "Birthday": "4/12/85"}),
        outlook_row(
            **{
                "First Name": "F",
                "E-mail Address": "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=f",
                "E-mail Type": "EX",
                "E-mail 2 Address": "f@corp.example",
                "Categories": "Clients; VIP;Clients",
            }
        ),
    ]
    path = write(tmp_path, "outlook.csv", "\n".join([OUTLOOK_HEADER, *rows]) + "\n")

    entries, problems = read_roster_file(path)

    assert by_where(entries) == {
        f"{path}:2": {"name": "A"},
        f"{path}:3": {"name": "B", "birthday": date(1970, 12, 31)},
        f"{path}:4": {"name": "C", "birthday": date(1970, 12, 31)},
        f"{path}:7": {
            "name": "F",
            "email": ["f@corp.example"],
            "categories": ["Clients", "VIP"],
        },
    }
    assert [p.where for p in problems] == [f"{path}:5", f"{path}:6"]
    assert problems[0].message.startswith("Birthday '31/13/1970' is not a real calendar date;")
    assert "1985-04-12" in problems[0].message  # says how to write it
    assert problems[1].message.startswith("Birthday '4/12/85' has a two-digit year")


# --------------------------------------------------------------------------- Google


def test_google_old_format() -> None:
    path = DATA / "google_old.csv"
    entries, problems = read_roster_file(path)

    assert by_where(entries) == {
        f"{path}:2": {
            "name": "Ada Lovelace",
            # " ::: " inside one cell holds two addresses of the same type
            "email": ["ada@home.example", "ada@alt.example", "ada@work.example"],
            "phone": "+44 7700 900123",  # the Mobile one, though it is Phone 2
            "company": "Babbage & Co",
            "title": "Analyst",
            "city": "London",
            "birthday": date(1815, 12, 10),
            "notes": "Poet of numbers.",
            "categories": ["Starred", "Analytical Engine"],
        },
        # "--12-09" has no year: left out, and not a problem
        f"{path}:5": {
            "name": "Grace Hopper",
            "phone": "+1 202 555 0147",
            "notes": "Navy.\nAsk about COBOL\nand nanoseconds.",
        },
    }
    assert [p.where for p in problems] == [f"{path}:8", f"{path}:9", f"{path}:10"]
    assert problems[0].message.startswith("Birthday 'June 1912' is not a date kit-sync can read;")
    assert problems[1].message == (
        "row has 55 cells but the header has 54; a value probably contains an unquoted "
        "comma: put that value in double quotes or remove the extra cells"
    )
    assert problems[2].message.startswith("row has no name and no email;")


def test_google_new_format_with_bom() -> None:
    path = DATA / "google_new.csv"
    assert path.read_bytes().startswith(codecs.BOM_UTF8)

    entries, problems = read_roster_file(path)

    assert by_where(entries) == {
        f"{path}:2": {
            "name": "Chiara Rossi",
            "email": ["chiara@studio.example", "Chiara.Rossi@mail.example"],
            "phone": "+39 347 555 0199",
            "company": "Studio Rossi",
            "title": "Architect",
            "city": "Milano",
            "birthday": date(1990, 3, 1),
            "notes": "Designed the Lisbon office.\nPrefers WhatsApp.",
            "categories": ["Mentors", "Starred"],  # myContacts dropped, starred kept
        },
        f"{path}:6": {"email": ["newsletter@shop.example"]},  # "Other Contacts" dropped
        f"{path}:7": {"name": "Bobby", "phone": "+1 303 555 0111", "categories": ["Climbing"]},
    }
    assert where_and_message(problems) == [
        (
            f"{path}:8",
            "Birthday '1964-02-30' is not a real calendar date; write it as yyyy-mm-dd "
            "(e.g. 1985-04-12) or in the file's own order (14/03/1985 or 3/14/1985), "
            "or clear it",
        )
    ]


def test_google_new_export_with_only_some_columns(tmp_path: Path) -> None:
    # Google leaves out columns nobody uses; "Labels" alone marks the new format.
    path = write(
        tmp_path,
        "contacts.csv",
        "First Name,Middle Name,Last Name,Organization Name,Labels\n"
        "Hiro,,Nakamura,Timeless,Friends ::: * myContacts\n",
    )
    entries, problems = read_roster_file(path)
    assert problems == []
    assert by_where(entries) == {
        f"{path}:2": {"name": "Hiro Nakamura", "company": "Timeless", "categories": ["Friends"]}
    }


# --------------------------------------------------------------------------- plain CSV


def test_generic_csv() -> None:
    path = DATA / "generic.csv"
    entries, problems = read_roster_file(path, date_order="mdy")  # Bob's 4/1/1990

    assert by_where(entries) == {
        f"{path}:2": {
            "id": "ann-lee",
            "name": "Ann Lee",
            "email": ["ann.lee@acme.example", "ann@home.example"],
            "phone": "+1 617 555 0101",
            "tier": "A",
            "every": "2 weeks",
            "channel": "lunch",
            "notes": "Ask about Denver,\nand the new climbing gym.",
            "tags": ["climbing", "mentor"],
            "city": "Boston",
            "company": "Acme Corp",
            "birthday": date(1985, 4, 12),
            "paused": False,
        },
        # starts after a two-line record: line numbers follow physical lines
        f"{path}:4": {
            "id": "bob",
            "name": "Bob Stone",
            "email": ["bob@stone.example"],
            "tier": "C",
            "every": "3 months",
            "channel": "email",
            "birthday": date(1990, 4, 1),
            "paused": True,
        },
    }
    # line 5 is blank and line 6 has only empty cells: skipped without a problem
    assert where_and_message(problems) == [
        (
            f"{path}:7",
            "row has no name and no email; add a name or an email, or delete the row",
        ),
        (f"{path}:8", "paused 'maybe' is not yes or no; write yes or no, or clear the cell"),
    ]


def test_generic_csv_header_is_case_insensitive_with_bom_and_semicolons(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "roster.csv",
        "\ufeffName;EMAIL;Tags;Birthday\r\n"
        'Ann Lee;"ann@a.example, ANN@a.example,ann@b.example";x;--04-12\r\n',
    )
    entries, problems = read_roster_file(path)
    assert problems == []
    assert entries == [
        RawEntry(
            {"name": "Ann Lee", "email": ["ann@a.example", "ann@b.example"], "tags": ["x"]},
            f"{path}:2",
        )
    ]


def test_generic_csv_first_and_last_name_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "people.csv", "first name,last name,phone\nAda,Lovelace,+44 1\n")
    entries, problems = read_roster_file(path)
    assert problems == []
    assert by_where(entries) == {f"{path}:2": {"name": "Ada Lovelace", "phone": "+44 1"}}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1985-04-12", date(1985, 4, 12)),
        ("19850412", date(1985, 4, 12)),
        ("4/12/1985", None),  # ambiguous: see test_dates_*
        ("4/14/1985", date(1985, 4, 14)),
        ("14/4/1985", date(1985, 4, 14)),
        ("14-04-1985", date(1985, 4, 14)),
        ("3/3/1985", date(1985, 3, 3)),
        ("3/14/1985 0:00:00", date(1985, 3, 14)),
        ("12.4.1985", date(1985, 4, 12)),
        ("--04-12", None),
        ("0/0/00", None),
    ],
)
def test_birthday_forms(tmp_path: Path, cell: str, expected: date | None) -> None:
    path = write(tmp_path, "b.csv", f"name,birthday\nAnn,{cell}\n")
    if cell == "4/12/1985":
        entries, problems = read_roster_file(path)
        assert entries == [] and "could be 4 December or 12 April" in problems[0].message
        entries, problems = read_roster_file(path, date_order="dmy")
        assert entries[0].fields["birthday"] == date(1985, 12, 4)
        return
    entries, problems = read_roster_file(path)
    assert problems == []
    assert entries[0].fields.get("birthday") == expected


def test_csv_with_more_cells_than_header_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        "name,email\nLee, Ann,ann@example.org\nBob,bob@example.org\nCat\n",
    )
    entries, problems = read_roster_file(path)
    assert by_where(entries) == {
        f"{path}:3": {"name": "Bob", "email": ["bob@example.org"]},
        f"{path}:4": {"name": "Cat"},  # fewer cells than the header is fine
    }
    assert [p.where for p in problems] == [f"{path}:2"]
    assert problems[0].message.startswith("row has 3 cells but the header has 2;")


def test_csv_unclosed_quote_is_reported_on_the_line_it_opens(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        'name,notes\nAnn,fine\nBob,"never closed\nCat,swallowed\nDan,too\n',
    )
    entries, problems = read_roster_file(path)
    assert by_where(entries) == {f"{path}:2": {"name": "Ann", "notes": "fine"}}
    assert where_and_message(problems) == [
        (
            f"{path}:3",
            'this row opens a quote (") that is never closed, so the rest of the file was '
            "read as one cell; add the missing closing quote",
        )
    ]


def test_header_only_csv_has_no_entries(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "name,email\n")
    assert read_roster_file(path) == ([], [])


# --------------------------------------------------------------------------- vCard


def test_vcard_3_with_quoted_printable_and_broken_cards() -> None:
    path = DATA / "contacts_v3.vcf"
    entries, problems = read_roster_file(path)

    assert by_where(entries) == {
        f"{path}:1": {
            "name": "Ann Marie Lee",
            "email": ["ann.lee@acme.example", "Ann@Home.example"],  # item1. group too
            "phone": "+1 617 555 0101",  # TYPE=CELL preferred over the first TEL
            "company": "Acme Corp",
            "title": "Head of Operations",
            "city": "Boston",
            "birthday": date(1985, 4, 12),
            # folded line, \, \; \n escapes
            "notes": (
                "Met at KubeCon 2023, Chicago.\n"
                "Likes climbing; the steep kind.\n"
                "Ask about the move to Denver."
            ),
            "categories": ["Clients", "VIP"],
        },
        # vCard 2.1: QUOTED-PRINTABLE with a soft line break, bare CELL type, BDAY 19850412
        f"{path}:19": {
            "name": "Jürgen Müller",
            "email": ["j.mueller@soehne.example"],
            "phone": "+49 170 5550199",
            "city": "Köln",
            "birthday": date(1985, 4, 12),
            "notes": "Braut Bier in der Garage.\nFragen: wie läuft das neue Rezept?",
        },
        f"{path}:31": {"email": ["orders@vendor.example"]},
        # Apple's X-APPLE-OMIT-YEAR=1604 means "no year": birthday left out
        f"{path}:39": {"name": "Apple Birthday", "email": ["apple@x.example"]},
    }
    assert where_and_message(problems) == [
        (
            f"{path}:35",
            "card has no END:VCARD before the next BEGIN:VCARD on line 39; "
            "add END:VCARD after the card's last line",
        ),
        (
            f"{path}:46",
            "card has no name (FN or N) and no EMAIL; add a name or an email address, "
            "or delete the card",
        ),
    ]


def test_vcard_4() -> None:
    path = DATA / "contacts_v4.vcf"
    entries, problems = read_roster_file(path)

    assert by_where(entries) == {
        f"{path}:1": {
            "name": "Dr. Chiara Rossi",
            "email": ["chiara@studio.example", "Chiara.Rossi@mail.example"],
            "phone": "+39-347-555-0199",  # TYPE="cell,voice", tel: URI prefix removed
            "company": "Studio Rossi",
            "title": "Architect",
            "city": "Milano",  # a quoted LABEL param containing ":" does not confuse it
            # BDAY:--0301 has no year: left out
            "notes": "Designed the Lisbon office.\nPrefers WhatsApp; calls are fine after 6pm.",
            "categories": ["Mentors", "Design, Architecture"],
        },
        # no FN: name built from N
        f"{path}:18": {
            "name": "Hiro Nakamura",
            "email": ["hiro@timeless.example"],
            "birthday": date(1985, 4, 12),
        },
        f"{path}:24": {
            "name": "Mia Wong",
            "email": ["mia@wong.example", "mia.wong@corp.example"],  # folded mid-address
            "phone": "+1 415 555 0123",
            "birthday": date(1985, 4, 12),
            "categories": ["Family", "Climbing"],
        },
    }
    assert where_and_message(problems) == [
        (
            f"{path}:35",
            "BDAY 'circa 1980' is not a date kit-sync can read; write it as BDAY:1985-04-12 "
            "(or BDAY:--04-12 without a year), or remove it",
        ),
        (
            f"{path}:41",
            "END:VCARD without a matching BEGIN:VCARD; add BEGIN:VCARD at the start of this "
            "card or delete the stray line",
        ),
    ]


def test_vcard_unterminated_at_end_of_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.vcf",
        "begin:vcard\nversion:3.0\nfn:Ann\nend:vcard\n\nBEGIN:VCARD\nFN:Bob\n",
    )
    entries, problems = read_roster_file(path)
    assert entries == [RawEntry({"name": "Ann"}, f"{path}:1")]
    assert where_and_message(problems) == [
        (
            f"{path}:6",
            "card has no END:VCARD (the file ends first); add END:VCARD after the card's last line",
        )
    ]


def test_vcard_without_any_card_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "c.vcf", "FN:Ann\nEMAIL:ann@example.org\n")
    with pytest.raises(ConfigError, match=r"c\.vcf: no BEGIN:VCARD found"):
        read_roster_file(path)


# --------------------------------------------------------------------------- formats


def test_unknown_csv_header_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "foo,bar,baz\n1,2,3\n")
    with pytest.raises(ConfigError) as err:
        read_roster_file(path)
    assert str(err.value).startswith(f"{path}:1: the header has no name or email column")
    assert "found: foo, bar, baz" in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(ConfigError) as err:
        read_roster_file(path)
    assert str(err.value) == f"{path}: roster file not found; check the path"
    assert err.value.exit_code == 2


def test_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        read_roster_file(tmp_path)


def test_empty_file_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", "\n\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        read_roster_file(path)


def test_unknown_format_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown roster file format 'xls'"):
        read_roster_file(DATA / "generic.csv", fmt="xls")


def test_fmt_override_plain_csv_instead_of_outlook(tmp_path: Path) -> None:
    text = "First Name,Last Name,E-mail Address,Job Title,tier\nAnn,Lee,ann@a.example,CTO,A\n"
    path = write(tmp_path, "contacts.csv", text)
    auto, _ = read_roster_file(path)
    forced, _ = read_roster_file(path, fmt="csv")
    assert auto[0].fields == {
        "name": "Ann Lee",
        "email": ["ann@a.example"],
        "title": "CTO",
    }
    assert forced[0].fields == {
        "name": "Ann Lee",
        "email": ["ann@a.example"],
        "title": "CTO",
        "tier": "A",
    }


def test_fmt_override_vcard_for_other_extension(tmp_path: Path) -> None:
    text = (DATA / "contacts_v4.vcf").read_text()
    path = write(tmp_path, "export.dat", text)
    entries, _ = read_roster_file(path, fmt="vcard")
    auto, _ = read_roster_file(path)  # unknown extension: content decides
    assert [e.fields["name"] for e in entries] == ["Dr. Chiara Rossi", "Hiro Nakamura", "Mia Wong"]
    assert auto == entries


def test_fmt_override_that_does_not_fit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"google_old\.csv: does not look like an Outlook"):
        read_roster_file(DATA / "google_old.csv", fmt="outlook-csv")
    with pytest.raises(ConfigError, match=r"generic\.csv: no BEGIN:VCARD found"):
        read_roster_file(DATA / "generic.csv", fmt="vcard")


def test_fmt_google_csv_forced(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", "Name,Notes\nAda Lovelace,hi\n")
    entries, problems = read_roster_file(path, fmt="google-csv")
    assert problems == []
    assert entries == [RawEntry({"name": "Ada Lovelace", "notes": "hi"}, f"{path}:2")]


# --------------------------------------------------------------------------- encodings


def test_utf16_with_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", "\ufeffname,city\nJürgen,Köln\n", encoding="utf-16-le")
    entries, problems = read_roster_file(path)
    assert problems == []
    assert entries == [RawEntry({"name": "Jürgen", "city": "Köln"}, f"{path}:2")]


def test_utf8_with_a_broken_byte_is_not_read_as_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes("name,city\nJürgen,Köln\n".encode() + b"Bad\xff,X\n")
    with pytest.raises(ConfigError) as err:
        read_roster_file(path)
    assert str(err.value).startswith(
        f"{path}: the file is UTF-8 but byte 0xFF at line 3 (byte offset 27) is not valid UTF-8;"
    )


def test_undecodable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes(b"name\nAnn\nB\x81b\n")  # 0x81 is neither UTF-8 nor Windows-1252
    with pytest.raises(ConfigError) as err:
        read_roster_file(path)
    assert str(err.value) == (
        f"{path}: cannot read the file as UTF-8 or Windows-1252: byte 0x81 at line 3 "
        "(byte offset 10) is neither; save the file as UTF-8 and try again"
    )


def test_utf16_without_bom_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", "name\nAnn\n", encoding="utf-16-le")
    with pytest.raises(ConfigError, match="contains NUL bytes"):
        read_roster_file(path)


# --------------------------------------------------------------------------- date order


def test_dates_uk_export_is_read_day_first(tmp_path: Path) -> None:
    rows = [
        outlook_row(**{"First Name": "Ann", "Birthday": "03/04/1985"}),
        outlook_row(**{"First Name": "Bo", "Birthday": "14/03/1985"}),
        outlook_row(**{"First Name": "Cy", "Birthday": "0/0/00"}),
        outlook_row(**{"First Name": "Di", "Birthday": ""}),
    ]
    path = write(tmp_path, "uk.csv", "\r\n".join([OUTLOOK_HEADER, *rows]) + "\r\n", "cp1252")
    export = read_export(path)
    assert export.problems == []
    assert [e.fields.get("birthday") for e in export.entries] == [
        date(1985, 4, 3),  # settled by Bo's row: the whole file is day first
        date(1985, 3, 14),
        None,  # Outlook's "no birthday"
        None,
    ]
    assert (export.kind, export.rows, export.dates.order) == ("outlook-csv", 4, "dmy")
    assert export.dates.describe() == "day first (dmy, detected from line 3: 14/03/1985)"


def test_dates_us_export_is_read_month_first(tmp_path: Path) -> None:
    rows = [
        outlook_row(**{"First Name": "Ann", "Birthday": "3/4/1985"}),
        outlook_row(**{"First Name": "Bo", "Birthday": "3/14/1985"}),
    ]
    path = write(tmp_path, "us.csv", "\n".join([OUTLOOK_HEADER, *rows]) + "\n")
    export = read_export(path)
    assert [e.fields["birthday"] for e in export.entries] == [date(1985, 3, 4), date(1985, 3, 14)]
    assert export.dates.order == "mdy"


def test_dates_ambiguous_file_without_date_order_is_an_error(tmp_path: Path) -> None:
    rows = [outlook_row(**{"First Name": "Ann", "Birthday": "03/04/1985", "Categories": "Net"})]
    path = write(tmp_path, "amb.csv", "\n".join([OUTLOOK_HEADER, *rows]) + "\n")
    export = read_export(path)
    assert export.entries == []
    ((problem,),) = [export.problems]
    assert problem.where == f"{path}:2"
    assert problem.categories == ("Net",)  # so a filter that excludes the row drops it
    assert problem.message == (
        "Birthday '03/04/1985' could be 3 April or 4 March, and no date in this file has a "
        "day over 12 to tell the order; set date_order: dmy (day first, as UK/European "
        "exports write) or date_order: mdy (month first, US) on this include"
    )
    assert read_export(path, date_order="dmy").entries[0].fields["birthday"] == date(1985, 4, 3)
    assert read_export(path, date_order="mdy").entries[0].fields["birthday"] == date(1985, 3, 4)


def test_dates_that_contradict_the_setting_are_row_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "name,birthday\nAnn,14/03/1985\nBo,1985-03-14\n")
    export = read_export(path, date_order="mdy")
    assert [e.fields["name"] for e in export.entries] == ["Bo"]
    assert export.problems[0].message == (
        "Birthday '14/03/1985' is not a date in month first order (mdy, date_order: mdy "
        "in the config); fix the date or the order"
    )
    with pytest.raises(ConfigError, match="date_order 'ymd' is not one of dmy, mdy"):
        read_export(path, date_order="ymd")


def test_dates_a_file_writing_both_orders_reads_only_unambiguous_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "name,birthday\nA,14/03/1985\nB,3/14/1985\nC,3/4/1985\n")
    export = read_export(path)
    assert [e.fields["birthday"] for e in export.entries] == [date(1985, 3, 14)] * 2
    assert export.problems[0].where == f"{path}:4"
    assert "this file writes dates both day first (line 2: 14/03/1985) and month first " in (
        export.problems[0].message
    )


def test_last_seen_columns_and_vcard_rev(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "name,last contact\nAnn,14/03/2025\nBo,\nCy,someday\n",
    )
    export = read_export(path)
    assert export.has_last_seen and export.problems == []  # checked only where it is used
    ann, bo, cy = (e.fields for e in export.entries)
    assert ann["last_seen"] == date(2025, 3, 14) and "last_seen" not in bo
    assert "is not a date kit-sync can read" in cy["last_seen_error"]
    card = write(
        tmp_path,
        "c.vcf",
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Di\r\nREV:20240105T101010Z\r\nEND:VCARD\r\n",
    )
    vcard = read_export(card)
    assert (vcard.kind, vcard.rows, vcard.has_last_seen) == ("vcard", 1, True)
    assert vcard.entries[0].fields["last_seen"] == date(2024, 1, 5)


_days = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))


@settings(max_examples=60)
@given(st.lists(_days, min_size=1, max_size=20), st.sampled_from(["dmy", "mdy"]))
def test_a_file_written_in_one_order_is_never_misread(days: list[date], order: str) -> None:
    """Whatever the dates, a file from one machine is read right or flagged, never
    read with day and month swapped."""
    cells = [
        f"{d.day}/{d.month}/{d.year}" if order == "dmy" else f"{d.month}/{d.day}/{d.year}"
        for d in days
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = write(
            Path(tmp),
            "p.csv",
            "name,birthday\n" + "".join(f"P{i},{c}\n" for i, c in enumerate(cells)),
        )
        export = read_export(path)
        assert read_export(path, date_order=order).problems == []  # the setting always works
    settled = any(d.day > 12 for d in days)
    read = {int(e.fields["name"][1:]): e.fields["birthday"] for e in export.entries}
    for i, d in enumerate(days):
        if i in read:
            assert read[i] == d
        else:  # flagged: only when it reads both ways and nothing settles the order
            assert not settled and d.day != d.month and d.day <= 12
    assert export.dates.order == (order if settled else None)
