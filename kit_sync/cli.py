"""The command line. The one place that turns errors into messages and exit codes:
0 ok, 1 some actions failed, 2 usage or config error, 3 backend unreachable or
refused credentials.

Layers: each command reads its options from the click context (`opts(ctx)`, a
`CliOptions` the top-level callback puts there), asks the engine/state for plain
data, and hands that to a formatter (`kit_sync.formatters`: people or `--json`).
Usage errors are click's own (`Error: ...` after the usage hint, exit 2); a
`KitError` raised anywhere becomes its message and exit code in `KitGroup`.
"""

# No `from __future__ import annotations`: typer reads every command's annotations
# (twice) to build the command tree on every start-up, and evaluating them from strings
# was most of that time. Names imported only for the type checker stay quoted.
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from kit_sync.errors import KitError, UsageError
from kit_sync.term import output_width, use_color

if TYPE_CHECKING:
    import logging
    from pathlib import Path

    from kit_sync import formatters as fmt
    from kit_sync.app import Loaded
    from kit_sync.engine import CycleResult, Engine
    from kit_sync.health import Health
    from kit_sync.model import Contact, Roster


class _FirstUse:
    """Stands for what `make` returns, made at the first attribute read: what building
    the command tree (and so `--help`) never needs is not imported for it."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._made: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._made is None:
            self._made = self._make()
        return getattr(self._made, name)


def _formatters() -> Any:
    from kit_sync import formatters

    return formatters


def _logger() -> Any:
    import logging

    return logging.getLogger("kit_sync")


if TYPE_CHECKING:
    log: logging.Logger
else:
    fmt = _FirstUse(_formatters)
    log = _FirstUse(_logger)

#: -h works everywhere --help does (child contexts inherit this setting).
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


#: click's UsageError, from whichever click typer uses (its own since typer 0.29).
_ClickUsageError: Any = typer.BadParameter.__mro__[1]


class KitGroup(TyperGroup):
    """Turns a KitError raised anywhere below into its message and exit code, so the
    installed command and in-process runs (CliRunner) behave the same; and gives every
    usage error the context its usage hint comes from (the parser raises some, like
    "Option '--on' requires an argument", without one)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _ClickUsageError as exc:
            if getattr(exc, "ctx", None) is None:
                exc.ctx = ctx
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KitError as exc:
            from kit_sync.logs import json_mode, redact

            if json_mode():  # one JSON object, problems and all
                log.error("%s", exc, extra={"exit_code": exc.exit_code})
            else:
                typer.echo(redact(f"kit-sync: {exc}"), err=True)
            raise typer.Exit(exc.exit_code) from None
        except _ClickUsageError as exc:
            name = ctx.invoked_subcommand
            cmd = self.get_command(ctx, name) if name else None
            if getattr(exc, "ctx", None) is None and cmd is not None:
                exc.ctx = cmd.context_class(cmd, info_name=name, parent=ctx)
            raise


app = typer.Typer(
    cls=KitGroup,
    name="kit-sync",
    help="Keep one regenerating 'Keep in touch with <name>' task per person in Outlook, "
    "a CalDAV task list or a local folder.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help and errors: readable in a pipe, no box drawing.
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Color(StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class CliOptions:
    """The global options, carried in the click context (ctx.obj) to every command.
    (A plain class: a dataclass costs 1 % of `kit-sync --help`.)"""

    def __init__(
        self,
        config: str | None = None,
        skip_bad_rows: bool = False,
        verbose: bool = False,
        color: bool = False,  # for stdout
        color_choice: Color = Color.AUTO,
        quiet: bool = False,
        log_format: str = "text",
    ) -> None:
        self.config = config
        self.skip_bad_rows = skip_bad_rows
        self.verbose = verbose
        self.color = color
        self.color_choice = color_choice
        self.quiet = quiet
        self.log_format = log_format

    def config_path(self) -> "Path":
        from kit_sync.locate import find_config

        return find_config(self.config)

    def quick_key(self, command: str, as_json: bool) -> str:
        """The quick check's name for this command's printed answer."""
        from kit_sync.quick import output_key

        return output_key(command, as_json, self.quiet, self.log_format, self.color)

    def load(self, *, report_shown: bool = False) -> "Loaded":
        """Config and roster; warnings are logged (those of the per-file import report
        only when the command does not print that report itself)."""
        from kit_sync.app import load
        from kit_sync.config import find_config

        loaded = load(find_config(self.config), skip_bad_rows=self.skip_bad_rows)
        in_report = {w for r in loaded.roster.reports for w in r.warnings}
        in_report |= {f"skipped {s}" for r in loaded.roster.reports for s in r.skipped}
        for warning in [*loaded.config.warnings, *loaded.roster.warnings]:
            if not (report_shown and warning in in_report):
                log.warning("%s", warning)
        return loaded

    @contextmanager
    def engine(self) -> "Iterator[Engine]":
        """The engine, holding the state's cycle lock: a running daemon's cycle (or
        another command's) is waited for, bounded (kit_sync.lock)."""
        from kit_sync.app import open_engine
        from kit_sync.lock import StateLock

        loaded = self.load()
        with StateLock(loaded.config.state_path()).cycle():
            engine = open_engine(loaded)
            try:
                yield engine
            finally:
                if engine.sources is not None:
                    engine.sources.close()
                engine.backend.close()
                engine.state.close()

    def formatter(self, as_json: bool = False) -> "fmt.Formatter":
        if as_json:
            return fmt.JsonFormatter()
        return fmt.HumanFormatter(width=output_width(), color=self.color)

    def echo(self, text: str = "") -> None:
        typer.echo(text, color=self.color)


def opts(ctx: typer.Context) -> CliOptions:
    """The global options of this invocation (defaults when a command runs alone)."""
    found = ctx.find_object(CliOptions)
    return found if found is not None else ctx.ensure_object(CliOptions)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"kit-sync {version('kit-sync')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("kit-sync (not installed: pip install .)")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file (else $KIT_SYNC_CONFIG, ./kit-sync.yaml, "
            "$XDG_CONFIG_HOME/kit-sync/config.yaml, default ~/.config/kit-sync/config.yaml).",
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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every step (one line per task).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log only problems.")] = False,
    color: Annotated[
        Color,
        typer.Option(
            help="Colour the output: auto (on a terminal, unless NO_COLOR is set), always or never."
        ),
    ] = Color.AUTO,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    from kit_sync.logs import setup_logging

    setup_logging("debug" if verbose else "warning" if quiet else "info", log_format.value)
    ctx.obj = CliOptions(
        config=config,
        skip_bad_rows=skip_bad_rows,
        verbose=verbose,
        color=use_color(color, sys.stdout),
        color_choice=color,
        quiet=quiet,
        log_format=log_format.value,
    )


# --- check -------------------------------------------------------------------------------


@app.command()
def check(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result and the per-file report as JSON.")
    ] = False,
) -> None:
    """Validate the config and the roster, and show what each included file gave: rows
    read, kept, filtered out, merged, skipped, warnings. Exit 0 when valid, 2 when not."""
    from kit_sync.importview import check_lines, reports_json

    o = opts(ctx)
    try:
        loaded = o.load(report_shown=True)
    except KitError as exc:
        if not as_json:
            raise
        from kit_sync.config import find_config

        try:
            where: str | None = str(find_config(o.config))
        except KitError:
            where = None
        o.echo(fmt.error_json(exc.message, exc.problems, where))
        raise typer.Exit(exc.exit_code) from None
    roster = loaded.roster
    report = fmt.CheckReport(
        config=str(loaded.config.source),
        contacts=len(roster.contacts),
        active=len(roster.active),
        paused=sum(1 for c in roster.contacts if c.paused),
        backend=loaded.config.backend.type,
        timezone=loaded.tz.key,
        warnings=[str(w) for w in [*loaded.config.warnings, *roster.warnings]],
        files=reports_json(roster.reports),
        file_lines=check_lines(roster.reports),
    )
    o.echo(o.formatter(as_json).check(report))


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="Outlook/Google CSV, plain CSV or vCard.")
    ],
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
    import json

    from pydantic import ValidationError

    from kit_sync.app import roster_context
    from kit_sync.clock import zone_of
    from kit_sync.config import Config, Filter, Include, find_config, load_config
    from kit_sync.errors import ConfigError
    from kit_sync.importview import include_snippet, report_lines
    from kit_sync.roster import preview_import

    o = opts(ctx)
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
        config, located = load_config(find_config(o.config))
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
        skip_bad_rows=o.skip_bad_rows,
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
        o.echo(json.dumps(out, indent=2, ensure_ascii=False))
        if report.problems:
            raise typer.Exit(2)
        return
    if report.replaces:
        o.echo(f"{file} is included already ({report.replaces}); previewed in its place:")
    for line in report_lines(report, list_added=True):
        o.echo(line)
    if report.problems:
        raise ConfigError(
            f"{file} would not import: {len(report.problems)} problem(s)", report.problems
        )
    if report.replaces:
        o.echo(f"nothing was changed; to use these options, change {report.replaces} to:")
    else:
        o.echo(f"nothing was changed; to import {file}, add to {config.source}:")
    for line in snippet.splitlines():
        o.echo(f"  {line}")


# --- sync --------------------------------------------------------------------------------


def _sync_report(result: "CycleResult", roster: "Roster", dry_run: bool) -> "fmt.SyncReport":
    from kit_sync.occasions import split_key

    def name(cid: str) -> str:
        # a birthday task's key is '<id>#birthday': show the person's name for it too
        contact = roster.get(cid) or roster.get(split_key(cid)[0])
        return contact.name if contact else cid

    actions = [
        fmt.PlannedAction(
            kind=a.kind.value,
            verb="delete" if a.delete else a.describe().split(" ", 1)[0],
            contact_id=a.contact_id,
            name=name(a.contact_id),
            reason=a.reason,
            due=a.new.due if a.new else (a.change.due if a.change else None),
        )
        for a in result.plan.actions
    ]
    dues = sorted((a.due, a.name) for a in actions if a.due and a.kind in ("created",))
    # the documented keys in both modes: a dry run fails nothing, so it counts no 'failed'
    counts = dict(result.counts)
    counts.setdefault("failed", 0)
    return fmt.SyncReport(
        dry_run=dry_run,
        counts=counts,
        actions=actions,
        touches=[(t.contact_id, name(t.contact_id), t.day) for t in result.plan.touches],
        detected=[
            fmt.DetectedTouch(t.contact_id, name(t.contact_id), t.day, t.kind, t.source)
            for t in result.detected
        ],
        problems=result.problems,
        failures=result.failures,
        skipped=result.plan.skipped,
        warnings=result.plan.warnings,
        next_due=[(n, d) for d, n in dues],
    )


@contextmanager
def _per_task_lines(shown: bool) -> Iterator[None]:
    """Without -v, `sync` keeps the per-task log lines (INFO records about one
    contact) out of the terminal; the summary says what happened."""
    if shown:
        yield
        return
    import logging

    def quiet(record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not hasattr(record, "contact_id")

    handlers = logging.getLogger().handlers
    for h in handlers:
        h.addFilter(quiet)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(quiet)


@app.command()
def sync(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and write nothing.")
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="Accept a backend that suddenly lists no kit-sync tasks at all.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what it did as JSON.")] = False,
) -> None:
    """Run one sync cycle and print what it did (a progress bar on a terminal)."""
    from kit_sync.quick import Recorder, watch_logs

    o = opts(ctx)
    out = o.formatter(as_json)
    with watch_logs() as logged, o.engine() as engine:
        if dry_run:
            result = engine.run_cycle(dry_run=True, allow_empty=allow_empty)
            o.echo(out.sync(_sync_report(result, engine.roster, True)))
            _raise_source_failures(result.source_failures)
            return
        recorder = Recorder(engine, o.config_path(), o.skip_bad_rows)
        bar_color = use_color(o.color_choice, sys.stderr)
        with (
            _per_task_lines(o.verbose),
            _progress(enabled=not as_json, color=bar_color) as progress,
        ):
            result = engine.run_cycle(allow_empty=allow_empty, progress=progress)
        for line in result.plan.skipped:
            log.warning("skipped %s", line)
        text = out.sync(_sync_report(result, engine.roster, False))
        o.echo(text)
        if (
            result.idle
            and not (allow_empty or o.verbose or logged())
            and not (result.interrupted or result.source_failures or result.detected)
            and not result.plan.skipped
        ):
            # Nothing to do and nothing said: the next `sync` with the same inputs
            # is answered by kit_sync.quick.
            recorder.record(o.quick_key("sync", as_json), text, result.counts)
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
def _progress(
    enabled: bool = True, color: bool = True
) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal (stderr); nothing in a pipe or a log."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        console=Console(stderr=True, no_color=not color),
    )
    task_id = None

    def update(done: int, total: int) -> None:
        nonlocal task_id
        if total < 2:
            return
        if task_id is None:
            bar.start()
            task_id = bar.add_task("sync", total=total)
        bar.update(task_id, completed=done)

    try:
        yield update
    finally:
        bar.stop()


# --- run ---------------------------------------------------------------------------------


@app.command()
def run(ctx: typer.Context) -> None:
    """Run as a daemon: a sync cycle now and every sync.every; Ctrl+C/SIGTERM stops it,
    SIGHUP reloads the config now."""
    from kit_sync.app import open_engine
    from kit_sync.daemon import Daemon
    from kit_sync.lock import StateLock

    o = opts(ctx)
    loaded = o.load()
    lock = StateLock(loaded.config.state_path())
    lock.hold_daemon()  # a second daemon on this state exits here: "already running"
    engine = open_engine(loaded)
    daemon = Daemon(engine, loaded.config, skip_bad_rows=o.skip_bad_rows, lock=lock)
    try:
        daemon.run_forever()
    finally:
        if daemon.abandoned:
            # A backend call that does not return holds a thread the interpreter
            # would wait for at exit: leave now (state and backend are crash-safe).
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if engine.sources is not None:
            engine.sources.close()
        engine.backend.close()
        engine.state.close()
        lock.release_daemon()


# --- status and due ------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """One row per contact: last touch, next due date, days overdue, state."""
    from kit_sync.quick import Recorder, watch_logs

    o = opts(ctx)
    with watch_logs() as logged, o.engine() as engine:
        recorder = Recorder(engine, o.config_path(), o.skip_bad_rows)
        rows = engine.status()
        _warn_overload(engine, rows)
        rows = sorted(rows, key=lambda r: (r.next_due or date.max, r.name))
        text = o.formatter(as_json).status(
            [
                fmt.StatusRow(
                    r.id,
                    r.name,
                    r.tier,
                    r.every,
                    r.channel,
                    r.last_touch,
                    r.next_due,
                    r.days_overdue,
                    r.state,
                )
                for r in rows
            ]
        )
        o.echo(text)
        if not (o.verbose or logged()):
            recorder.record(o.quick_key("status", as_json), text)


@app.command()
def touches(
    ctx: typer.Context,
    since: Annotated[
        int | None,
        typer.Option("--since", min=0, metavar="DAYS", help="Only the last DAYS days."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """What the touch sources (sent mail, meetings) found, per contact. Changes
    nothing; `sync` counts what is new. Exit 1 when a source cannot be read."""
    import json

    from kit_sync.touches.report import detected_touches, format_text

    o = opts(ctx)
    with o.engine() as engine:
        rows, failures = detected_touches(engine, since)
        tz = engine.tz
        configured = bool(engine.sources)
    if as_json:
        o.echo(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
    elif rows:
        for line in format_text(rows, tz):
            o.echo(line)
    elif not configured:
        o.echo("no touch sources are configured (see touches: in the README)")
    else:
        o.echo("the touch sources found no touches" + (f" in {since} days" if since else ""))
    _raise_source_failures(failures)


@app.command()
def due(
    ctx: typer.Context,
    within: Annotated[
        int, typer.Option(min=0, help="Also list who is due within this many days.")
    ] = 0,
    limit: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="At most N people, the most overdue first."),
    ] = None,
    tier: Annotated[
        list[str] | None, typer.Option(help="Only this tier (repeat for several).")
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(help="Only this channel, e.g. email or call (repeat for several)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Who to contact now, grouped by channel, with their notes, email/phone and the
    note of the last touch."""
    from kit_sync.cadence import today as local_today

    o = opts(ctx)
    with o.engine() as engine:
        rows = engine.status()
        today_ = local_today(engine.clock(), engine.tz)
        last = engine.state.latest_touch_per_contact()
        tiers = {t.lower() for t in tier or []}
        channels = {c.lower() for c in channel or []}
        known_tiers = {c.tier.lower() for c in engine.roster.contacts if c.tier}
        unknown = sorted(tiers - known_tiers)
        if unknown:
            raise UsageError(
                f"no tier named {', '.join(unknown)}; the roster has: "
                f"{', '.join(sorted(known_tiers)) or 'no tiers'}"
            )
        from kit_sync.model import Channel

        odd = sorted(channels - {c.value for c in Channel})
        if odd:
            raise UsageError(
                f"no channel named {', '.join(odd)}; channels are: "
                + ", ".join(c.value for c in Channel)
            )
    horizon = today_ + timedelta(days=within)
    picked = [
        r
        for r in rows
        if r.state in ("open", "missing", "completed")
        and r.next_due
        and r.next_due <= horizon
        and (not tiers or (r.tier or "").lower() in tiers)
        and (not channels or r.channel.lower() in channels)
    ]
    picked.sort(key=lambda r: (r.next_due, r.name))
    if limit is not None:
        picked = picked[:limit]
    o.echo(
        o.formatter(as_json).due(
            [
                fmt.DueRow(
                    id=r.id,
                    name=r.name,
                    tier=r.tier,
                    channel=r.channel,
                    next_due=r.next_due or today_,
                    days_overdue=r.days_overdue,
                    last_touch=r.last_touch,
                    last_note=last[r.id].note if r.id in last else "",
                    notes=(r.contact.notes or "").strip(),
                    emails=tuple(r.contact.emails),
                    phone=r.contact.phone,
                )
                for r in picked
            ],
            today_,
            within,
        )
    )


# --- touch, untouch, history ------------------------------------------------------------------


def find_one(roster: "Roster", who: str) -> "Contact":
    """The one contact `who` names (id, email, or part of a name; case and accents
    do not matter), or a UsageError that lists the candidates."""
    matches = roster.find(who)
    if not matches:
        import difflib

        from kit_sync.model import fold

        names = {fold(c.name): c.name for c in roster.contacts}
        close = difflib.get_close_matches(fold(who), list(names), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(names[c] for c in close)}?" if close else ""
        raise UsageError(f"no contact matches '{who}'{hint}")
    if len(matches) > 1:
        raise UsageError(
            f"'{who}' matches {len(matches)} contacts; use the id or email:",
            [f"{c.id}  {c.name}  {', '.join(c.emails)}" for c in matches],
        )
    return matches[0]


WHO_HELP = "An id, an email, or an unambiguous part of a name (case and accents do not matter)."


@app.command()
def touch(
    ctx: typer.Context,
    who: Annotated[list[str], typer.Argument(metavar="WHO", help=WHO_HELP)],
    on: Annotated[
        str | None,
        typer.Option(
            "--on", metavar="YYYY-MM-DD", help="The day you were in touch (default today)."
        ),
    ] = None,
    note: Annotated[
        str, typer.Option(metavar="TEXT", help="What you talked about (kept in the journal).")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Record that you were in touch with one or more people: completes each one's
    task and schedules the next one."""
    from kit_sync.cadence import today

    o = opts(ctx)
    day: date | None = None
    if on is not None:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            raise UsageError(f"--on '{on}' is not a date like 2026-03-14") from None
    outcomes: list[fmt.TouchOutcome] = []
    failures: list[str] = []
    with o.engine() as engine:
        # Every name is resolved before anything is written: a typo touches nobody.
        contacts: list[Contact] = []
        for w in who:
            c = find_one(engine.roster, w)
            if c not in contacts:
                contacts.append(c)
        day = day or today(engine.clock(), engine.tz)
        with _per_task_lines(o.verbose):
            for contact in contacts:
                earlier = engine.state.touches_on(contact.id, day)
                if earlier:
                    outcomes.append(
                        fmt.TouchOutcome(
                            contact.id, contact.name, day, None, True, earlier[-1].note
                        )
                    )
                    continue
                result = engine.touch(contact, day, note)
                outcomes.append(
                    fmt.TouchOutcome(contact.id, contact.name, day, _new_due(result, contact.id))
                )
                failures += result.failures
    o.echo(o.formatter(as_json).touched(outcomes))
    if failures:
        raise KitError("some actions failed", failures)


def _new_due(result: "CycleResult", contact_id: str) -> date | None:
    for a in result.plan.actions:
        if a.contact_id == contact_id and a.new is not None:
            return a.new.due
    for a in result.plan.actions:
        if a.contact_id == contact_id and a.change is not None and a.change.due:
            return a.change.due
    return None


@app.command()
def untouch(
    ctx: typer.Context,
    who: Annotated[str, typer.Argument(metavar="WHO", help=WHO_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Remove the last touch `kit-sync touch` recorded for a person and restore the
    due date it replaced."""
    from kit_sync.model import Status

    o = opts(ctx)
    with o.engine() as engine:
        contact = find_one(engine.roster, who)
        with _per_task_lines(o.verbose):
            removed, result = engine.untouch(contact)
        opens = [
            t
            for t in engine.backend.fetch_listing().tasks
            if t.contact_id == contact.id and t.status is Status.OPEN
        ]
    due_now = min((t.due for t in opens if t.due), default=None)
    o.echo(
        o.formatter(as_json).untouched(
            fmt.UntouchOutcome(contact.id, contact.name, removed.day, due_now)
        )
    )
    if result.failures:
        raise KitError("some actions failed", result.failures)


@app.command()
def history(
    ctx: typer.Context,
    who: Annotated[str, typer.Argument(metavar="WHO", help=WHO_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """A person's touches, newest first: the day, how (a task ticked on which backend,
    the touch command, ...) and the note."""
    from kit_sync.state import State

    o = opts(ctx)
    loaded = o.load()
    contact = find_one(loaded.roster, who)
    path = loaded.config.state_path()
    entries: list[fmt.HistoryEntry] = []
    if path.exists():  # nothing synced yet: no journal, and none is created by looking
        state = State(path)
        try:
            entries = [
                fmt.HistoryEntry(
                    e.touch.day, e.touch.source, e.touch.note, e.recorded_at, e.touch.kind
                )
                for e in state.touch_history(contact.id)
            ]
        finally:
            state.close()
    o.echo(o.formatter(as_json).history(contact.id, contact.name, entries))


# --- health and login ------------------------------------------------------------------------


@app.command()
def health(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Exit 0 when the last sync cycle succeeded within 3 × sync.every, 1 otherwise
    (saying why). A config on disk that no longer loads while the daemon still syncs
    on the last good one is "degraded" (exit 0), with the file:line of the problem.
    For Docker's HEALTHCHECK and monitoring scripts."""
    import json

    from kit_sync.config import find_config
    from kit_sync.health import Health

    o = opts(ctx)
    # Only 0 and 1: Docker reserves exit code 2.
    try:
        verdict = _health_of(find_config(o.config))
    except KitError as exc:
        verdict = Health(False, f"cannot check: {exc}")
    if as_json:
        o.echo(json.dumps(verdict.as_dict(), ensure_ascii=False))
    else:
        from kit_sync.logs import redact

        word = "unhealthy" if not verdict.ok else "degraded" if verdict.degraded else "healthy"
        o.echo(redact(f"{word}: {verdict.reason}"))
    if not verdict.ok:
        raise typer.Exit(1)


def _health_of(path: "Path") -> "Health":
    from dataclasses import replace

    from kit_sync.app import load
    from kit_sync.config import last_known_state
    from kit_sync.errors import ConfigError
    from kit_sync.health import Health, read_health

    try:
        config = load(path).config  # the roster too: a broken row stops the daemon's reload
    except ConfigError as exc:
        state, every = last_known_state(path)
        running = read_health(state, every)
        if not running.ok:
            return Health(False, f"cannot check: {exc}")
        problem = str(exc).replace("\n", " ")
        return replace(
            running,
            reason=f"{problem} — still syncing with the last config that loaded; fix the "
            f"file (kit-sync check shows the same); {running.reason}",
            degraded=problem,
        )
    return read_health(config.state_path(), config.sync.every)


@app.command()
def login(ctx: typer.Context) -> None:
    """Sign in to Microsoft 365 for the graph backend (Microsoft To Do): prints a URL
    and a code, waits while you sign in in a browser, then keeps the tokens in a file
    only you can read; sync and run refresh them silently from then on. Exit 3 when
    the sign-in fails."""
    from kit_sync.backends.base import BackendUnavailable
    from kit_sync.config import GraphConfig, find_config, load_config

    o = opts(ctx)
    config, _ = load_config(find_config(o.config))
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
    o.echo(graph_login(backend, o.echo))


# --- the rhythm: load, agenda, digest, add, init (logic in their own modules) ----------


def _warn_overload(engine: Any, rows: Any) -> None:
    """status: weeks ahead over schedule.capacity (the roster-wide rate is checked at load)."""
    from kit_sync.cadence import today
    from kit_sync.schedule import overload_warning

    warning = overload_warning(
        (r.next_due for r in rows if r.next_due and r.state == "open"),
        today(engine.clock(), engine.tz),
        engine.config.schedule.policy,
    )
    if warning:
        log.warning("%s", warning)


def _unicode_out() -> bool:
    return (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"


@app.command()
def load(
    ctx: typer.Context,
    weeks: Annotated[int, typer.Option(min=1, max=104, help="How many weeks ahead.")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Due dates per week for the coming weeks, as a bar chart with the capacity line."""
    import json

    from kit_sync.overview import fetch_snapshot, load_chart, weekly_load

    o = opts(ctx)
    with o.engine() as engine:
        report = weekly_load(fetch_snapshot(engine), weeks)
    if as_json:
        o.echo(json.dumps(report.as_dict(), indent=2))
    else:
        o.echo(load_chart(report, unicode=_unicode_out()))


@app.command()
def agenda(
    ctx: typer.Context,
    minutes: Annotated[
        int, typer.Option(min=1, help="The time you have for this sitting, in minutes.")
    ] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="A printable page.")] = False,
) -> None:
    """Who to contact in one sitting: the most overdue first (relative to their
    interval, weighted by priority) until the minutes are used; lunches and coffees
    listed apart, to schedule."""
    import json

    from kit_sync.agenda import agenda_markdown, agenda_text, build_agenda
    from kit_sync.overview import fetch_snapshot

    if as_json and markdown:
        raise UsageError("choose --json or --markdown, not both")
    o = opts(ctx)
    with o.engine() as engine:
        result = build_agenda(fetch_snapshot(engine), minutes, engine.config.agenda)
    if as_json:
        o.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    elif markdown:
        o.echo(agenda_markdown(result))
    else:
        o.echo(agenda_text(result))


@app.command()
def digest(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown.")] = False,
    send: Annotated[
        bool, typer.Option("--send", help="Email it now to digest.to through digest.smtp.")
    ] = False,
) -> None:
    """The weekly review: due this week, overdue by tier, touched last week, people
    added, the load of the coming weeks, birthdays."""
    import json

    from kit_sync.digest import digest_for, digest_markdown, digest_text, send_digest

    o = opts(ctx)
    if as_json and markdown:
        raise UsageError("choose --json or --markdown, not both")
    with o.engine() as engine:
        options = engine.config.digest
        if send:
            if options is None or options.smtp is None:
                raise UsageError(
                    "digest --send needs a mail server: add digest: {to: you@example.com, "
                    "smtp: {host: smtp.example.com, username: ..., password: ...}} to the config"
                )
            result = send_digest(engine, options)
            o.echo(f"sent to {', '.join(options.to)}: {result.subject}")
            return
        result = digest_for(engine, options.weeks if options else 4)
    if as_json:
        o.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    elif markdown:
        o.echo(digest_markdown(result))
    else:
        o.echo(digest_text(result))


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The person's name.")],
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
    o = opts(ctx)
    path = find_config(o.config)
    new_id = add_contact(path, entry)
    o.echo(new_id)
    log.info("added %s to %s; the next sync creates their task", name, path)


@app.command()
def init(ctx: typer.Context) -> None:
    """Write a commented starter config at the default location
    (~/.config/kit-sync/config.yaml, or --config PATH); never overwrites a file."""
    from pathlib import Path

    from kit_sync.clock import system_zone
    from kit_sync.editconfig import default_config_path, init_config

    o = opts(ctx)
    path = Path(o.config) if o.config else default_config_path()
    init_config(path, system_zone().key)
    o.echo(f"wrote {path}")
    flag = f" --config {o.config}" if o.config else ""
    o.echo(
        f'next: kit-sync{flag} add "Name" --email you@example.com --tier core; kit-sync{flag} check'
    )


@app.command()
def near(
    ctx: typer.Context,
    city: Annotated[
        str, typer.Argument(metavar="CITY", help="A city, as contacts' `city` writes it.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everyone in CITY (case and accents ignored, trip aliases too): last touch and
    its note, next due date, how to reach them, their notes. For planning a trip."""
    import json

    from kit_sync.near import near_dict, near_text, people_near
    from kit_sync.overview import fetch_snapshot

    o = opts(ctx)
    with o.engine() as engine:
        report = people_near(fetch_snapshot(engine), city, engine.config.trips.trips())
    if as_json:
        o.echo(json.dumps(near_dict(report), indent=2, ensure_ascii=False))
    else:
        o.echo(near_text(report))


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's standalone mode prints usage errors (exit 2); KitGroup maps
    every user-facing error to its exit code."""
    app(args=argv, prog_name="kit-sync")
