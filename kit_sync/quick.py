"""The quick check: `kit-sync sync` and `kit-sync status` with nothing new to do,
answered without loading the config, the backend or the planner.

An idle `sync` cycle (nothing planned, nothing wrong) and a `status` listing depend
only on their inputs: the bytes of the config file and of the roster files it
includes, the task folder (every entry's name, size, mtime_ns, ctime_ns, inode and
mode), the touch journal, the user's day, kit-sync's own code and the command line.
After such a command the CLI records those inputs and what it printed in the state
file (meta row `quick`), and where that state file is in a pointer file under
$XDG_CACHE_HOME/kit-sync/quick. The next `sync` or `status` with the same inputs
prints the same thing (a `sync` also records its cycle, for health and `status`) in
a few milliseconds: the daemon's idle cycle (`Engine._unchanged`), across processes.

Anything else takes the full way, which then says what is wrong: another backend
than a local folder, touch sources, a calendar feed, a warning or log line during
the recorded run, a task-folder entry changed within 2 s before it (a "racily
clean" entry, as git calls it: a later change in the same timestamp tick could keep
its stat), a symlink in the folder, `--verbose`, an option this module does not
know, a cycle lock another kit-sync holds. Every write a plan depends on drops the
record (`State.forget_quick`: each cycle, the journal, first-seen days, seen tasks).
"""

from __future__ import annotations

# Imports stay few and light: this module runs before anything else (kit_sync.entry).
import hashlib
import json
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime

# typing costs more to import than the rest of this module together
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Any

#: The state's meta row holding the record.
QUICK_KEY = "quick"
#: The record's layout; another value is ignored (and replaced by the next record).
FORMAT = 2
#: A task-folder entry changed less than this before the recorded run began makes
#: that run not recordable (coarse file timestamps: FAT 2 s, ext3 1 s).
RACY_NS = 2_000_000_000

_code: str | None = None


# --- the command line ------------------------------------------------------------------


class Call:
    """A command line the quick check can answer."""

    def __init__(
        self,
        command: str,  # sync | status
        config: str | None,
        as_json: bool,
        quiet: bool,
        log_format: str,
        color: str,
        skip_bad_rows: bool,
    ) -> None:
        self.command = command
        self.config = config
        self.as_json = as_json
        self.quiet = quiet
        self.log_format = log_format
        self.color = color
        self.skip_bad_rows = skip_bad_rows


_CHOICES = {"--log-format": ("text", "json"), "--color": ("auto", "always", "never")}


def parse(argv: list[str]) -> Call | None:
    """`[global options] sync|status [--json]`, else None (the full CLI parses it)."""
    values: dict[str, Any] = {
        "config": None,
        "quiet": False,
        "--log-format": "text",
        "--color": "auto",
        "skip": False,
    }
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg == "-c" or name == "--config" or name in _CHOICES:
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            if name in _CHOICES:
                if value not in _CHOICES[name]:
                    return None
                values[name] = value
            else:
                values["config"] = value
        elif arg in ("-q", "--quiet"):
            values["quiet"] = True
        elif arg in ("--skip-bad-rows", "--no-skip-bad-rows"):
            values["skip"] = arg == "--skip-bad-rows"
        elif arg in ("sync", "status"):
            rest = argv[i + 1 :]
            if rest not in ([], ["--json"]):
                return None
            return Call(
                arg,
                values["config"],
                rest == ["--json"],
                values["quiet"],
                values["--log-format"],
                values["--color"],
                values["skip"],
            )
        else:
            return None
        i += 1
    return None


def output_key(command: str, as_json: bool, quiet: bool, log_format: str, color: bool) -> str:
    """What else decides the printed text: the format, the colour, the width and
    the logging (the recorded run logged nothing at its level)."""
    from kit_sync.term import output_width

    return (
        f"{command} json={int(as_json)} color={int(color)} width={output_width()} "
        f"log={'warning' if quiet else 'info'}/{log_format}"
    )


def watch_logs() -> AbstractContextManager[Callable[[], int]]:
    """Counts the log records emitted in the block (at the level logging is set to):
    a run that logged something is not one to repeat silently."""
    import logging
    from contextlib import contextmanager

    seen = [0]

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen[0] += 1

    @contextmanager
    def watching() -> Iterator[Callable[[], int]]:
        handler = Count(logging.NOTSET)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield lambda: seen[0]
        finally:
            root.removeHandler(handler)

    return watching()


# --- the inputs ------------------------------------------------------------------------


def _code_digest() -> str:
    """kit-sync's own code (an upgrade or an edit) and the Python running it."""
    global _code
    if _code is None:
        h = hashlib.sha256(sys.version.encode())
        root = os.path.dirname(os.path.abspath(__file__))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".py"):
                    st = os.stat(os.path.join(dirpath, name))
                    h.update(f"{dirpath}/{name} {st.st_size} {st.st_mtime_ns}\n".encode())
        _code = h.hexdigest()
    return _code


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return "missing"
    return f"{hashlib.sha256(data).hexdigest()} {st.st_mode:o}"


def _folder_digest(path: str) -> tuple[str, int] | None:
    """Every entry's stat, and the newest of their timestamps; None when the folder
    holds a symlink (its target can change without a trace here)."""
    h = hashlib.sha256()
    st = os.stat(path)
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    h.update(f"{st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_mode:o}\n".encode())
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_symlink():
            return None
        s = e.stat(follow_symlinks=False)
        newest = max(newest, s.st_mtime_ns, s.st_ctime_ns)
        h.update(
            f"{e.name}\0{s.st_size} {s.st_mtime_ns} {s.st_ctime_ns} {s.st_ino} "
            f"{s.st_mode:o}\n".encode()
        )
    return h.hexdigest(), newest


def _journal(db: sqlite3.Connection) -> list[int]:
    row = db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM touches").fetchone()
    return [int(row[0]), int(row[1])]


def _environment() -> dict[str, str]:
    """What decides the zone when the config names none."""
    try:
        localtime = os.readlink("/etc/localtime")
    except OSError:
        localtime = ""
    return {"TZ": os.environ.get("TZ", ""), "localtime": localtime}


def fingerprint(
    spec: dict[str, Any], db: sqlite3.Connection, now: datetime, secret: str | None = None
) -> tuple[dict[str, Any], int]:
    """The inputs named by `spec` as they are now, and the newest task-folder
    timestamp (0 for a CalDAV list: its sync token is exact). Raises
    OSError/ValueError when they cannot be read (no record, no answer then)."""
    from zoneinfo import ZoneInfo

    if spec["backend"] == "caldav":
        tasks, newest = _collection_state(spec, secret), 0
    else:
        folder = _folder_digest(spec["folder"])
        if folder is None:
            raise ValueError("a symlink in the task folder")
        tasks, newest = folder
    return {
        "code": _code_digest(),
        "env": _environment(),
        "day": now.astimezone(ZoneInfo(spec["zone"])).date().isoformat(),
        "journal": _journal(db),
        "files": {p: _file_digest(p) for p in spec["files"]},
        "tasks": tasks,
    }, newest


_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">'
    b"<d:prop><d:sync-token/><cs:getctag/></d:prop></d:propfind>"
)


def _collection_state(spec: dict[str, Any], secret: str | None) -> str:
    """The CalDAV task list's sync-token and CTag (PROPFIND, Depth 0): they change
    with every change of the list (RFC 6578; CalendarServer's getctag). Over the
    standard library, as the backend's own first request of a process
    (`CaldavBackend._quick_refresh`): Basic, bearer or no credentials."""
    import base64
    import http.client
    import xml.etree.ElementTree as ET
    from urllib.parse import urlsplit

    url = urlsplit(spec["url"])
    if url.username or url.password or url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("not a plain http(s) URL")
    headers = {
        "Content-Type": "application/xml; charset=utf-8",
        "Depth": "0",
        "User-Agent": "kit-sync (quick check)",
    }
    if spec["auth"] == "bearer":
        headers["Authorization"] = f"Bearer {secret}"
    elif spec["auth"] == "basic":
        pair = f"{spec['username']}:{secret or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        import ssl

        verify = spec["verify"]
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=spec["timeout"], context=context
        )
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=spec["timeout"])
    try:
        path = url.path or "/"
        conn.request("PROPFIND", f"{path}?{url.query}" if url.query else path, _PROPFIND, headers)
        response = conn.getresponse()
        data = response.read(1 << 20)
    finally:
        conn.close()
    if response.status != 207:
        raise ValueError(f"PROPFIND answered {response.status}")
    values = []
    for prop in ("{DAV:}sync-token", "{http://calendarserver.org/ns/}getctag"):
        found = [
            (e.text or "").strip()
            for stat in ET.fromstring(data).iter("{DAV:}propstat")
            if "200" in (stat.findtext("{DAV:}status") or "")
            for e in stat.iter(prop)
        ]
        values.append(found[0] if found else "")
    if not any(values):
        raise ValueError("the task list has neither a sync-token nor a CTag")
    return "|".join(values)


def pointer_path(config: str | Path, environ: Any = None) -> str:
    """The pointer file of one config: which state file holds its record. The state
    path depends on $HOME and $XDG_STATE_HOME when the config names none."""
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    key = f"{os.path.abspath(config)}\0{home}\0{env.get('XDG_STATE_HOME', '')}"
    base = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    return os.path.join(base, "kit-sync", "quick", f"{name}.json")


# --- recording (the full commands) ------------------------------------------------------


class Recorder:
    """Taken before a full `sync`/`status` runs; `record` after it, with what it
    printed, when the run was one the quick check may repeat."""

    def __init__(self, engine: Any, config_path: Path, skip_bad_rows: bool) -> None:
        self.engine = engine
        self.config_path = config_path
        self.before: dict[str, Any] | None = None
        self.previous: dict[str, Any] | None = None
        self.secret: str | None = None
        self.spec = self._spec(engine, skip_bad_rows)
        if self.spec is None:
            return
        try:
            # The answers recorded for these same inputs (the cycle about to run
            # drops the row; its answers stay true if it changes nothing).
            self.previous = _load(engine.state.db)
        except (ValueError, sqlite3.Error):
            self.previous = None
        # The file system's "now" (its own clock, as file timestamps are): the cycle
        # lock file, written when this command took the lock.
        try:
            self.started = os.stat(f"{self.spec['state']}.lock").st_mtime_ns
        except OSError:
            self.started = time.time_ns()
        try:
            self.before, newest = fingerprint(
                self.spec, engine.state.db, engine.clock(), self.secret
            )
        except Exception as exc:  # an optimisation never fails the command
            _not_recorded(exc)
            self.before = None
            return
        if newest > self.started - RACY_NS:
            self.before = None  # racily clean: a change in this tick could hide

    def _spec(self, engine: Any, skip_bad_rows: bool) -> dict[str, Any] | None:
        config = engine.config
        if config.touches or config.calendar is not None:
            return None
        spec = {
            "format": FORMAT,
            "config": os.path.abspath(self.config_path),
            "state": os.path.abspath(config.state_path()),
            "files": [
                os.path.abspath(config.source),
                *(os.path.abspath(inc.path) for inc in config.include),
            ],
            "zone": engine.tz.key,
            "skip_bad_rows": skip_bad_rows,
            "backend": config.backend.type,
        }
        if config.backend.type == "local":
            return spec | {"folder": os.path.abspath(config.backend.path)}
        if config.backend.type != "caldav":
            return None
        backend = engine.backend
        url, auth = backend.known_collection(), backend.plain_auth()
        if url is None or auth is None:
            return None  # the next run knows them (the cache) or caldav must negotiate
        cfg = config.backend
        secret = None
        if auth == "bearer":
            secret = "token" if cfg.token is not None else "password"
        elif auth == "basic":
            secret = "password"
        self.secret = _secret_text(getattr(cfg, secret)) if secret else None
        return spec | {
            "url": url,
            "auth": auth,
            "username": cfg.username,
            "secret": secret,
            "verify": cfg.verify,
            "timeout": cfg.timeout,
        }

    def record(self, key: str, text: str, counts: dict[str, int] | None = None) -> bool:
        """Keep `text` as the answer for `key` if the inputs did not change while the
        command ran. Never fails the command: a record is an optimisation."""
        if self.spec is None or self.before is None:
            return False
        state = self.engine.state
        try:
            after, _ = fingerprint(self.spec, state.db, self.engine.clock(), self.secret)
            if after != self.before:
                return False
            old = self.previous
            outputs: dict[str, str] = {}
            kept: dict[str, Any] = {}
            if old and old.get("spec") == self.spec and old.get("fp") == after:
                outputs = dict(old.get("out") or {})
                kept = dict(old.get("counts") or {})
            outputs[key] = text
            if counts is not None:
                kept[key] = counts
            record = {"spec": self.spec, "fp": after, "out": outputs, "counts": kept}
            with state.transaction():
                state.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", (QUICK_KEY, json.dumps(record))
                )
            _write_pointer(pointer_path(self.config_path), self.spec)
        except Exception as exc:  # an optimisation never fails the command
            _not_recorded(exc)
            return False
        return True


def _not_recorded(exc: Exception) -> None:
    import logging

    logging.getLogger("kit_sync").debug("quick check: not recorded (%s)", exc)


def _load(db: sqlite3.Connection) -> dict[str, Any] | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (QUICK_KEY,)).fetchone()
    if row is None:
        return None
    record = json.loads(row[0])
    if not isinstance(record, dict) or (record.get("spec") or {}).get("format") != FORMAT:
        return None
    return record


def _write_pointer(path: str, spec: dict[str, Any]) -> None:
    """Atomically, private: it names the state file."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    data = json.dumps({"config": spec["config"], "state": spec["state"]})
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == data:
                return
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


# --- answering (the entry point) ---------------------------------------------------------


def answer(argv: list[str]) -> int | None:
    """Print the answer to `argv` and return its exit code, or return None (having
    printed and changed nothing) when the full CLI must run."""
    call = parse(argv)
    if call is None:
        return None
    try:
        text = _answer(call)
    except Exception:  # the full way runs, and explains whatever went wrong
        return None
    if text is None:
        return None
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0


def _answer(call: Call) -> str | None:
    from kit_sync.clock import system_clock
    from kit_sync.locate import config_file
    from kit_sync.term import use_color

    config = config_file(call.config)
    if config is None:
        return None
    config = os.path.abspath(config)
    try:
        with open(pointer_path(config), encoding="utf-8") as fh:
            pointer = json.load(fh)
    except (OSError, ValueError):
        return None
    state = pointer.get("state")
    if pointer.get("config") != config or not isinstance(state, str) or not os.path.isfile(state):
        return None
    color = use_color(call.color, sys.stdout)
    key = output_key(call.command, call.as_json, call.quiet, call.log_format, color)
    lock = _cycle_lock(state)
    if lock is None:
        return None  # another kit-sync is in a cycle: the full way waits for it
    try:
        db = sqlite3.connect(f"file:{state}?mode=rw", uri=True, isolation_level=None, timeout=5)
        try:
            record = _load(db)
            if record is None or key not in record["out"]:
                return None
            spec = record["spec"]
            if spec["config"] != config or spec["state"] != state:
                return None
            if spec["skip_bad_rows"] != call.skip_bad_rows:
                return None
            secret = _config_secret(spec) if spec.get("secret") else None
            now = system_clock()
            fp, _ = fingerprint(spec, db, now, secret)
            if fp != record["fp"]:
                return None
            if call.command == "sync":
                _record_cycle(db, now, record["counts"].get(key) or {})
            return str(record["out"][key])
        finally:
            db.close()
    finally:
        os.close(lock)  # closing the file drops the flock


def _secret_text(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _config_secret(spec: dict[str, Any]) -> str:
    """The backend's password or token as the config gives it (read each time, never
    kept): the config file's bytes are the recorded ones, so this is the same YAML
    value the full way validated (${NAME} expanded, {env}/{file}/{command} resolved)."""
    import yaml

    with open(spec["config"], "rb") as fh:
        raw = yaml.load(fh.read(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    value = raw["backend"][spec["secret"]]
    if isinstance(value, str) and "$" in value:
        from kit_sync.yamlsrc import expand_env

        value, missing = expand_env(value, os.environ)
        if missing:
            raise ValueError("an environment variable of the secret is not set")
    from kit_sync.secretsrc import secret_value

    return secret_value(value, os.path.dirname(spec["config"]))


def _cycle_lock(state: str) -> int | None:
    """kit_sync.lock's cycle lock (`<state>.lock`, flock, the holder's pid inside),
    taken only if free: the open file, or None."""
    import fcntl

    try:
        fd = os.open(f"{state}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        os.close(fd)
        return None
    return fd


def _record_cycle(db: sqlite3.Connection, now: datetime, counts: dict[str, int]) -> None:
    """The idle cycle, as `State.begin_cycle`/`end_cycle` record one (health reads it)."""
    stamp = now.astimezone(UTC).isoformat(timespec="microseconds")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT INTO cycles (id, started, finished, ok, counts, error) "
            "VALUES (?, ?, ?, 1, ?, NULL)",
            (os.urandom(6).hex(), stamp, stamp, json.dumps(counts)),
        )
        from kit_sync import cycles

        cycles.prune(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
