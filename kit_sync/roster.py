"""The roster: who to keep in touch with, from inline YAML and included files.

Loading collects every problem (with file:line and field) before failing, and
never drops a contact silently: an unreadable row fails the load unless the user
asked for `--skip-bad-rows`, and then it is reported as a warning.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kit_sync.config import Config, ContactEntry, problem_line
from kit_sync.errors import ConfigError
from kit_sync.model import Channel, Contact, Roster
from kit_sync.yamlsrc import Located, format_path


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not slug:
        slug = "c-" + hashlib.sha256(text.encode()).hexdigest()[:10]
    return slug[:60]


def default_id(entry: ContactEntry) -> str:
    """Stable id: from the first email, else the name. Notes or tier never change it."""
    return slugify(entry.email[0] if entry.email else entry.name)


@dataclass
class _Pending:
    entry: ContactEntry
    where: str
    inline: bool


def load_roster(
    config: Config, located: Located | None = None, *, skip_bad_rows: bool = False
) -> Roster:
    """Resolve inline contacts and included files into a Roster. Raises ConfigError."""
    from kit_sync.importers import read_roster_file

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

    for j, inc in enumerate(config.include):
        inc_where = where_inline(("include", j))
        try:
            entries, row_problems = read_roster_file(inc.path, inc.format)
        except ConfigError as exc:
            problems.append(f"{inc_where} include[{j}].path: {short(str(exc))}")
            continue
        for rp in row_problems:
            text = f"{short(rp.where)}: {rp.message}"
            if skip_bad_rows:
                warnings.append(f"skipped {text}")
            else:
                problems.append(
                    f"{text} (fix the row, or run with --skip-bad-rows to load the rest without it)"
                )
        wanted = {c.lower() for c in inc.only.categories} if inc.only else set()
        for raw_entry in entries:
            fields: dict[str, Any] = dict(raw_entry.fields)
            categories = [str(c) for c in fields.pop("categories", []) or []]
            if wanted and not wanted & {c.lower() for c in categories}:
                continue
            fields["tags"] = list(dict.fromkeys([*(fields.get("tags") or []), *categories]))
            for key in ("tier", "every", "channel"):
                if fields.get(key) in (None, "") and getattr(inc, key) is not None:
                    fields[key] = getattr(inc, key)
            fields = {k: v for k, v in fields.items() if k in ContactEntry.model_fields}
            if not fields.get("name") and fields.get("email"):
                fields["name"] = fields["email"][0]  # an address-only row: call them by it
            try:
                entry = ContactEntry.model_validate(fields)
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    text = f"{short(raw_entry.where)} {format_path(tuple(err['loc']))}: "
                    text += _message(err)
                    if skip_bad_rows:
                        warnings.append(f"skipped {text}")
                    else:
                        problems.append(text)
                continue
            pending.append(_Pending(entry, short(raw_entry.where), inline=False))

    contacts = _resolve(config, pending, problems)
    if not problems and not contacts:
        problems.append(
            f"{source.name}: the roster is empty; add people under 'contacts:' "
            "or a file under 'include:'"
        )
    if problems:
        raise ConfigError(f"the roster has {len(problems)} problem(s)", problems)
    return Roster(contacts, warnings)


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


def _resolve(config: Config, pending: list[_Pending], problems: list[str]) -> list[Contact]:
    tiers = config.tiers
    known = ", ".join(tiers) or "none defined"
    merged: list[_Pending] = []
    by_email: dict[str, _Pending] = {}
    for item in pending:
        twin = next((by_email[m.lower()] for m in item.entry.email if m.lower() in by_email), None)
        if twin is not None:
            # Same person in two sources: the earlier (inline first) wins field by field.
            fill = {
                k: v
                for k, v in item.entry.model_dump(exclude_unset=True).items()
                if k not in twin.entry.model_fields_set
            }
            emails = list(dict.fromkeys([*twin.entry.email, *item.entry.email]))
            twin.entry = twin.entry.model_copy(update={**fill, "email": emails})
            for email in emails:
                by_email.setdefault(email.lower(), twin)
            continue
        merged.append(item)
        for email in item.entry.email:
            by_email.setdefault(email.lower(), item)

    contacts: list[Contact] = []
    seen_ids: dict[str, str] = {}
    for item in merged:
        e = item.entry
        tier = tiers.get(e.tier) if e.tier else None
        if e.tier and tier is None:
            problems.append(f"{item.where} tier: unknown tier '{e.tier}' (known: {known})")
            continue
        every = e.every or (tier.every if tier else None)
        if every is None:
            problems.append(
                f"{item.where} {e.name}: needs a tier or an every "
                "(like tier: inner, or every: 2 months)"
            )
            continue
        cid = e.id or default_id(e)
        if cid in seen_ids:
            problems.append(
                f"{item.where} id: two contacts have the id '{cid}' (the other is "
                f"at {seen_ids[cid]}); give one of them its own id"
            )
            continue
        seen_ids[cid] = item.where
        contacts.append(
            Contact(
                id=cid,
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
                where=item.where,
            )
        )
    return contacts
