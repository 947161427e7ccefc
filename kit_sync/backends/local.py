"""A local folder of .ics files (a vdir): one VTODO per file.

The zero-setup default, and the format todoman and khal read and write. Writes are
atomic (temp file, fsync, rename, fsync the folder); creates are exclusive (a hard
link fails if the name exists), so a killed process leaves either the old file or
the new one, never half of one, and never two files for one task.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

from kit_sync.backends.base import (
    AlreadyExists,
    Backend,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
)
from kit_sync.backends.ical import ParseError, apply_change, new_vtodo, task_from_ical
from kit_sync.clock import Clock, system_clock
from kit_sync.config import LocalConfig
from kit_sync.errors import DiskFull
from kit_sync.files import (
    MAX_ITEM_BYTES,
    PRIVATE_DIR,
    UnreadableFile,
    disk_full_message,
    is_full,
    read_regular,
)
from kit_sync.model import ItemProblem, KitTask, Listing, NewTask, TaskChange

TMP_PREFIX = ".kit-sync-tmp-"


def etag_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _href_for(uid: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in uid)
    return f"{safe}.ics"


class LocalBackend(Backend):
    """Backend over a vdir folder. See base.Backend for the contract."""

    regenerates_itself: ClassVar[bool] = False

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
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot read the task folder {self.path}: {exc.strerror}"
            ) from None
        for entry in entries:
            if not entry.name.endswith(".ics") or entry.name.startswith("."):
                continue
            try:
                data = read_regular(entry.path, MAX_ITEM_BYTES)
            except UnreadableFile as exc:
                # A FIFO would block the sync forever, /dev/zero fill the memory:
                # reported (it may be ours) and skipped, the rest syncs.
                listing.problems.append(ItemProblem(entry.name, f"{exc}; skipped"))
                continue
            except FileNotFoundError:
                continue  # deleted since the folder was listed
            except OSError as exc:
                listing.problems.append(ItemProblem(entry.name, f"cannot read: {exc.strerror}"))
                continue
            found = task_from_ical(data, entry.name, etag_of(data))
            if isinstance(found, KitTask):
                listing.tasks.append(found)
            elif isinstance(found, ItemProblem) and found.contact_id is not None:
                # Only our own unreadable files matter; a foreign broken file is
                # none of our business (and is left untouched).
                listing.problems.append(found)
        return listing

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

    def _write_temp(self, data: bytes) -> str:
        """`data` in a new temp file in the folder, synced. A full disk is DiskFull
        (no temp file is left behind)."""
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
                os.fsync(fh.fileno())
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if is_full(exc):
                raise DiskFull(disk_full_message(self.path, "the task folder")) from None
            raise
        return tmp

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create_task(self, new: NewTask) -> KitTask:
        data = new_vtodo(new, self.tz, self._clock())
        href = _href_for(new.uid)
        tmp = self._write_temp(data)
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
        self._fsync_dir()
        return self._task(data, href)

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        current = self._read(task.href)
        if etag_of(current) != task.etag:
            raise Conflict(f"{task.href} changed since it was read")
        try:
            data = apply_change(current, change, self.tz, self._clock())
        except ParseError as exc:
            raise ItemRejected(f"{task.href}: {exc}") from None
        tmp = self._write_temp(data)
        # Re-check right before the rename: narrows the window in which another
        # program's edit could be overwritten to the rename itself.
        if etag_of(self._read(task.href)) != task.etag:
            os.unlink(tmp)
            raise Conflict(f"{task.href} changed since it was read")
        os.replace(tmp, self.path / task.href)
        self._fsync_dir()
        return self._task(data, task.href)

    def delete_task(self, task: KitTask) -> None:
        current = self._read(task.href)
        if etag_of(current) != task.etag:
            raise Conflict(f"{task.href} changed since it was read")
        try:
            os.unlink(self.path / task.href)
        except FileNotFoundError:
            raise NotFound(f"{task.href} is gone") from None
        self._fsync_dir()

    def _task(self, data: bytes, href: str) -> KitTask:
        found = task_from_ical(data, href, etag_of(data))
        if not isinstance(found, KitTask):
            raise ItemRejected(f"{href}: wrote a task that does not read back")
        return found

    def close(self) -> None:
        pass
