"""The file system edge: reading only regular files of a bounded size, and keeping
files that hold roster or account data private (0600, folders 0700).

A FIFO named `x.ics` would block a plain `open()` forever and a symlink to
`/dev/zero` would fill memory, so every file kit-sync reads from a folder or an
`include:` goes through `read_regular`: checked with stat, opened without
blocking, checked again on the open descriptor, and read up to a cap.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("kit_sync")

MB = 1024 * 1024
#: One task file (a VTODO is a few KB; a 10 MB one is not a task).
MAX_ITEM_BYTES = 10 * MB
#: One config or roster export (100 MB is ~500,000 contacts).
MAX_ROSTER_BYTES = 100 * MB

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class UnreadableFile(OSError):
    """Not a regular file, or larger than the cap. `str()` is the whole story."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(errno.EINVAL, message, str(path))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed), at most `limit`.

    Raises UnreadableFile for anything else (FIFO, device, socket, folder, too
    large) without blocking, and OSError (FileNotFoundError, PermissionError, ...)
    as `open` would."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(path, f"is {_kind(st.st_mode)}, not a file; only files are read")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)  # what was opened, not what the name pointed at a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(path, f"is {_kind(st.st_mode)}, not a file; only files are read")
        if st.st_size > limit:
            raise UnreadableFile(path, _too_large(st.st_size, limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 * MB, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while being read
                raise UnreadableFile(path, _too_large(size, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(size: int, limit: int) -> str:
    return f"is too large ({size / MB:.1f} MB; at most {limit // MB} MB is read)"


# --- private files ---------------------------------------------------------------------


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def tighten(path: Path, mode: int) -> bool:
    """Remove group/other access from an existing file or folder kit-sync owns.

    Returns True when the mode was changed (logged once, naming the path)."""
    try:
        st = path.stat()
    except OSError:
        return False
    current = stat.S_IMODE(st.st_mode)
    if not current & 0o077 or st.st_uid != os.getuid():
        return False
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning(
            "%s is readable by others (mode %03o) and cannot be made private: %s",
            path,
            current,
            exc.strerror,
        )
        return False
    log.info("made %s private (mode %03o -> %03o): it holds contacts' details", path, current, mode)
    return True


def create_private_file(path: Path) -> None:
    """Make sure `path` exists as a 0600 file before a library (SQLite) opens it;
    SQLite gives its -wal and -shm files the mode of the database file."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
        os.close(fd)


#: errno values that mean "the disk (or the user's quota) is full".
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL


def disk_full_message(path: Path | str, what: str) -> str:
    return (
        f"no space left on the disk of {what} {path}: free some space there (or set a "
        "path on another disk); nothing was half-written, and the next run carries on"
    )


def read_only_reason(path: Path) -> str | None:
    """Why kit-sync cannot write the SQLite file at `path` (it needs the file and,
    for its journal, the folder), or None when it can."""
    folder = path.parent
    if path.exists() and not os.access(path, os.W_OK):
        return f"the state file {path} is read-only"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder of the state file, {folder}, is read-only"
    return None


def prepare_private_db(path: Path) -> None:
    """Before SQLite opens `path`: a missing folder is created 0700, the file 0600
    (SQLite gives its -wal and -shm files the file's mode), and an existing file
    or journal readable by others is made private, with a log line."""
    if not path.parent.exists():
        private_dir(path.parent)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        tighten(name, PRIVATE_FILE)
    if not path.exists() and os.access(path.parent, os.W_OK):
        create_private_file(path)
