"""A local folder of .ics files (a vdir): one VTODO per file.

The zero-setup default, and the format todoman and khal read and write. Writes are
atomic (temp file, fsync, rename, fsync the folder); creates are exclusive (a hard
link fails if the name exists), so a killed process leaves either the old file or
the new one, never half of one, and never two files for one task. A batch of
creates (`create_tasks`) fsyncs the folder once, before returning: the engine
journals them, and commits anything that relies on them, only after that.

Listing parses only what changed: the state DB keeps, per file, its stat key (size,
mtime_ns, ctime_ns, inode), the hash of its bytes and what parsing gave. A file
whose key changed is read and hashed, and parsed only if its bytes changed. A key
recorded within RACY_NS of the file's own timestamps is not trusted (a same-size
edit in the same timestamp tick would keep it): such a file is read and hashed
again at the next listing, as git does with "racily clean" index entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from kit_sync.backends import icalwrite, taskjson
from kit_sync.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
)
from kit_sync.clock import Clock, system_clock
from kit_sync.errors import DiskFull
from kit_sync.files import (
    MAX_ITEM_BYTES,
    PRIVATE_DIR,
    UnreadableFile,
    disk_full_message,
    is_full,
    read_regular,
)
from kit_sync.model import ItemProblem, KitTask, Listing, NewTask, Status, TaskChange

if TYPE_CHECKING:
    from kit_sync.config import LocalConfig
    from kit_sync.state import LocalFileRow, State

TMP_PREFIX = ".kit-sync-tmp-"
#: A stat key this close to the time it was taken is checked again next time.
RACY_NS = 2_000_000_000


def _ical() -> Any:
    """icalendar is imported only when a file has to be parsed or written."""
    from kit_sync.backends import ical

    return ical


def etag_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _href_for(uid: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in uid)
    return f"{safe}.ics"


def written_task(new: NewTask, href: str, data: bytes, now: datetime) -> KitTask:
    """The task `icalwrite.new_vtodo(new, tz, now)` wrote, as reading it would give."""
    return KitTask(
        uid=new.uid,
        href=href,
        etag=etag_of(data),
        status=Status.OPEN,
        due=new.due,
        meta=new.meta,
        summary=new.content.summary.strip(),  # properties are read back stripped
        created=now.astimezone(UTC).replace(microsecond=0),
    )


class _Known:
    """A file as the cache knows it."""

    __slots__ = ("checked_ns", "ctime_ns", "etag", "found", "inode", "mtime_ns", "size")

    def __init__(self, st: os.stat_result, etag: str, found: taskjson.Parsed, checked_ns: int):
        self.size, self.mtime_ns, self.ctime_ns, self.inode = (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
        )
        self.etag, self.found, self.checked_ns = etag, found, checked_ns

    @classmethod
    def from_row(cls, row: LocalFileRow) -> _Known:
        name, size, mtime_ns, ctime_ns, inode, etag, checked_ns, kind, info = row
        known = cls.__new__(cls)
        known.size, known.mtime_ns, known.ctime_ns, known.inode = size, mtime_ns, ctime_ns, inode
        known.etag, known.checked_ns = etag, checked_ns
        known.found = taskjson.from_json(kind, info, name, etag)
        return known

    def row(self, name: str) -> LocalFileRow:
        kind = taskjson.kind_of(self.found)
        info = taskjson.to_json(self.found)
        return (name, self.size, self.mtime_ns, self.ctime_ns, self.inode, self.etag,
                self.checked_ns, kind, info)  # fmt: skip

    def matches(self, st: os.stat_result) -> bool:
        """Same file, unchanged since it was read, and not racily so."""
        return (
            st.st_size == self.size
            and st.st_mtime_ns == self.mtime_ns
            and st.st_ctime_ns == self.ctime_ns
            and st.st_ino == self.inode
            and max(self.mtime_ns, self.ctime_ns) + RACY_NS <= self.checked_ns
        )


class LocalBackend(Backend):
    """Backend over a vdir folder. See base.Backend for the contract."""

    regenerates_itself: ClassVar[bool] = False
    #: creates per `create_tasks` call: one folder fsync each
    batch_size: ClassVar[int] = 100

    def __init__(self, config: LocalConfig, tz: ZoneInfo, *, clock: Clock | None = None) -> None:
        self.path = Path(config.path)
        self.tz = tz
        self._clock = clock or system_clock
        try:
            self.path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)  # new: private
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot create the task folder {self.path}: {exc.strerror}; check "
                "backend.path in the config"
            ) from None
        if not os.access(self.path, os.W_OK):
            raise BackendUnavailable(f"the task folder {self.path} is not writable")
        self._sweep_temp_files()
        self._state: State | None = None
        self._folder = str(self.path.resolve())
        self._known: dict[str, _Known] | None = None  # name -> what the cache knows

    def bind_state(self, state: State) -> None:
        """Keep the listing cache in the state DB (the engine calls this)."""
        self._state = state
        self._known = None

    def _sweep_temp_files(self) -> None:
        """Remove temp files a killed process left behind (older than a minute)."""
        cutoff = time.time() - 60
        for leftover in self.path.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    # --- reading ----------------------------------------------------------------------

    def fetch_listing(self) -> Listing:
        listing = Listing()
        known = self._cache()
        checked_ns = time.time_ns()  # before any stat: see RACY_NS
        changed: dict[str, _Known] = {}
        present: set[str] = set()
        for entry in self._entries():
            name = entry.name
            present.add(name)
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # deleted since the folder was listed
            except OSError as exc:
                listing.problems.append(ItemProblem(name, f"cannot read: {exc.strerror}"))
                continue
            item = known.get(name)
            if item is None or not item.matches(st):
                fresh = self._examine(entry, st, item, checked_ns)
                if fresh is None:
                    continue  # deleted since the folder was listed
                if isinstance(fresh, ItemProblem):
                    listing.problems.append(fresh)
                    continue
                item = known[name] = changed[name] = fresh
            found = item.found
            if isinstance(found, KitTask):
                listing.tasks.append(found)
            elif isinstance(found, ItemProblem) and found.contact_id is not None:
                # Only our own unreadable files matter; a foreign broken file is
                # none of our business (and is left untouched).
                listing.problems.append(found)
        gone = [name for name in known if name not in present]
        for name in gone:
            del known[name]
        self._save(changed, gone)
        return listing

    def _entries(self) -> list[os.DirEntry[str]]:
        """The folder's .ics files, by name."""
        try:
            with os.scandir(self.path) as it:
                entries = [e for e in it if e.name.endswith(".ics") and not e.name.startswith(".")]
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot read the task folder {self.path}: {exc.strerror}"
            ) from None
        entries.sort(key=lambda e: e.name)
        return entries

    def _examine(
        self, entry: os.DirEntry[str], st: os.stat_result, before: _Known | None, checked_ns: int
    ) -> _Known | ItemProblem | None:
        """Read a file the cache does not know as it is now (`st`, taken before the
        read, so a write in between only makes the key stale); parse it unless its
        bytes are the ones parsed before. None: the file is gone."""
        try:
            data = read_regular(entry.path, MAX_ITEM_BYTES)
        except UnreadableFile as exc:
            # A FIFO would block the sync forever, /dev/zero fill the memory:
            # reported (it may be ours) and skipped, the rest syncs.
            return ItemProblem(entry.name, f"{exc}; skipped")
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ItemProblem(entry.name, f"cannot read: {exc.strerror}")
        etag = etag_of(data)
        if before is not None and before.etag == etag:
            return _Known(st, etag, before.found, checked_ns)
        return _Known(st, etag, _ical().task_from_ical(data, entry.name, etag), checked_ns)

    # --- the listing cache ------------------------------------------------------------

    def _cache(self) -> dict[str, _Known]:
        if self._known is None:
            rows = (
                self._state.local_files(self._folder, taskjson.parser_version())
                if self._state is not None
                else {}
            )
            self._known = {name: _Known.from_row(row) for name, row in rows.items()}
        return self._known

    def _save(self, changed: dict[str, _Known], gone: list[str]) -> None:
        if self._state is None or not (changed or gone):
            return
        self._state.save_local_files(
            self._folder,
            taskjson.parser_version(),
            [item.row(name) for name, item in changed.items()],
            gone,
        )

    def _wrote(self, tasks: list[KitTask]) -> None:
        """Remember files this process just wrote (after the folder fsync)."""
        known = self._cache()
        checked_ns = time.time_ns()
        changed: dict[str, _Known] = {}
        for task in tasks:
            try:
                st = os.stat(self.path / task.href)
            except OSError:
                continue  # gone already: the next listing sees that
            changed[task.href] = known[task.href] = _Known(st, task.etag, task, checked_ns)
        self._save(changed, [])

    def _forget(self, name: str) -> None:
        if self._known is not None:
            self._known.pop(name, None)
        self._save({}, [name])

    def _read(self, href: str) -> bytes:
        try:
            return read_regular(self.path / href, MAX_ITEM_BYTES)
        except FileNotFoundError:
            raise NotFound(f"{href} is gone (deleted on another device?)") from None
        except UnreadableFile as exc:
            raise ItemRejected(f"{href} {exc}") from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read {self.path / href}: {exc.strerror}") from None

    # --- writing ----------------------------------------------------------------------

    def _write_temp(self, data: bytes, *, sync: bool = True) -> str:
        """`data` in a new temp file in the folder, synced (or, `sync=False`, on its
        way to the disk: see `_sync_temps`). A full disk is DiskFull (no temp file is
        left behind)."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=self.path)
        except OSError as exc:
            if is_full(exc):
                raise DiskFull(disk_full_message(self.path, "the task folder")) from None
            raise
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if sync:
                    os.fsync(fh.fileno())
                elif hasattr(os, "posix_fadvise"):
                    # Start writing it out now (Linux starts the writeback of dirty
                    # pages on DONTNEED), so the fsyncs of the batch find it on its way.
                    os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if is_full(exc):
                raise DiskFull(disk_full_message(self.path, "the task folder")) from None
            raise
        return tmp

    def _sync_temps(self, temps: Sequence[str]) -> None:
        """fsync each file of a batch, after all of them were written: the file
        system commits its journal once for the blocks of all of them (the first
        fsync) instead of once per file, and each file is still on the disk before
        its name appears. A full disk is DiskFull."""
        for tmp in temps:
            try:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                if is_full(exc):
                    raise DiskFull(disk_full_message(self.path, "the task folder")) from None
                raise

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _link(self, new: NewTask, tmp: str, data: bytes, now: datetime) -> KitTask:
        """Give a synced temp file its task's name (exclusive create; the folder is
        not fsynced) and return the task as written: built from what was written,
        not parsed back. The temp file is gone afterwards, whatever happens."""
        href = _href_for(new.uid)
        try:
            os.link(tmp, self.path / href)  # fails if the name exists: If-None-Match: *
        except FileExistsError:
            raise AlreadyExists(f"{href} already exists") from None
        except OSError as exc:
            if is_full(exc):
                raise DiskFull(disk_full_message(self.path, "the task folder")) from None
            raise ItemRejected(f"cannot write {href}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return written_task(new, href, data, now)

    def create_task(self, new: NewTask) -> KitTask:
        now = self._clock()
        data = icalwrite.new_vtodo(new, self.tz, now)
        task = self._link(new, self._write_temp(data), data, now)
        self._fsync_dir()
        self._wrote([task])
        return task

    def create_tasks(self, news: Sequence[NewTask]) -> list[KitTask | BackendError]:
        """Several creates, one folder fsync: each outcome is the task or the error
        `create_task` would have raised for it. Every file is written first, then
        each is fsynced (one journal commit for the batch, `_sync_temps`), then
        each gets its name, then the folder is fsynced once."""
        now = self._clock()
        written: list[tuple[NewTask, str, bytes]] = []
        try:
            for new in news:
                data = icalwrite.new_vtodo(new, self.tz, now)
                written.append((new, self._write_temp(data, sync=False), data))
            self._sync_temps([tmp for _, tmp, _ in written])
        except BaseException:
            for _, tmp, _ in written:  # none has a name yet: nothing half-written
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
        outcomes: list[KitTask | BackendError] = []
        for i, (new, tmp, data) in enumerate(written):
            try:
                outcomes.append(self._link(new, tmp, data, now))
            except (AlreadyExists, ItemRejected) as exc:
                outcomes.append(exc)
            except BaseException:
                for _, left, _ in written[i + 1 :]:
                    with contextlib.suppress(OSError):
                        os.unlink(left)
                raise
        done = [t for t in outcomes if isinstance(t, KitTask)]
        if done:
            self._fsync_dir()
            self._wrote(done)
        return outcomes

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        current = self._read(task.href)
        if etag_of(current) != task.etag:
            raise Conflict(f"{task.href} changed since it was read")
        ical = _ical()
        try:
            data = ical.apply_change(current, change, self.tz, self._clock())
        except ical.ParseError as exc:
            raise ItemRejected(f"{task.href}: {exc}") from None
        tmp = self._write_temp(data)
        # Re-check right before the rename: narrows the window in which another
        # program's edit could be overwritten to the rename itself.
        if etag_of(self._read(task.href)) != task.etag:
            os.unlink(tmp)
            raise Conflict(f"{task.href} changed since it was read")
        os.replace(tmp, self.path / task.href)
        self._fsync_dir()
        updated = self._task(data, task.href)
        self._wrote([updated])
        return updated

    def delete_task(self, task: KitTask) -> None:
        current = self._read(task.href)
        if etag_of(current) != task.etag:
            raise Conflict(f"{task.href} changed since it was read")
        try:
            os.unlink(self.path / task.href)
        except FileNotFoundError:
            raise NotFound(f"{task.href} is gone") from None
        self._fsync_dir()
        self._forget(task.href)

    def _task(self, data: bytes, href: str) -> KitTask:
        """An updated task, parsed from the bytes just written (in memory): an update
        keeps whatever else a client put on the task, so only parsing knows it all."""
        found = _ical().task_from_ical(data, href, etag_of(data))
        if not isinstance(found, KitTask):
            raise ItemRejected(f"{href}: wrote a task that does not read back")
        return found

    def close(self) -> None:
        pass
