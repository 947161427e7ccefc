"""A generated Outlook contacts export the size of a real one, with the traps real ones
have, and the per-file counts `kit-sync check` must report for it.

Outlook (File > Open & Export > Export to a file > CSV) writes the 92 columns below,
in Windows-1252 with CRLF line ends, every non-empty cell quoted, birthdays in the
exporting machine's date format (here a UK machine: day first), "0/0/00" for no
birthday, several categories joined with ";", and notes with line breaks inside the
quoted cell. The expected counts are derived from how the rows are built, not from
running kit-sync.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field

# The header of a real Outlook export (Outlook 2016-365, English UI).
COLUMNS = [
    "Title",
    "First Name",
    "Middle Name",
    "Last Name",
    "Suffix",
    "Company",
    "Department",
    "Job Title",
    "Business Street",
    "Business Street 2",
    "Business Street 3",
    "Business City",
    "Business State",
    "Business Postal Code",
    "Business Country/Region",
    "Home Street",
    "Home Street 2",
    "Home Street 3",
    "Home City",
    "Home State",
    "Home Postal Code",
    "Home Country/Region",
    "Other Street",
    "Other Street 2",
    "Other Street 3",
    "Other City",
    "Other State",
    "Other Postal Code",
    "Other Country/Region",
    "Assistant's Phone",
    "Business Fax",
    "Business Phone",
    "Business Phone 2",
    "Callback",
    "Car Phone",
    "Company Main Phone",
    "Home Fax",
    "Home Phone",
    "Home Phone 2",
    "ISDN",
    "Mobile Phone",
    "Other Fax",
    "Other Phone",
    "Pager",
    "Primary Phone",
    "Radio Phone",
    "TTY/TDD Phone",
    "Telex",
    "Account",
    "Anniversary",
    "Assistant's Name",
    "Billing Information",
    "Birthday",
    "Business Address PO Box",
    "Categories",
    "Children",
    "Directory Server",
    "E-mail Address",
    "E-mail Type",
    "E-mail Display Name",
    "E-mail 2 Address",
    "E-mail 2 Type",
    "E-mail 2 Display Name",
    "E-mail 3 Address",
    "E-mail 3 Type",
    "E-mail 3 Display Name",
    "Gender",
    "Government ID Number",
    "Hobby",
    "Home Address PO Box",
    "Initials",
    "Internet Free Busy",
    "Keywords",
    "Language",
    "Location",
    "Manager's Name",
    "Mileage",
    "Notes",
    "Office Location",
    "Organizational ID Number",
    "Other Address PO Box",
    "Priority",
    "Private",
    "Profession",
    "Referred By",
    "Sensitivity",
    "Spouse",
    "User 1",
    "User 2",
    "User 3",
    "User 4",
    "Web Page",
]
assert len(COLUMNS) == 92

FIRST = [
    "Anna",
    "Lars",
    "Émilie",
    "Jürgen",
    "Siobhán",
    "Zoë",
    "Øystein",
    "Ana",
    "Björn",
    "Chloé",
    "Dávid",
    "Elif",
    "Fátima",
    "Gaël",
    "Håkon",
    "Inès",
    "Jörg",
    "Katrín",
    "Léa",
    "Margrét",
    "Noémie",
    "Oskar",
    "Pál",
    "Renée",
    "Sören",
    "Thérèse",
    "Ulrike",
    "Vésteinn",
    "Wojciech",
    "Xavière",
    "Yannick",
    "Zoltán",
    "Agnès",
    "Benoît",
    "Cécile",
    "Dorothée",
]
LAST = [
    "Berg",
    "Okafor",
    "Müller",
    "Dubois",
    "Nakamura",
    "García",
    "Lindqvist",
    "O'Brien",
    "Søndergaard",
    "Kowalski",
    "Novák",
    "Pérez",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ünal",
    "Vargas",
    "Weiß",
    "Yilmaz",
    "Zielinski",
    "Åberg",
    "Fontaine",
    "Lefèvre",
    "Moreau",
    "Haugen",
]

NETWORK, OTHER = "Network", ("Clients", "Family", "Vendors", "Suppliers;Clients")


@dataclass
class Expected:
    rows: int = 0
    kept: int = 0
    filtered_out: int = 0
    merged: int = 0  # into inline entries
    duplicates: int = 0
    skipped: int = 0
    warnings: int = 0
    inline: list[str] = field(default_factory=list)  # YAML lines of `contacts:`
    # a few rows to look at: (name, birthday as ISO or None)
    birthdays: dict[str, str | None] = field(default_factory=dict)

    @property
    def contacts(self) -> int:
        return self.kept + len(self.inline)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if value else ""


class _Writer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rows: list[dict[str, str]] = []
        self.names = ((f, last) for last in LAST for f in FIRST)  # all distinct
        self.n = 0

    def name(self) -> tuple[str, str]:
        return next(self.names)

    def email(self, first: str, last: str) -> str:
        self.n += 1
        text = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore")
        text = text.decode().lower()
        local = "".join(ch for ch in text if ch.isalnum() or ch == ".")
        return f"{local}.{self.n}@example.org"

    def birthday(self) -> str:
        """A UK machine: day first. Some rows have no birthday (Outlook writes 0/0/00)."""
        if self.rng.random() < 0.3:
            return "0/0/00"
        y, m, d = self.rng.randint(1950, 2000), self.rng.randint(1, 12), self.rng.randint(1, 28)
        return f"{d:02d}/{m:02d}/{y}"

    def add(self, **cells: str) -> None:
        row = {"Priority": "Normal", "Private": "False", "Sensitivity": "Normal", **cells}
        if row.get("E-mail Address"):
            row.setdefault("E-mail Type", "SMTP")
            row.setdefault("E-mail Display Name", row["E-mail Address"])
        if row.get("E-mail 2 Address"):
            row.setdefault("E-mail 2 Type", "SMTP")
        row.setdefault("Birthday", "0/0/00")
        row.setdefault("Anniversary", "0/0/00")
        self.rows.append(row)

    def person(
        self, categories: str, who: tuple[str, str] | None = None, **more: str
    ) -> tuple[str, str, str]:
        first, last = who or self.name()
        email = self.email(first, last)
        bday = self.birthday()
        cells = {
            "First Name": first,
            "Last Name": last,
            "E-mail Address": email,
            "Categories": categories,
            "Birthday": bday,
            "Mobile Phone": f"+44 7700 9{self.n:05d}",
            "Company": self.rng.choice(["Acme Ltd", "Müller & Söhne", "", "Nordlys AS"]),
            "Business City": self.rng.choice(["London", "Köln", "Bergen", ""]),
            **more,
        }
        self.add(**cells)
        return first, last, more.get("E-mail Address", email)

    def text(self) -> bytes:
        lines = [",".join(_quote(c) for c in COLUMNS)]
        lines += [",".join(_quote(row.get(c, "")) for c in COLUMNS) for row in self.rows]
        return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def outlook_export(seed: int = 10) -> tuple[bytes, Expected]:
    """An 814-row export and what importing its "Network" category must give."""
    w = _Writer(seed)
    x = Expected()

    # 300 people in Network (some also VIP), a third with multi-line notes.
    for i in range(300):
        notes = "Met at the Lisbon offsite.\r\nKids: two.\r\nAsk about the move." if i % 3 else ""
        first, last, _ = w.person("Network;VIP" if i % 7 == 0 else NETWORK, Notes=notes)
        x.kept += 1
        if i in (5, 6, 7):
            row = w.rows[-1]
            x.birthdays[f"{first} {last}"] = (
                None
                if row["Birthday"] == "0/0/00"
                else "{2}-{1}-{0}".format(*row["Birthday"].split("/"))
            )
    # A row whose birthday settles the order (day over 12) comes early enough anyway;
    # pin one so the file is never ambiguous whatever the seed.
    w.rows[0]["Birthday"] = "14/03/1985"
    x.birthdays[f"{w.rows[0]['First Name']} {w.rows[0]['Last Name']}"] = "1985-03-14"

    # 20 families: two people, each with their own address, sharing a family address in
    # "E-mail 2": two contacts each, never merged.
    for _ in range(20):
        a, b = w.name(), w.name()  # mostly one family name: the names run first-name first
        family = f"family.{w.n}@home.example"
        w.person(NETWORK, a, **{"E-mail 2 Address": family})
        w.person(NETWORK, b, **{"E-mail 2 Address": family})
        x.kept += 2

    # 15 people exported twice (an old and a new card): same primary address, the name
    # written with other case/accents. The second row merges into the first.
    for _ in range(15):
        first, last, email = w.person(NETWORK)
        folded = (first.upper(), last.upper())
        w.add(
            **{
                "First Name": folded[0],
                "Last Name": folded[1],
                "E-mail Address": email.upper(),
                "E-mail 2 Address": f"old.{w.n}@example.net",
                "Categories": NETWORK,
                "Job Title": "Partner",
            }
        )
        x.kept += 1
        x.duplicates += 1

    # 10 company-only rows: no person's name. With an address they are kept (called by
    # their address); without one they cannot be used and are skipped with --skip-bad-rows.
    for i in range(10):
        company = f"Supplier {i} GmbH"
        if i < 8:
            w.add(**{"Company": company, "E-mail Address": f"info{i}@supplier.example"})
            w.rows[-1]["Categories"] = NETWORK
            x.kept += 1
        else:
            w.add(**{"Company": company, "Business Phone": "+49 30 555", "Categories": NETWORK})
            x.skipped += 1

    # 3 people who are also written inline in the config: the rows merge into them.
    for _ in range(3):
        first, last, email = w.person(NETWORK)
        x.inline.append(f"  - {{name: {first} {last}, email: {email}, tier: inner}}")
        x.merged += 1

    # An inline entry and a row with the same address but another name: two people, the
    # row gets a disambiguated id and a warning.
    first, last, email = w.person(NETWORK)
    x.inline.append(f"  - {{name: Assistant of {first}, email: {email}, tier: inner}}")
    x.kept += 1
    x.warnings += 1

    # Two people who share one address as their *primary* one: both kept, one warning.
    shared = "the.okafors@home.example"
    w.person(NETWORK, **{"E-mail Address": shared})
    w.person(NETWORK, **{"E-mail Address": shared})
    x.kept += 2
    x.warnings += 1

    # Two people exported twice with *different* primary addresses: by the rules they are
    # two contacts each, and check warns about each pair (same name).
    for _ in range(2):
        first, last, _ = w.person(NETWORK)
        w.add(
            **{
                "First Name": first,
                "Last Name": last,
                "E-mail Address": f"{w.n}.private@example.net",
                "Categories": NETWORK,
            }
        )
        x.kept += 2
        x.warnings += 1

    # 424 rows in other categories, filtered out unread - including broken ones (an
    # impossible birthday, no name and no address), which must not block the import.
    for i in range(424):
        if i % 100 == 0:
            w.add(**{"First Name": "Broken", "Birthday": "31/02/1980", "Categories": "Family"})
        elif i % 100 == 1:
            w.add(**{"Company": "", "Notes": "who is this?", "Categories": "Vendors"})
        else:
            w.person(OTHER[i % len(OTHER)])
        x.filtered_out += 1

    x.rows = len(w.rows)
    return w.text(), x
