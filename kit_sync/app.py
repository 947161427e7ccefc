"""Wiring: config -> roster -> backend -> state -> engine. Used by the CLI and daemon."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from kit_sync.backends import open_backend
from kit_sync.backends.base import Backend
from kit_sync.cadence import today
from kit_sync.clock import Clock, system_clock, zone_of
from kit_sync.config import Config, load_config
from kit_sync.engine import Engine
from kit_sync.files import PRIVATE_DIR, tighten
from kit_sync.roster import LoadedRoster, load_roster
from kit_sync.schedule import capacity_warning
from kit_sync.state import State, read_last_touches
from kit_sync.touches.runner import SourceRunner


@dataclass
class Loaded:
    config: Config
    roster: LoadedRoster
    tz: ZoneInfo


def load(path: Path, *, skip_bad_rows: bool = False, clock: Clock = system_clock) -> Loaded:
    """Config and roster, validated. Raises ConfigError; touches nothing (the clock
    says which day `only: {seen_within}` counts back from)."""
    config, located = load_config(path)
    tz = zone_of(config.timezone)
    journal, today_ = roster_context(config, tz, clock)
    roster = load_roster(
        config, located, skip_bad_rows=skip_bad_rows, journal=journal, today=today_
    )
    too_many = capacity_warning((c.every for c in roster.active), config.schedule.policy)
    if too_many:
        roster.warnings.append(too_many)  # shown by check, status and every command
    return Loaded(config, roster, tz)


def roster_context(
    config: Config, tz: ZoneInfo, clock: Clock = system_clock
) -> tuple[dict[str, date], date]:
    """The touch journal and the user's today, which `only: {seen_within}` needs
    (the journal is read only when some include uses it)."""
    pruning = any(inc.only and inc.only.seen_within for inc in config.include)
    journal = read_last_touches(config.state_path()) if pruning else {}
    return journal, today(clock(), tz)


def open_engine(loaded: Loaded, *, clock: Clock = system_clock) -> Engine:
    """The engine on the configured backend and state file, all on one clock."""
    backend: Backend = open_backend(loaded.config.backend, loaded.tz, clock=clock)
    if loaded.config.state is None:
        # The default folder ($XDG_STATE_HOME/kit-sync) is kit-sync's own: private.
        tighten(loaded.config.state_path().parent, PRIVATE_DIR)
    state = State(loaded.config.state_path(), clock=clock)
    config = loaded.config
    sources = SourceRunner(
        config.touches, loaded.tz, max_backoff=config.sync.max_backoff, backend=backend
    )
    return Engine(config, loaded.roster, backend, state, loaded.tz, clock=clock, sources=sources)
