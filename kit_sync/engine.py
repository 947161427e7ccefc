"""One sync cycle: pull -> plan -> apply with conditional writes.

The engine owns the order of side effects that makes a kill -9 at any instant
harmless: touches are journaled before the task that regenerates from them is
created; every create is exclusive (If-None-Match) and every update conditional
(If-Match), so a re-run after a crash re-plans from what the backend really holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from kit_sync.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    BackendUnavailable,
    Conflict,
    NotFound,
)
from kit_sync.cadence import today
from kit_sync.clock import Clock, system_clock
from kit_sync.config import Config
from kit_sync.errors import KitError, UsageError
from kit_sync.model import (
    AnchorKind,
    Contact,
    KitTask,
    Listing,
    Roster,
    Status,
    TaskChange,
    Touch,
)
from kit_sync.plan import Action, Inputs, Kind, Plan, build_plan, future_stamp
from kit_sync.state import SeenTask, State
from kit_sync.touches.runner import Poll, SourceRunner

log = logging.getLogger("kit_sync")

#: A backend that listed this many open kit tasks last time and none now is not
#: believed: an unmounted folder or a wrong task list must not look like "the user
#: deleted everything" (which would recreate every task).
EMPTY_GUARD = 5

Progress = Callable[[int, int], None]
#: A context manager per backend call, given the operation's name.
Timing = Callable[[str], AbstractContextManager[None]]


class EmptyBackendRefused(BackendError):
    exit_code = 1


@dataclass(frozen=True)
class _IdleMark:
    """The inputs of the last cycle that found nothing to do (see Engine._unchanged)."""

    head: tuple[object, ...]  # Engine._head: config generation, journal, day
    tasks: list[KitTask]  # the tasks listed (a copy of the listing's list)
    key: tuple[tuple[str, str], ...]  # _task_key(tasks)


def _task_key(tasks: list[KitTask]) -> tuple[tuple[str, str], ...]:
    """Every task's uid and etag, in an order that does not depend on the listing's."""
    return tuple(sorted((t.uid, t.etag) for t in tasks))


@dataclass
class CycleResult:
    plan: Plan
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: int = 0
    stopped: bool = False
    # touch sources that could not be read this cycle, one line each (exit 1)
    source_failures: list[str] = field(default_factory=list)
    # touches the sources found this cycle (a dry run: would find)
    detected: list[Touch] = field(default_factory=list)
    # nothing was planned and nothing was wrong: the next cycle with the same inputs
    # finds nothing again (the daemon's idle signature; kit_sync.quick across runs)
    idle: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class ContactStatus:
    id: str
    name: str
    tier: str | None
    every: str
    channel: str
    last_touch: date | None
    next_due: date | None
    days_overdue: int
    state: str  # open / completed / paused / missing
    contact: Contact


class Engine:
    def __init__(
        self,
        config: Config,
        roster: Roster,
        backend: Backend,
        state: State,
        tz: ZoneInfo,
        *,
        clock: Clock = system_clock,
        sources: SourceRunner | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.config = config
        self.roster = roster
        self.backend = backend
        self.state = state
        self.tz = tz
        self.clock = clock
        self.sources = sources
        #: Wraps every backend call (the daemon's /metrics times them); None: not timed.
        self.timing = timing
        self._idle: _IdleMark | None = None  # the last cycle that found nothing to do
        self._mirror_pending = False  # the calendar mirror failed: retry even when idle
        self._generation = 0
        backend.bind_state(state)

    def _timed(self, operation: str) -> AbstractContextManager[None]:
        return self.timing(operation) if self.timing is not None else nullcontext()

    def _fetch_listing(self) -> Listing:
        with self._timed("fetch_listing"):
            return self.backend.fetch_listing()

    def reload(self, config: Config, roster: Roster) -> None:
        """Use a new config and roster from the next cycle on (the daemon calls this
        when the config file changes). Backend, state and zone stay as opened; edited
        touch sources are opened anew (their cursors are in the state file)."""
        if self.sources is not None and config.touches != self.config.touches:
            self.sources.close()
            self.sources = SourceRunner(
                config.touches, self.tz, max_backoff=config.sync.max_backoff, backend=self.backend
            )
        self.config = config
        self.roster = roster
        self._generation += 1

    # --- planning ---------------------------------------------------------------------

    def _inputs(self, listing: Listing, now: datetime) -> Inputs:
        seen = self.state.seen()
        completion_seen: dict[str, datetime] = {}
        for t in listing.tasks:
            if t.status is Status.COMPLETED and (
                t.completed is None or future_stamp(t, now, self.tz)
            ):
                prior = seen.get(t.uid)
                completion_seen[t.uid] = (
                    prior.completed_seen if prior and prior.completed_seen else now
                )
        first_seen = self.state.first_seen()
        missing = {c.id for c in self.roster.contacts} - set(first_seen)
        if missing:
            # Rebuild from the backend where we can (a lost state file), else today.
            rebuilt: dict[str, date] = {}
            for t in listing.tasks:
                if (
                    t.contact_id in missing
                    and t.meta.anchor_kind is AnchorKind.NEW
                    and t.meta.anchor
                ):
                    prev = rebuilt.get(t.contact_id)
                    rebuilt[t.contact_id] = min(prev, t.meta.anchor) if prev else t.meta.anchor
            day = today(now, self.tz)
            first_seen.update({cid: rebuilt.get(cid, day) for cid in missing})
        return Inputs(
            roster=self.roster,
            tasks=listing.tasks,
            journal=self.state.touches(),
            now=now,
            tz=self.tz,
            rules=self.config.schedule.rules,
            schedule=self.config.schedule.policy,
            wording=self.config.task.wording(),
            first_seen=first_seen,
            completion_seen=completion_seen,
            blocked=frozenset(p.contact_id for p in listing.problems if p.contact_id),
            previously_open={u: s.contact_id for u, s in seen.items() if s.status == "open"},
            regenerating=self.backend.regenerates_itself,
            birthdays=self.config.birthdays.settings(),
            trips=self.config.trips.trips(),
            trip_pull=self.config.trips.pull,
        )

    def fetch_plan(
        self, *, allow_empty: bool = False, extra: list[Touch] | None = None
    ) -> tuple[Plan, Listing, Inputs]:
        """The plan for what the backend holds now; `extra` touches are planned as if
        journaled (a dry run's view of what the touch sources would add)."""
        listing = self._fetch_listing()
        self._guard_empty(listing, allow_empty)
        inputs = self._inputs(listing, self.clock())
        if extra:
            inputs = replace(inputs, journal=[*inputs.journal, *extra])
        return build_plan(inputs), listing, inputs

    def poll_sources(self, *, write: bool = True) -> Poll:
        """Read the touch sources (each failing one is reported, not raised)."""
        if not self.sources:
            return Poll()
        return self.sources.poll(self.state, self.roster, self.clock(), write=write)

    def _guard_empty(self, listing: Listing, allow_empty: bool) -> None:
        if listing.tasks or allow_empty:
            return
        was_open = sum(1 for s in self.state.seen().values() if s.status == "open")
        if was_open >= EMPTY_GUARD:
            raise EmptyBackendRefused(
                f"the backend lists no kit-sync tasks, but {was_open} were open at the last "
                "sync; is the right task list/folder configured and reachable? If you really "
                "deleted them all, run: kit-sync sync --allow-empty"
            )

    # --- a cycle ----------------------------------------------------------------------

    def run_cycle(
        self,
        *,
        dry_run: bool = False,
        allow_empty: bool = False,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> CycleResult:
        if dry_run:
            poll = self.poll_sources(write=False)
            plan, listing, _ = self.fetch_plan(allow_empty=allow_empty, extra=poll.touches)
            return CycleResult(
                plan,
                plan.counts(),
                problems=self._problem_lines(listing),
                source_failures=poll.failures,
                detected=poll.touches,
            )
        # Touch sources first: what they find is planned in this same cycle. A
        # failing source is reported and does not stop the task sync.
        poll = self.poll_sources()
        cycle = self.state.begin_cycle()
        interrupted = self.state.settle_interrupted()
        if interrupted:
            log.warning(
                "the previous cycle was interrupted during %d action(s); "
                "re-planning from what the backend holds",
                interrupted,
            )
        try:
            result = self._cycle(cycle, allow_empty, progress, stop)
        except KitError as exc:
            self._record_failure(cycle, str(exc))
            raise
        except Exception as exc:
            self._record_failure(cycle, f"internal error: {exc!r}")
            raise
        result.interrupted = interrupted
        result.source_failures = poll.failures
        result.detected = poll.touches
        error = "; ".join(result.failures[:3]) if result.failures else None
        self.state.end_cycle(cycle, result.ok, result.counts, error)
        return result

    def _record_failure(self, cycle: str, error: str) -> None:
        """Note the failed cycle for health; when that write fails too (the disk of
        the state file is full), the original error is the one to report."""
        try:
            self.state.end_cycle(cycle, False, {}, error)
        except KitError as exc:
            log.debug("cannot record the failed cycle: %s", exc)

    def _problem_lines(self, listing: Listing) -> list[str]:
        return [
            f"{p.item}: {p.message}"
            + (
                f" (contact {p.contact_id} is left alone until it is fixed or deleted)"
                if p.contact_id
                else ""
            )
            for p in listing.problems
        ]

    def _cycle(
        self, cycle: str, allow_empty: bool, progress: Progress | None, stop: threading.Event | None
    ) -> CycleResult:
        listing = self._fetch_listing()
        self._guard_empty(listing, allow_empty)
        now = self.clock()
        head = self._head(now)
        if self._unchanged(head, listing) and self._published():
            # Nothing changed since the last cycle that found nothing to do: same
            # tasks and etags, roster, journal and day. Planning again would find
            # nothing again; the daemon's idle cycle stays one cheap listing.
            return CycleResult(Plan(), {k.value: 0 for k in Kind} | {"failed": 0}, idle=True)
        inputs = self._inputs(listing, now)
        plan = build_plan(inputs)
        result = CycleResult(
            plan, {k.value: 0 for k in Kind} | {"failed": 0}, problems=self._problem_lines(listing)
        )
        for line in result.problems:
            log.warning("unreadable item on the backend: %s", line)
        for line in plan.warnings:
            log.warning("%s", line)
        self._journal(plan, inputs)
        tasks = {t.uid: t for t in listing.tasks}
        retry: set[str] = set()
        total = len(plan.actions)
        # A backend that creates in batches (Graph's $batch) gets the creates last,
        # in chunks of its batch size; others get every action in plan order.
        size = max(1, self.backend.batch_size)
        batched = size > 1
        creates = [a for a in plan.actions if batched and a.new is not None]
        steps = [[a] for a in plan.actions if not (batched and a.new is not None)]
        steps += [creates[i : i + size] for i in range(0, len(creates), size)]
        done = 0
        failed: set[str] = set()  # contacts with an action that did not go through
        for step in steps:
            if stop is not None and stop.is_set():
                result.stopped = True
                log.info(
                    "stopping: %d of %d action(s) left for the next cycle", total - done, total
                )
                break
            step = self._runnable(step, failed, retry)
            if not step:
                done += 1
                continue
            if batched and step[0].new is not None:
                self._apply_creates(cycle, step, tasks, result, retry)
            else:
                if not self._apply(cycle, step[0], tasks, result, retry):
                    failed.add(step[0].contact_id)
            done += len(step)
            if progress:
                progress(done, total)
        if retry and not result.stopped:
            # Something changed under us (a phone edited the task): reload, re-plan
            # just those contacts, try once more.
            listing = self._fetch_listing()
            tasks = {t.uid: t for t in listing.tasks}
            inputs = self._inputs(listing, self.clock())
            replan = build_plan(inputs)
            self._journal(replan, inputs)
            failed = set[str]()
            for action in replan.actions:
                if (
                    action.contact_id in retry
                    and self._runnable([action], failed, None)
                    and not self._apply(cycle, action, tasks, result, None)
                ):
                    failed.add(action.contact_id)
        self._remember(tasks.values(), inputs)
        self._publish(tasks.values(), plan, now)
        idle = not (plan.actions or plan.touches or plan.retracted or listing.problems)
        self._idle = (
            _IdleMark(head, list(listing.tasks), _task_key(listing.tasks))
            if idle and result.ok
            else None
        )
        result.idle = idle and result.ok and not result.stopped and not plan.warnings
        return result

    @staticmethod
    def _runnable(step: list[Action], failed: set[str], retry: set[str] | None) -> list[Action]:
        """The actions of `step` to apply: one that depends on an earlier action of
        its contact (a regeneration after a detected touch's completion) waits for
        the next cycle when that one failed or must be re-planned."""
        keep = []
        for action in step:
            replan = retry is not None and action.contact_id in retry
            if action.after_previous and (action.contact_id in failed or replan):
                log.info("%s: left for the next cycle", action.describe())
                continue
            keep.append(action)
        return keep

    def _head(self, now: datetime) -> tuple[object, ...]:
        """What a plan depends on besides the tasks, cheaply: the roster and config
        (through `reload`), the journal and the local day."""
        return (self._generation, self.state.journal_version(), today(now, self.tz))

    def _unchanged(self, head: tuple[object, ...], listing: Listing) -> bool:
        """The same inputs as the last cycle that found nothing to do: `head`, and
        every task's uid and etag. The backends keep their task objects between
        cycles (in memory), so an unchanged listing holds the very objects of the
        last one: two equal lists, which Python compares by identity first, in C,
        without building or sorting N keys. Any other listing (new objects, another
        order) is compared by its uids and etags."""
        mark = self._idle
        if mark is None or head != mark.head:
            return False
        tasks = listing.tasks
        if tasks == mark.tasks:
            return True  # the same (frozen) tasks: the same uids and etags
        if _task_key(tasks) != mark.key:
            return False
        self._idle = _IdleMark(head, list(tasks), mark.key)  # the quick way from now on
        return True

    def _journal(self, plan: Plan, inputs: Inputs) -> None:
        with self.state.transaction():
            for uid in plan.retracted:
                if self.state.remove_touch(uid):
                    log.info("a completion was undone on a device; touch %s removed", uid)
            for touch in plan.touches:
                if touch.source == "backend":
                    # Which backend the task was ticked on, for `kit-sync history`.
                    touch = replace(touch, source=f"backend:{self.config.backend.type}")
                if self.state.add_touch(touch):
                    log.info(
                        "touch: %s on %s (%s)",
                        touch.contact_id,
                        touch.day,
                        touch.source,
                        extra={"contact_id": touch.contact_id},
                    )
        self.state.note_first_seen({cid: d for cid, d in inputs.first_seen.items()})

    def _apply(
        self,
        cycle: str,
        action: Action,
        tasks: dict[str, KitTask],
        result: CycleResult,
        retry: set[str] | None,
    ) -> bool:
        """Apply one action; False when it did not go through (failed or re-plan)."""
        detail = action.describe()
        # Structured fields for JSON logs: who, and where on the backend.
        where = {"contact_id": action.contact_id, "href": action.task.href if action.task else None}
        action_id = self.state.begin_action(
            cycle, action.kind.value, action.contact_id, action.uid, detail
        )
        try:
            if action.new is not None:
                with self._timed("create_task"):
                    made = self.backend.create_task(action.new)
                tasks[made.uid] = made
                log.info("%s -> %s", detail, made.href, extra=where | {"href": made.href})
            elif action.delete:
                assert action.task is not None
                with self._timed("delete_task"):
                    self.backend.delete_task(action.task)
                tasks.pop(action.task.uid, None)
                log.info("%s (%s)", detail, action.task.href, extra=where)
            else:
                assert action.task is not None and action.change is not None
                current = tasks.get(action.task.uid, action.task)
                with self._timed("update_task"):
                    made = self.backend.update_task(current, action.change)
                tasks[made.uid] = made
                log.info("%s (%s)", detail, made.href, extra=where | {"href": made.href})
        except (Conflict, AlreadyExists, NotFound) as exc:
            if retry is not None:
                retry.add(action.contact_id)
                self.state.end_action(action_id, "retry", f"{detail}: {exc}")
                log.info(
                    "%s changed meanwhile (%s); will re-plan it",
                    action.contact_id,
                    exc,
                    extra=where,
                )
                return False
            self._fail(action_id, detail, exc, result, where)
            return False
        except BackendUnavailable:
            self.state.end_action(action_id, "failed", detail)
            raise
        except BackendError as exc:
            self._fail(action_id, detail, exc, result, where)
            return False
        self.state.end_action(action_id, "done")
        result.counts[action.kind.value] += 1
        return True

    def _apply_creates(
        self,
        cycle: str,
        actions: list[Action],
        tasks: dict[str, KitTask],
        result: CycleResult,
        retry: set[str] | None,
    ) -> None:
        """Creates sent together through the backend's `create_tasks`; each action is
        journaled, counted and failed on its own, as in `_apply`."""
        # The batch's journal rows commit together (before the writes, and after
        # them): one transaction each instead of one per action.
        with self.state.transaction():
            ids = [
                self.state.begin_action(cycle, a.kind.value, a.contact_id, a.uid, a.describe())
                for a in actions
            ]
        try:
            with self._timed("create_tasks"):
                outcomes = self.backend.create_tasks([a.new for a in actions if a.new])
        except BackendUnavailable:
            with self.state.transaction():
                for action_id, action in zip(ids, actions, strict=True):
                    self.state.end_action(action_id, "failed", action.describe())
            raise
        with self.state.transaction():
            self._settle_creates(ids, actions, outcomes, tasks, result, retry)

    def _settle_creates(
        self,
        ids: list[int],
        actions: list[Action],
        outcomes: list[KitTask | BackendError],
        tasks: dict[str, KitTask],
        result: CycleResult,
        retry: set[str] | None,
    ) -> None:
        for action_id, action, outcome in zip(ids, actions, outcomes, strict=True):
            detail = action.describe()
            where: dict[str, Any] = {"contact_id": action.contact_id, "href": None}
            if isinstance(outcome, KitTask):
                tasks[outcome.uid] = outcome
                log.info("%s -> %s", detail, outcome.href, extra=where | {"href": outcome.href})
                self.state.end_action(action_id, "done")
                result.counts[action.kind.value] += 1
            elif isinstance(outcome, Conflict | AlreadyExists | NotFound) and retry is not None:
                retry.add(action.contact_id)
                self.state.end_action(action_id, "retry", f"{detail}: {outcome}")
                log.info("%s changed meanwhile (%s); will re-plan it", action.contact_id, outcome)
            else:
                self._fail(action_id, detail, outcome, result, where)

    def _fail(
        self,
        action_id: int,
        detail: str,
        exc: Exception,
        result: CycleResult,
        where: dict[str, Any] | None = None,
    ) -> None:
        self.state.end_action(action_id, "failed", f"{detail}: {exc}")
        result.failures.append(f"{detail}: {exc}")
        result.counts["failed"] = result.counts.get("failed", 0) + 1
        log.error("failed to %s: %s", detail, exc, extra=where)

    def _published(self) -> bool:
        """False when the calendar feed is configured but its file is missing."""
        feed = self.config.calendar
        if feed is None:
            return True
        if feed.caldav is not None and (
            self._mirror_pending or self.state.get_meta("calendar.mirrored") is None
        ):
            return False
        return feed.path is None or feed.path.exists()

    def _publish(self, tasks: Any, plan: Plan, now: datetime) -> None:
        """The calendar feed: rewrite the .ics file when its events changed
        (atomically), and mirror them into the CalDAV calendar when configured. A
        view: failing to publish it never fails the sync (it is retried next cycle)."""
        feed = self.config.calendar
        if feed is None:
            return
        from kit_sync.feed import feed_events, fingerprint, render_feed, write_feed

        events = feed_events(
            tasks,
            self.roster,
            plan.rendered,
            self.config.birthdays.settings(),
            self.config.task.wording(),
        )
        if feed.path is not None:
            data = render_feed(events, name=feed.name, refresh=feed.refresh, now=now)
            try:
                if write_feed(feed.path, data):
                    log.info("calendar feed: %d event(s) in %s", len(events), feed.path)
            except OSError as exc:
                log.warning("could not write the calendar feed %s: %s", feed.path, exc)
        if feed.caldav is not None:
            mark = f"{feed.caldav.url}|{fingerprint(events)}"
            if self.state.get_meta("calendar.mirrored") == mark:
                return
            from kit_sync.feed_caldav import CalendarMirror, MirrorError

            mirror = CalendarMirror(feed.caldav)
            try:
                done = mirror.publish(events, now)
            except MirrorError as exc:
                log.warning("calendar mirror: %s; tried again at the next sync", exc)
                self._mirror_pending = True
                return
            finally:
                mirror.close()
            for line in done.conflicts:
                log.warning("calendar mirror: %s", line)
            if done.created or done.updated or done.deleted:
                log.info(
                    "calendar mirror: %d created, %d updated, %d removed",
                    done.created,
                    done.updated,
                    done.deleted,
                )
            self._mirror_pending = bool(done.conflicts)
            if not done.conflicts:
                self.state.set_meta("calendar.mirrored", mark)

    def _remember(self, tasks: Any, inputs: Inputs) -> None:
        seen = []
        for t in tasks:
            completed_seen = inputs.completion_seen.get(t.uid)
            seen.append(
                SeenTask(t.uid, t.contact_id, t.href, t.etag, t.status.value, completed_seen)
            )
        self.state.replace_seen(seen)

    # --- touch ------------------------------------------------------------------------

    def touch(self, contact: Contact, day: date, note: str = "") -> CycleResult:
        """Complete the contact's open task as of `day` and regenerate from it."""
        now = self.clock()
        if day > today(now, self.tz):
            raise UsageError(f"--on {day} is in the future; a touch is something that happened")
        listing = self._fetch_listing()
        opens = [t for t in listing.tasks if t.contact_id == contact.id and t.status is Status.OPEN]
        # Noon local time: the completion's day is `day` in the user's zone, whatever
        # the zone of the client that reads the stamp.
        stamp = datetime.combine(day, time(12), tzinfo=self.tz).astimezone(UTC)
        replaced = min((t.due for t in opens if t.due), default=None)
        sources: list[str] = []
        if opens:
            with self._timed("complete_tasks"):
                sources = self.backend.complete_tasks(opens, stamp, listing)
        for task in opens:
            log.info(
                "touch: %s completed on %s (%s)",
                contact.id,
                day,
                task.href,
                extra={"contact_id": contact.id, "href": task.href},
            )
        # The journal entry points at the completed item that records the touch (for
        # Exchange: the completed copy the server made), so the next cycle does not
        # count it twice; with nothing to complete it stands alone.
        for source_uid in sources:
            self.state.add_touch(Touch(contact.id, day, "cli", source_uid, note))
            self.state.remember_replaced_due(source_uid, contact.id, replaced)
        if not sources:
            source_uid = State.new_touch_id()
            self.state.add_touch(Touch(contact.id, day, "cli", source_uid, note))
            self.state.remember_replaced_due(source_uid, contact.id, replaced)
            log.info("touch: %s on %s (journaled)", contact.id, day)
        return self.run_cycle()

    def untouch(self, contact: Contact) -> tuple[Touch, CycleResult]:
        """Undo the last touch `kit-sync touch` recorded for `contact`: the journal
        entry goes and the open task is due on the date it had before that touch.

        Where the touch completed a task kit-sync regenerates, the task is reopened,
        exactly as if the user had un-ticked it on a device: the next plan retracts the
        touch and cancels the task regenerated from it. Otherwise (a touch journaled
        without a task, or a server that regenerated the task itself) the touch is
        removed and the open task is moved back to the due date it replaced."""
        touch = self.state.last_touch_by_command(contact.id)
        if touch is None:
            raise UsageError(
                f"{contact.name} has no touch recorded by 'kit-sync touch' to remove "
                f"(see: kit-sync history {contact.id})"
            )
        replaced = self.state.replaced_due(touch.source_uid)
        listing = self._fetch_listing()
        done = next(
            (
                t
                for t in listing.tasks
                if t.uid == touch.source_uid and t.status is Status.COMPLETED
            ),
            None,
        )
        regenerating = self.backend.regenerates_itself
        reopened = False
        if done is not None and not regenerating:
            with self._timed("update_task"):
                self.backend.update_task(done, TaskChange(status=Status.OPEN))
            reopened = True
        elif done is not None:
            # The server's own completed copy: left in place it would count again.
            with self._timed("delete_task"):
                self.backend.delete_task(done)
        with self.state.transaction():
            self.state.remove_touch(touch.source_uid)
            self.state.forget_replaced_due(touch.source_uid)
        log.info(
            "untouch: %s on %s removed", contact.id, touch.day, extra={"contact_id": contact.id}
        )
        result = self.run_cycle()
        if not reopened and replaced is not None:
            opens = [
                t
                for t in self._fetch_listing().tasks
                if t.contact_id == contact.id and t.status is Status.OPEN
            ]
            for task in opens:
                if task.due != replaced:
                    # Written as a hand-moved date (a snooze): it holds until the next touch.
                    with self._timed("update_task"):
                        self.backend.update_task(task, TaskChange(due=replaced))
        return touch, result

    # --- status -----------------------------------------------------------------------

    def status(self) -> list[ContactStatus]:
        plan, listing, inputs = self.fetch_plan(allow_empty=True)
        day_now = today(inputs.now, self.tz)
        last: dict[str, date] = {}
        for x in [*inputs.journal, *plan.touches]:
            if x.source_uid not in plan.retracted:
                last[x.contact_id] = max(last.get(x.contact_id, x.day), x.day)
        pending_regen = {a.contact_id for a in plan.actions if a.kind is Kind.REGENERATE}
        opens: dict[str, list[KitTask]] = {}
        for t in listing.tasks:
            if t.status is Status.OPEN:
                opens.setdefault(t.contact_id, []).append(t)
        rows = []
        for c in self.roster.contacts:
            dues = sorted(t.due for t in opens.get(c.id, []) if t.due)
            due = dues[0] if dues else None
            if c.paused:
                state = "paused"
            elif c.id in pending_regen:
                state = "completed"
            elif c.id in opens:
                state = "open"
            else:
                state = "missing"
            overdue = max(0, (day_now - due).days) if due and state == "open" else 0
            rows.append(
                ContactStatus(
                    c.id,
                    c.name,
                    c.tier,
                    str(c.every),
                    c.channel.value,
                    last.get(c.id),
                    due,
                    overdue,
                    state,
                    c,
                )
            )
        return rows
