"""A state file written by kit-sync before the one listing cache (the committed
fixtures in tests/data/state-v1, written by main at schema 1 with Radicale, the
Exchange and the Graph test endpoints) opens, migrates, and keeps what matters: the
touch journal, and for Exchange and Graph the listing cache in its new home."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from kit_sync.state import SCHEMA_VERSION, ListingCache, State

FIXTURES = Path(__file__).parent / "data" / "state-v1"


def opened(tmp_path: Path, backend: str) -> State:
    for f in (FIXTURES / backend).iterdir():
        shutil.copy(f, tmp_path / f.name)
    with sqlite3.connect(tmp_path / "state.sqlite") as db:  # it really is the old file
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    return State(tmp_path / "state.sqlite")


def schema(state: State) -> int:
    row = state.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0])


@pytest.mark.parametrize("backend", ["caldav", "exchange", "graph"])
def test_an_old_state_file_opens_migrates_and_keeps_its_journal(
    tmp_path: Path, backend: str
) -> None:
    state = opened(tmp_path, backend)
    try:
        assert schema(state) == SCHEMA_VERSION
        touches = state.touches()
        assert len(touches) == 1 and touches[0].source == "backend"
        assert state.seen()  # what the backend held: kept
        assert state.last_cycle() is not None
        # No per-backend cache is left behind in the tokens table.
        assert state.tokens("exchange:") == {} and state.tokens("graph:") == {}
    finally:
        state.close()
    again = State(tmp_path / "state.sqlite")  # a second open is a no-op
    assert again.touches() == touches
    again.close()


def test_the_caldav_cache_file_goes(tmp_path: Path) -> None:
    opened(tmp_path, "caldav").close()
    assert not (tmp_path / "state.caldav-cache.sqlite").exists()


def test_the_exchange_blob_becomes_listing_rows(tmp_path: Path) -> None:
    old = sqlite3.connect(FIXTURES / "exchange" / "state.sqlite")
    ((key, text),) = old.execute("SELECT key, value FROM tokens WHERE key LIKE 'exchange:%'")
    old.close()
    blob = json.loads(text)
    state = opened(tmp_path, "exchange")
    try:
        cache = state.listing_cache()
        items = cache.load(key)
        assert set(items) == set(blob["items"]) and items
        assert {k: i.etag for k, i in items.items()} == {
            k: e["ck"] for k, e in blob["items"].items()
        }
        assert cache.get(key, ListingCache.TOKEN) == blob["sync"]
        assert cache.get(key, "folder") == blob["folder"]
    finally:
        state.close()


def test_the_graph_tokens_become_listing_rows(tmp_path: Path) -> None:
    old = sqlite3.connect(FIXTURES / "graph" / "state.sqlite")
    rows = dict(old.execute("SELECT key, value FROM tokens WHERE key LIKE 'graph:%'"))
    old.close()
    scope = next(k for k in rows if k.endswith(":delta"))[: -len(":delta")]
    ids = {k.rsplit(":t:", 1)[1] for k in rows if ":t:" in k}
    state = opened(tmp_path, "graph")
    try:
        cache = state.listing_cache()
        assert set(cache.load(scope)) == ids and ids
        assert cache.get(scope, ListingCache.TOKEN) == rows[scope + ":delta"]
        assert cache.get(scope, "list") == rows[scope + ":list"]
    finally:
        state.close()


def test_the_exchange_backend_reads_the_migrated_cache(tmp_path: Path) -> None:
    """The migrated rows are what the Exchange backend itself loads (no re-listing)."""
    from kit_sync.backends.exchange.cache import _Cache

    state = opened(tmp_path, "exchange")
    try:
        (scope,) = {r[0] for r in state.db.execute("SELECT scope FROM listing_items").fetchall()}
        cache = _Cache.load(state.listing_cache(), scope)
        assert cache.sync_state and cache.items
        assert all(e.contact_id for e in cache.items.values())
    finally:
        state.close()
