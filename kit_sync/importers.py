"""Read contact export files (Outlook CSV, Google CSV, plain CSV, vCard) into raw entries.

Pure file reading: no network, no roster logic. Each readable row or card becomes a
`RawEntry` with normalised `fields`; each row or card that cannot be used becomes a
`RowProblem` that names the file and line and says what to do. The caller decides
whether to skip bad rows or stop.

Normalised `fields` keys (a key is left out when its value is empty):

    name        str         Outlook: First+Middle+Last, else "Display Name"/"Nickname";
                            Google old: "Name", else Given+Additional+Family, else
                            "Nickname"; Google new: First+Middle+Last, else "Nickname",
                            else "File As"; vCard: FN, else N (given additional family)
    email       list[str]   every address in file order, stripped, case kept; a repeat
                            of an earlier address (ignoring case) is dropped
    phone       str         one number: mobile first (Outlook "Mobile Phone", Google a
                            phone labelled Mobile, vCard TEL with TYPE=cell), else the
                            first number in the file's own order of preference
    company     str
    title       str         job title (not the "Mr./Dr." title)
    city        str
    birthday    datetime.date
    last_seen   datetime.date: a "Last Contact"/"Last Modified"/"Modified"/"Updated"
                column (vCard REV); an unreadable one is left as `last_seen_error`
                (the roster checks it only where `seen_within` uses it)
    notes       str         line breaks normalised to "\\n"
    categories  list[str]   Outlook "Categories", Google "Group Membership"/"Labels",
                            vCard CATEGORIES
    plain CSV only: tags (list[str], ";"-separated), id, tier, every, channel
                    (str as written), paused (bool: yes/no, true/false, 1/0)

Plain CSV: header names match case-insensitively; the columns are name, email
(several separated by ";" or ","), phone, tier, every, channel, notes, tags, city,
company, title, birthday, id, paused, with a few aliases ("full name", "e-mail",
"first name" + "last name", ...). The delimiter is "," unless the header line splits
into more cells on ";" or TAB (Excel in many European locales writes ";").

Decisions worth knowing:

* Format "auto": .vcf/.vcard is vCard, .csv is CSV with the header sniffed (Outlook,
  Google old, Google new, else plain); any other extension is vCard when the text
  starts with BEGIN:VCARD, else CSV.
* Encodings: UTF-8 with or without BOM, then Windows-1252; UTF-16 only with a BOM.
  A file that is UTF-8 apart from a few broken bytes is refused (ConfigError naming
  the line) instead of being misread as Windows-1252.
* Birthdays without a year (Google "--04-12", vCard "--0412", Apple's
  X-APPLE-OMIT-YEAR, vCard reduced dates "1985" or "1985-04") and Outlook's "none"
  markers ("0/0/00", "1/0/00": any date with a zero month or day) are left out
  without a problem. A birthday that is present but unreadable is a RowProblem and
  the entry is not returned.
* Accepted date forms: yyyy-mm-dd, yyyymmdd (optionally followed by a time),
  d.m.yyyy (always day first, as German/Eastern-European Outlook writes it), and
  numeric dates with "/" or "-" in the exporting machine's order: 14/03/1985 (UK,
  day first) or 3/14/1985 (US, month first). The order is one per file: set by
  `date_order` ("dmy"/"mdy"), else detected from the file's dates that can only be
  read one way (a first or second number over 12). A date that reads both ways in a
  file that does not settle the order is a RowProblem saying to set date_order.
* Google labels: the " ::: " separated list is split, the "* " system marker is
  removed, the "myContacts"/"My Contacts"/"Other Contacts" system groups are dropped
  (every contact is in them), "starred" becomes "Starred", all other labels are kept
  as written.
* Outlook e-mail cells holding an Exchange X.500 address ("/o=ExchangeLabs/...")
  are not e-mail addresses and are dropped.
* A row is bad (RowProblem, no entry) when it has neither name nor email, has more
  cells than the header, has an unreadable birthday (or plain-CSV "paused" value),
  or starts a quoted cell that is never closed. The RowProblem carries the row's
  categories when they could be read, so a filter that excludes the row drops it.
  A card is bad when it lacks its BEGIN:VCARD/END:VCARD pair or has neither FN/N
  nor EMAIL. Rows whose cells are all empty are skipped silently (nothing is lost).
"""

from __future__ import annotations

import codecs
import csv
import io
import quopri
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from kit_sync.errors import ConfigError
from kit_sync.files import MAX_ROSTER_BYTES, UnreadableFile, read_regular

__all__ = [
    "DATE_ORDERS",
    "FORMATS",
    "DateOrder",
    "Export",
    "RawEntry",
    "RowProblem",
    "read_export",
    "read_roster_file",
]

FORMATS = ("auto", "outlook-csv", "google-csv", "csv", "vcard")


@dataclass(frozen=True)
class RawEntry:
    fields: dict[str, Any]
    where: str  # "path/to/file.csv:14": the 1-based line the row or card starts on


@dataclass(frozen=True)
class RowProblem:
    where: str
    message: str
    # The row's categories when the row could be read that far, so a filter that
    # excludes the row also drops its problem; None when they are unknown (a row
    # with extra cells, an unclosed quote, a card without END:VCARD).
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Export:
    """Everything read from one file: its entries, its bad rows, and how it was read."""

    entries: list[RawEntry]
    problems: list[RowProblem]
    kind: str  # "outlook-csv", "google-csv", "csv" or "vcard"
    rows: int  # rows (or cards) read, bad ones included; empty rows are not rows
    dates: DateOrder  # how numeric dates were read
    has_last_seen: bool  # a last-modified/last-contact column (vCard: REV)


def read_roster_file(
    path: Path, fmt: str = "auto", date_order: str | None = None
) -> tuple[list[RawEntry], list[RowProblem]]:
    """The entries and bad rows of one contact export file (see `read_export`)."""
    export = read_export(path, fmt, date_order)
    return export.entries, export.problems


def read_export(path: Path, fmt: str = "auto", date_order: str | None = None) -> Export:
    """Read one contact export file.

    fmt: "auto" | "outlook-csv" | "google-csv" | "csv" | "vcard". "auto" picks vCard
    for .vcf/.vcard, CSV for .csv (then sniffs the header: Outlook, Google old or new
    format, else plain CSV), and for any other extension looks at the content.

    date_order: "dmy" | "mdy" | None: how numeric CSV dates are written; None
    detects it from the file's unambiguous dates (a first or second number over 12).

    Raises ConfigError (the message names the file) when the file is missing,
    unreadable, cannot be decoded, or is not a recognisable format at all.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(
            f"{path}: unknown roster file format {fmt!r}; use one of: {', '.join(FORMATS)}"
        )
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ConfigError(f"{path}: date_order {date_order!r} is not one of dmy, mdy")
    text = _decode(_read_bytes(path), path)
    if fmt == "auto":
        suffix = path.suffix.lower()
        if suffix in (".vcf", ".vcard"):
            fmt = "vcard"
        elif suffix == ".csv":
            fmt = "auto-csv"
        else:
            looks_vcard = text.lstrip().upper().startswith("BEGIN:VCARD")
            fmt = "vcard" if looks_vcard else "auto-csv"
    if fmt == "vcard":
        return _read_vcard(text, path)
    return _read_csv(text, path, fmt, date_order)


# --------------------------------------------------------------------------- file + text


def _read_bytes(path: Path) -> bytes:
    try:
        return read_regular(path, MAX_ROSTER_BYTES)
    except UnreadableFile as e:
        raise ConfigError(f"{path}: {e}; name a CSV or vCard file") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: roster file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a roster file; name the file") from None
    except PermissionError:
        raise ConfigError(
            f"{path}: cannot read the roster file (permission denied); check the file's permissions"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the roster file: {e.strerror or e}") from None


def _line_of_offset(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM), else Windows-1252; UTF-16 only with its BOM."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"{path}: the file says it is UTF-16 but byte offset {e.start} "
                f"(line {_line_of_offset(raw, e.start)}) cannot be decoded; "
                "save the file again as UTF-8"
            ) from None
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        raise ConfigError(
            f"{path}: the file contains NUL bytes (first at line {_line_of_offset(raw, at)}, "
            f"byte offset {at}); it is probably UTF-16 without a byte-order mark or not a "
            "text file; save it as UTF-8 CSV or vCard"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        utf8_error = e
    # A file that is mostly valid UTF-8 with a few broken bytes must not be read as
    # Windows-1252: every accented letter would silently turn into mojibake.
    lenient = raw.decode("utf-8-sig", errors="replace")
    if any(ord(ch) > 0x7F and ch != "\ufffd" for ch in lenient):
        start = utf8_error.start
        raise ConfigError(
            f"{path}: the file is UTF-8 but byte 0x{raw[start]:02X} at line "
            f"{_line_of_offset(raw, start)} (byte offset {start}) is not valid UTF-8; "
            "fix or retype that character and save the file as UTF-8"
        )
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: cannot read the file as UTF-8 or Windows-1252: byte "
            f"0x{raw[e.start]:02X} at line {_line_of_offset(raw, e.start)} (byte offset "
            f"{e.start}) is neither; save the file as UTF-8 and try again"
        ) from None


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _clean(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _add_unique_emails(out: list[str], values: Iterable[str]) -> None:
    seen = {e.casefold() for e in out}
    for value in values:
        v = value.strip()
        if v.lower().startswith("mailto:"):
            v = v[7:].strip()
        if v and v.casefold() not in seen:
            seen.add(v.casefold())
            out.append(v)


def _join_name(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


# --------------------------------------------------------------------------- dates

_ISO = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?$")
_NO_YEAR = re.compile(r"^--(?:\d{2}-?\d{2}|\d{2}|-\d{2})$")
_REDUCED = re.compile(r"^\d{4}(?:-\d{2})?$")
# Numeric dates in the exporting machine's order: 14/03/1985 (UK), 3/14/1985 (US),
# 14-03-1985 (NL); Outlook may append a time ("3/14/1985 0:00:00").
_NUMERIC = re.compile(r"^(\d{1,2})([/-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T].*)?$")
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T].*)?$")

DATE_ORDERS = ("dmy", "mdy")
_ORDER_WORDS = {"dmy": "day first", "mdy": "month first"}
_MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)

_CSV_DATE_HINT = (
    "write it as yyyy-mm-dd (e.g. 1985-04-12) or in the file's own order "
    "(14/03/1985 or 3/14/1985), or clear it"
)
_VCARD_DATE_HINT = "write it as BDAY:1985-04-12 (or BDAY:--04-12 without a year), or remove it"


class _BadValue(Exception):
    pass


@dataclass(frozen=True)
class DateOrder:
    """How a file writes numeric dates: "dmy", "mdy", or None when nothing says.

    `source` says why ("date_order: dmy in the config", "line 14: 14/03/1985");
    `conflict` names a line of each order when the file writes both.
    """

    order: str | None = None
    source: str = ""
    conflict: str = ""

    def describe(self) -> str:
        if self.order is None:
            return ""
        return f"{_ORDER_WORDS[self.order]} ({self.order}, {self.source})"


def _numeric_parts(value: str) -> tuple[int, int, str] | None:
    """(first, second, year text) of a slash/dash date, or None for any other form."""
    m = _NUMERIC.match(value.strip())
    if not m or _ISO.match(value.strip()):
        return None
    return int(m.group(1)), int(m.group(3)), m.group(4)


def detect_date_order(dates: Iterable[tuple[str, str]], setting: str | None) -> DateOrder:
    """The file's numeric date order from (where, value) pairs, or the setting.

    Only a date whose first number is over 12 (day first) or whose second is
    (month first) says anything; a file can be read without a setting only when
    such dates exist and all agree."""
    if setting is not None:
        return DateOrder(setting, f"date_order: {setting} in the config")
    first: dict[str, str] = {}
    for where, value in dates:
        parts = _numeric_parts(value)
        if parts is None or len(parts[2]) != 4 or 0 in parts[:2]:
            continue
        a, b, _ = parts
        if a > 12 and b <= 12:
            first.setdefault("dmy", f"{where.rsplit(':', 1)[-1]}: {value.strip()}")
        elif b > 12 and a <= 12:
            first.setdefault("mdy", f"{where.rsplit(':', 1)[-1]}: {value.strip()}")
    if len(first) == 2:
        return DateOrder(
            None,
            conflict=f"day first (line {first['dmy']}) and month first (line {first['mdy']})",
        )
    if first:
        ((order, seen),) = first.items()
        return DateOrder(order, f"detected from line {seen}")
    return DateOrder()


def _parse_date(value: str, label: str = "birthday", order: DateOrder = DateOrder()) -> date | None:
    """A date, or None when there is no usable (full) date. Raises _BadValue."""
    v = value.strip()
    if not v:
        return None
    hint = _VCARD_DATE_HINT if label == "BDAY" else _CSV_DATE_HINT
    if _NO_YEAR.match(v) or _REDUCED.match(v):
        return None  # valid, but without a year (or day) there is nothing to keep
    y = m = d = 0
    if match := _ISO.match(v):
        y, m, d = (int(g) for g in match.groups())
    elif parts := _numeric_parts(v):
        a, b, year = parts
        if a == 0 or b == 0:
            return None  # Outlook's "no birthday": 0/0/00, 1/0/00
        if len(year) == 2:
            raise _BadValue(
                f"{label} {v!r} has a two-digit year, which is ambiguous; "
                "write the full year (e.g. 4/12/1985) or clear it"
            )
        y = int(year)
        d, m = _day_month(a, b, v, label, order)
    elif match := _DOTTED.match(v):
        d, m, y = (int(g) for g in match.groups())
        if m == 0 or d == 0:
            return None
    else:
        raise _BadValue(f"{label} {v!r} is not a date kit-sync can read; {hint}")
    try:
        return date(y, m, d)
    except ValueError:
        raise _BadValue(f"{label} {v!r} is not a real calendar date; {hint}") from None


def _day_month(a: int, b: int, v: str, label: str, order: DateOrder) -> tuple[int, int]:
    """(day, month) of the numeric date `v` = a/b/year, in the file's order."""
    if (a > 12 and b > 12) or a > 31 or b > 31:
        raise _BadValue(f"{label} {v!r} is not a real calendar date; {_CSV_DATE_HINT}")
    if order.order == "dmy" and a <= 31 and b <= 12:
        return a, b
    if order.order == "mdy" and a <= 12 and b <= 31:
        return b, a
    if order.order is not None:
        return _contradicts(v, label, order)
    if a == b or (a > 12) != (b > 12):
        # 03/03/1985 reads the same both ways; 14/03/1985 and 3/14/1985 only one way.
        return (a, b) if a > 12 or a == b else (b, a)
    how = (
        f"this file writes dates both {order.conflict}"
        if order.conflict
        else "no date in this file has a day over 12 to tell the order"
    )
    raise _BadValue(
        f"{label} {v!r} could be {a} {_MONTHS[b - 1]} or {b} {_MONTHS[a - 1]}, and {how}; "
        "set date_order: dmy (day first, as UK/European exports write) or date_order: mdy "
        "(month first, US) on this include"
    )


def _contradicts(v: str, label: str, order: DateOrder) -> tuple[int, int]:
    raise _BadValue(
        f"{label} {v!r} is not a date in {_ORDER_WORDS[order.order or 'dmy']} order "
        f"({order.order}, {order.source}); fix the date or the order"
    )


# --------------------------------------------------------------------------- CSV


class _Row:
    """One CSV record looked up by header name (case- and space-insensitive)."""

    def __init__(self, index: dict[str, int], cells: list[str]) -> None:
        self._index = index
        self._cells = cells

    def get(self, header: str) -> str:
        i = self._index.get(_norm_header(header))
        if i is None or i >= len(self._cells):
            return ""
        return _clean(self._cells[i])

    def first(self, *headers: str) -> str:
        for h in headers:
            if v := self.get(h):
                return v
        return ""


def _norm_header(h: str) -> str:
    return " ".join(h.strip().lstrip("\ufeff").casefold().split())


@dataclass
class _Mapped:
    fields: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    birthday: str = ""  # raw text, parsed centrally
    last_seen: str = ""  # raw text of a last-modified/last-contact column (vCard REV)

    def put(self, key: str, value: Any) -> None:
        if value:
            self.fields[key] = value


_OUTLOOK_PHONES = (
    "Mobile Phone",
    "Business Phone",
    "Home Phone",
    "Primary Phone",
    "Company Main Phone",
    "Business Phone 2",
    "Home Phone 2",
    "Other Phone",
    "Car Phone",
    "Assistant's Phone",
    "Callback",
    "Radio Phone",
)


def _map_outlook(row: _Row) -> _Mapped:
    out = _Mapped()
    name = _join_name(row.get("First Name"), row.get("Middle Name"), row.get("Last Name"))
    out.put("name", name or row.first("Display Name", "Nickname"))
    emails: list[str] = []
    for h in ("E-mail Address", "E-mail 2 Address", "E-mail 3 Address"):
        v = row.get(h)
        if v.startswith("/"):
            continue  # Exchange X.500 address ("/o=ExchangeLabs/ou=..."), not e-mail
        _add_unique_emails(emails, [v])
    out.put("email", emails)
    out.put("phone", row.first(*_OUTLOOK_PHONES))
    out.put("company", row.get("Company"))
    out.put("title", row.get("Job Title"))
    out.put("city", row.first("Business City", "Home City", "Other City"))
    out.put("notes", row.get("Notes"))
    out.put("categories", _split_list(row.get("Categories"), ";"))
    out.birthday = row.get("Birthday")
    return out


_GOOGLE_DROP = {"mycontacts", "my contacts", "other contacts"}


def _google_labels(value: str) -> list[str]:
    out: list[str] = []
    for part in value.split(":::"):
        label = part.strip()
        if label.startswith("*"):
            label = label[1:].strip()
        if not label or label.casefold() in _GOOGLE_DROP:
            continue
        if label.casefold() == "starred":
            label = "Starred"
        if label not in out:
            out.append(label)
    return out


def _numbered(row_headers: Iterable[str], pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for h in row_headers:
        if m := pattern.match(h):
            found.append((int(m.group(1)), h))
    return sorted(found)


_G_EMAIL = re.compile(r"^e-?mail (\d+) - value$")
_G_PHONE = re.compile(r"^phone (\d+) - value$")
_G_CITY = re.compile(r"^address (\d+) - city$")


def _map_google(row: _Row, headers: list[str], new: bool) -> _Mapped:
    out = _Mapped()
    if new:
        name = _join_name(row.get("First Name"), row.get("Middle Name"), row.get("Last Name"))
        out.put("name", name or row.first("Nickname", "File As"))
        out.put("company", row.get("Organization Name"))
        out.put("title", row.get("Organization Title"))
        out.put("categories", _google_labels(row.get("Labels")))
    else:
        name = row.get("Name") or _join_name(
            row.get("Given Name"), row.get("Additional Name"), row.get("Family Name")
        )
        out.put("name", name or row.get("Nickname"))
        out.put("company", row.get("Organization 1 - Name"))
        out.put("title", row.get("Organization 1 - Title"))
        out.put("categories", _google_labels(row.get("Group Membership")))
    emails: list[str] = []
    for _, h in _numbered(headers, _G_EMAIL):
        _add_unique_emails(emails, row.get(h).split(":::"))
    out.put("email", emails)
    phones: list[tuple[str, str]] = []  # (type/label, number)
    for _, h in _numbered(headers, _G_PHONE):
        kind = row.first(h[: -len("value")] + "Type", h[: -len("value")] + "Label")
        for number in row.get(h).split(":::"):
            if number.strip():
                phones.append((kind.casefold(), number.strip()))
    mobile = [n for k, n in phones if "mobile" in k or "cell" in k]
    out.put("phone", (mobile or [n for _, n in phones] or [""])[0])
    for _, h in _numbered(headers, _G_CITY):
        if city := row.get(h):
            out.put("city", city)
            break
    out.put("notes", row.get("Notes"))
    out.birthday = row.get("Birthday")
    return out


_GENERIC_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "display name"),
    "email": ("email", "emails", "e-mail", "email address", "e-mail address"),
    "phone": ("phone", "mobile", "phone number"),
    "tier": ("tier",),
    "every": ("every",),
    "channel": ("channel",),
    "notes": ("notes", "note"),
    "tags": ("tags",),
    "city": ("city",),
    "company": ("company", "organization", "organisation"),
    "title": ("title", "job title"),
    "birthday": ("birthday",),
    "id": ("id",),
    "paused": ("paused",),
}

_TRUE = {"true", "yes", "y", "1", "x", "paused"}
_FALSE = {"false", "no", "n", "0", "active"}


def _split_list(value: str, seps: str) -> list[str]:
    out: list[str] = []
    for part in re.split(f"[{re.escape(seps)}]", value):
        p = part.strip()
        if p and p not in out:
            out.append(p)
    return out


def _map_generic(row: _Row) -> _Mapped:
    out = _Mapped()

    def col(key: str) -> str:
        return row.first(*_GENERIC_ALIASES[key])

    out.put("name", col("name") or _join_name(row.get("first name"), row.get("last name")))
    emails: list[str] = []
    _add_unique_emails(emails, re.split(r"[;,]", col("email")))
    out.put("email", emails)
    for key in ("phone", "company", "title", "city", "notes", "id", "tier", "every", "channel"):
        out.put(key, col(key))
    out.put("tags", _split_list(col("tags"), ";"))
    paused = col("paused")
    if paused:
        if paused.casefold() in _TRUE:
            out.fields["paused"] = True
        elif paused.casefold() in _FALSE:
            out.fields["paused"] = False
        else:
            out.problems.append(
                f"paused {paused!r} is not yes or no; write yes or no, or clear the cell"
            )
    out.birthday = col("birthday")
    return out


def _generic_has_columns(index: dict[str, int]) -> bool:
    keys = (*_GENERIC_ALIASES["name"], *_GENERIC_ALIASES["email"], "first name", "last name")
    return any(k in index for k in keys)


_OUTLOOK_SIGNATURE = {
    "first name",
    "middle name",
    "last name",
    "suffix",
    "job title",
    "business phone",
    "mobile phone",
    "home phone",
    "e-mail address",
    "e-mail 2 address",
    "business city",
    "home city",
    "categories",
}


_GOOGLE_OLD_MARKS = {"given name", "additional name", "family name", "group membership"}
_GOOGLE_NEW_MARKS = {"labels", "file as", "phonetic first name", "organization name"}
_G_ANY = re.compile(r"^(?:e-?mail|phone|address|organization|website) \d+ - (?:value|type|label)$")


def _google_kind(headers: set[str]) -> str | None:
    """ "google-old", "google-new", or None when the header is not Google's."""
    if headers & _GOOGLE_OLD_MARKS or any(h.endswith(" - type") for h in headers):
        return "google-old"
    if headers & _GOOGLE_NEW_MARKS or any(h.endswith(" - label") for h in headers):
        return "google-new"
    if any(_G_ANY.match(h) for h in headers):
        return "google-old" if "name" in headers else "google-new"
    return None


def _sniff_csv(index: dict[str, int]) -> str:
    headers = set(index)
    if google := _google_kind(headers):
        return google
    generic_cols = "name" in headers or "email" in headers
    outlook = "e-mail address" in headers or len(headers & _OUTLOOK_SIGNATURE) >= 3
    if outlook and not generic_cols:
        return "outlook"
    return "generic"


def _sniff_delimiter(text: str) -> str:
    """Comma, unless the header line splits into more cells on ';' or TAB."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    best, best_n = ",", len(next(csv.reader([first]), []))
    for d in (";", "\t"):
        n = len(next(csv.reader([first], delimiter=d), []))
        if n > best_n:
            best, best_n = d, n
    return best


def _csv_records(text: str, delimiter: str) -> tuple[list[tuple[int, list[str]]], int | None]:
    """All records with their start line, and the start line of an unclosed quote."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    last_end = 0
    for cells in reader:
        records.append((last_end + 1, cells))
        last_end = reader.line_num
    unclosed: int | None = None
    if records:
        # The non-strict reader silently swallows everything after a quote that is
        # never closed; re-read just the last record strictly to notice that.
        start = records[-1][0]
        tail = "".join(io.StringIO(text, newline="").readlines()[start - 1 :])
        try:
            list(csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter, strict=True))
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                unclosed = start
    return records, unclosed


#: Columns that say when a contact was last edited or contacted (for seen_within).
LAST_SEEN_COLUMNS = (
    "last contact",
    "last contacted",
    "last-contact",
    "last modified",
    "last-modified",
    "last modified time",
    "modified",
    "last updated",
    "updated",
)
_KIND_NAMES = {
    "outlook": "outlook-csv",
    "google-old": "google-csv",
    "google-new": "google-csv",
    "generic": "csv",
}


def _read_csv(text: str, path: Path, fmt: str, date_order: str | None) -> Export:
    try:
        records, unclosed = _csv_records(text, _sniff_delimiter(text))
    except csv.Error as e:  # e.g. a cell larger than the csv module's field limit
        raise ConfigError(f"{path}: cannot read the file as CSV: {e}") from None
    body = [(line, cells) for line, cells in records if any(c.strip() for c in cells)]
    if not body:
        raise ConfigError(f"{path}: the file is empty; export the contacts again")
    header_line, headers = body[0]
    if unclosed == header_line:
        raise ConfigError(
            f'{_where(path, header_line)}: the header row opens a quote (") that is never '
            "closed; fix the header row"
        )
    index: dict[str, int] = {}
    for i, h in enumerate(headers):
        index.setdefault(_norm_header(h), i)
    norm_headers = list(index)

    kind = _sniff_csv(index)
    if fmt == "outlook-csv":
        kind = "outlook"
        if not {"first name", "last name", "e-mail address"} & set(index):
            raise _not_format(path, "an Outlook contacts export", "First Name, E-mail Address")
    elif fmt == "google-csv":
        if kind not in ("google-old", "google-new"):
            if "name" in index:
                kind = "google-old"
            elif "first name" in index or "last name" in index:
                kind = "google-new"
            else:
                raise _not_format(
                    path, "a Google Contacts export", "Name or First Name, E-mail 1 - Value"
                )
    elif fmt == "csv":
        kind = "generic"
    if kind == "generic" and not _generic_has_columns(index):
        shown = ", ".join(h.strip() for h in headers[:8] if h.strip())
        more = ", ..." if len(headers) > 8 else ""
        raise ConfigError(
            f"{_where(path, header_line)}: the header has no name or email column "
            f"(found: {shown}{more}); a roster CSV needs a header row with at least a "
            "'name' or an 'email' column, or an unchanged Outlook/Google contacts export"
        )

    mapper: Callable[[_Row], _Mapped]
    if kind == "outlook":
        mapper = _map_outlook
    elif kind == "google-old":
        mapper = partial(_map_google, headers=norm_headers, new=False)
    elif kind == "google-new":
        mapper = partial(_map_google, headers=norm_headers, new=True)
    else:
        mapper = _map_generic

    entries: list[RawEntry] = []
    problems: list[RowProblem] = []
    mapped_rows: list[tuple[str, _Mapped]] = []
    for line, cells in body[1:]:
        where = _where(path, line)
        if line == unclosed:
            problems.append(
                RowProblem(
                    where,
                    'this row opens a quote (") that is never closed, so the rest of the '
                    "file was read as one cell; add the missing closing quote",
                )
            )
            continue
        if len(cells) > len(headers):
            problems.append(
                RowProblem(
                    where,
                    f"row has {len(cells)} cells but the header has {len(headers)}; a value "
                    "probably contains an unquoted comma: put that value in double quotes "
                    "or remove the extra cells",
                )
            )
            continue
        row = _Row(index, cells)
        mapped = mapper(row)
        mapped.last_seen = row.first(*LAST_SEEN_COLUMNS)
        mapped_rows.append((where, mapped))
    # Numeric dates are written in the exporting machine's order: settle it for the
    # whole file first, from the rows that can only be read one way.
    order = detect_date_order(
        ((w, raw) for w, m in mapped_rows for raw in (m.birthday, m.last_seen) if raw),
        date_order,
    )
    for where, mapped in mapped_rows:
        _finish(mapped, where, entries, problems, "Birthday", order=order)
    problems.sort(key=lambda p: int(p.where.rsplit(":", 1)[1]))  # file order
    return Export(
        entries,
        problems,
        _KIND_NAMES[kind],
        rows=len(body) - 1,
        dates=order,
        has_last_seen=any(h in index for h in LAST_SEEN_COLUMNS),
    )


def _not_format(path: Path, what: str, expected: str) -> ConfigError:
    return ConfigError(
        f"{path}: does not look like {what} (expected columns such as {expected}); "
        "check the file or choose another format"
    )


def _finish(
    mapped: _Mapped,
    where: str,
    entries: list[RawEntry],
    problems: list[RowProblem],
    birthday_label: str,
    what: str = "row",
    order: DateOrder = DateOrder(),
) -> None:
    messages = list(mapped.problems)
    if not mapped.fields.get("name") and not mapped.fields.get("email"):
        if what == "row":
            messages.insert(
                0, "row has no name and no email; add a name or an email, or delete the row"
            )
        else:
            messages.insert(
                0,
                "card has no name (FN or N) and no EMAIL; add a name or an email address, "
                "or delete the card",
            )
    try:
        bday = _parse_date(mapped.birthday, birthday_label, order)
    except _BadValue as e:
        messages.append(str(e))
    else:
        if bday is not None:
            mapped.fields["birthday"] = bday
    if mapped.last_seen:
        # Checked only where seen_within uses it (the roster decides): a bad value in
        # a column nobody asked for must not stop the load.
        try:
            seen = _parse_date(mapped.last_seen, "last modified/contact date", order)
        except _BadValue as e:
            mapped.fields["last_seen_error"] = str(e)
        else:
            if seen is not None:
                mapped.fields["last_seen"] = seen
    if messages:
        categories = tuple(mapped.fields.get("categories") or ())
        problems.extend(RowProblem(where, m, categories) for m in messages)
    else:
        entries.append(RawEntry(mapped.fields, where))


# --------------------------------------------------------------------------- vCard


@dataclass
class _Prop:
    name: str  # upper case, group removed ("item1.EMAIL" -> "EMAIL")
    params: dict[str, list[str]]
    value: str  # raw (escapes intact), quoted-printable already decoded


def _find_outside_quotes(s: str, ch: str) -> int:
    """Index of the first `ch` not inside double quotes, or -1."""
    quoted = False
    for i, c in enumerate(s):
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            return i
    return -1


def _split_outside_quotes(s: str, sep: str) -> list[str]:
    parts: list[str] = []
    while (i := _find_outside_quotes(s, sep)) >= 0:
        parts.append(s[:i])
        s = s[i + 1 :]
    parts.append(s)
    return parts


_QP = re.compile(r"quoted-printable", re.IGNORECASE)
_ENCODINGS = {"QUOTED-PRINTABLE", "BASE64", "B", "8BIT", "7BIT"}


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Unfold (RFC 6350 §3.2 / RFC 2425) and join quoted-printable soft line breaks."""
    out: list[tuple[int, list[str]]] = []
    is_qp = False  # the current logical line is a quoted-printable property
    qp_open = False  # ... and its last physical line ended in a soft break ("=")
    for n, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if out and qp_open:
            parts = out[-1][1]
            parts[-1] = parts[-1][:-1]  # drop the "=" of the soft line break
            parts.append(line)
        elif out and line[:1] in (" ", "\t"):
            out[-1][1].append(line[1:])
        else:
            out.append((n, [line]))
            colon = line.find(":")
            is_qp = colon >= 0 and bool(_QP.search(line, 0, colon))
        qp_open = is_qp and line.endswith("=")
    return [(n, "".join(parts)) for n, parts in out]


def _parse_prop(line: str) -> _Prop | None:
    colon = _find_outside_quotes(line, ":")
    if colon < 0:
        return None
    head, value = line[:colon], line[colon + 1 :]
    name_and_params = _split_outside_quotes(head, ";")
    name = name_and_params[0].strip().upper()
    if "." in name:
        name = name.rsplit(".", 1)[1]  # drop the group ("item1.EMAIL")
    params: dict[str, list[str]] = {}
    for raw in name_and_params[1:]:
        if "=" in raw:
            key, val = raw.split("=", 1)
            key = key.strip().upper()
            vals = [v.strip().strip('"') for v in _split_outside_quotes(val, ",")]
        else:  # vCard 2.1 bare parameter: "TEL;CELL;PREF:..." or ";QUOTED-PRINTABLE"
            bare = raw.strip().strip('"')
            key = "ENCODING" if bare.upper() in _ENCODINGS else "TYPE"
            vals = [bare]
        params.setdefault(key, []).extend(v for v in vals if v)
    if any(e.upper() == "QUOTED-PRINTABLE" for e in params.get("ENCODING", [])):
        value = _decode_qp(value, (params.get("CHARSET") or ["utf-8"])[0])
    return _Prop(name, params, value)


def _decode_qp(value: str, charset: str) -> str:
    data = quopri.decodestring(value.encode("utf-8"))
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return data.decode("cp1252", errors="replace")


def _vsplit(value: str, sep: str | None) -> list[str]:
    """Split on unescaped `sep` (None: no split) and resolve \\n \\, \\; \\\\ escapes."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt in "nN":
                buf.append("\n")
            elif nxt in ",;:\\":
                buf.append(nxt)
            else:
                buf.append(ch + nxt)  # not an escape we know: keep it as written
            i += 2
            continue
        if sep is not None and ch == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _text(value: str) -> str:
    return _clean(_vsplit(value, None)[0])


def _types(prop: _Prop) -> set[str]:
    out: set[str] = set()
    for v in prop.params.get("TYPE", []):
        out.update(t.strip().casefold() for t in v.split(","))
    return out


def _card_fields(props: list[_Prop]) -> _Mapped:
    out = _Mapped()
    by: dict[str, list[_Prop]] = {}
    for p in props:
        by.setdefault(p.name, []).append(p)

    name = next((t for p in by.get("FN", []) if (t := _text(p.value))), "")
    if not name:
        for p in by.get("N", []):
            comps = [_clean(c).replace(",", " ") for c in _vsplit(p.value, ";")]
            comps += [""] * (5 - len(comps))
            family, given, additional = comps[0], comps[1], comps[2]
            if name := _join_name(given, additional, family):
                break
    out.put("name", name)

    emails: list[str] = []
    _add_unique_emails(emails, (_text(p.value) for p in by.get("EMAIL", [])))
    out.put("email", emails)

    tels = [(p, _text(p.value)) for p in by.get("TEL", [])]
    tels = [(p, v[4:].strip() if v.lower().startswith("tel:") else v) for p, v in tels if v]
    cell = [v for p, v in tels if {"cell", "mobile"} & _types(p)]
    out.put("phone", (cell or [v for _, v in tels] or [""])[0])

    for p in by.get("ORG", []):
        if company := _clean(_vsplit(p.value, ";")[0]):
            out.put("company", company)
            break
    out.put("title", next((t for p in by.get("TITLE", []) if (t := _text(p.value))), ""))
    for p in by.get("ADR", []):
        comps = _vsplit(p.value, ";")
        if len(comps) > 3 and (city := _clean(comps[3])):
            out.put("city", city)
            break
    out.put("notes", "\n".join(t for p in by.get("NOTE", []) if (t := _text(p.value))))
    categories: list[str] = []
    for p in by.get("CATEGORIES", []):
        for c in _vsplit(p.value, ","):
            if (c := _clean(c)) and c not in categories:
                categories.append(c)
    out.put("categories", categories)

    out.last_seen = next((t for p in by.get("REV", []) if (t := _text(p.value))), "")
    bdays = by.get("BDAY", [])
    if bdays:
        p = bdays[0]
        raw = _text(p.value)
        omit = p.params.get("X-APPLE-OMIT-YEAR", [])
        if omit and raw.startswith(omit[0]):
            raw = "--" + raw[len(omit[0]) :].lstrip("-")
        out.birthday = raw
    return out


def _read_vcard(text: str, path: Path) -> Export:
    entries: list[RawEntry] = []
    problems: list[RowProblem] = []
    start: int | None = None  # line of the open card's BEGIN:VCARD
    props: list[_Prop] = []
    seen_begin = False
    for lineno, line in _logical_lines(text):
        if not line.strip():
            continue
        prop = _parse_prop(line)
        if prop is None:
            continue  # not a property line (stray text or 2.1 base64 data): ignore
        marker = prop.value.strip().upper()
        if prop.name == "BEGIN" and marker == "VCARD":
            seen_begin = True
            if start is not None:
                problems.append(
                    RowProblem(
                        _where(path, start),
                        f"card has no END:VCARD before the next BEGIN:VCARD on line {lineno}; "
                        "add END:VCARD after the card's last line",
                    )
                )
            start, props = lineno, []
        elif prop.name == "END" and marker == "VCARD":
            if start is None:
                problems.append(
                    RowProblem(
                        _where(path, lineno),
                        "END:VCARD without a matching BEGIN:VCARD; add BEGIN:VCARD at the "
                        "start of this card or delete the stray line",
                    )
                )
                continue
            _finish(_card_fields(props), _where(path, start), entries, problems, "BDAY", "card")
            start, props = None, []
        elif start is not None:
            props.append(prop)
    if start is not None:
        problems.append(
            RowProblem(
                _where(path, start),
                "card has no END:VCARD (the file ends first); add END:VCARD after the "
                "card's last line",
            )
        )
    if not seen_begin:
        raise ConfigError(
            f"{path}: no BEGIN:VCARD found, so this is not a vCard file; "
            "export the contacts as vCard (.vcf) or choose another format"
        )
    cards = len(entries) + len({p.where for p in problems})
    dated = any("last_seen" in e.fields or "last_seen_error" in e.fields for e in entries)
    return Export(entries, problems, "vcard", cards, DateOrder(), has_last_seen=dated)
