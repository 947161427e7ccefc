"""The Exchange backend's view of the one listing cache (state.ListingCache): the sync
state of SyncFolderItems, the folder id, the server version learned from a response,
and one entry per kit item (its change key and what kit-sync read from it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from kit_sync.backends.exchange.items import _Entry
from kit_sync.state import CachedItem, ListingCache

log = logging.getLogger("kit_sync.exchange")


@dataclass
class _Cache:
    sync_state: str | None = None
    folder_id: str | None = None
    version: str | None = None  # the server build learned from a response
    items: dict[str, _Entry] = field(default_factory=dict)

    def save(self, listing: ListingCache, scope: str) -> None:
        """Everything, in one transaction: the sync state always matches the entries
        it covers."""
        listing.save_listing(
            scope,
            self.sync_state,
            {
                k: CachedItem(k, e.ck, "task", json.dumps(e.to_json(), separators=(",", ":")))
                for k, e in self.items.items()
            },
            keep=set(self.items),
            meta={"folder": self.folder_id, "version": self.version},
        )

    @classmethod
    def load(cls, listing: ListingCache, scope: str) -> _Cache:
        meta = listing.meta(scope)
        try:
            return cls(
                meta.get(ListingCache.TOKEN),
                meta.get("folder"),
                meta.get("version"),
                {
                    k: _Entry.from_json(k, json.loads(i.info or ""))
                    for k, i in listing.load(scope).items()
                },
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("the cached Exchange listing is unreadable; reading the folder again")
            return cls(None, meta.get("folder"), meta.get("version"))
