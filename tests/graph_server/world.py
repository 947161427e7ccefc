"""A kit-sync world on the fake Graph: a config file, a state DB, a clock the test
moves, and the To Do apps (the fake's `app_*` methods) acting on the same list."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kit_sync.app import load
from kit_sync.backends.graph import GraphBackend, find_link
from kit_sync.backends.graph_auth import TokenProvider
from kit_sync.engine import CycleResult, Engine
from kit_sync.model import KitTask, Status
from kit_sync.state import State

from . import FakeMicrosoft
from .graph import Task

ROOT = Path(__file__).resolve().parents[2]


def roster(n: int, tier: str = "inner") -> list[dict[str, Any]]:
    return [
        {
            "id": f"person-{i:04d}",
            "name": f"Person {i:04d}",
            "email": f"p{i}@example.com",
            "tier": tier,
        }
        for i in range(n)
    ]


class GraphWorld:
    def __init__(
        self,
        folder: Path,
        ms: FakeMicrosoft,
        mailbox: str,
        tokens: TokenProvider,
        *,
        contacts: list[dict[str, Any]] | None = None,
        timezone: str = "Europe/Berlin",
        every: str = "3 weeks",
        mode: str = "secret",
        backend: dict[str, Any] | None = None,
    ) -> None:
        self.dir = folder
        self.ms = ms
        self.mailbox = mailbox
        self.tokens = tokens
        self.now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
        self.waits: list[float] = []
        self.config_path = folder / "config.yaml"
        self.config: dict[str, Any] = {
            "timezone": timezone,
            "backend": backend or ms.backend_config(mode, user=mailbox),
            "state": "state.sqlite",
            "tiers": {"inner": {"every": every, "channel": "lunch", "priority": "high"}},
            "contacts": contacts if contacts is not None else roster(3),
        }
        self.write()
        self.last: GraphBackend | None = None

    def write(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def sleep(self, seconds: float) -> None:
        """Throttling waits: recorded, and really waited (they are short in tests)."""
        self.waits.append(seconds)
        import time

        time.sleep(min(seconds, 2.0))

    def engine(self) -> Engine:
        loaded = load(self.config_path)
        backend = GraphBackend(
            loaded.config.backend,
            loaded.tz,
            tokens=self.tokens,
            clock=lambda: self.now,
            sleep=self.sleep,
        )
        self.last = backend
        state = State(loaded.config.state_path())
        return Engine(
            loaded.config, loaded.roster, backend, state, loaded.tz, clock=lambda: self.now
        )

    def sync(self, **kw: Any) -> CycleResult:
        engine = self.engine()
        try:
            return engine.run_cycle(**kw)
        finally:
            engine.state.close()
            engine.backend.close()

    def touch(self, contact_id: str, day: date) -> CycleResult:
        engine = self.engine()
        try:
            contact = engine.roster.get(contact_id)
            assert contact is not None
            return engine.touch(contact, day)
        finally:
            engine.state.close()
            engine.backend.close()

    # --- what is on the server ---------------------------------------------------------

    def tasks(self) -> list[KitTask]:
        """The kit tasks as a fresh backend without state lists them (a full delta round)."""
        loaded = load(self.config_path)
        backend = GraphBackend(loaded.config.backend, loaded.tz, tokens=self.tokens)
        try:
            return backend.fetch_listing().tasks
        finally:
            backend.close()

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

    def server_tasks(self, contact_id: str | None = None) -> list[Task]:
        out = []
        try:
            tasks = self.ms.graph.tasks(self.mailbox, self.config["backend"].get("task_list"))
        except KeyError:  # the list does not exist (yet)
            return []
        for task in tasks:
            link = find_link({"linkedResources": task.links})
            if link is not None and (contact_id is None or link["externalId"] == contact_id):
                out.append(task)
        return out

    def complete_on_phone(self, contact_id: str, local: datetime) -> None:
        task = self.the_open(contact_id)
        self.ms.graph.app_complete(
            self.mailbox, task.href, local, self.config["backend"].get("task_list")
        )

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def state(self) -> State:
        return State(self.dir / "state.sqlite")

    def actions(self) -> list[tuple[str, str, str]]:
        state = self.state()
        try:
            rows = state.db.execute("SELECT kind, contact_id, status FROM actions").fetchall()
            return [(r["kind"], r["contact_id"], r["status"]) for r in rows]
        finally:
            state.close()

    # --- the real command line -----------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kit_sync", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=cli_env(self.dir),
            cwd=self.dir,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "kit_sync", "--config", str(self.config_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(self.dir),
            cwd=self.dir,
        )


def cli_env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_STATE_HOME"] = str(folder / "xdg-state")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KIT_SYNC_CONFIG", None)
    return env
