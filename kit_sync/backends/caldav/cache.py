"""The CalDAV backend's view of the one listing cache (state.ListingCache): per task
list, href -> ETag and the parsed task for kit-owned items, plus the sync token; and a
few values about the server (the task list's URL, the auth it asked for, whether it
does sync-collection). Lives in the state DB; only a cache.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kit_sync.backends.caldav.items import _info_json, _Item, _item_from_row, _parser_fingerprint
from kit_sync.state import CachedItem, ListingCache

log = logging.getLogger("kit_sync.caldav")

#: Scope of the values about the server; each task list is "caldav:<its URL>".
SCOPE = "caldav"


def _cached(item: _Item) -> CachedItem:
    return CachedItem(item.href, item.etag, item.kind, _info_json(item), item.data)


class _Cache:
    """The listing cache as the CalDAV backend uses it. Items and the sync token of a
    task list are written together in one transaction, so the token always matches
    the items it covers."""

    SCHEMA = 2

    def __init__(self, listing: ListingCache) -> None:
        self.listing = listing
        version = f"{self.SCHEMA}/{_parser_fingerprint()}"
        if listing.get(SCOPE, "version") != version:
            # New reading code (or a new cache): what was parsed before may read
            # differently now, so everything is listed afresh once.
            listing.clear(SCOPE)
            listing.put(SCOPE, "version", version)

    def get(self, key: str) -> str | None:
        return self.listing.get(SCOPE, key)

    def put(self, key: str, value: str | None) -> None:
        self.listing.put(SCOPE, key, value)

    def token(self, list_url: str) -> str | None:
        return self.listing.get(f"{SCOPE}:{list_url}", ListingCache.TOKEN) or None

    def load(self, list_url: str) -> dict[str, _Item]:
        """The items of a task list; none (and no token) when an entry is damaged: an
        item missing from the cache while its token claims it would never be seen."""
        scope = f"{SCOPE}:{list_url}"
        try:
            rows = self.listing.load(scope)
            return {k: _item_from_row(i.href, i.etag, i.kind, i.info) for k, i in rows.items()}
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("the CalDAV listing cache is damaged (%s); listing afresh", exc)
            self.listing.clear(scope)
            return {}

    def data(self, list_url: str, key: str, etag: str) -> bytes | None:
        return self.listing.data(f"{SCOPE}:{list_url}", key, etag)

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
        self.listing.save_listing(
            f"{SCOPE}:{list_url}",
            token or "",
            {k: _cached(it) for k, it in fresh.items()},
            removed,
            keep=keep,
        )

    def save_writes(
        self, list_url: str, writes: Iterable[tuple[str, _Item | None, str | None]]
    ) -> None:
        """Our own writes, in order, each a compare-and-swap on the ETag it replaced."""
        self.listing.save_writes(
            f"{SCOPE}:{list_url}",
            [(k, None if it is None else _cached(it), before) for k, it, before in writes],
        )
