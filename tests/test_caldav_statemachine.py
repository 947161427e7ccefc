"""A hypothesis state machine over the engine and the CalDAV backend on a real server
(Radicale and Xandikos): completions in every client's style (written by the
independent Phone), snoozes, deletions, roster edits, crashes half-way through a
cycle, lost state and cache files, sync tokens the server forgot, and both ways of
running (the daemon's long-lived engine, a new process per cycle), in any order.
After every successful cycle the behaviour contract must hold, and a second cycle
must have nothing left to do.
"""

from __future__ import annotations

import copy
import re
import shutil
import sqlite3
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule
from kit import Crash, crash_after
from servers import FOREIGN, DavServer, Phone, Radicale, shared

from kit_sync.app import load
from kit_sync.backends.caldav import CaldavBackend
from kit_sync.cadence import Interval, next_due
from kit_sync.engine import Engine
from kit_sync.model import KitTask, Status
from kit_sync.state import State

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TZ = ZoneInfo("Pacific/Auckland")  # far from UTC, with DST: day boundaries matter
PEOPLE = [f"p{i}" for i in range(4)]
CADENCES = ["2 weeks", "1 month", "45 days"]
STYLES = ["utc", "floating", "tzid", "percent", "thunderbird", "tasks.org", "nextcloud"]


def stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def add_lines(text: str, *lines: str, drop: tuple[str, ...] = ()) -> str:
    """Edit the first VTODO: drop property lines starting with `drop`, add `lines`."""
    out, inside, done = [], False, False
    for line in re.split(r"\r?\n", text):
        if line == "BEGIN:VTODO":
            inside = not done
        if inside and drop and line.startswith(drop):
            continue
        if inside and line == "END:VTODO":
            out.extend(lines)
            inside, done = False, True
        out.append(line)
    return "\n".join(out)


class CaldavMachine(RuleBasedStateMachine):
    server: DavServer  # set by the test function

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kit-caldav-sm-"))
        self.collection = self.server.new_collection()
        self.phone = Phone(self.server, self.collection)
        self.phone.put("foreign.ics", FOREIGN.format(uid="f@phone", summary="Keep in touch"))
        self.foreign = self.phone.get("foreign.ics")[0]
        self.roster: dict[str, dict[str, Any]] = {
            p: {"name": f"Person {p}", "id": p, "every": "2 weeks"} for p in PEOPLE[:3]
        }
        self.now = datetime(2026, 3, 20, 9, tzinfo=UTC)
        self.last_touch: dict[str, date] = {}
        self.uncertain: dict[str, date] = {}  # touch day known only within a range
        self.snoozed: dict[str, date] = {}
        self.unstamped: set[str] = set()
        self.unstamped_touch: set[str] = set()
        # a snooze on a task a crashed cycle may or may not have cancelled
        self.maybe_snoozed: dict[str, date] = {}
        self.synced = False
        self.daemon: Engine | None = None
        self.write_config()

    def teardown(self) -> None:
        self._stop_daemon()
        self.phone.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- kit-sync's side --------------------------------------------------------------

    def write_config(self) -> None:
        backend: dict[str, Any] = {"type": "caldav", "url": self.collection, "timeout": 10}
        auth = self.server.auth(self.collection)
        if auth:
            backend.update(username=auth[0], password=auth[1])
        config = {
            "timezone": TZ.key,
            "backend": backend,
            "state": "state.sqlite",
            "contacts": [copy.deepcopy(c) for c in self.roster.values()],
        }
        (self.tmp / "config.yaml").write_text(yaml.safe_dump(config))
        self._stop_daemon()  # a roster edit restarts the daemon (it reads the config)

    def engine(self) -> Engine:
        loaded = load(self.tmp / "config.yaml")
        backend = CaldavBackend(loaded.config.backend, loaded.tz, clock=lambda: self.now)
        state = State(loaded.config.state_path())
        return Engine(
            loaded.config, loaded.roster, backend, state, loaded.tz, clock=lambda: self.now
        )

    def _stop_daemon(self) -> None:
        if self.daemon is not None:
            self.daemon.backend.close()
            self.daemon.state.close()
            self.daemon = None

    def _cycle(self, keep: bool, engine: Engine | None = None) -> Any:
        if engine is None:
            if keep and self.daemon is None:
                self.daemon = self.engine()
            engine = self.daemon if keep else self.engine()
        assert engine is not None
        try:
            return engine.run_cycle()
        finally:
            if engine is not self.daemon:
                engine.backend.close()
                engine.state.close()

    def tasks(self) -> list[KitTask]:
        engine = self.engine()
        try:
            return engine.backend.fetch_listing().tasks
        finally:
            engine.backend.close()
            engine.state.close()

    def open_tasks(self, who: str) -> list[KitTask]:
        return [t for t in self.tasks() if t.contact_id == who and t.status is Status.OPEN]

    def _active(self) -> set[str]:
        return {p for p, c in self.roster.items() if not c.get("paused")}

    def _touched(self, who: str, day: date) -> None:
        if who in self.last_touch and self.last_touch[who] > day:
            return
        self.last_touch[who] = day
        self.uncertain.pop(who, None)

    def _cycle_starts(self) -> None:
        """What a cycle does to the model: inactive contacts' tasks get cancelled (a
        snooze on them is gone), unstamped completions get their day."""
        for who in list(self.snoozed):
            if who not in self._active():
                self.maybe_snoozed[who] = self.snoozed.pop(who)
        self._kit_sync_looks()

    def _kit_sync_looks(self) -> None:
        for who in self.unstamped:
            self._touched(who, self.now.astimezone(TZ).date())
            self.unstamped_touch.add(who)
        self.unstamped.clear()

    # --- the outside world ------------------------------------------------------------

    @rule(hours=st.integers(1, 24 * 20))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @precondition(lambda self: self.synced)
    @rule(who=st.sampled_from(PEOPLE), style=st.sampled_from(STYLES), hours_ago=st.integers(0, 40))
    def complete_on_phone(self, who: str, style: str, hours_ago: int) -> None:
        opens = self.open_tasks(who)
        if len(opens) != 1:
            return
        task = opens[0]
        href = task.href.rsplit("/", 1)[-1]
        when = self.now - timedelta(hours=hours_ago)
        local = when.astimezone(TZ)
        done = ["STATUS:COMPLETED", f"COMPLETED:{stamp(when)}"]
        if style == "floating":
            done = ["STATUS:COMPLETED", f"COMPLETED:{local:%Y%m%dT%H%M%S}"]
        elif style == "tzid":
            done = ["STATUS:COMPLETED", f"COMPLETED;TZID={TZ.key}:{local:%Y%m%dT%H%M%S}"]

        def edit(text: str) -> str:
            if style == "percent":
                return add_lines(text, "PERCENT-COMPLETE:100", drop=("PERCENT-COMPLETE",))
            if style == "nextcloud":
                return add_lines(text, "RRULE:FREQ=WEEKLY", *done, drop=("STATUS",))
            if style == "tasks.org":
                moved = (task.due or local.date()) + timedelta(weeks=1)
                return add_lines(
                    text,
                    "RRULE:FREQ=WEEKLY",
                    f"DUE;VALUE=DATE:{moved:%Y%m%d}",
                    f"LAST-MODIFIED:{stamp(when)}",
                    drop=("DUE", "LAST-MODIFIED"),
                )
            if style == "thunderbird":
                due = task.due or local.date()
                instance = (
                    f"BEGIN:VTODO\nUID:{task.uid}\nDTSTAMP:{stamp(when)}\n"
                    f"RECURRENCE-ID;VALUE=DATE:{due:%Y%m%d}\nSTATUS:COMPLETED\n"
                    f"COMPLETED:{stamp(when)}\nEND:VTODO\n"
                )
                text = add_lines(text, "RRULE:FREQ=WEEKLY")
                return re.sub(r"END:VCALENDAR\s*$", instance + "END:VCALENDAR\n", text)
            return add_lines(text, *done, drop=("STATUS",))

        if style == "tasks.org" and task.snoozed:
            return  # a snoozed repeating task moved on reads as a completion only forward
        self.phone.edit(href, edit)
        self.snoozed.pop(who, None)
        self.maybe_snoozed.pop(who, None)
        if style == "percent":
            self.unstamped.add(who)  # the touch is the day kit-sync first sees it
        else:
            self._touched(who, local.date())
            self.unstamped_touch.discard(who)

    @precondition(lambda self: self.synced)
    @rule(who=st.sampled_from(PEOPLE), days=st.integers(1, 30))
    def snooze_on_phone(self, who: str, days: int) -> None:
        opens = self.open_tasks(who)
        if who not in self._active() or len(opens) != 1 or opens[0].due is None:
            # (a paused contact's task is cancelled at the next cycle, snooze or not)
            return
        new_due = opens[0].due + timedelta(days=days)
        self.phone.edit(
            opens[0].href.rsplit("/", 1)[-1],
            lambda t: add_lines(t, f"DUE;VALUE=DATE:{new_due:%Y%m%d}", drop=("DUE",)),
        )
        self.snoozed[who] = new_due
        self.maybe_snoozed.pop(who, None)

    @precondition(lambda self: self.synced)
    @rule(who=st.sampled_from(PEOPLE))
    def delete_on_phone(self, who: str) -> None:
        for t in self.open_tasks(who):
            self.phone.delete(t.href.rsplit("/", 1)[-1])
        self.snoozed.pop(who, None)
        self.maybe_snoozed.pop(who, None)

    @rule(who=st.sampled_from(PEOPLE), every=st.sampled_from(CADENCES))
    def add_or_change_cadence(self, who: str, every: str) -> None:
        self.roster.setdefault(who, {"name": f"Person {who}", "id": who})["every"] = every
        self.write_config()

    @rule(who=st.sampled_from(PEOPLE), paused=st.booleans())
    def pause(self, who: str, paused: bool) -> None:
        if who in self.roster:
            self.roster[who]["paused"] = paused
            self.write_config()  # (its task is cancelled at the next cycle, not now)

    @precondition(lambda self: len(self.roster) > 1)
    @rule(who=st.sampled_from(PEOPLE))
    def remove(self, who: str) -> None:
        if who in self.roster and len(self.roster) > 1:
            del self.roster[who]
            self.write_config()

    @rule(cache_too=st.booleans())
    def lose_state(self, cache_too: bool) -> None:
        self._stop_daemon()
        names = ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm"]
        if cache_too:
            names += [f"state.caldav-cache.sqlite{s}" for s in ("", "-wal", "-shm")]
        for name in names:
            (self.tmp / name).unlink(missing_ok=True)
        # An unstamped completion's day lived in the state (first seen); if the task
        # regenerated from it is deleted later, only a range can be expected.
        for who in self.unstamped_touch:
            if who in self.last_touch:
                self.uncertain[who] = self.last_touch[who]

    @rule()
    def server_forgets_the_token(self) -> None:
        if isinstance(self.server, Radicale):
            self.server.forget_sync_tokens(self.collection)  # 403 DAV:valid-sync-token
            return
        cache = self.tmp / "state.caldav-cache.sqlite"
        if cache.exists():
            with sqlite3.connect(cache) as db:  # Xandikos: 412 for a token never issued
                db.execute("UPDATE meta SET value = ? WHERE key LIKE 'token|%'", ("0" * 40,))
        if self.daemon is not None:
            self.daemon.backend._token = "0" * 40  # type: ignore[attr-defined]

    # --- kit-sync ---------------------------------------------------------------------

    @rule(after=st.integers(0, 3), keep=st.booleans())
    def crash_mid_cycle(self, after: int, keep: bool) -> None:
        """A cycle that dies after `after` writes (like kill -9 between two writes)."""
        self._stop_daemon()
        engine = self.engine()
        crash_after(engine.backend, after)
        self._cycle_starts()
        try:
            engine.run_cycle()
        except Crash:
            pass
        finally:
            engine.backend.close()
            engine.state.close()

    @rule(keep=st.booleans())
    def sync(self, keep: bool) -> None:
        self._cycle_starts()
        result = self._cycle(keep)
        assert result.ok, result.failures
        self.synced = True
        self.check_contract()
        self.maybe_snoozed.clear()
        again = self._cycle(keep)
        assert again.plan.actions == [], [a.describe() for a in again.plan.actions]

    def check_contract(self) -> None:
        tasks = self.tasks()
        active = self._active()
        today = self.now.astimezone(TZ).date()
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
            elif p in self.maybe_snoozed and task.due == self.maybe_snoozed[p]:
                self.snoozed[p] = task.due  # the crashed cycle had not cancelled it
            elif p in self.uncertain:
                assert next_due(self.uncertain[p], every) <= task.due <= next_due(today, every)
            elif p in self.last_touch:
                assert task.due == next_due(self.last_touch[p], every), p
        done = [t for t in tasks if t.status is Status.COMPLETED]
        assert len({t.uid for t in done}) == len(done)
        assert not [t for t in tasks if t.recurring], "a repeating task was left behind"
        assert self.phone.get("foreign.ics")[0] == self.foreign  # untouched


@pytest.mark.parametrize("kind", ["radicale", "xandikos"])
def test_engine_state_machine_on_a_real_server(kind: str, request: pytest.FixtureRequest) -> None:
    server = shared(kind, request)

    class Machine(CaldavMachine):
        pass

    Machine.server = server
    runner = Machine.TestCase
    runner.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
    runner().runTest()
