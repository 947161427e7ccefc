"""Incremental sync against real servers: requests per cycle, sync tokens, the cache
file, discovery of the task list, and credentials.

Request counts are what the backend sent (its `requests` counter, a response hook on
the HTTP session), so "an idle cycle is ONE request" is checked, not timed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from servers import KINDS, DavServer, Kit, Phone, Radicale, caldav_config, shared
from test_caldav_clients import _utc, edit_vtodo, href_of

from kit_sync.backends.base import AuthFailed, BackendUnavailable
from kit_sync.backends.caldav import CaldavBackend

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


@pytest.fixture
def kit(tmp_path: Path, server: DavServer) -> Kit:
    contacts = [
        {"name": f"Person {i:02d}", "email": f"p{i}@example.com", "tier": "core"} for i in range(12)
    ]
    return Kit(tmp_path, server, server.new_collection(), contacts)


@pytest.fixture
def phone(kit: Kit) -> Iterator[Phone]:
    p = Phone(kit.server, kit.collection)
    yield p
    p.close()


class Daemon:
    """One engine kept across cycles, as `kit-sync run` keeps it."""

    def __init__(self, kit: Kit) -> None:
        self.engine = kit.engine()
        self.backend: CaldavBackend = self.engine.backend

    def cycle(self) -> tuple[Any, int]:
        before = self.backend.requests
        result = self.engine.run_cycle()
        assert result.ok, result.failures
        return result, self.backend.requests - before

    def close(self) -> None:
        self.engine.backend.close()
        self.engine.state.close()


@pytest.fixture
def daemon(kit: Kit) -> Iterator[Daemon]:
    d = Daemon(kit)
    yield d
    d.close()


def one_shot(kit: Kit) -> tuple[Any, int]:
    """A new process's cycle: a fresh engine and backend reading the cache file."""
    engine = kit.engine()
    try:
        result = engine.run_cycle()
        assert result.ok, result.failures
        return result, engine.backend.requests
    finally:
        engine.backend.close()
        engine.state.close()


def state_file(kit: Kit) -> Path:
    return kit.folder / "state.sqlite"


#: The CalDAV rows of the one listing cache in the state DB (state.ListingCache).
TOKEN_ROWS = "FROM listing_meta WHERE scope LIKE 'caldav:%' AND key = 'token'"


def token_in_cache(kit: Kit) -> str:
    with sqlite3.connect(state_file(kit)) as db:
        rows = db.execute(f"SELECT value {TOKEN_ROWS}").fetchall()
    assert len(rows) == 1
    return str(rows[0][0])


def drop_cache(kit: Kit) -> None:
    with sqlite3.connect(state_file(kit)) as db:
        db.execute("DELETE FROM listing_items WHERE scope LIKE 'caldav%'")
        db.execute("DELETE FROM listing_meta WHERE scope LIKE 'caldav%'")


def test_idle_cycle_is_one_request_in_the_daemon(daemon: Daemon) -> None:
    first, _ = daemon.cycle()
    assert first.counts["created"] == 12
    # Our own 12 PUTs come back in the next report with the ETags the PUTs returned:
    # recognised, not fetched again.
    _, requests = daemon.cycle()
    assert requests <= 1
    for _ in range(3):
        _, requests = daemon.cycle()
        assert requests <= 1


def test_an_idle_cycle_writes_nothing_to_the_listing_cache(
    daemon: Daemon, phone: Phone, kit: Kit
) -> None:
    """Nothing new under the same sync token: no transaction for the cache; a change
    on the server is committed with its new token."""
    daemon.cycle()
    daemon.cycle()
    statements: list[str] = []
    daemon.engine.state.db.set_trace_callback(statements.append)

    def cache_writes() -> list[str]:
        return [s for s in statements if "listing_" in s and not s.startswith("SELECT")]

    for _ in range(2):
        _, requests = daemon.cycle()
        assert requests <= 1
    assert cache_writes() == []
    before = token_in_cache(kit)
    task = sorted(daemon.backend.fetch_listing().tasks, key=lambda t: t.uid)[0]
    phone.edit(href_of(task), lambda text: text.replace("SUMMARY:", "SUMMARY:x "))
    daemon.cycle()
    assert cache_writes()
    assert token_in_cache(kit) == daemon.backend._token != before
    daemon.engine.state.db.set_trace_callback(None)


def test_idle_cycle_is_one_request_in_a_new_process(kit: Kit) -> None:
    one_shot(kit)
    result, requests = one_shot(kit)
    assert sum(result.counts.values()) == 0
    assert requests <= 1
    token = token_in_cache(kit)
    assert token and not token.startswith("fake-")


def test_k_completions_cost_k_plus_two_requests(daemon: Daemon, phone: Phone, kit: Kit) -> None:
    daemon.cycle()
    listing = daemon.backend.fetch_listing()
    k = 5
    for task in sorted(listing.tasks, key=lambda t: t.uid)[:k]:
        phone.edit(href_of(task), lambda t: _utc(t, datetime.now(UTC) - timedelta(hours=1)))
    result, requests = daemon.cycle()
    assert result.counts["regenerated"] == k
    assert requests <= k + 2  # one REPORT, one multiget of the k changed items, k PUTs
    _, requests = daemon.cycle()
    assert requests <= 1


def test_only_changed_items_are_fetched(daemon: Daemon, phone: Phone) -> None:
    daemon.cycle()
    task = daemon.backend.fetch_listing().tasks[0]
    phone.edit(href_of(task), lambda t: edit_vtodo(t, "X-PHONE:1"))
    fetched: list[list[str]] = []
    original = daemon.backend._multiget

    def spy(hrefs: list[str]) -> Any:
        fetched.append(list(hrefs))
        return original(hrefs)

    daemon.backend._multiget = spy  # type: ignore[method-assign]
    _, requests = daemon.cycle()
    assert {href for batch in fetched for href in batch} <= {task.href}  # nothing else
    assert requests <= 2


def reject_token(kit: Kit, server: DavServer) -> str:
    """Make the server refuse the token kit-sync holds; returns the refused token."""
    if isinstance(server, Radicale):
        server.forget_sync_tokens(kit.collection)  # Radicale: 403 DAV:valid-sync-token
        return token_in_cache(kit)
    # Xandikos keeps its whole git history; a token it never issued gets 412.
    refused = "0" * 40
    with sqlite3.connect(state_file(kit)) as db:
        db.execute(
            f"UPDATE listing_meta SET value = ? WHERE rowid IN (SELECT rowid {TOKEN_ROWS})",
            (refused,),
        )
    return refused


def test_rejected_token_leads_to_one_full_listing_and_a_real_token(
    kit: Kit, server: DavServer, phone: Phone
) -> None:
    one_shot(kit)
    victim = sorted(kit.listing().tasks, key=lambda t: t.uid)[0]
    # A change made while the token goes stale must still be seen.
    phone.edit(href_of(victim), lambda t: _utc(t, datetime.now(UTC)))
    refused = reject_token(kit, server)
    result, requests = one_shot(kit)
    assert result.counts["regenerated"] == 1
    # refused REPORT + full REPORT + multiget of the one changed item + one PUT
    assert requests <= 4
    new = token_in_cache(kit)
    assert new and new != refused and not new.startswith("fake-")
    _, requests = one_shot(kit)
    assert requests <= 1


def test_deletions_on_the_server_are_seen_incrementally(daemon: Daemon, phone: Phone) -> None:
    daemon.cycle()
    victim = daemon.backend.fetch_listing().tasks[0]
    phone.delete(href_of(victim))
    result, requests = daemon.cycle()
    assert result.counts["created"] == 1  # recreated
    assert requests <= 2  # REPORT (reports the deletion) + the PUT


def test_damaged_cache_is_rebuilt(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    one_shot(kit)
    with sqlite3.connect(state_file(kit)) as db:
        db.execute("UPDATE listing_items SET info = 'not json' WHERE scope LIKE 'caldav:%'")
    with caplog.at_level("WARNING"):
        result, _ = one_shot(kit)
    assert sum(result.counts.values()) == 0  # nothing duplicated: listed afresh
    assert any("damaged" in r.getMessage() for r in caplog.records)
    _, requests = one_shot(kit)
    assert requests <= 1


def test_deleting_the_cache_costs_one_full_listing_only(kit: Kit) -> None:
    one_shot(kit)
    drop_cache(kit)
    result, requests = one_shot(kit)
    assert sum(result.counts.values()) == 0
    assert requests >= 2  # discovery + full listing + one multiget of everything
    _, requests = one_shot(kit)
    assert requests <= 1


def test_deleting_the_state_db_creates_no_duplicates(kit: Kit) -> None:
    one_shot(kit)
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        (kit.folder / name).unlink(missing_ok=True)
    result, _ = one_shot(kit)
    assert sum(result.counts.values()) == 0
    assert len(kit.opens()) == 12


# --- discovery of the task list ------------------------------------------------------------


def backend_for(server: DavServer, **config: Any) -> CaldavBackend:
    return CaldavBackend(caldav_config(server, **config), BERLIN)


def test_server_root_and_task_list_name(server: DavServer) -> None:
    name = f"Friends {datetime.now().timestamp()}"
    url = server.new_collection(name, owner=server.user)  # the user who logs in at the root
    backend = backend_for(server, url=server.root, task_list=name)
    try:
        assert backend.fetch_listing().tasks == []
        assert backend.collection == url
    finally:
        backend.close()


def test_missing_task_list_is_a_clear_error_or_created(server: DavServer) -> None:
    name = f"Nope {datetime.now().timestamp()}"
    backend = backend_for(server, url=server.root, task_list=name)
    with pytest.raises(BackendUnavailable, match="no task list named") as err:
        backend.fetch_listing()
    assert "create: true" in str(err.value)
    backend.close()
    backend = backend_for(server, url=server.root, task_list=name, create=True)
    try:
        backend.fetch_listing()
        assert backend.collection
        made = backend.collection
    finally:
        backend.close()
    with server.http() as http:
        r = http.request(
            "PROPFIND",
            made,
            headers={"Depth": "0", "Content-Type": "application/xml"},
            content=b'<propfind xmlns="DAV:"><prop><displayname/>'
            b'<supported-calendar-component-set xmlns="urn:ietf:params:xml:ns:caldav"/>'
            b"</prop></propfind>",
        )
    assert name in r.text and "VTODO" in r.text and "VEVENT" not in r.text


def test_url_of_an_event_calendar_is_refused(server: DavServer) -> None:
    url = server.new_collection()
    with server.http(url) as http:
        events = url.rstrip("/") + "-events/"
        r = http.request(
            "MKCALENDAR",
            events,
            content=b'<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" '
            b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            b'<C:supported-calendar-component-set><C:comp name="VEVENT"/>'
            b"</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>",
            headers={"Content-Type": "application/xml"},
        )
        assert r.status_code in (200, 201)
    backend = backend_for(server, url=events)
    with pytest.raises(BackendUnavailable, match="cannot hold tasks"):
        backend.fetch_listing()
    backend.close()


def test_task_list_deleted_on_the_server(kit: Kit, server: DavServer) -> None:
    one_shot(kit)
    with server.http(kit.collection) as http:
        assert http.delete(kit.collection).status_code in (200, 204)
    done = kit.cli("sync")
    assert done.returncode == 3, done.stderr
    assert "HTTP 404" in done.stderr or "does not exist" in done.stderr


# --- credentials (Radicale with htpasswd) ---------------------------------------------------


def test_wrong_password_exits_3_with_a_clear_message(tmp_path: Path, locked: Radicale) -> None:
    kit = Kit(tmp_path, locked, locked.new_collection(), password="wrong")
    done = kit.cli("sync")
    assert done.returncode == 3
    assert "refused the credentials" in done.stderr
    assert "wrong" not in done.stderr and locked.password not in done.stderr


def test_password_from_env_and_basic_auth_remembered(
    tmp_path: Path, locked: Radicale, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_DAV_PASSWORD", locked.password)
    kit = Kit(tmp_path, locked, locked.new_collection(), password={"env": "KIT_DAV_PASSWORD"})
    one_shot(kit)
    # auth: auto negotiated Basic once (a 401 round trip); the next process sends it
    # right away, so its idle cycle is still one request.
    _, requests = one_shot(kit)
    assert requests <= 1


def test_explicit_basic_auth(tmp_path: Path, locked: Radicale) -> None:
    backend = backend_for(locked, url=locked.new_collection(), auth="basic")
    try:
        assert backend.fetch_listing().tasks == []
        assert backend.requests <= 2  # probe of the URL + the first sync report
    finally:
        backend.close()


def test_wrong_password_in_backend_is_authfailed(locked: Radicale) -> None:
    backend = backend_for(locked, url=locked.new_collection(), password="nope")
    with pytest.raises(AuthFailed):
        backend.fetch_listing()
    backend.close()


# --- the quick path: a new process's idle check without the caldav library --------------

PROBE = """
import sys
from kit_sync.app import load, open_engine
engine = open_engine(load(__import__("pathlib").Path(sys.argv[1])))
result = engine.run_cycle()
assert result.ok, result.failures
print(engine.backend.requests, sum(result.counts.values()), "caldav" in sys.modules,
      "icalendar" in sys.modules)
engine.backend.close()
engine.state.close()
"""


def probe(kit: Kit) -> tuple[int, int, bool, bool]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(kit.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    requests, actions, caldav, icalendar = done.stdout.split()
    return int(requests), int(actions), caldav == "True", icalendar == "True"


def test_idle_new_process_never_imports_caldav(kit: Kit) -> None:
    one_shot(kit)
    assert probe(kit) == (1, 0, False, False)


def test_new_process_with_one_completion(kit: Kit, phone: Phone) -> None:
    one_shot(kit)
    victim = sorted(kit.listing().tasks, key=lambda t: t.uid)[0]
    phone.edit(href_of(victim), lambda t: _utc(t, datetime.now(UTC)))
    # the quick REPORT, one multiget (caldav now), one PUT (the regenerated task)
    assert probe(kit) == (3, 1, True, True)
    assert probe(kit) == (1, 0, False, False)


def test_quick_path_sees_deletions(kit: Kit, phone: Phone) -> None:
    one_shot(kit)
    victim = sorted(kit.listing().tasks, key=lambda t: t.uid)[0]
    phone.delete(href_of(victim))
    assert probe(kit)[:2] == (2, 1)  # the REPORT reports the deletion; one PUT recreates
    assert len(kit.opens()) == 12


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    from servers import self_signed

    folder = tmp_path_factory.mktemp("radicale-tls")
    server = Radicale(folder, tls=self_signed(folder / "pki"))
    server.start()
    server.provision()
    yield server
    server.stop()


def test_tls_verification_is_on_by_default(tls_server: Radicale) -> None:
    backend = backend_for(tls_server, url=tls_server.new_collection())
    with pytest.raises(BackendUnavailable, match="TLS check") as err:
        backend.fetch_listing()
    assert "backend.verify" in str(err.value)
    backend.close()


def test_tls_with_the_servers_ca_bundle(tmp_path: Path, tls_server: Radicale) -> None:
    assert tls_server.tls is not None
    ca = str(tls_server.tls[0])
    kit = Kit(tmp_path, tls_server, tls_server.new_collection(), verify=ca)
    kit.write([{"name": f"T {i}", "email": f"t{i}@example.com", "tier": "core"} for i in range(3)])
    one_shot(kit)
    assert len(kit.opens()) == 3
    # the quick idle check of a new process verifies against the same bundle
    assert probe(kit) == (1, 0, False, False)


def test_tls_verify_false(tls_server: Radicale) -> None:
    backend = backend_for(tls_server, url=tls_server.new_collection(), verify=False)
    try:
        assert backend.fetch_listing().tasks == []
    finally:
        backend.close()
