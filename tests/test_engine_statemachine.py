"""A hypothesis state machine over the engine and the local backend: completions
(all stamp styles), snoozes, deletions on a "phone", roster edits, crashes half-way
through a cycle and lost state files, in any order. After every successful sync
the behaviour contract must hold."""

from __future__ import annotations

import copy
import shutil
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from kit import Crash, World, crash_after

from kit_sync.cadence import Interval, next_due
from kit_sync.model import Status

TZ = ZoneInfo("Pacific/Auckland")  # far from UTC, with DST: day boundaries matter
PEOPLE = [f"p{i}" for i in range(5)]
CADENCES = ["2 weeks", "1 month", "45 days"]


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kit-sm-"))
        self.roster: dict[str, dict[str, Any]] = {
            p: {"name": f"Person {p}", "id": p, "every": "2 weeks"} for p in PEOPLE[:3]
        }
        self.world = World(self.tmp, self._config())
        self.world.now = datetime(2026, 3, 20, 9, tzinfo=UTC)
        self.last_touch: dict[str, date] = {}
        self.snoozed: dict[str, date] = {}
        self.unstamped: set[str] = set()
        self.synced = False
        self.interrupted = False

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _config(self) -> dict[str, Any]:
        return {
            "timezone": TZ.key,
            "backend": {"type": "local", "path": "tasks"},
            "state": "state.sqlite",
            "contacts": [copy.deepcopy(c) for c in self.roster.values()],
        }

    def _active(self) -> set[str]:
        return {p for p, c in self.roster.items() if not c.get("paused")}

    # --- the outside world ------------------------------------------------------------

    @rule(hours=st.integers(1, 24 * 20))
    def time_passes(self, hours: int) -> None:
        self.world.advance(hours=hours)

    @precondition(lambda self: self.synced)
    @rule(
        who=st.sampled_from(PEOPLE),
        style=st.sampled_from(["utc", "floating", "tzid", "date", "percent"]),
        hours_ago=st.integers(0, 48),
    )
    def complete_on_phone(self, who: str, style: str, hours_ago: int) -> None:
        opens = self.world.open_tasks(who)
        if len(opens) != 1:
            return
        when = self.world.now - timedelta(hours=hours_ago)
        local = when.astimezone(TZ)
        lines = {
            "utc": [f"COMPLETED:{when:%Y%m%dT%H%M%SZ}"],
            "floating": [f"COMPLETED:{local:%Y%m%dT%H%M%S}"],
            "tzid": [f"COMPLETED;TZID={TZ.key}:{local:%Y%m%dT%H%M%S}"],
            "date": [f"COMPLETED;VALUE=DATE:{local:%Y%m%d}"],
            "percent": [],
        }[style]
        self.snoozed.pop(who, None)
        if style == "percent":
            # No stamp: the touch is the day kit-sync first sees it (next cycle).
            self.world.complete_raw(opens[0], "PERCENT-COMPLETE:100", status=None)
            self.unstamped.add(who)
            return
        self.world.complete_raw(opens[0], *lines)
        self._touched(who, local.date())

    def _touched(self, who: str, day: date) -> None:
        self.last_touch[who] = max(self.last_touch.get(who, day), day)

    def _kit_sync_looks(self) -> None:
        for who in self.unstamped:
            self._touched(who, self.world.now.astimezone(TZ).date())
        self.unstamped.clear()

    @precondition(lambda self: self.synced)
    @rule(who=st.sampled_from(PEOPLE), days=st.integers(1, 30))
    def snooze_on_phone(self, who: str, days: int) -> None:
        opens = self.world.open_tasks(who)
        if len(opens) != 1 or opens[0].due is None or who not in self._active():
            return  # (a removed contact's leftover task is cancelled, snoozed or not)
        new_due = opens[0].due + timedelta(days=days)
        self.world.set_due_raw(opens[0], new_due)
        self.snoozed[who] = new_due

    @precondition(lambda self: self.synced)
    @rule(who=st.sampled_from(PEOPLE))
    def delete_on_phone(self, who: str) -> None:
        for t in self.world.open_tasks(who):
            (self.world.folder / t.href).unlink()
        self.snoozed.pop(who, None)

    @rule(who=st.sampled_from(PEOPLE), every=st.sampled_from(CADENCES))
    def add_or_change_cadence(self, who: str, every: str) -> None:
        self.roster.setdefault(who, {"name": f"Person {who}", "id": who})["every"] = every
        self.world.write_config(self._config())

    @rule(who=st.sampled_from(PEOPLE), paused=st.booleans())
    def pause(self, who: str, paused: bool) -> None:
        if who in self.roster:
            self.roster[who]["paused"] = paused
            self.world.write_config(self._config())
            if paused:
                self.snoozed.pop(who, None)  # its task is cancelled; a new one comes back

    @rule(who=st.sampled_from(PEOPLE), note=st.text(max_size=20))
    def edit_notes(self, who: str, note: str) -> None:
        if who in self.roster:
            self.roster[who]["notes"] = note
            self.world.write_config(self._config())

    @precondition(lambda self: len(self.roster) > 1)
    @rule(who=st.sampled_from(PEOPLE))
    def remove(self, who: str) -> None:
        if who in self.roster and len(self.roster) > 1:
            del self.roster[who]
            self.world.write_config(self._config())
            self.snoozed.pop(who, None)

    # Losing the state file right after an interrupted cycle is a double fault the
    # contract does not cover for stamp-less completions (their day lives in the
    # state until the next cycle writes it onto the task).
    @precondition(lambda self: not self.interrupted)
    @rule()
    def lose_state(self) -> None:
        for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
            (self.tmp / name).unlink(missing_ok=True)

    # --- kit-sync ---------------------------------------------------------------------

    @rule(after=st.integers(0, 4))
    def crash_mid_cycle(self, after: int) -> None:
        """A cycle that dies after `after` writes (like kill -9 between two writes)."""
        engine = self.world.engine()
        crash_after(engine.backend, after)
        self._kit_sync_looks()
        self.interrupted = True
        try:
            engine.run_cycle()
        except Crash:
            pass
        finally:
            engine.state.close()

    @rule()
    def sync(self) -> None:
        self._kit_sync_looks()
        result = self.world.sync()
        assert result.ok, result.failures
        self.synced = True
        self.interrupted = False
        self.check_contract()
        assert self.world.sync().plan.actions == []  # converged: a second cycle is idle

    def check_contract(self) -> None:
        tasks = self.world.tasks()
        active = self._active()
        for p in PEOPLE:
            opens = [t for t in tasks if t.contact_id == p and t.status is Status.OPEN]
            if p not in active:
                assert opens == [], p
                continue
            assert len(opens) == 1, (p, opens)
            task = opens[0]
            every = Interval.parse(self.roster[p]["every"])
            if p in self.snoozed:
                assert task.due == self.snoozed[p]
            elif p in self.last_touch:
                assert task.due == next_due(self.last_touch[p], every), p
        done = [t for t in tasks if t.status is Status.COMPLETED]
        assert len({t.uid for t in done}) == len(done)

    @invariant()
    def foreign_file_untouched(self) -> None:
        foreign = self.world.folder / "foreign.ics"
        if not foreign.exists():
            self.world.folder.mkdir(parents=True, exist_ok=True)
            foreign.write_bytes(FOREIGN)
        assert foreign.read_bytes() == FOREIGN


FOREIGN = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:f@x\r\n"
    b"SUMMARY:Keep in touch with Person p0\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)

EngineMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestEngineMachine = EngineMachine.TestCase
