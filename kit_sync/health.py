"""Is kit-sync healthy, and what has it been doing?

One rule, used by `kit-sync health` (reading the state DB) and by the daemon's
`/healthz` (reading what its own cycles recorded in that DB): healthy means the
last finished cycle succeeded, less than 3 × `sync.every` ago.

With `health.listen` the daemon also serves Prometheus `/metrics`
(prometheus-client, the `metrics` extra): cycles, failed cycles, tasks created and
regenerated, failed actions, backend call latency.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from kit_sync.clock import Clock, system_clock
from kit_sync.errors import UsageError
from kit_sync.logs import redact
from kit_sync.state import CycleRecord, State

log = logging.getLogger("kit_sync")

#: The last success may be this many sync intervals old before kit-sync is unhealthy.
STALE_AFTER = 3


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str
    last: CycleRecord | None = None
    #: Still syncing, but on a config that is no longer the one on disk (which does
    #: not load): the problem, with its file:line.
    degraded: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """What `health --json` and /healthz show; error texts masked (a state file
        from an older kit-sync may hold them in clear)."""
        last = self.last
        return {
            "status": "unhealthy" if not self.ok else "degraded" if self.degraded else "healthy",
            "reason": redact(self.reason),
            "last_cycle": None
            if last is None
            else {
                "finished": last.finished.isoformat() if last.finished else None,
                "ok": last.ok,
                "counts": last.counts,
                "error": redact(last.error) if last.error else last.error,
            },
        }


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _counts(counts: dict[str, int]) -> str:
    keys = ("created", "regenerated", "updated", "cancelled", "failed")
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in keys)


def assess(last: CycleRecord | None, every: timedelta, now: datetime) -> Health:
    """Healthy when the last finished cycle succeeded within STALE_AFTER × every."""
    if last is None or last.finished is None:
        return Health(False, "no sync cycle has finished yet")
    when = f"{last.finished:%Y-%m-%d %H:%M:%S} UTC ({_ago(now - last.finished)})"
    if not last.ok:
        return Health(False, f"the last sync cycle, {when}, failed: {last.error}", last)
    limit = STALE_AFTER * every
    if now - last.finished > limit:
        return Health(
            False,
            f"the last sync cycle finished {when}; one is expected every {every}, and none "
            f"finished within {limit} (is kit-sync running?)",
            last,
        )
    return Health(True, f"last sync cycle {when}: {_counts(last.counts)}", last)


def read_health(
    state_path: Path, every: timedelta, now: datetime | None = None, *, clock: Clock = system_clock
) -> Health:
    """`assess` on what the state DB holds. Never creates the DB."""
    now = now or clock()
    if not state_path.exists():
        return Health(False, f"no sync cycle has run yet (no state file at {state_path})")
    state = State(state_path)
    try:
        return assess(state.last_cycle(), every, now)
    finally:
        state.close()


# --- metrics -----------------------------------------------------------------------


class Metrics:
    """Prometheus metrics in a registry of their own (so tests can hold several)."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series only add noise here

        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.cycles = Counter("kit_sync_cycles", "Sync cycles run", registry=r)
        self.cycle_failures = Counter(
            "kit_sync_cycle_failures",
            "Sync cycles that failed (backend down, or some actions failed)",
            registry=r,
        )
        self.created = Counter("kit_sync_tasks_created", "Tasks created for a contact", registry=r)
        self.regenerated = Counter(
            "kit_sync_tasks_regenerated", "Tasks regenerated after a completion", registry=r
        )
        self.updated = Counter("kit_sync_tasks_updated", "Open tasks updated", registry=r)
        self.cancelled = Counter("kit_sync_tasks_cancelled", "Open tasks cancelled", registry=r)
        self.failed_actions = Counter(
            "kit_sync_actions_failed", "Task writes that failed (retried next cycle)", registry=r
        )
        self.backend_seconds = Histogram(
            "kit_sync_backend_request_seconds",
            "Time spent in one backend call",
            ["operation"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.backend_errors = Counter(
            "kit_sync_backend_errors", "Backend calls that raised", ["operation"], registry=r
        )
        self.last_success = Gauge(
            "kit_sync_last_success_timestamp_seconds",
            "Unix time of the last successful sync cycle",
            registry=r,
        )
        self.healthy = Gauge("kit_sync_healthy", "1 when /healthz says healthy", registry=r)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class Monitor:
    """What the daemon knows about its own cycles; fed from the cycle thread,
    read by the HTTP server's threads."""

    def __init__(
        self, every: timedelta, *, metrics: bool = True, clock: Clock = system_clock
    ) -> None:
        self.every = every
        self.clock = clock
        self.metrics = Metrics() if metrics and metrics_available() else None
        self._lock = threading.Lock()
        self._last: CycleRecord | None = None

    def cycle_finished(self, last: CycleRecord | None, *, counted: bool = True) -> None:
        """Record the state DB's last cycle; `counted=False` for one from before start.

        A cycle that failed before it was recorded leaves the same last cycle:
        counted once only."""
        with self._lock:
            previous, self._last = self._last, last
        m = self.metrics
        if m is None or last is None:
            return
        if last.ok and last.finished is not None:
            m.last_success.set(last.finished.timestamp())
        if not counted or (previous is not None and previous.id == last.id):
            return
        m.cycles.inc()
        if not last.ok:
            m.cycle_failures.inc()
        c = last.counts
        m.created.inc(c.get("created", 0))
        m.regenerated.inc(c.get("regenerated", 0))
        m.updated.inc(c.get("updated", 0))
        m.cancelled.inc(c.get("cancelled", 0))
        m.failed_actions.inc(c.get("failed", 0))
        self.health()  # sets the kit_sync_healthy gauge

    def health(self, now: datetime | None = None) -> Health:
        with self._lock:
            last = self._last
        verdict = assess(last, self.every, now or self.clock())
        if self.metrics is not None:
            self.metrics.healthy.set(1 if verdict.ok else 0)
        return verdict

    @contextmanager
    def timing(self, operation: str) -> Iterator[None]:
        m = self.metrics
        if m is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            m.backend_errors.labels(operation).inc()
            raise
        finally:
            m.backend_seconds.labels(operation).observe(time.perf_counter() - start)


# --- the HTTP endpoint -------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    """ "127.0.0.1:8765" / "[::1]:8765" -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Handler(BaseHTTPRequestHandler):
    monitor: ClassVar[Monitor]
    token: ClassVar[str | None] = None
    calendar: ClassVar[Path | None] = None  # the feed file served at /calendar.ics
    server_version = "kit-sync"
    sys_version = ""

    def _authorized(self) -> bool:
        """With health.token, every request must carry it as a bearer token."""
        if self.token is None:
            return True
        sent = self.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() != "bearer":
            # Calendar apps subscribe to a URL and cannot send a header: the feed
            # also takes the token as ?token=... (and nothing else does).
            path, _, query = self.path.partition("?")
            value = parse_qs(query).get("token", [""])[0] if path == "/calendar.ics" else ""
        ok = bool(value) and hmac.compare_digest(value.strip().encode(), self.token.encode())
        if not ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="kit-sync"')
            body = b"send the health.token as: Authorization: Bearer <token>\n"
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        return ok

    def do_GET(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            verdict = self.monitor.health()
            body = json.dumps(verdict.as_dict(), ensure_ascii=False).encode() + b"\n"
            self._send(200 if verdict.ok else 503, body, "application/json")
        elif path == "/calendar.ics":
            self._calendar()
        elif path == "/metrics":
            if self.monitor.metrics is None:
                self._send(
                    501,
                    b"metrics need prometheus-client: pip install 'kit-sync[metrics]'\n",
                    "text/plain; charset=utf-8",
                )
                return
            body, ctype = self.monitor.metrics.render()
            self._send(200, body, ctype)
        else:
            self._send(404, b"not found; try /healthz or /metrics\n", "text/plain; charset=utf-8")

    def _calendar(self) -> None:
        if self.calendar is None or self.token is None:
            why = (
                b"the calendar feed is served only with health.token set"
                if self.calendar is not None
                else b"no calendar feed: set calendar.path in the config"
            )
            self._send(404, why + b"\n", "text/plain; charset=utf-8")
            return
        try:
            body = self.calendar.read_bytes()
        except FileNotFoundError:
            self._send(503, b"the feed is written after the first sync\n", "text/plain")
            return
        self._send(200, body, "text/calendar; charset=utf-8")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The base class writes raw lines to stderr, which would break JSON logs.
        log.debug("health endpoint: " + format, *args)


class HealthServer:
    """`/healthz` and `/metrics` on a background thread. Start with `start()`,
    stop with `stop()` (both idempotent)."""

    def __init__(
        self,
        listen: str,
        monitor: Monitor,
        token: str | None = None,
        calendar: Path | None = None,
    ) -> None:
        self.listen = listen
        host, port = parse_listen(listen)
        attrs = {"monitor": monitor, "token": token, "calendar": calendar}
        handler = type("Handler", (_Handler,), attrs)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise UsageError(
                f"cannot serve health.listen {listen}: {exc.strerror}; pick another "
                "host:port in the config"
            ) from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> HealthServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.httpd.serve_forever, name="kit-sync-health", daemon=True
            )
            self._thread.start()
            log.info("serving /healthz and /metrics on http://%s", self.listen)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()
