"""Local state in SQLite: touch journal, what was seen on the backend, action and
cycle journals, sync tokens, and the one listing cache of the network backends.

Everything here except the touch journal can be rebuilt from the backend; the
journal keeps "last contacted" when the user purges completed tasks. Deleting the
file is safe: kit UIDs and markers on the backend are the source of truth for
which tasks exist, so no duplicate is created.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kit_sync import cycles
from kit_sync.clock import Clock, system_clock
from kit_sync.errors import DiskFull, KitError
from kit_sync.files import disk_full_message, is_full, prepare_private_db, read_only_reason
from kit_sync.logs import redact
from kit_sync.model import Touch
from kit_sync.quick import QUICK_KEY

SCHEMA_VERSION = 3
# Version 3: the network backends' listing caches (CalDAV's own SQLite file, Exchange's
# JSON blob in `tokens`, Graph's one token per item) became the `listing_*` tables.

#: Columns added after a schema version: (version, table, column, SQL type).
#: Version 2: the kind and time of a touch a touch source detected.
_ADDED_COLUMNS = (
    (2, "touches", "kind", "TEXT NOT NULL DEFAULT ''"),
    (2, "touches", "at", "TEXT"),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS touches (
    id INTEGER PRIMARY KEY,
    contact_id TEXT NOT NULL,
    day TEXT NOT NULL,
    source TEXT NOT NULL,
    source_uid TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    recorded_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    at TEXT
);
CREATE INDEX IF NOT EXISTS touches_contact ON touches (contact_id, day);
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    uid TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    href TEXT NOT NULL,
    etag TEXT NOT NULL,
    status TEXT NOT NULL,
    completed_seen TEXT
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    cycle TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    uid TEXT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
-- Only the actions a cycle began and did not end (settle_interrupted looks them up
-- at every cycle without reading the whole journal).
CREATE INDEX IF NOT EXISTS actions_pending ON actions (id) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS cycles (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    ok INTEGER,
    counts TEXT NOT NULL DEFAULT '{}',
    error TEXT
);
CREATE TABLE IF NOT EXISTS tokens (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS touch_replaced (
    source_uid TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    due TEXT
);
CREATE TABLE IF NOT EXISTS local_files (
    folder TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checked_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    info TEXT,
    PRIMARY KEY (folder, name)
);
CREATE TABLE IF NOT EXISTS listing_items (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    href TEXT NOT NULL,
    etag TEXT NOT NULL,
    kind TEXT NOT NULL,
    info TEXT,
    data BLOB,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS listing_meta (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


#: A row of the local backend's listing cache:
#: (name, size, mtime_ns, ctime_ns, inode, etag, checked_ns, kind, info).
LocalFileRow = tuple[str, int, int, int, int, str, int, str, str | None]


class StateError(KitError):
    exit_code = 2


@dataclass(frozen=True)
class SeenTask:
    uid: str
    contact_id: str
    href: str
    etag: str
    status: str
    completed_seen: datetime | None


@dataclass(frozen=True)
class CycleRecord:
    id: str
    started: datetime
    finished: datetime | None
    ok: bool | None
    counts: dict[str, int]
    error: str | None


@dataclass(frozen=True)
class JournalEntry:
    """One row of the touch journal, with when it was written (UTC, ISO)."""

    touch: Touch
    recorded_at: str


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on an autocommit connection: all of it or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
            db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")


def _touch(r: sqlite3.Row) -> Touch:
    return Touch(
        r["contact_id"],
        date.fromisoformat(r["day"]),
        r["source"],
        r["source_uid"],
        r["note"],
        r["kind"],
        datetime.fromisoformat(r["at"]) if r["at"] else None,
    )


def read_only_error(reason: str) -> StateError:
    """The error for a state file kit-sync cannot write (also its lock files)."""
    return StateError(_read_only_message(reason))


def _read_only_message(reason: str) -> str:
    return (
        f"{reason}: kit-sync needs to write its touch journal there. Make it writable "
        "(chmod u+w, or mount it read-write), or point 'state:' in the config to a "
        "writable path; do not delete it, it holds the history of your touches"
    )


def _no_room(path: Path) -> bool:
    """Less than 1 MB left for the user on the disk of `path`."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1024 * 1024


class _Db(sqlite3.Connection):
    """A connection whose write failures say which file and what to do: a full disk
    is DiskFull, a read-only file or folder a StateError saying so (not "damaged")."""

    path: Path = Path("state.sqlite")

    def _translate(self, exc: sqlite3.OperationalError) -> KitError | None:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None  # extended -> primary
        text = str(exc).lower()
        io_error = primary == sqlite3.SQLITE_IOERR or "disk i/o error" in text
        # In WAL mode a write the disk has no room for often comes back as an I/O
        # error rather than SQLITE_FULL: a disk with (almost) no space left says why.
        if (
            primary == sqlite3.SQLITE_FULL
            or "disk is full" in text
            or (io_error and _no_room(self.path))
        ):
            return DiskFull(disk_full_message(self.path, "the state file"))
        if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) or "readonly" in text:
            reason = read_only_reason(self.path) or f"the state file {self.path} is read-only"
            return StateError(_read_only_message(reason))
        if io_error:
            return StateError(
                f"cannot write the state file {self.path} ({exc}); check the disk it is on"
            )
        return None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from None

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.OperationalError as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from None


class State:
    """One SQLite file. Each public write method is its own transaction."""

    def __init__(self, path: Path, *, clock: Clock = system_clock) -> None:
        self.path = path
        self.clock = clock
        self._noted: set[str] = set()  # contact ids known to have a first_seen row
        self._seen_rows: set[tuple[Any, ...]] | None = None  # `seen` as last read/written
        try:
            prepare_private_db(path)
        except OSError as exc:
            if is_full(exc):
                raise DiskFull(disk_full_message(path, "the state file")) from None
            raise StateError(
                f"cannot create the state file {path}: {exc.strerror}; set 'state:' in "
                "the config to a writable path"
            ) from None
        read_only = read_only_reason(path)
        if read_only:
            raise StateError(_read_only_message(read_only))
        try:
            # The daemon runs cycles in a scheduler thread, one at a time (Daemon._lock).
            self.db = sqlite3.connect(
                str(path),
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
                factory=_Db,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(
                f"cannot open the state file {path}: {exc}; set 'state:' in the "
                "config to a writable path"
            ) from None
        self.db.path = path
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except KitError:
            self.db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StateError(
                f"the state file {path} is damaged ({exc}); move it away and run "
                "again: kit-sync rebuilds it from the backend (only the history "
                "of touches older than the tasks on the backend is lost)"
            ) from None

    def _migrate(self) -> None:
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is not None and int(row["value"]) > SCHEMA_VERSION:
                raise StateError(
                    f"the state file {self.path} was written by a newer kit-sync (schema "
                    f"{row['value']}, this one knows {SCHEMA_VERSION}); upgrade kit-sync"
                )
            for _version, table, column, sql_type in _ADDED_COLUMNS:
                have = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
            if row is not None and int(row["value"]) < 3:
                _migrate_listing_caches(self.db, self.path)
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def listing_cache(self) -> ListingCache:
        """The listing cache of the network backends, in this file."""
        return ListingCache(self.db)

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="microseconds")

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

    def close(self) -> None:
        self.db.close()

    # --- touches ------------------------------------------------------------------

    def add_touch(self, touch: Touch) -> bool:
        """Record a touch once (by source_uid). Returns False if it was already there."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO touches (contact_id, day, source, source_uid, note, "
            "recorded_at, kind, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                touch.contact_id,
                touch.day.isoformat(),
                touch.source,
                touch.source_uid,
                touch.note,
                self._now(),
                touch.kind,
                touch.at.isoformat() if touch.at else None,
            ),
        )
        if cur.rowcount > 0:
            self.forget_quick()
        return cur.rowcount > 0

    def add_detected(self, touches: list[Touch], token_key: str, token: str | None) -> list[Touch]:
        """Journal what a touch source found and move its cursor, in one transaction:
        a crash leaves either both or neither, so nothing is skipped or read as new
        twice. Touches already journaled (same source_uid) are ignored. Returns the
        new ones."""
        with self.transaction():
            added = [t for t in touches if self.add_touch(t)]
            self.set_token(token_key, token)
        return added

    def remove_touch(self, source_uid: str) -> bool:
        cur = self.db.execute("DELETE FROM touches WHERE source_uid = ?", (source_uid,))
        if cur.rowcount > 0:
            self.forget_quick()
        return cur.rowcount > 0

    def touches(self, contact_id: str | None = None) -> list[Touch]:
        sql = "SELECT * FROM touches"
        args: tuple[Any, ...] = ()
        if contact_id is not None:
            sql += " WHERE contact_id = ?"
            args = (contact_id,)
        rows = self.db.execute(sql + " ORDER BY day, id", args).fetchall()
        return [_touch(r) for r in rows]

    def journal_version(self) -> tuple[int, int]:
        """Changes whenever a touch is added or removed: (count, highest id)."""
        row = self.db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM touches").fetchone()
        return int(row[0]), int(row[1])

    def touch_history(self, contact_id: str) -> list[JournalEntry]:
        """One contact's touches, newest first (by day, then by when recorded)."""
        rows = self.db.execute(
            "SELECT * FROM touches WHERE contact_id = ? ORDER BY day DESC, id DESC", (contact_id,)
        ).fetchall()
        return [JournalEntry(_touch(r), str(r["recorded_at"])) for r in rows]

    def touches_on(self, contact_id: str, day: date) -> list[Touch]:
        rows = self.db.execute(
            "SELECT * FROM touches WHERE contact_id = ? AND day = ? ORDER BY id",
            (contact_id, day.isoformat()),
        ).fetchall()
        return [_touch(r) for r in rows]

    def last_touch_by_command(self, contact_id: str) -> Touch | None:
        """The touch `kit-sync touch` recorded last for this contact (source "cli")."""
        row = self.db.execute(
            "SELECT * FROM touches WHERE contact_id = ? AND source = 'cli' ORDER BY id DESC "
            "LIMIT 1",
            (contact_id,),
        ).fetchone()
        return _touch(row) if row else None

    def latest_touch_per_contact(self) -> dict[str, Touch]:
        """Each contact's most recent touch (latest day; the last recorded on that day)."""
        out: dict[str, Touch] = {}
        for r in self.db.execute("SELECT * FROM touches ORDER BY day, id").fetchall():
            out[r["contact_id"]] = _touch(r)
        return out

    def remember_replaced_due(self, source_uid: str, contact_id: str, due: date | None) -> None:
        """The due date the open task had before this touch moved it (for `untouch`)."""
        self.db.execute(
            "INSERT OR REPLACE INTO touch_replaced VALUES (?, ?, ?)",
            (source_uid, contact_id, due.isoformat() if due else None),
        )
        self.forget_quick()

    def replaced_due(self, source_uid: str) -> date | None:
        row = self.db.execute(
            "SELECT due FROM touch_replaced WHERE source_uid = ?", (source_uid,)
        ).fetchone()
        return date.fromisoformat(row["due"]) if row and row["due"] else None

    def forget_replaced_due(self, source_uid: str) -> None:
        self.db.execute("DELETE FROM touch_replaced WHERE source_uid = ?", (source_uid,))
        self.forget_quick()

    @staticmethod
    def new_touch_id() -> str:
        return f"cli:{uuid.uuid4()}"

    # --- contacts first seen (anchor for never-touched contacts) -------------------

    def first_seen(self) -> dict[str, date]:
        rows = self.db.execute("SELECT contact_id, first_seen FROM contacts").fetchall()
        days = {r["contact_id"]: date.fromisoformat(r["first_seen"]) for r in rows}
        self._noted.update(days)
        return days

    def note_first_seen(self, days: dict[str, date]) -> None:
        """Record the first day of contacts not seen before (rows are never changed:
        each cycle passes every contact, only the new ones are written)."""
        new = [(cid, d.isoformat()) for cid, d in days.items() if cid not in self._noted]
        if not new:
            return
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO contacts VALUES (?, ?)", new)
            self.forget_quick()
        self._noted.update(cid for cid, _ in new)

    # --- what the backend held at the last listing ---------------------------------

    def seen(self) -> dict[str, SeenTask]:
        rows = self.db.execute("SELECT * FROM seen").fetchall()
        self._seen_rows = {tuple(r) for r in rows}
        return {
            r["uid"]: SeenTask(
                r["uid"],
                r["contact_id"],
                r["href"],
                r["etag"],
                r["status"],
                datetime.fromisoformat(r["completed_seen"]) if r["completed_seen"] else None,
            )
            for r in rows
        }

    def replace_seen(self, tasks: list[SeenTask]) -> None:
        rows = [
            (
                t.uid,
                t.contact_id,
                t.href,
                t.etag,
                t.status,
                t.completed_seen.isoformat() if t.completed_seen else None,
            )
            for t in tasks
        ]
        if self._seen_rows is not None and set(rows) == self._seen_rows:
            return  # what this process read is still what the backend holds
        with self.transaction():
            self.db.execute("DELETE FROM seen")
            self.forget_quick()
            self.db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._seen_rows = set(rows)

    # --- action journal --------------------------------------------------------------

    def begin_action(
        self, cycle: str, kind: str, contact_id: str, uid: str | None, detail: str = ""
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO actions (cycle, at, kind, contact_id, uid, status, detail) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
            (cycle, self._now(), kind, contact_id, uid, detail),
        )
        return int(cur.lastrowid or 0)

    def end_action(self, action_id: int, status: str, detail: str | None = None) -> None:
        detail = redact(detail) if detail is not None else None  # errors may quote URLs
        if detail is None:
            self.db.execute("UPDATE actions SET status = ? WHERE id = ?", (status, action_id))
        else:
            self.db.execute(
                "UPDATE actions SET status = ?, detail = ? WHERE id = ?",
                (status, detail, action_id),
            )

    def settle_interrupted(self) -> int:
        cur = self.db.execute("UPDATE actions SET status = 'interrupted' WHERE status = 'pending'")
        return cur.rowcount

    # --- cycles (health) ---------------------------------------------------------------

    def begin_cycle(self) -> str:
        cycle_id = uuid.uuid4().hex[:12]
        with self.transaction():
            self.forget_quick()
            self.db.execute(
                "INSERT INTO cycles (id, started) VALUES (?, ?)", (cycle_id, self._now())
            )
            cycles.prune(self.db)
        return cycle_id

    def end_cycle(
        self, cycle_id: str, ok: bool, counts: dict[str, int], error: str | None = None
    ) -> None:
        # The error text may quote a URL with credentials or a library's message:
        # the file holds it masked (health shows it, backups copy it).
        error = redact(error) if error is not None else None
        self.db.execute(
            "UPDATE cycles SET finished = ?, ok = ?, counts = ?, error = ? WHERE id = ?",
            (self._now(), int(ok), json.dumps(counts), error, cycle_id),
        )

    def last_cycle(self) -> CycleRecord | None:
        r = self.db.execute(
            "SELECT * FROM cycles WHERE finished IS NOT NULL "
            "ORDER BY finished DESC, rowid DESC LIMIT 1"
        ).fetchone()
        if r is None:
            return None
        return CycleRecord(
            r["id"],
            datetime.fromisoformat(r["started"]),
            datetime.fromisoformat(r["finished"]),
            bool(r["ok"]),
            json.loads(r["counts"]),
            r["error"],
        )

    def last_success(self) -> datetime | None:
        r = self.db.execute("SELECT MAX(finished) AS f FROM cycles WHERE ok = 1").fetchone()
        return datetime.fromisoformat(r["f"]) if r and r["f"] else None

    # --- the quick check's record (kit_sync.quick) ------------------------------------

    def forget_quick(self) -> None:
        """Drop what the quick check answers from: called by every write a plan
        depends on (a cycle, the journal, first-seen days, the seen tasks)."""
        self.db.execute("DELETE FROM meta WHERE key = ?", (QUICK_KEY,))

    # --- small named values (the digest's last period) -----------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- sync tokens -------------------------------------------------------------------

    def get_token(self, key: str) -> str | None:
        r = self.db.execute("SELECT value FROM tokens WHERE key = ?", (key,)).fetchone()
        return str(r["value"]) if r else None

    def tokens(self, prefix: str) -> dict[str, str]:
        """Every token whose key starts with `prefix` (a backend's own cache)."""
        rows = self.db.execute(
            "SELECT key, value FROM tokens WHERE key >= ? AND key < ?",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return {str(r["key"]): str(r["value"]) for r in rows}

    def set_token(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM tokens WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?)", (key, value))

    # --- the local backend's listing cache ----------------------------------------------
    # One row per file of a task folder: its stat key, content hash and what parsing it
    # gave (backends/local.py). Only a cache: dropped when the parsing code changes.

    def local_files(self, folder: str, version: str) -> dict[str, LocalFileRow]:
        """name -> (name, size, mtime_ns, ctime_ns, inode, etag, checked_ns, kind, info);
        empty when the rows were written by another `version` of the parsing code."""
        if self.get_token(f"local-files|{folder}") != version:
            return {}
        rows = self.db.execute(
            "SELECT name, size, mtime_ns, ctime_ns, inode, etag, checked_ns, kind, info "
            "FROM local_files WHERE folder = ?",
            (folder,),
        ).fetchall()
        return {r[0]: tuple(r) for r in rows}

    def save_local_files(
        self, folder: str, version: str, rows: list[LocalFileRow], removed: list[str]
    ) -> None:
        """Rows written or refreshed and names gone, in one transaction."""
        with self.transaction() as db:
            key = f"local-files|{folder}"
            if self.get_token(key) != version:
                db.execute("DELETE FROM local_files WHERE folder = ?", (folder,))
                self.set_token(key, version)
            db.executemany(
                "DELETE FROM local_files WHERE folder = ? AND name = ?",
                [(folder, name) for name in removed],
            )
            db.executemany(
                "INSERT OR REPLACE INTO local_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(folder, *row) for row in rows],
            )


# --- the listing cache of the network backends ------------------------------------------


@dataclass(frozen=True)
class CachedItem:
    """One item of a backend's listing as last seen: where it is, its version, and the
    backend's own reading of it (JSON), so an unchanged item is not fetched again."""

    href: str
    etag: str  # ETag (CalDAV), change key (Exchange), @odata.etag (Graph)
    kind: str = "task"  # task | problem | foreign
    info: str | None = None
    data: bytes | None = None  # the raw item, where a backend keeps it (CalDAV)


class ListingCache:
    """What a network backend listed, per scope (one task list): its items, the sync
    token that covers them and a few small values (meta).

    A listing and the token that covers it commit in ONE transaction, so after a crash
    the token never claims items the cache does not hold. Only a cache: losing it
    costs one full listing, never a task."""

    TOKEN = "token"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

    def get(self, scope: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT value FROM listing_meta WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        return str(row[0]) if row else None

    def put(self, scope: str, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM listing_meta WHERE scope = ? AND key = ?", (scope, key))
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO listing_meta VALUES (?, ?, ?)", (scope, key, value)
            )

    def meta(self, scope: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT key, value FROM listing_meta WHERE scope = ?", (scope,)
        ).fetchall()
        return {str(k): str(v) for k, v in rows}

    def load(self, scope: str) -> dict[str, CachedItem]:
        rows = self.db.execute(
            "SELECT key, href, etag, kind, info FROM listing_items WHERE scope = ?", (scope,)
        ).fetchall()
        return {str(k): CachedItem(h, e, kind, info) for k, h, e, kind, info in rows}

    def data(self, scope: str, key: str, etag: str) -> bytes | None:
        row = self.db.execute(
            "SELECT data FROM listing_items WHERE scope = ? AND key = ? AND etag = ?",
            (scope, key, etag),
        ).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def save_listing(
        self,
        scope: str,
        token: str | None,
        fresh: dict[str, CachedItem],
        removed: Iterable[str] = (),
        *,
        keep: set[str] | None = None,
        meta: dict[str, str | None] | None = None,
    ) -> None:
        """One listing in one transaction: the items fetched, those gone, the token
        that covers them and any meta values. `keep`: after a full listing, every key
        the server still has (the rest is dropped)."""
        gone = set(removed)
        with self.transaction() as db:
            if keep is not None:
                rows = db.execute("SELECT key FROM listing_items WHERE scope = ?", (scope,))
                gone |= {k for (k,) in rows.fetchall()} - keep
            db.executemany(
                "DELETE FROM listing_items WHERE scope = ? AND key = ?",
                [(scope, k) for k in gone],
            )
            db.executemany(
                "INSERT OR REPLACE INTO listing_items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(scope, k, i.href, i.etag, i.kind, i.info, i.data) for k, i in fresh.items()],
            )
            for key, value in {self.TOKEN: token, **(meta or {})}.items():
                self.put(scope, key, value)

    def save_writes(
        self, scope: str, writes: Iterable[tuple[str, CachedItem | None, str | None]]
    ) -> None:
        """Our own writes, in order: (key, item or None for a delete, the etag it
        replaced). Each is a compare-and-swap on that etag, so a slower process never
        puts back an older version."""
        with self.transaction() as db:
            for key, item, before in writes:
                if item is None:
                    db.execute(
                        "DELETE FROM listing_items WHERE scope = ? AND key = ? AND etag = ?",
                        (scope, key, before or ""),
                    )
                    continue
                row = (scope, key, item.href, item.etag, item.kind, item.info, item.data)
                if before is None:
                    db.execute(
                        "INSERT OR IGNORE INTO listing_items VALUES (?, ?, ?, ?, ?, ?, ?)", row
                    )
                else:
                    db.execute(
                        "UPDATE listing_items SET href = ?, etag = ?, kind = ?, info = ?, "
                        "data = ? WHERE scope = ? AND key = ? AND etag = ?",
                        (*row[2:], scope, key, before),
                    )

    def clear(self, prefix: str) -> None:
        """Forget every scope whose name starts with `prefix`."""
        args = (prefix, prefix + "\U0010ffff")
        with self.transaction() as db:
            db.execute("DELETE FROM listing_items WHERE scope >= ? AND scope < ?", args)
            db.execute("DELETE FROM listing_meta WHERE scope >= ? AND scope < ?", args)


def _migrate_listing_caches(db: sqlite3.Connection, path: Path) -> None:
    """Schema 2 -> 3, inside the migration's transaction: Exchange's JSON blob and
    Graph's per-item tokens move into the listing tables (the first cycle after the
    upgrade stays one request); CalDAV's cache file beside the state DB is deleted
    (its parsed items were read by older code and would be read afresh anyway)."""
    rows = db.execute("SELECT key, value FROM tokens").fetchall()
    graph: dict[str, dict[str, str]] = {}
    for key, value in rows:
        key, value = str(key), str(value)
        if key.startswith("exchange:"):
            _migrate_exchange(db, key, value)
            db.execute("DELETE FROM tokens WHERE key = ?", (key,))
        elif key.startswith("graph:") and key.count(":") >= 2:
            scope, _, rest = key.partition(":")[2].partition(":")
            graph.setdefault("graph:" + scope, {})[rest] = value
            db.execute("DELETE FROM tokens WHERE key = ?", (key,))
    for scope, values in graph.items():
        for rest, value in values.items():
            if rest.startswith("t:"):
                try:
                    raw = json.loads(value)
                    item = (scope, rest[2:], rest[2:], str(raw.get("@odata.etag") or ""))
                except (ValueError, AttributeError):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO listing_items VALUES (?, ?, ?, ?, 'task', ?, NULL)",
                    (*item, value),
                )
            else:
                name = ListingCache.TOKEN if rest == "delta" else rest
                db.execute(
                    "INSERT OR REPLACE INTO listing_meta VALUES (?, ?, ?)", (scope, name, value)
                )
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.stem + ".caldav-cache.sqlite" + suffix)
        with contextlib.suppress(OSError):
            old.unlink()


def _migrate_exchange(db: sqlite3.Connection, scope: str, text: str) -> None:
    try:
        raw = json.loads(text)
        if raw.get("v") != 1:
            return
        items = raw.get("items") or {}
        meta = {"folder": raw.get("folder"), "version": raw.get("version")}
        meta[ListingCache.TOKEN] = raw.get("sync")
        for item_id, entry in items.items():
            db.execute(
                "INSERT OR REPLACE INTO listing_items VALUES (?, ?, ?, ?, 'task', ?, NULL)",
                (scope, item_id, item_id, str(entry["ck"]), json.dumps(entry)),
            )
        for key, value in meta.items():
            if value is not None:
                db.execute(
                    "INSERT OR REPLACE INTO listing_meta VALUES (?, ?, ?)", (scope, key, value)
                )
    except (ValueError, TypeError, KeyError, AttributeError):
        return  # unreadable: the first cycle lists the folder afresh


def read_last_touches(path: Path) -> dict[str, date]:
    """Each contact's last touch day, read without creating or changing the state
    file (roster pruning by `seen_within` runs in `check` too); {} when there is no
    state file yet."""
    if not path.is_file():
        return {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StateError(f"cannot read the touch journal in {path}: {exc}") from None
    try:
        rows = db.execute("SELECT contact_id, MAX(day) FROM touches GROUP BY contact_id").fetchall()
    except sqlite3.Error as exc:
        raise StateError(
            f"cannot read the touch journal in {path} ({exc}); seen_within needs it: "
            "run `kit-sync sync` once, or check the file"
        ) from None
    finally:
        db.close()
    return {str(cid): date.fromisoformat(day) for cid, day in rows}
