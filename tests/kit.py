"""Test helpers: a small world with a config file, the local backend, a state DB
and a clock the test moves."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kit_sync.app import load
from kit_sync.backends.local import LocalBackend
from kit_sync.engine import CycleResult, Engine
from kit_sync.model import KitTask, Status
from kit_sync.state import State
from kit_sync.touches.runner import SourceRunner

BASE_CONFIG: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "backend": {"type": "local", "path": "tasks"},
    "state": "state.sqlite",
    "tiers": {
        "inner": {"every": "3 weeks", "channel": "lunch", "priority": "high"},
        "core": {"every": "2 months", "channel": "call"},
    },
    "contacts": [
        {"name": "Ann Lee", "email": "ann@example.com", "tier": "inner"},
        {"name": "Bob Stone", "email": "bob@example.com", "tier": "core"},
    ],
}


class World:
    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None) -> None:
        self.dir = tmp_path
        self.config_path = tmp_path / "config.yaml"
        self.now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
        self.sources: SourceRunner | None = None
        self.write_config(config or BASE_CONFIG)

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_data = config
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def edit_config(self, **changes: Any) -> None:
        data = dict(self.config_data)
        data.update(changes)
        self.write_config(data)

    @property
    def folder(self) -> Path:
        return self.dir / "tasks"

    def engine(self) -> Engine:
        loaded = load(self.config_path)
        backend = LocalBackend(loaded.config.backend, loaded.tz, clock=lambda: self.now)
        state = State(loaded.config.state_path())
        if self.sources is None and loaded.config.touches:
            # One runner per world, as the daemon keeps one: back-off survives cycles.
            self.sources = SourceRunner(
                loaded.config.touches,
                loaded.tz,
                max_backoff=loaded.config.sync.max_backoff,
                backend=backend,
            )
        return Engine(
            loaded.config,
            loaded.roster,
            backend,
            state,
            loaded.tz,
            clock=lambda: self.now,
            sources=self.sources,
        )

    def sync(self) -> CycleResult:
        engine = self.engine()
        try:
            return engine.run_cycle()
        finally:
            engine.state.close()

    def tasks(self) -> list[KitTask]:
        engine = self.engine()
        try:
            return engine.backend.fetch_listing().tasks
        finally:
            engine.state.close()

    def open_tasks(self, contact_id: str | None = None) -> list[KitTask]:
        return [
            t
            for t in self.tasks()
            if t.status is Status.OPEN and (contact_id is None or t.contact_id == contact_id)
        ]

    def the_open(self, contact_id: str) -> KitTask:
        opens = self.open_tasks(contact_id)
        assert len(opens) == 1, opens
        return opens[0]

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def at(self, when: datetime) -> None:
        self.now = when

    def today(self) -> date:
        from zoneinfo import ZoneInfo

        return self.now.astimezone(ZoneInfo(self.config_data.get("timezone", "UTC"))).date()

    # --- a phone / another client editing the file ---------------------------------------

    def edit_raw(self, task: KitTask, fn: Any) -> None:
        path = self.folder / task.href
        text = path.read_bytes().decode()
        path.write_bytes(fn(text).encode())

    def complete_raw(self, task: KitTask, *lines: str, status: str | None = "COMPLETED") -> None:
        """Complete as a client would: set STATUS and add the given property lines."""

        def edit(text: str) -> str:
            text = re.sub(r"STATUS:[A-Z-]+\r?\n", "", text)
            extra = "".join(f"{line}\r\n" for line in lines)
            if status:
                extra += f"STATUS:{status}\r\n"
            return text.replace("END:VTODO", extra + "END:VTODO", 1)

        self.edit_raw(task, edit)

    def set_due_raw(self, task: KitTask, due: date) -> None:
        self.edit_raw(
            task, lambda t: re.sub(r"DUE;VALUE=DATE:\d{8}", f"DUE;VALUE=DATE:{due:%Y%m%d}", t)
        )


class Crash(Exception):
    """Stands for kill -9 between two writes."""


def crash_after(backend: Any, after: int) -> None:
    """Make `backend` raise Crash on its write number `after` (0 = the first)."""
    writes = {"n": 0}

    def counted(fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if writes["n"] >= after:
                raise Crash()
            writes["n"] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name in ("create_task", "update_task", "delete_task"):
        setattr(backend, name, counted(getattr(backend, name)))
    batch = getattr(backend, "create_tasks", None)
    if batch is not None:
        # A batch is written item by item: the crash lands between two of its items.
        one = counted(lambda new: batch([new])[0])
        backend.create_tasks = lambda news: [one(new) for new in news]
