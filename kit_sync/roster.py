"""The roster: who to keep in touch with, from inline YAML and included files.

Loading collects every problem (with file:line and field) before failing, and
never drops a contact silently: an unreadable row fails the load unless the user
asked for `--skip-bad-rows`, and then it is reported as a warning.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dateutil.relativedelta import relativedelta
from pydantic import ValidationError

from kit_sync.clock import system_clock
from kit_sync.config import Config, ContactEntry, Filter, Include, problem_line
from kit_sync.errors import ConfigError

# Contact and Roster live in the core (model.py); re-exported for older imports.
from kit_sync.model import Channel, fold_text
from kit_sync.model import Contact as Contact
from kit_sync.model import Roster as Roster
from kit_sync.yamlsrc import Located, format_path

if TYPE_CHECKING:
    from kit_sync.importers import Export


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not slug:
        slug = "c-" + hashlib.sha256(text.encode()).hexdigest()[:10]
    return slug[:60]


def default_id(entry: ContactEntry) -> str:
    """Stable id: from the first email, else the name. Notes or tier never change it."""
    return slugify(entry.email[0] if entry.email else entry.name)


# --------------------------------------------------------------------------- import report


@dataclass(frozen=True)
class Merge:
    """A row that turned out to be someone already on the roster."""

    row: str  # "people.csv:17"
    name: str
    into: str  # where the entry it joined is written: "config.yaml:8" or "people.csv:4"
    into_id: str
    into_name: str
    why: str  # "same id 'ann'" or "same primary email ann@x.org"

    def describe(self) -> str:
        return (
            f"{self.row} {self.name} -> {self.into} {self.into_name} "
            f"(id {self.into_id}; {self.why})"
        )


@dataclass(frozen=True)
class Added:
    """A contact an included file adds to the roster."""

    id: str
    name: str
    emails: tuple[str, ...]
    tier: str | None
    every: str | None  # None: neither the row, its tier nor the include gives a cadence
    where: str


@dataclass
class FileReport:
    """What one `include:` entry gave: `kit-sync check` prints this per file.

    Every row read is counted once: rows == kept + filtered_out + pruned + merged +
    duplicates + skipped (skipped holds the bad rows, whether --skip-bad-rows is set
    or not: without it they are also problems that stop the load)."""

    path: str
    where: str  # the include entry: "config.yaml:12"
    label: str = ""  # how problems name the include: "include[0]"; "" for a preview
    format: str = ""
    dates: str = ""  # how numeric dates were read, when the file has any
    rows: int = 0
    filtered_out: int = 0
    pruned: int = 0
    pruned_rows: list[str] = field(default_factory=list)  # "people.csv:9 Bo Chen"
    added: list[Added] = field(default_factory=list)
    merged: list[Merge] = field(default_factory=list)  # into inline entries
    duplicates: list[Merge] = field(default_factory=list)  # into another row
    skipped: list[str] = field(default_factory=list)  # "people.csv:4: message"
    skipped_rows: set[str] = field(default_factory=set)  # "people.csv:4" (one per row)
    warnings: list[str] = field(default_factory=list)
    filter: str = ""  # "categories Network, VIP; seen within 2 years"
    problems: list[str] = field(default_factory=list)  # this file's share of the problems
    replaces: str = ""  # a preview of a file the config includes already: that include

    @property
    def kept(self) -> int:
        return len(self.added)

    @property
    def bad_rows(self) -> int:
        return len(self.skipped_rows)

    def summary(self) -> str:
        parts = [f"{self.rows} rows read", f"{self.kept} kept"]
        if self.filter or self.filtered_out:
            parts.append(f"{self.filtered_out} filtered out")
        if self.pruned:
            parts.append(f"{self.pruned} pruned (not seen recently)")
        parts.append(f"{len(self.merged)} merged into inline entries")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate rows merged")
        parts.append(f"{self.bad_rows} skipped")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warnings")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "include": self.where,
            "format": self.format,
            "dates": self.dates or None,
            "filter": self.filter or None,
            "rows": self.rows,
            "kept": self.kept,
            "filtered_out": self.filtered_out,
            "pruned": self.pruned,
            "pruned_rows": list(self.pruned_rows),
            "merged": [
                {"row": m.row, "name": m.name, "into": m.into, "id": m.into_id, "why": m.why}
                for m in self.merged
            ],
            "duplicates": [
                {"row": m.row, "name": m.name, "into": m.into, "id": m.into_id, "why": m.why}
                for m in self.duplicates
            ],
            "skipped": list(self.skipped),
            "skipped_rows": self.bad_rows,
            "replaces": self.replaces or None,
            "warnings": list(self.warnings),
            "added": [
                {
                    "id": a.id,
                    "name": a.name,
                    "emails": list(a.emails),
                    "tier": a.tier,
                    "every": a.every,
                    "row": a.where,
                }
                for a in self.added
            ],
        }


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedRoster(Roster):
    """The roster with what each included file gave (`kit-sync check` shows it)."""

    reports: list[FileReport] = field(default_factory=list)  # one per include, in order


#: Longest id: it goes into every task's UID and file name (255 bytes at most).
MAX_ID_LENGTH = 120


def id_problem(cid: str) -> str | None:
    """Why `cid` cannot be a contact id, or None when it can.

    The id goes into task UIDs and file names percent-encoded: a control character
    (a newline) or a very long id would fail every write for that contact."""
    if not cid.isprintable():
        return (
            f"{cid!r} holds a control character (a line break, tab or NUL); "
            "write the id on one line with letters, digits and punctuation"
        )
    encoded = len(quote(cid, safe=""))
    if len(cid) > MAX_ID_LENGTH or encoded > MAX_ID_LENGTH * 3 // 2:
        return (
            f"'{cid[:40]}...' is {len(cid)} characters long; an id may have at most "
            f"{MAX_ID_LENGTH} (accented and non-Latin letters count as 3 to 9, as in a "
            "file name): give a shorter id"
        )
    return None


@dataclass
class _Pending:
    entry: ContactEntry
    where: str
    inline: bool
    named: bool = True  # False for an address-only row (its name is its address)
    include: int | None = None  # index into config.include
    last_seen: date | None = None


@dataclass
class _Person:
    """One person on the roster: the first entry that claimed them, plus the rows
    that turned out to be them too (merged field by field, the first one winning)."""

    first: _Pending
    entry: ContactEntry
    named: bool
    rows: list[_Pending]  # the first entry and every row merged into it
    why: dict[int, str] = field(default_factory=dict)  # id(row) -> why it was merged
    id: str = ""

    @property
    def inline(self) -> bool:
        return self.first.inline

    @property
    def explicit_id(self) -> str | None:
        return self.entry.id


@dataclass
class Built:
    """A roster with its problems, for callers that show them instead of stopping
    (the `import` preview); `load_roster` raises when there are problems."""

    roster: LoadedRoster
    problems: list[str]


def load_roster(
    config: Config,
    located: Located | None = None,
    *,
    skip_bad_rows: bool = False,
    journal: Mapping[str, date] | None = None,
    today: date | None = None,
) -> LoadedRoster:
    """Resolve inline contacts and included files into a Roster. Raises ConfigError.

    journal: each contact id's last touch day (for `only: {seen_within: ...}`);
    today: the user's today, from the clock the caller holds."""
    built = build_roster(config, located, skip_bad_rows=skip_bad_rows, journal=journal, today=today)
    if built.problems:
        raise ConfigError(f"the roster has {len(built.problems)} problem(s)", built.problems)
    return built.roster


def build_roster(
    config: Config,
    located: Located | None = None,
    *,
    skip_bad_rows: bool = False,
    journal: Mapping[str, date] | None = None,
    today: date | None = None,
    preview: Include | None = None,
    replacing: int | None = None,
) -> Built:
    """Like load_roster, but returns the problems with the roster instead of raising.

    preview: one more file, given on the command line (`kit-sync import`): its report
    comes last, its problems are in that report, and an empty roster is no problem.
    replacing: the index of an include the preview stands in for (not read)."""
    source = config.source
    problems: list[str] = []
    warnings: list[str] = []
    pending: list[_Pending] = []

    def where_inline(path: tuple[str | int, ...]) -> str:
        line = located.line_of(path) if located else None
        return f"{source.name}:{line}" if line else source.name

    for i, raw in enumerate(config.contacts):
        base = ("contacts", i)
        if not isinstance(raw, dict):
            problems.append(
                f"{where_inline(base)} {format_path(base)}: a contact is a mapping "
                "with at least a name, like {name: Ann Lee, tier: inner}"
            )
            continue
        try:
            entry = ContactEntry.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                path = (*base, *err["loc"])
                problems.append(
                    problem_line(source, located, path, _message(err))
                    if located
                    else f"{source.name} {format_path(path)}: {_message(err)}"
                )
            continue
        pending.append(_Pending(entry, where_inline(base), inline=True))

    base_dir = str(source.parent.resolve()) + "/"

    def short(where: str) -> str:
        """people.csv:4 rather than /home/me/.config/kit-sync/people.csv:4."""
        return where[len(base_dir) :] if where.startswith(base_dir) else where

    reports: list[FileReport] = []
    includes = [*config.include, *([preview] if preview else [])]
    for j, inc in enumerate(includes):
        if inc is preview:
            report = FileReport(str(inc.path), "kit-sync import")
        else:
            report = FileReport(short(str(inc.path)), where_inline(("include", j)), f"include[{j}]")
        reports.append(report)
        if j == replacing:
            continue
        pending.extend(_read_include(j, inc, report, short, where_inline, skip_bad_rows))
        problems.extend(report.problems)

    persons = _identify(pending, problems)
    _assign_ids(persons, problems, reports)
    persons = _prune(persons, includes, reports, journal or {}, today, problems)
    _report_merges(persons, reports)
    _warn_name_twins(persons, reports)
    contacts = _contacts(config, persons, problems, reports, preview is not None)
    for report in reports:
        warnings.extend(f"skipped {s}" for s in report.skipped if skip_bad_rows)
        warnings.extend(report.warnings)
    if not problems and not contacts and preview is None:
        problems.append(
            f"{source.name}: the roster is empty; add people under 'contacts:' "
            "or a file under 'include:'"
        )
    return Built(LoadedRoster(contacts, warnings, reports), problems)


def _read_include(
    j: int,
    inc: Include,
    report: FileReport,
    short: Callable[[str], str],
    where_inline: Callable[[tuple[str | int, ...]], str],
    skip_bad_rows: bool,
) -> list[_Pending]:
    """The rows of one included file that pass its filter, as entries to resolve.

    Rows the filter excludes are counted, never validated: a broken row in a category
    the user did not ask for must not block the load."""
    from kit_sync.importers import read_export

    try:
        export = read_export(inc.path, inc.format, inc.date_order)
    except ConfigError as exc:
        where = f"{report.where} {report.label}.path: " if report.label else ""
        report.problems.append(f"{where}{short(str(exc))}")
        return []
    report.format, report.rows = export.kind, export.rows
    report.dates = export.dates.describe()

    only = inc.only or Filter()
    wanted = {c.casefold() for c in only.categories}
    filters = []
    if only.categories:
        filters.append("categories " + ", ".join(only.categories))
    if only.seen_within:
        filters.append(f"seen within {only.seen_within}")
    report.filter = "; ".join(filters)
    if wanted:
        _check_categories(j, inc, export, report, where_inline)

    def excluded(categories: Iterable[str] | None) -> bool:
        return (
            bool(wanted)
            and categories is not None
            and not wanted & {str(c).casefold() for c in categories}
        )

    def bad(row: str, text: str) -> None:
        report.skipped_rows.add(row)
        report.skipped.append(text)
        if not skip_bad_rows:
            report.problems.append(
                f"{text} (fix the row, or run with --skip-bad-rows to load the rest without it)"
            )

    filtered_rows: set[str] = set()
    for rp in export.problems:
        if excluded(rp.categories):
            filtered_rows.add(rp.where)
        else:
            bad(rp.where, f"{short(rp.where)}: {rp.message}")

    out: list[_Pending] = []
    for raw_entry in export.entries:
        fields: dict[str, Any] = dict(raw_entry.fields)
        categories = [str(c) for c in fields.pop("categories", []) or []]
        where = short(raw_entry.where)
        if excluded(categories):
            filtered_rows.add(raw_entry.where)
            continue
        last_seen = fields.pop("last_seen", None)
        seen_error = fields.pop("last_seen_error", None)
        if seen_error and only.seen_within:
            bad(where, f"{where}: {seen_error}")
            continue
        fields["tags"] = list(dict.fromkeys([*(fields.get("tags") or []), *categories]))
        for key in ("tier", "every", "channel"):
            if fields.get(key) in (None, "") and getattr(inc, key) is not None:
                fields[key] = getattr(inc, key)
        fields = {k: v for k, v in fields.items() if k in ContactEntry.model_fields}
        named = bool(fields.get("name"))
        if not named and fields.get("email"):
            # A row with no person's name (a company card, a bare address): call it
            # by its company, else its address; it still counts as unnamed for identity.
            fields["name"] = fields.get("company") or fields["email"][0]
        try:
            entry = ContactEntry.model_validate(fields)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                bad(where, f"{where} {format_path(tuple(err['loc']))}: {_message(err)}")
            continue
        out.append(_Pending(entry, where, False, named, j, last_seen))
    report.filtered_out = len(filtered_rows)
    return out


def _check_categories(
    j: int,
    inc: Include,
    export: Export,
    report: FileReport,
    where_inline: Callable[[tuple[str | int, ...]], str],
) -> None:
    """An `only: {categories}` value that matches no row is a typo until shown
    otherwise: an error naming it and the categories the file really has."""
    have: dict[str, str] = {}  # folded -> as written (first seen)
    for e in export.entries:
        for c in e.fields.get("categories") or []:
            have.setdefault(str(c).casefold(), str(c))
    for p in export.problems:
        for c in p.categories or ():
            have.setdefault(c.casefold(), c)
    real = sorted(have.values(), key=str.casefold)
    assert inc.only is not None
    for k, value in enumerate(inc.only.categories):
        if value.casefold() in have:
            continue
        close = difflib.get_close_matches(value.casefold(), list(have), n=1, cutoff=0.6)
        hint = f"did you mean '{have[close[0]]}'? " if close else ""
        listing = (
            f"(the file's categories: {', '.join(real)})"
            if real
            else "(the file has no categories at all)"
        )
        if report.label:
            where = where_inline(("include", j, "only", "categories", k))
            where += f" {report.label}.only.categories"
        else:
            where = "--only-category"
        report.problems.append(
            f"{where}: '{value}' matches no row of {report.path}; {hint}{listing}"
        )


def _message(err: Any) -> str:
    msg: str = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        known = ", ".join(ContactEntry.model_fields)
        return f"unknown field '{err['loc'][-1]}' (known: {known})"
    if err["type"] == "missing":
        return "is required but missing"
    if err["type"] == "enum":
        return f"'{err.get('input')}' is not allowed; {msg[0].lower()}{msg[1:]}"
    return msg


# --------------------------------------------------------------------------- identity
#
# Who is the same person (README "Who is the same person"):
#   * the same explicit `id`; or
#   * the same primary email (the first address of each side, case ignored) and
#     compatible names: equal after case/accent folding, or one side has no name.
# A shared secondary address (family, team, assistant) never merges people. Inline
# entries are never merged with each other: the same person written twice, or two
# people claiming one id, is a config error naming both lines. Imported rows that
# claim one id but are different people are both kept, the later one with a
# disambiguated id, and `check` lists that as a warning.


def fold_name(name: str) -> str:
    """Case, accents, punctuation and spacing folded: "Zoë  O'Brien" -> "zoe o brien"."""
    return fold_text(name)


def _primary(entry: ContactEntry) -> str | None:
    return entry.email[0].casefold() if entry.email else None


def _compatible(a: _Person, b: _Pending) -> bool:
    if not (a.named and b.named):
        return True
    return fold_name(a.entry.name) == fold_name(b.entry.name)


def _identify(pending: list[_Pending], problems: list[str]) -> list[_Person]:
    persons: list[_Person] = []
    by_id: dict[str, _Person] = {}
    by_primary: dict[str, list[_Person]] = {}
    for item in pending:
        e = item.entry
        target: _Person | None = None
        why = ""
        if e.id and e.id in by_id:
            target, why = by_id[e.id], f"same id '{e.id}'"
        elif (primary := _primary(e)) is not None:
            for person in by_primary.get(primary, []):
                ids_differ = e.id and person.explicit_id and e.id != person.explicit_id
                if not ids_differ and _compatible(person, item):
                    target, why = person, f"same primary email {e.email[0]}"
                    break
        if target is None:
            person = _Person(item, e, item.named, [item])
            persons.append(person)
            if e.id:
                by_id.setdefault(e.id, person)
            if (primary := _primary(e)) is not None:
                by_primary.setdefault(primary, []).append(person)
            continue
        if target.inline and item.inline:
            # Two inline entries for one person: the user wrote them both, so they
            # decide which one stays (kit-sync would otherwise drop one silently).
            if e.id and e.id == target.explicit_id:
                problems.append(
                    f"{item.where} id: two contacts have the id '{e.id}' (the other is "
                    f"at {target.first.where}); give one of them its own id"
                )
            else:
                problems.append(
                    f"{item.where}: {e.name} is written twice (also at {target.first.where}, "
                    f"{why}); keep one of the two entries"
                )
            continue
        _merge_into(target, item)
        target.rows.append(item)
        target.why[id(item)] = why
    return persons


def _report_merges(persons: list[_Person], reports: list[FileReport]) -> None:
    for person in persons:
        for row in person.rows[1:]:
            if row.include is None:
                continue
            merge = Merge(
                row.where,
                row.entry.name,
                person.first.where,
                person.id,
                person.entry.name,
                person.why[id(row)],
            )
            report = reports[row.include]
            (report.merged if person.inline else report.duplicates).append(merge)


def _merge_into(person: _Person, item: _Pending) -> None:
    """Field by field, the earlier entry (inline first, then file order) wins; the
    addresses are all kept, the person's primary one first."""
    fill = {
        k: v
        for k, v in item.entry.model_dump(exclude_unset=True).items()
        if k not in person.entry.model_fields_set or (k == "name" and not person.named)
    }
    emails: dict[str, str] = {}
    for address in [*person.entry.email, *item.entry.email]:
        emails.setdefault(address.casefold(), address)
    fill["email"] = list(emails.values())
    person.entry = person.entry.model_copy(update=fill)
    person.named = person.named or item.named


def _assign_ids(persons: list[_Person], problems: list[str], reports: list[FileReport]) -> None:
    """Inline entries claim their ids first, then explicit ids of rows, then the
    default ids of rows in file order; a later row that collides is renamed."""
    base = {id(p): p.explicit_id or default_id(p.entry) for p in persons}
    reserved = set(base.values())
    taken: dict[str, _Person] = {}
    order = sorted(
        range(len(persons)),
        key=lambda i: (not persons[i].inline, persons[i].explicit_id is None, i),
    )
    for i in order:
        person = persons[i]
        cid = base[id(person)]
        other = taken.get(cid)
        if other is None:
            person.id = cid
            taken[cid] = person
            continue
        if person.inline:
            # Inline entries come first, so `other` is inline too.
            problems.append(
                f"{person.first.where} id: two contacts have the id '{cid}' (the other is "
                f"at {other.first.where}){_conflict_reason(other, person)}; give one of "
                "them its own id"
            )
            continue
        new = _disambiguate(cid, person, taken, reserved)
        person.id = new
        taken[new] = person
        reason = _conflict_reason(other, person) or f"; both would get the id '{cid}'"
        text = (
            f"{person.first.where} {person.entry.name} and {other.first.where} "
            f"{other.entry.name} are different people{reason}: kept both, as '{cid}' and "
            f"'{new}' (to pin these ids, add inline entries with an id and the same email)"
        )
        assert person.first.include is not None
        reports[person.first.include].warnings.append(text)


def _conflict_reason(a: _Person, b: _Person) -> str:
    pa, pb = _primary(a.entry), _primary(b.entry)
    if pa and pa == pb:
        return (
            f"; they share the primary email {b.entry.email[0]} "
            f"but not the name ('{a.entry.name}', '{b.entry.name}')"
        )
    if not pa and not pb:
        return "; they have the same name and no email"
    return ""


def _disambiguate(cid: str, person: _Person, taken: Mapping[str, Any], reserved: set[str]) -> str:
    candidates = []
    name = slugify(person.entry.name) if person.named else ""
    if name and cid != name and not cid.startswith(f"{name}-") and not cid.endswith(f"-{name}"):
        candidates.append(f"{cid}-{name}"[:100].rstrip("-"))
    candidates.extend(f"{cid[:96]}-{n}" for n in range(2, 10_000))
    for c in candidates:
        if c not in taken and c not in reserved:
            return c
    raise AssertionError("unreachable: 10,000 contacts with one id")


def _prune(
    persons: list[_Person],
    includes: list[Include],
    reports: list[FileReport],
    journal: Mapping[str, date],
    today: date | None,
    problems: list[str],
) -> list[_Person]:
    """`only: {seen_within: 2 years}`: keep a person from such a file only when the
    journal (or the file's last-modified/last-contact column) saw them in that window.
    Inline entries and rows of files without the rule keep the person."""
    rules = {
        j: inc.only.seen_within
        for j, inc in enumerate(includes)
        if inc.only and inc.only.seen_within
    }
    if not rules:
        return persons
    day = today or system_clock().date()
    since = {j: day - relativedelta(months=iv.months, days=iv.days) for j, iv in rules.items()}
    kept: list[_Person] = []
    for person in persons:
        if any(r.inline or r.include not in rules for r in person.rows):
            kept.append(person)
            continue
        last_touch = journal.get(person.id)
        seen = False
        for r in person.rows:
            assert r.include is not None
            dates = [d for d in (last_touch, r.last_seen) if d is not None]
            seen = seen or any(d >= since[r.include] for d in dates)
        if seen:
            kept.append(person)
            continue
        for r in person.rows:
            assert r.include is not None
            reports[r.include].pruned += 1
            reports[r.include].pruned_rows.append(f"{r.where} {r.entry.name}")
    for j in rules:
        report = reports[j]
        rows_left = [r for p in kept for r in p.rows if r.include == j]
        if report.pruned and not rows_left and not journal and not _has_dates(persons, j):
            text = (
                f"{report.where} {report.label}.only.seen_within: nobody in {report.path} "
                f"can count as seen within {rules[j]}: the touch journal has no touches yet "
                "and the file has no last-modified or last-contact dates; remove "
                "seen_within until kit-sync has recorded touches, or export a file with "
                "such a column"
            )
            report.problems.append(text)
            problems.append(text)
    return kept


def _has_dates(persons: list[_Person], j: int) -> bool:
    return any(r.last_seen for p in persons for r in p.rows if r.include == j)


def _warn_name_twins(persons: list[_Person], reports: list[FileReport]) -> None:
    """Two kept contacts with one name and different addresses are probably one
    person written two ways: they stay two contacts (the rules above), but `check`
    says so, so nobody is invented without a word."""
    first: dict[str, _Person] = {}
    for person in persons:
        if not person.named:
            continue
        key = fold_name(person.entry.name)
        other = first.setdefault(key, person)
        if other is person or person.first.include is None:
            continue
        reports[person.first.include].warnings.append(
            f"{person.first.where} {person.entry.name} has the same name as "
            f"{other.first.where} (id {other.id}) but not the same primary email, so they "
            "are two contacts; if they are one person, put both addresses on one entry"
        )


def _contacts(
    config: Config,
    persons: list[_Person],
    problems: list[str],
    reports: list[FileReport],
    previewing: bool = False,
) -> list[Contact]:
    tiers = config.tiers
    known = ", ".join(tiers) or "none defined"
    contacts: list[Contact] = []
    no_cadence = 0  # rows of a previewed file: one hint instead of one problem each
    for person in persons:
        if not person.id:
            continue  # an inline id conflict, already a problem
        e, where = person.entry, person.first.where
        bad_id = id_problem(person.id)
        if bad_id:
            problems.append(f"{where} id: {bad_id}")
            continue
        tier = tiers.get(e.tier) if e.tier else None
        every = e.every or (tier.every if tier else None)
        if person.first.include is not None:
            reports[person.first.include].added.append(
                Added(
                    person.id,
                    e.name.strip(),
                    tuple(e.email),
                    e.tier,
                    str(every) if every else None,
                    where,
                )
            )
        if e.tier and tier is None:
            problems.append(f"{where} tier: unknown tier '{e.tier}' (known: {known})")
            continue
        if every is None and previewing and person.first.include == len(reports) - 1:
            no_cadence += 1
            continue
        if every is None:
            problems.append(
                f"{where} {e.name}: needs a tier or an every (like tier: inner, or every: 2 months)"
            )
            continue
        contacts.append(
            Contact(
                id=person.id,
                name=e.name.strip(),
                every=every,
                channel=e.channel or (tier.channel if tier else Channel.ANY),
                priority=e.priority if e.priority is not None else (tier.priority if tier else 0),
                tier=e.tier,
                emails=tuple(e.email),
                phone=e.phone,
                notes=e.notes,
                tags=tuple(e.tags),
                city=e.city,
                company=e.company,
                title=e.title,
                birthday=e.birthday,
                met=e.met,
                paused=e.paused,
                where=where,
            )
        )
    if no_cadence:
        text = f"{no_cadence} of these contacts have no tier or every: pass --tier (tiers: {known})"
        reports[-1].problems.append(text)
        problems.append(text)
    return contacts


def preview_import(
    config: Config,
    located: Located | None,
    include: Include,
    *,
    skip_bad_rows: bool = False,
    journal: Mapping[str, date] | None = None,
    today: date | None = None,
) -> tuple[FileReport, list[str]]:
    """What adding `include` to this config would do, without changing anything: the
    file's report (contacts added with their ids, merges, skips, warnings, and its
    problems) and the problems of the config as it is (which `check` reports too).

    A file the config includes already is previewed in place of that include (else
    every row would show as a duplicate of itself)."""
    target = include.path.resolve()
    replacing = next(
        (j for j, inc in enumerate(config.include) if inc.path.resolve() == target), None
    )
    built = build_roster(
        config,
        located,
        skip_bad_rows=skip_bad_rows,
        journal=journal,
        today=today,
        preview=include,
        replacing=replacing,
    )
    report = built.roster.reports[-1]
    if replacing is not None:
        report.replaces = built.roster.reports[replacing].where
    mine = set(report.problems)
    return report, [p for p in built.problems if p not in mine]
