"""The daemon: one APScheduler job running a sync cycle every `sync.every`.

One cycle at a time (max_instances=1, coalesce); the first cycle at start; a
failing cycle is logged and retried with back-off (doubling up to
`sync.max_backoff`, honouring a server's Retry-After); SIGTERM/SIGINT stop it
within seconds: the running cycle stops between two actions. With `health.listen`
it serves /healthz and /metrics (kit_sync.health) while it runs.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from kit_sync.backends.base import Throttled
from kit_sync.clock import Clock, system_clock
from kit_sync.config import Config
from kit_sync.engine import Engine
from kit_sync.errors import KitError
from kit_sync.health import HealthServer, Monitor
from kit_sync.lock import Busy, StateLock

log = logging.getLogger("kit_sync")


#: Settings used when the daemon starts; a change to them needs a restart.
#: Seconds a stop waits for a cycle stuck in a backend call (SIGTERM stops in < 2 s).
STOP_GRACE = 1.5

RESTART_NEEDED = ("backend", "state", "timezone", "sync", "health", "digest")


class Daemon:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        skip_bad_rows: bool = False,
        clock: Clock = system_clock,
        lock: StateLock | None = None,
    ) -> None:
        self.engine = engine
        #: The state file's cycle lock, shared with `kit-sync sync` and friends.
        self.state_lock = lock
        #: Set when a stop could not wait for a hung backend call (see run_forever).
        self.abandoned = False
        #: Wall time for back-off and health (the scheduler runs on real time too).
        self.clock = clock
        self.skip_bad_rows = skip_bad_rows
        self._mtimes = self._watched_mtimes()
        self.every = config.sync.every
        self.max_backoff = config.sync.max_backoff
        self.stop = threading.Event()
        #: Set by SIGHUP: reload the config at once, edited or not (as vdirsyncer,
        #: nginx and most daemons do), then run a cycle with it.
        self.hup = threading.Event()
        self.failures = 0
        self.not_before: datetime | None = None
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.listen = config.health.listen
        token = config.health.token
        self.health_token = token.get_secret_value() if token is not None else None
        feed = config.calendar
        #: The feed file served at /calendar.ics (with health.token), if any.
        self.calendar = feed.path if feed is not None and feed.serve else None
        self.monitor = Monitor(self.every, metrics=self.listen is not None, clock=self.clock)
        if self.listen is not None:
            engine.timing = self.monitor.timing  # backend call latency for /metrics
        self.server: HealthServer | None = None
        # The weekly review by email (kit_sync.digest), when a mail server is set.
        digest = config.digest
        self.digest = digest if digest is not None and digest.smtp is not None else None
        self.digest_status: str | None = None  # "sent", "already sent", "failed: ..."
        # True until the first good cycle has checked for a digest missed while the
        # daemon was down, and again after a failed send.
        self._digest_due_check = self.digest is not None

    def cycle(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a cycle is still running (the retry job and the interval met)
        try:
            if self.state_lock is None:
                self._cycle()
                return
            # A `kit-sync sync` or `touch` may be running on the same state: wait for it.
            with self.state_lock.cycle(stop=self.stop) as held:
                if held:
                    self._cycle()
        except Busy as exc:
            log.warning("skipping this sync cycle: %s", exc)
        finally:
            self._lock.release()

    def _cycle(self) -> None:
        ran = False
        try:
            if self.stop.is_set():
                return
            if self.not_before is not None and self.clock() < self.not_before:
                return  # backing off after failures
            ran = True
            forced = self.hup.is_set()
            self.hup.clear()
            self.reload_if_changed(force=forced)
            result = self.engine.run_cycle(stop=self.stop)
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            log.info("cycle done: %s", counts, extra={"counts": result.counts})
            self.failures = 0
            self.not_before = None
            if self._digest_due_check:
                # After the first good cycle (a period missed while the daemon was
                # down is sent now, once) and after a failed send.
                self._send_digest()
        except Throttled as exc:
            self._backoff(exc, exc.retry_after)
        except KitError as exc:
            self._backoff(exc, None)
        except Exception:
            log.exception("internal error in a sync cycle; retrying later")
            self._backoff(None, None)
        finally:
            if ran:
                self._record_cycle()

    def digest_job(self) -> None:
        """The cron job: send this period's digest unless
        it was sent already, also by an earlier run of the daemon."""
        with self._lock:  # between two sync cycles: one user of the backend at a time
            if not self.stop.is_set():
                self._send_digest()

    def _send_digest(self) -> None:
        from kit_sync.digest import send_digest_if_due

        assert self.digest is not None
        try:
            sent = send_digest_if_due(self.engine, self.digest)
        except KitError as exc:
            self._digest_due_check = True
            self.digest_status = f"failed: {exc}"
            log.error("weekly digest not sent: %s; trying again after the next sync", exc)
            return
        except Exception as exc:
            self._digest_due_check = True
            self.digest_status = f"failed: {exc!r}"
            log.exception("internal error sending the weekly digest")
            return
        self._digest_due_check = False
        self.digest_status = "sent" if sent else "already sent"
        if sent:
            log.info("weekly digest sent to %s", ", ".join(self.digest.to))

    def add_jobs(self) -> None:
        """The sync job, a cycle now; with a digest, its cron job (the first good
        cycle sends a period's digest missed while the daemon was down)."""
        self.scheduler.add_job(
            self.cycle,
            IntervalTrigger(seconds=self.every.total_seconds(), timezone=UTC),
            id="sync",
            max_instances=1,
            coalesce=True,
            next_run_time=self.clock(),
        )
        if self.digest is not None:
            from apscheduler.triggers.cron import CronTrigger

            from kit_sync.digest import cron_fields

            self.scheduler.add_job(
                self.digest_job,
                CronTrigger(**cron_fields(self.digest.every), timezone=self.engine.tz),
                id="digest",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )

    def _record_cycle(self, *, counted: bool = True) -> None:
        """Hand the cycle the engine recorded in the state DB to /healthz and /metrics."""
        try:
            last = self.engine.state.last_cycle()
        except Exception:
            log.exception("cannot read the last cycle from the state file")
            return
        self.monitor.cycle_finished(last, counted=counted)

    def _watched_mtimes(self) -> dict[Path, int]:
        config = self.engine.config
        out = {}
        for path in [config.source, *(inc.path for inc in config.include)]:
            try:
                out[path] = path.stat().st_mtime_ns
            except OSError:
                out[path] = -1
        return out

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Pick up an edited config or roster file without a restart (`force`: even
        when no file looks changed, for SIGHUP).

        A config with problems is reported once and the last good one stays in use
        (nothing is written on the strength of a half-edited file)."""
        mtimes = self._watched_mtimes()
        if mtimes == self._mtimes and not force:
            return False
        self._mtimes = mtimes
        from kit_sync.app import load

        old = self.engine.config
        try:
            loaded = load(old.source, skip_bad_rows=self.skip_bad_rows, clock=self.clock)
        except KitError as exc:
            log.error(
                "the config changed but cannot be used; still syncing with the previous "
                "one until it is fixed: %s",
                exc,
            )
            return False
        changed = [
            name for name in RESTART_NEEDED if getattr(loaded.config, name) != getattr(old, name)
        ]
        if changed:
            log.warning(
                "%s changed in %s: restart kit-sync to apply that (the roster and "
                "task settings are applied now)",
                ", ".join(changed),
                old.source.name,
            )
        for warning in loaded.roster.warnings:
            log.warning("%s", warning)
        self.engine.reload(loaded.config, loaded.roster)
        log.info(
            "config reloaded: %d contacts (%d active)",
            len(loaded.roster.contacts),
            len(loaded.roster.active),
        )
        return True

    def backoff_seconds(self, retry_after: float | None) -> float:
        """30 s, 60 s, 120 s, ... up to sync.max_backoff; never less than Retry-After."""
        wait = min(30.0 * 2.0 ** (self.failures - 1), self.max_backoff.total_seconds())
        return max(wait, retry_after or 0.0)

    def _backoff(self, exc: Exception | None, retry_after: float | None) -> None:
        self.failures += 1
        wait = self.backoff_seconds(retry_after)
        self.not_before = self.clock() + timedelta(seconds=wait)
        if exc is not None:
            log.error("sync failed: %s; retrying in %d s", exc, wait)
        if not self.stop.is_set() and wait < self.every.total_seconds():
            self.scheduler.add_job(
                self.cycle, "date", id="retry", replace_existing=True, run_date=self.not_before
            )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        log.info("received SIGHUP; reloading the config now")
        self.hup.set()

    def reload_now(self) -> None:
        """Run a cycle now that first reloads the config (what SIGHUP asks for); a
        back-off after failures does not delay it."""
        self.not_before = None
        self.scheduler.add_job(self.cycle, "date", id="hup", replace_existing=True)

    def run_forever(self) -> None:
        self._record_cycle(counted=False)  # healthy at once if the last run was
        if self.listen is not None:
            if self.calendar is not None and self.health_token is None:
                log.warning(
                    "not serving /calendar.ics: set health.token (a secret calendar apps "
                    "send as ?token=...) to serve the calendar feed"
                )
            self.server = HealthServer(
                self.listen, self.monitor, self.health_token, calendar=self.calendar
            ).start()
            if self.monitor.metrics is None:
                log.warning(
                    "/metrics needs prometheus-client: pip install 'kit-sync[metrics]'; "
                    "serving /healthz only"
                )
        old: dict[signal.Signals, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            old[signum] = signal.signal(signum, self._on_signal)
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        self.add_jobs()
        log.info("kit-sync running: a cycle every %s; stop with Ctrl+C", self.every)
        self.scheduler.start()
        try:
            while not self.stop.wait(0.5):
                if self.hup.is_set():
                    self.reload_now()  # the cycle clears the flag when it reloads
        finally:
            self.scheduler.shutdown(wait=False)
            # A cycle stops between two writes at once; one stuck in a backend call
            # (a server that does not answer) is not waited for beyond STOP_GRACE:
            # leaving now is as safe as a kill -9, which kit-sync is built for.
            if self._lock.acquire(timeout=STOP_GRACE):
                self._lock.release()
            else:
                self.abandoned = True
                log.warning(
                    "a backend call is still running; stopping without waiting for it "
                    "(the next start re-plans from what the backend holds)"
                )
            if self.server is not None:
                self.server.stop()
            for signum, handler in old.items():
                signal.signal(signum, handler)
            log.info("kit-sync stopped")
