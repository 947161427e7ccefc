"""The command line. The one place that turns errors into messages and exit codes:
0 ok, 1 some actions failed, 2 usage or config error, 3 backend unreachable or
refused credentials."""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from contextlib import contextmanager
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kit_sync.errors import KitError, UsageError


class KitGroup(TyperGroup):
    """Turns a KitError raised anywhere below into its message and exit code, so the
    installed command and in-process runs (CliRunner) behave the same. Usage errors
    are click's: `Error: ...` after the usage hint, exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KitError as exc:
            from kit_sync.logs import redact

            typer.echo(redact(f"kit-sync: {exc}"), err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=KitGroup,
    name="kit-sync",
    help="Keep one regenerating 'Keep in touch with <name>' task per person in Outlook, "
    "a CalDAV task list or a local folder.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
log = logging.getLogger("kit_sync")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Opts:
    config: str | None = None
    skip_bad_rows: bool = False


OPTS = Opts()


@app.callback()
def _global(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file (else $KIT_SYNC_CONFIG, ./kit-sync.yaml, "
            "~/.config/kit-sync/config.yaml).",
        ),
    ] = None,
    skip_bad_rows: Annotated[
        bool,
        typer.Option(
            help="Load the roster even when some rows of included files cannot be read "
            "(they are listed as warnings)."
        ),
    ] = False,
    log_format: Annotated[
        LogFormat, typer.Option(help="text, or json for one JSON object per line.")
    ] = LogFormat.TEXT,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log only problems.")] = False,
) -> None:
    from kit_sync.logs import setup_logging

    setup_logging("debug" if verbose else "warning" if quiet else "info", log_format.value)
    OPTS.config = config
    OPTS.skip_bad_rows = skip_bad_rows


def _load(*, report_shown: bool = False) -> Any:
    """Config and roster; warnings are logged (those of the per-file import report
    only when the command does not print that report itself)."""
    from kit_sync.app import load
    from kit_sync.config import find_config

    loaded = load(find_config(OPTS.config), skip_bad_rows=OPTS.skip_bad_rows)
    in_report = {w for r in loaded.roster.reports for w in r.warnings}
    in_report |= {f"skipped {s}" for r in loaded.roster.reports for s in r.skipped}
    for warning in [*loaded.config.warnings, *loaded.roster.warnings]:
        if not (report_shown and warning in in_report):
            log.warning("%s", warning)
    return loaded


@contextmanager
def _engine() -> Any:
    from kit_sync.app import open_engine

    engine = open_engine(_load())
    try:
        yield engine
    finally:
        if engine.sources is not None:
            engine.sources.close()
        engine.backend.close()
        engine.state.close()


def _echo(text: str = "") -> None:
    typer.echo(text)


@app.command()
def check(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result and the per-file report as JSON.")
    ] = False,
) -> None:
    """Validate the config and the roster, and show what each included file gave: rows
    read, kept, filtered out, merged, skipped, warnings. Exit 0 when valid, 2 when not."""
    from kit_sync.errors import ConfigError
    from kit_sync.importview import check_lines, reports_json

    if not as_json:
        loaded = _load(report_shown=True)
        roster = loaded.roster
        active = len(roster.active)
        _echo(
            f"{loaded.config.source}: ok — {len(roster.contacts)} contacts ({active} active), "
            f"backend {loaded.config.backend.type}, time zone {loaded.tz.key}"
        )
        for line in check_lines(roster.reports):
            _echo(line)
        return
    try:
        loaded = _load(report_shown=True)
    except ConfigError as exc:
        _echo(json.dumps({"ok": False, "error": exc.message, "problems": exc.problems}))
        raise typer.Exit(exc.exit_code) from None
    roster = loaded.roster
    out = {
        "ok": True,
        "config": str(loaded.config.source),
        "contacts": len(roster.contacts),
        "active": len(roster.active),
        "backend": loaded.config.backend.type,
        "timezone": loaded.tz.key,
        "warnings": [*loaded.config.warnings, *roster.warnings],
        "files": reports_json(roster.reports),
    }
    _echo(json.dumps(out, indent=2, ensure_ascii=False))


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="Outlook/Google CSV, plain CSV or vCard.")],
    tier: Annotated[
        str | None, typer.Option(metavar="T", help="Tier of the contacts it would add.")
    ] = None,
    only_category: Annotated[
        list[str] | None,
        typer.Option(
            "--only-category", metavar="C", help="Only rows in this category (repeatable)."
        ),
    ] = None,
    file_format: Annotated[
        str, typer.Option("--format", help="auto, outlook-csv, google-csv, csv or vcard.")
    ] = "auto",
    date_order: Annotated[
        str | None,
        typer.Option(help="dmy or mdy: how the file writes dates like 03/04/1985."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the preview as JSON.")] = False,
) -> None:
    """Preview importing a contacts file into the roster, changing nothing: the contacts
    it would add (with their ids), the rows that would merge into existing entries,
    what it would skip. Exit 0 when it would import cleanly, 2 when not."""
    from pydantic import ValidationError

    from kit_sync.app import roster_context
    from kit_sync.clock import zone_of
    from kit_sync.config import Config, Filter, Include, find_config, load_config
    from kit_sync.errors import ConfigError
    from kit_sync.importview import include_snippet, report_lines
    from kit_sync.roster import preview_import

    categories = list(only_category or [])
    try:
        include = Include.model_validate(
            {
                "path": file,
                "tier": tier,
                "format": file_format,
                "date_order": date_order,
                "only": Filter(categories=categories) if categories else None,
            }
        )
    except ValidationError as exc:
        raise UsageError(
            "; ".join(
                f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                for e in exc.errors()
            )
        ) from None
    try:
        config, located = load_config(find_config(OPTS.config))
    except ConfigError as exc:
        if not exc.message.startswith("no config file found"):
            raise
        config, located = Config(), None  # preview against an empty roster
    if tier is not None and tier not in config.tiers:
        known = ", ".join(config.tiers) or "none defined in the config"
        raise UsageError(f"--tier '{tier}' is not a tier of {config.source} (tiers: {known})")
    journal, today_ = roster_context(config, zone_of(config.timezone))
    report, others = preview_import(
        config,
        located,
        include,
        skip_bad_rows=OPTS.skip_bad_rows,
        journal=journal,
        today=today_,
    )
    if others:
        raise ConfigError(
            f"{config.source} has {len(others)} problem(s); fix them first "
            "(kit-sync check lists them)",
            others,
        )
    snippet = include_snippet(file, tier, categories, date_order)
    if as_json:
        out = {
            "ok": not report.problems,
            "file": file,
            "report": report.as_dict(),
            "problems": report.problems,
            "include": snippet,
        }
        _echo(json.dumps(out, indent=2, ensure_ascii=False))
        if report.problems:
            raise typer.Exit(2)
        return
    for line in report_lines(report, list_added=True):
        _echo(line)
    if report.problems:
        raise ConfigError(
            f"{file} would not import: {len(report.problems)} problem(s)", report.problems
        )
    _echo(f"nothing was changed; to import {file}, add to {config.source}:")
    for line in snippet.splitlines():
        _echo(f"  {line}")


def _counts_line(counts: dict[str, int]) -> str:
    keys = ("created", "regenerated", "updated", "cancelled", "failed")
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in keys)


@app.command()
def sync(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and write nothing.")
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="Accept a backend that suddenly lists no kit-sync tasks at all.")
    ] = False,
) -> None:
    """Run one sync cycle and print what it did."""
    with _engine() as engine:
        if dry_run:
            result = engine.run_cycle(dry_run=True, allow_empty=allow_empty)
            for touch in result.detected:
                _echo(
                    f"would record touch: {touch.contact_id} on {touch.day} "
                    f"({touch.kind}, {touch.source})"
                )
            for action in result.plan.actions:
                _echo(f"would {action.describe()}")
            for touch in result.plan.touches:
                _echo(f"would record touch: {touch.contact_id} on {touch.day}")
            for line in result.problems:
                _echo(f"problem: {line}")
            for line in result.plan.warnings:
                _echo(f"warning: {line}")
            _echo("dry run: " + _counts_line(result.counts) + " (nothing written)")
            _raise_source_failures(result.source_failures)
            return
        with _progress() as progress:
            result = engine.run_cycle(allow_empty=allow_empty, progress=progress)
        for line in result.plan.skipped:
            log.warning("skipped %s", line)
        _echo(_counts_line(result.counts))
        if result.failures:
            raise KitError(
                f"{len(result.failures)} action(s) failed; they are retried at the next sync",
                [*result.failures, *(f"touch source {x}" for x in result.source_failures)],
            )
        _raise_source_failures(result.source_failures)


def _raise_source_failures(lines: list[str]) -> None:
    if lines:
        raise KitError(
            f"{len(lines)} touch source(s) could not be read; the tasks were synced "
            "without them, and the next sync tries again",
            lines,
        )


@contextmanager
def _progress() -> Any:
    """A rich progress bar on a terminal; plain log lines (from the engine) otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), transient=True)
    task_id = None

    def update(done: int, total: int) -> None:
        nonlocal task_id
        if total < 20:
            return
        if task_id is None:
            bar.start()
            task_id = bar.add_task("sync", total=total)
        bar.update(task_id, completed=done)

    try:
        yield update
    finally:
        bar.stop()


@app.command()
def run() -> None:
    """Run as a daemon: a sync cycle now and every sync.every; stop with Ctrl+C/SIGTERM."""
    from kit_sync.app import open_engine
    from kit_sync.daemon import Daemon

    loaded = _load()
    engine = open_engine(loaded)
    try:
        Daemon(engine, loaded.config, skip_bad_rows=OPTS.skip_bad_rows).run_forever()
    finally:
        if engine.sources is not None:
            engine.sources.close()
        engine.backend.close()
        engine.state.close()


STATUS_KEYS = (
    "id",
    "name",
    "tier",
    "every",
    "channel",
    "last_touch",
    "next_due",
    "days_overdue",
    "state",
)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """One row per contact: last touch, next due date, days overdue, state."""
    with _engine() as engine:
        rows = engine.status()
    if as_json:
        out = [
            {
                "id": r.id,
                "name": r.name,
                "tier": r.tier,
                "every": r.every,
                "channel": r.channel,
                "last_touch": r.last_touch.isoformat() if r.last_touch else None,
                "next_due": r.next_due.isoformat() if r.next_due else None,
                "days_overdue": r.days_overdue,
                "state": r.state,
            }
            for r in rows
        ]
        _echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*STATUS_KEYS)
    for r in sorted(rows, key=lambda r: (r.next_due or date.max, r.name)):
        table.add_row(
            r.id,
            r.name,
            r.tier or "",
            r.every,
            r.channel,
            str(r.last_touch or "-"),
            str(r.next_due or "-"),
            str(r.days_overdue or ""),
            r.state,
        )
    Console(width=160).print(table)


@app.command()
def touch(
    who: Annotated[str, typer.Argument(help="An id, an email, or an unambiguous part of a name.")],
    on: Annotated[
        str | None,
        typer.Option(
            "--on", metavar="YYYY-MM-DD", help="The day you were in touch (default today)."
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="What you talked about (kept in the journal).")] = "",
) -> None:
    """Record that you were in touch: completes the task and schedules the next one."""
    from kit_sync.cadence import today

    with _engine() as engine:
        matches = engine.roster.find(who)
        if not matches:
            import difflib

            names = [c.name for c in engine.roster.contacts]
            close = difflib.get_close_matches(who, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"no contact matches '{who}'{hint}")
        if len(matches) > 1:
            raise UsageError(
                f"'{who}' matches {len(matches)} contacts; use the id or email:",
                [f"{c.id}  {c.name}  {', '.join(c.emails)}" for c in matches],
            )
        contact = matches[0]
        if on is None:
            day = today(engine.clock(), engine.tz)
        else:
            try:
                day = date.fromisoformat(on)
            except ValueError:
                raise UsageError(f"--on '{on}' is not a date like 2026-03-14") from None
        result = engine.touch(contact, day, note)
        due = next(
            (
                a.new.due
                for a in result.plan.actions
                if a.contact_id == contact.id and a.new is not None
            ),
            None,
        )
        if due is None:
            due = next(
                (
                    a.change.due
                    for a in result.plan.actions
                    if a.contact_id == contact.id and a.change and a.change.due
                ),
                None,
            )
        _echo(f"touched {contact.name} on {day}" + (f"; next due {due}" if due else ""))
        if result.failures:
            raise KitError("some actions failed", result.failures)


@app.command()
def touches(
    since: Annotated[
        int | None,
        typer.Option("--since", min=0, metavar="DAYS", help="Only the last DAYS days."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """What the touch sources (sent mail, meetings) found, per contact. Changes
    nothing; `sync` counts what is new. Exit 1 when a source cannot be read."""
    from kit_sync.touches.report import detected_touches, format_text

    with _engine() as engine:
        rows, failures = detected_touches(engine, since)
        tz = engine.tz
        configured = bool(engine.sources)
    if as_json:
        _echo(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
    elif rows:
        for line in format_text(rows, tz):
            _echo(line)
    elif not configured:
        _echo("no touch sources are configured (see touches: in the README)")
    else:
        _echo("the touch sources found no touches" + (f" in {since} days" if since else ""))
    _raise_source_failures(failures)


@app.command()
def due(
    within: Annotated[
        int, typer.Option(min=0, help="Also list who is due within this many days.")
    ] = 0,
) -> None:
    """Who to contact now, grouped by channel, with notes and email/phone."""
    with _engine() as engine:
        rows = engine.status()
        today_ = engine.clock().astimezone(engine.tz).date()
    limit = today_ + timedelta(days=within)
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        if r.state in ("open", "missing", "completed") and r.next_due and r.next_due <= limit:
            groups[r.channel].append(r)
    if not groups:
        _echo(f"nobody is due{' within ' + str(within) + ' days' if within else ' today'}.")
        return
    for channel in sorted(groups):
        people = sorted(groups[channel], key=lambda r: (r.next_due, r.name))
        _echo(f"{channel} ({len(people)})")
        for r in people:
            c = r.contact
            when = (
                f"{r.days_overdue} days overdue"
                if r.days_overdue
                else f"due {r.next_due}"
                if r.next_due != today_
                else "due today"
            )
            contact_bits = [*c.emails, c.phone] if c.phone else list(c.emails)
            _echo(f"  {c.name} — {when}; last contact {r.last_touch or 'never'}")
            if contact_bits:
                _echo(f"      {' · '.join(contact_bits)}")
            if c.notes:
                _echo(f"      {c.notes.strip().splitlines()[0]}")
        _echo()


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Exit 0 when the last sync cycle succeeded within 3 × sync.every, 1 otherwise
    (saying why). For Docker's HEALTHCHECK and monitoring scripts."""
    from kit_sync.config import find_config, load_config
    from kit_sync.health import Health, read_health

    # Only 0 and 1: Docker reserves exit code 2, and a config that cannot be read
    # means kit-sync cannot be syncing either.
    try:
        config, _ = load_config(find_config(OPTS.config))
        verdict = read_health(config.state_path(), config.sync.every)
    except KitError as exc:
        verdict = Health(False, f"cannot check: {exc}")
    if as_json:
        _echo(json.dumps(verdict.as_dict(), ensure_ascii=False))
    else:
        from kit_sync.logs import redact

        _echo(redact(("healthy: " if verdict.ok else "unhealthy: ") + verdict.reason))
    if not verdict.ok:
        sys.exit(1)  # the verdict is the whole message (typer.Exit returns 0 from main)


@app.command()
def login() -> None:
    """Sign in to Microsoft 365 for the graph backend (Microsoft To Do): prints a URL
    and a code, waits while you sign in in a browser, then keeps the tokens in a file
    only you can read; sync and run refresh them silently from then on. Exit 3 when
    the sign-in fails."""
    from kit_sync.backends.base import BackendUnavailable
    from kit_sync.config import GraphConfig, find_config, load_config

    config, _ = load_config(find_config(OPTS.config))
    backend = config.backend
    if not isinstance(backend, GraphConfig):
        raise UsageError(
            f"kit-sync login is for backend type graph (Microsoft 365); this config "
            f"uses '{backend.type}', which needs no login"
        )
    try:
        from kit_sync.backends.graph_auth import login as graph_login
    except ImportError as exc:
        raise BackendUnavailable(
            f"the 'graph' backend needs a library that is not installed ({exc.name}); "
            "install it with: pip install 'kit-sync[graph]'"
        ) from None
    _echo(graph_login(backend, _echo))


# --- the rhythm: load, agenda, digest, add, init (logic in their own modules) ----------


def _unicode_out() -> bool:
    return (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"


@app.command()
def load(
    weeks: Annotated[int, typer.Option(min=1, max=104, help="How many weeks ahead.")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Due dates per week for the coming weeks, as a bar chart with the capacity line."""
    from kit_sync.overview import fetch_snapshot, load_chart, weekly_load

    with _engine() as engine:
        report = weekly_load(fetch_snapshot(engine), weeks)
    if as_json:
        _echo(json.dumps(report.as_dict(), indent=2))
    else:
        _echo(load_chart(report, unicode=_unicode_out()))


@app.command()
def agenda(
    minutes: Annotated[
        int, typer.Option(min=1, help="The time you have for this sitting, in minutes.")
    ] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="A printable page.")] = False,
) -> None:
    """Who to contact in one sitting: the most overdue first (relative to their
    interval, weighted by priority) until the minutes are used; lunches and coffees
    listed apart, to schedule."""
    from kit_sync.agenda import agenda_markdown, agenda_text, build_agenda
    from kit_sync.overview import fetch_snapshot

    if as_json and markdown:
        raise UsageError("choose --json or --markdown, not both")
    with _engine() as engine:
        result = build_agenda(fetch_snapshot(engine), minutes, engine.config.agenda)
    if as_json:
        _echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    elif markdown:
        _echo(agenda_markdown(result))
    else:
        _echo(agenda_text(result))


@app.command()
def digest(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown.")] = False,
    send: Annotated[
        bool, typer.Option("--send", help="Email it now to digest.to through digest.smtp.")
    ] = False,
) -> None:
    """The weekly review: due this week, overdue by tier, touched last week, people
    added, the load of the coming weeks, birthdays."""
    from kit_sync.digest import digest_for, digest_markdown, digest_text, send_digest

    if as_json and markdown:
        raise UsageError("choose --json or --markdown, not both")
    with _engine() as engine:
        options = engine.config.digest
        if send:
            if options is None or options.smtp is None:
                raise UsageError(
                    "digest --send needs a mail server: add digest: {to: you@example.com, "
                    "smtp: {host: smtp.example.com, username: ..., password: ...}} to the config"
                )
            result = send_digest(engine, options)
            _echo(f"sent to {', '.join(options.to)}: {result.subject}")
            return
        result = digest_for(engine, options.weeks if options else 4)
    if as_json:
        _echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    elif markdown:
        _echo(digest_markdown(result))
    else:
        _echo(digest_text(result))


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The person's name.")],
    email: Annotated[
        list[str] | None, typer.Option("--email", help="An email address (repeat for more).")
    ] = None,
    tier: Annotated[str | None, typer.Option(help="One of the config's tiers.")] = None,
    every: Annotated[
        str | None, typer.Option(help='Own cadence instead of a tier, like "6 weeks".')
    ] = None,
    channel: Annotated[
        str | None, typer.Option(help="email, call, lunch, coffee, message or any.")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    notes: Annotated[str | None, typer.Option(help="Notes shown on the task.")] = None,
    city: Annotated[str | None, typer.Option(help="City.")] = None,
    company: Annotated[str | None, typer.Option(help="Company.")] = None,
) -> None:
    """Add a person to the config's contacts, keeping the file's comments and layout;
    prints the new id. The result is checked first: a problem writes nothing."""
    from kit_sync.config import find_config
    from kit_sync.editconfig import add_contact

    if tier is not None and every is not None:
        raise UsageError("give --tier or --every, not both")
    entry: dict[str, Any] = {"name": name}
    if email:
        entry["email"] = email[0] if len(email) == 1 else list(email)
    for key, value in (
        ("tier", tier),
        ("every", every),
        ("channel", channel),
        ("phone", phone),
        ("company", company),
        ("city", city),
        ("notes", notes),
    ):
        if value is not None:
            entry[key] = value
    path = find_config(OPTS.config)
    new_id = add_contact(path, entry)
    _echo(new_id)
    log.info("added %s to %s; the next sync creates their task", name, path)


@app.command()
def init() -> None:
    """Write a commented starter config at the default location
    (~/.config/kit-sync/config.yaml, or --config PATH); never overwrites a file."""
    from pathlib import Path

    from kit_sync.clock import system_zone
    from kit_sync.editconfig import default_config_path, init_config

    path = Path(OPTS.config) if OPTS.config else default_config_path()
    init_config(path, system_zone().key)
    _echo(f"wrote {path}")
    _echo('next: kit-sync add "Name" --email you@example.com --tier core; kit-sync check')


@app.command()
def near(
    city: Annotated[str, typer.Argument(help="A city, as contacts' `city` writes it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everyone in CITY (case and accents ignored, trip aliases too): last touch and
    its note, next due date, how to reach them, their notes. For planning a trip."""
    from kit_sync.near import near_dict, near_text, people_near
    from kit_sync.overview import fetch_snapshot

    with _engine() as engine:
        report = people_near(fetch_snapshot(engine), city, engine.config.trips.trips())
    if as_json:
        _echo(json.dumps(near_dict(report), indent=2, ensure_ascii=False))
    else:
        _echo(near_text(report))


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's standalone mode prints usage errors (exit 2) and KitGroup
    maps every user-facing error to its exit code."""
    app(args=argv, prog_name="kit-sync")
