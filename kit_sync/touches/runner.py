"""Polls the configured touch sources and journals what they find.

Each source is polled on its own: one that fails (down, refused credentials) is
reported and retried with back-off (30 s, 60 s, ... up to `sync.max_backoff`),
and neither the other sources nor the task sync wait for it. What a source found
and its new cursor are written in one transaction (`State.add_detected`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kit_sync.cadence import today
from kit_sync.errors import KitError
from kit_sync.model import Touch
from kit_sync.roster import Roster
from kit_sync.state import State
from kit_sync.touches.base import SourceError, TouchSource
from kit_sync.touches.match import AddressBook

log = logging.getLogger("kit_sync")


@dataclass
class _Health:
    failures: int = 0
    not_before: datetime | None = None
    error: str | None = None


@dataclass
class Poll:
    """The outcome of polling every source once."""

    touches: list[Touch] = field(default_factory=list)  # new ones (journaled unless a peek)
    failures: list[str] = field(default_factory=list)  # one line per failing source
    read: int = 0


class SourceRunner:
    def __init__(
        self,
        configs: list[Any],
        tz: ZoneInfo,
        *,
        max_backoff: timedelta = timedelta(hours=1),
        opener: Callable[[Any, ZoneInfo], TouchSource] | None = None,
        backend: Any = None,
    ) -> None:
        self.configs = list(configs)
        self.tz = tz
        self.max_backoff = max_backoff
        self._opener = opener
        self.backend = backend  # shared with sources of the same type (exchange)
        self._sources: dict[int, TouchSource] = {}
        self._health: dict[int, _Health] = {}

    def __bool__(self) -> bool:
        return bool(self.configs)

    def _source(self, i: int) -> TouchSource:
        if i not in self._sources:
            if self._opener is not None:
                self._sources[i] = self._opener(self.configs[i], self.tz)
            else:
                from kit_sync.touches import open_source

                self._sources[i] = open_source(self.configs[i], self.tz, self.backend)
        return self._sources[i]

    def _label(self, i: int) -> str:
        source = self._sources.get(i)
        return source.name if source is not None else f"{self.configs[i].type} (touches[{i}])"

    def since(self, config: Any, now: datetime) -> datetime:
        """Start of the look-back: midnight, `lookback` before today, in the user's zone."""
        start = config.lookback.before(today(now, self.tz))
        return datetime.combine(start, time(0), tzinfo=self.tz)

    def poll(self, state: State, roster: Roster, now: datetime, *, write: bool = True) -> Poll:
        """Poll every source that is not backing off. With write=False (dry run,
        `kit-sync touches`) nothing is journaled and no cursor moves."""
        book = AddressBook.of(roster)
        book_print = book.fingerprint()
        out = Poll()
        known = {t.source_uid for t in state.touches()} if not write else set()
        for i, config in enumerate(self.configs):
            health = self._health.setdefault(i, _Health())
            if health.not_before is not None and now < health.not_before:
                out.failures.append(
                    f"{self._label(i)}: {health.error} (next try after "
                    f"{health.not_before.astimezone(self.tz):%H:%M:%S})"
                )
                continue
            try:
                source = self._source(i)
                key = source.key
                stored = _unwrap(state.get_token(key), book_print)
                found = source.fetch_touches(book, self.since(config, now), now, stored)
            except KitError as exc:
                self._failed(i, health, exc, now, out)
                continue
            except Exception as exc:  # a library's surprise must not stop the task sync
                log.exception("touch source %s failed unexpectedly", self._label(i))
                self._failed(i, health, SourceError(f"internal error: {exc!r}"), now, out)
                continue
            if health.failures:
                log.info("touch source %s works again", source.name)
            self._health[i] = _Health()
            out.read += found.read
            cursor = json.dumps({"book": book_print, "cursor": found.cursor})
            if write:
                added = state.add_detected(found.touches, key, cursor)
                out.touches += added
                if added:
                    log.info("touch source %s: %d new touch(es)", source.name, len(added))
            else:
                fresh = [t for t in found.touches if t.source_uid not in known]
                known.update(t.source_uid for t in fresh)
                out.touches += fresh
        return out

    def _failed(self, i: int, health: _Health, exc: KitError, now: datetime, out: Poll) -> None:
        health.failures += 1
        wait = min(30.0 * 2 ** (health.failures - 1), self.max_backoff.total_seconds())
        health.not_before = now + timedelta(seconds=wait)
        health.error = exc.message
        line = f"{self._label(i)}: {exc.message}"
        out.failures.append(line)
        log.error("touch source %s; retrying in %d s (tasks are synced anyway)", line, wait)
        source = self._sources.get(i)
        if source is not None:
            source.close()

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()


def _unwrap(stored: str | None, book_print: str) -> str | None:
    """The source's own cursor, unless the roster's addresses changed since it was
    written: then the source looks back again, for mail of the new addresses (the
    journal keeps what it had already counted once)."""
    if not stored:
        return None
    try:
        data = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("book") != book_print:
        return None
    cursor = data.get("cursor")
    return cursor if isinstance(cursor, str) else None
