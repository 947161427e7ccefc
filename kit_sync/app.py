"""Wiring: config -> roster -> backend -> state -> engine. Used by the CLI and daemon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from kit_sync.backends import open_backend
from kit_sync.backends.base import Backend
from kit_sync.clock import zone_of
from kit_sync.config import Config, load_config
from kit_sync.engine import Engine
from kit_sync.roster import Roster, load_roster
from kit_sync.schedule import capacity_warning
from kit_sync.state import State


@dataclass
class Loaded:
    config: Config
    roster: Roster
    tz: ZoneInfo


def load(path: Path, *, skip_bad_rows: bool = False) -> Loaded:
    """Config and roster, validated. Raises ConfigError; touches nothing."""
    config, located = load_config(path)
    roster = load_roster(config, located, skip_bad_rows=skip_bad_rows)
    too_many = capacity_warning((c.every for c in roster.active), config.schedule.policy)
    if too_many:
        roster.warnings.append(too_many)  # shown by check, status and every command
    return Loaded(config, roster, zone_of(config.timezone))


def open_engine(loaded: Loaded) -> Engine:
    backend: Backend = open_backend(loaded.config.backend, loaded.tz)
    state = State(loaded.config.state_path())
    return Engine(loaded.config, loaded.roster, backend, state, loaded.tz)
