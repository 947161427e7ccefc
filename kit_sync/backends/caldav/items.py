"""Pure conversions of the CalDAV backend: hrefs and file names, ETags, and the
rows of the listing cache (a kit task as JSON and back). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from kit_sync.backends import taskjson
from kit_sync.model import (
    ItemProblem,
    KitTask,
)

# --- small helpers ----------------------------------------------------------------------


def _key(href: str) -> str:
    """One spelling per item: servers and the library disagree on quoting (@ vs %40)."""
    return unquote(urlsplit(href).path)


def _file_name(uid: str) -> str:
    """A plain ASCII resource name for a kit UID (no '@' or '%': quoting differs)."""
    safe = (ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in uid)
    return "".join(safe) + ".ics"


def _strong(etag: str | None) -> str | None:
    if not etag or etag.startswith("W/"):
        return None
    return etag


def _parser_fingerprint() -> str:
    """Cached parsed tasks are only valid for the reading code that parsed them."""
    return taskjson.parser_version()


# --- what the backend remembers about each item ------------------------------------------


@dataclass(slots=True)
class _Item:
    href: str  # as the server spells it (a path)
    etag: str
    task: KitTask | None = None  # kit-owned and readable
    problem: ItemProblem | None = None  # kit-owned but unreadable
    data: bytes | None = None  # the raw iCalendar of a kit item; None: in the cache file

    @property
    def kind(self) -> str:
        return "task" if self.task else "problem" if self.problem else "foreign"


def _info_json(item: _Item) -> str | None:
    return taskjson.to_json(item.task or item.problem)


def _item_from_row(href: str, etag: str, kind: str, info: str | None) -> _Item:
    found = taskjson.from_json(kind, info, href, etag)
    item = _Item(href, etag)
    if isinstance(found, KitTask):
        item.task = found
    elif isinstance(found, ItemProblem):
        item.problem = found
    return item
