"""One kit-sync at a time on one state file: advisory locks beside it.

- `<state>.lock` is held for each sync cycle: by `kit-sync run` for every cycle, by
  `sync`, `touch`, `status`, `due` and the other commands that open the backend. A
  command that finds it taken waits (bounded) for the running cycle, then runs.
- `<state>.run.lock` is held by `kit-sync run` for as long as it runs: a second
  daemon on the same state exits at once with "already running (pid N)".

Locks are flock(2) locks: the kernel drops them when the process ends, however it
ends (kill -9 included), so a stale lock never blocks anyone. Each lock file holds
the pid of its holder, for the messages.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from kit_sync.errors import KitError
from kit_sync.files import PRIVATE_FILE

log = logging.getLogger("kit_sync")

#: How long a command waits for a running sync cycle before giving up.
CYCLE_WAIT = 300.0
_POLL = 0.1


class AlreadyRunning(KitError):
    """A second `kit-sync run` on the same state file."""

    exit_code = 2


class Busy(KitError):
    """Another kit-sync kept the state busy for longer than the wait."""

    exit_code = 1


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        if self.fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
        except OSError as exc:
            from kit_sync.files import read_only_reason
            from kit_sync.state import StateError, read_only_error

            state = self.path.with_name(self.path.name.split(".lock")[0].removesuffix(".run"))
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise read_only_error(
                    read_only_reason(state) or f"the folder of the state file {state} is read-only"
                ) from None
            raise StateError(
                f"cannot create the lock file {self.path}: {exc.strerror}; set 'state:' in "
                "the config to a writable path"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holder(self) -> str:
        """The holder's pid as written in the file ("?" when unknown)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return "?"
        return text if text.isdigit() else "?"


class StateLock:
    """The locks of one state file."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self._cycle = _FileLock(state_path.with_name(state_path.name + ".lock"))
        self._daemon = _FileLock(state_path.with_name(state_path.name + ".run.lock"))

    def _prepare(self) -> None:
        if not self.state_path.parent.exists():
            self.state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def hold_daemon(self) -> None:
        """For `kit-sync run`: the state is this daemon's until the process ends.
        Raises AlreadyRunning when another daemon has it."""
        self._prepare()
        if not self._daemon.try_acquire():
            raise AlreadyRunning(
                f"kit-sync is already running (pid {self._daemon.holder()}) on the state "
                f"file {self.state_path}; stop that one first (or give this config its "
                "own 'state:')"
            )

    def release_daemon(self) -> None:
        self._daemon.release()

    @contextlib.contextmanager
    def cycle(
        self, wait: float = CYCLE_WAIT, stop: threading.Event | None = None
    ) -> Iterator[bool]:
        """Hold the cycle lock for the block, waiting up to `wait` seconds for the
        running cycle of another kit-sync. Yields False (without the lock) when
        `stop` was set while waiting; raises Busy when the wait ran out."""
        self._prepare()
        deadline = time.monotonic() + wait
        told = False
        while not self._cycle.try_acquire():
            if stop is not None and stop.is_set():
                yield False
                return
            if not told:
                log.warning(
                    "waiting for the sync cycle of another kit-sync (pid %s) to finish",
                    self._cycle.holder(),
                )
                told = True
            if time.monotonic() > deadline:
                raise Busy(
                    f"another kit-sync (pid {self._cycle.holder()}) has been syncing "
                    f"{self.state_path} for more than {wait:.0f} s; try again later"
                )
            time.sleep(_POLL)
        try:
            yield True
        finally:
            self._cycle.release()
