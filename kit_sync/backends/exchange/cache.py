"""The Exchange listing cache: sync state, folder id, server version and one entry
per kit item, kept as JSON in the state DB's tokens.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from kit_sync.backends.exchange.items import _Entry

log = logging.getLogger("kit_sync.exchange")
CACHE_VERSION = 1


@dataclass
class _Cache:
    sync_state: str | None = None
    folder_id: str | None = None
    version: str | None = None  # the server build learned from a response
    items: dict[str, _Entry] = field(default_factory=dict)

    def to_text(self) -> str:
        return json.dumps(
            {
                "v": CACHE_VERSION,
                "sync": self.sync_state,
                "folder": self.folder_id,
                "version": self.version,
                "items": {k: e.to_json() for k, e in self.items.items()},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_text(cls, text: str | None) -> _Cache:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            if raw.get("v") != CACHE_VERSION:
                return cls()
            return cls(
                raw.get("sync"),
                raw.get("folder"),
                raw.get("version"),
                {k: _Entry.from_json(k, v) for k, v in raw.get("items", {}).items()},
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("the cached Exchange listing is unreadable; reading the folder again")
            return cls()
