"""The CalDAV listing cache: href -> ETag (and the parsed task for kit-owned items)
plus the sync token, in a small SQLite file beside the state DB.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from kit_sync.backends.caldav.items import _info_json, _Item, _item_from_row, _parser_fingerprint
from kit_sync.files import prepare_private_db
from kit_sync.state import transaction

log = logging.getLogger("kit_sync.caldav")


class _Cache:
    """The listing cache in SQLite: items and the sync token, per task list, written
    together in one transaction so the token always matches the items it covers.

    Only a cache: deleting the file costs one full listing, nothing else."""

    SCHEMA = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        # It holds contacts' notes and emails: 0600 like the state file.
        prepare_private_db(self.path)
        for attempt in (1, 2):
            try:
                db = sqlite3.connect(
                    str(self.path), timeout=30, isolation_level=None, check_same_thread=False
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS items (list TEXT NOT NULL, key TEXT NOT NULL, "
                    "href TEXT NOT NULL, etag TEXT NOT NULL, kind TEXT NOT NULL, info TEXT, "
                    "data BLOB, PRIMARY KEY (list, key))"
                )
                version = f"{self.SCHEMA}/{_parser_fingerprint()}"
                row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
                if row is None or row[0] != version:
                    # New reading code (or a new file): what was parsed before may read
                    # differently now, so everything is listed afresh once.
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("DELETE FROM items")
                    db.execute("DELETE FROM meta")
                    db.execute("INSERT INTO meta VALUES ('version', ?)", (version,))
                    db.execute("COMMIT")
                return db
            except sqlite3.DatabaseError:
                if attempt == 2:
                    raise
                log.warning("the CalDAV cache %s is damaged; starting it afresh", self.path)
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        Path(str(self.path) + suffix).unlink()
        raise AssertionError("unreachable")

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def put(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def load(self, list_url: str) -> dict[str, _Item]:
        rows = self.db.execute(
            "SELECT key, href, etag, kind, info FROM items WHERE list = ?", (list_url,)
        ).fetchall()
        return {key: _item_from_row(href, etag, kind, info) for key, href, etag, kind, info in rows}

    def data(self, list_url: str, key: str, etag: str) -> bytes | None:
        row = self.db.execute(
            "SELECT data FROM items WHERE list = ? AND key = ? AND etag = ?", (list_url, key, etag)
        ).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def save_listing(
        self,
        list_url: str,
        token: str | None,
        fresh: dict[str, _Item],
        removed: Iterable[str],
        *,
        keep: set[str] | None,
    ) -> None:
        """One listing: the items fetched, those gone, and the token that covers
        them. `keep`: after a full listing, every key the server still has."""
        gone = set(removed)
        with self.transaction() as db:
            if keep is not None:
                rows = db.execute("SELECT key FROM items WHERE list = ?", (list_url,))
                gone |= {k for (k,) in rows.fetchall()} - keep
            db.executemany(
                "DELETE FROM items WHERE list = ? AND key = ?", [(list_url, k) for k in gone]
            )
            db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (list_url, k, it.href, it.etag, it.kind, _info_json(it), it.data)
                    for k, it in fresh.items()
                ],
            )
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"token|{list_url}", token or "")
            )

    def save_writes(
        self, list_url: str, writes: Iterable[tuple[str, _Item | None, str | None]]
    ) -> None:
        """Our own writes, in order. Each is a compare-and-swap on the ETag it
        replaced, so a slower process never puts back an older version."""
        with self.transaction() as db:
            for key, item, before in writes:
                if item is None:
                    db.execute(
                        "DELETE FROM items WHERE list = ? AND key = ? AND etag = ?",
                        (list_url, key, before or ""),
                    )
                    continue
                row = (list_url, key, item.href, item.etag, item.kind, _info_json(item), item.data)
                if before is None:
                    db.execute("INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)", row)
                else:
                    db.execute(
                        "UPDATE items SET href = ?, etag = ?, kind = ?, info = ?, data = ? "
                        "WHERE list = ? AND key = ? AND etag = ?",
                        (*row[2:], list_url, key, before),
                    )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
