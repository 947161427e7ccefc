"""The quick check (kit_sync.quick): an idle `sync` and a `status` answered from the
record of the last identical run, without loading the config; and, above all, never
answered from it when something changed: a completion on a phone (even one that
keeps the file's size and mtime), an edited config or roster file, a new day, a
touch, another kit-sync in a cycle, an option it does not know.

Each run goes through the installed command's entry point, in-process: the quick
check first (`quick.answer`, which says whether it answered), else the full CLI."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from faultproxy import FaultProxy, Rule
from servers import ANN, FOREIGN, KINDS, DavServer, Phone, Radicale, shared
from servers import Kit as ServerKit

from kit_sync import cli, quick
from kit_sync.lock import StateLock

pytestmark = pytest.mark.dates

CONFIG = {
    "timezone": "Europe/Berlin",
    "backend": {"type": "local", "path": "tasks"},
    "state": "state.sqlite",
    "tiers": {"inner": {"every": "3 weeks"}},
    "contacts": [
        {"name": "Ann One", "tier": "inner"},
        {"name": "Bob Two", "tier": "inner"},
    ],
}


class Kit:
    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self.capsys = capsys
        self.config = home / "config.yaml"
        self.write_config(CONFIG)

    def write_config(self, data: dict[str, object]) -> None:
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config.chmod(0o600)

    def __call__(self, *args: str) -> tuple[str, str]:
        """('quick' or 'full', what it printed on stdout)."""
        argv = ["--config", str(self.config), *args]
        self.capsys.readouterr()
        if quick.answer(argv) == 0:
            return "quick", self.capsys.readouterr().out
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        out = self.capsys.readouterr().out
        assert done.value.code in (0, None), out
        return "full", out

    def settled(self, *args: str) -> str:
        """Run until the command has a record (the first run may be the one that
        changes things); returns what the quick check answers."""
        for _ in range(3):
            how, out = self(*args)
            if how == "quick":
                return out
        raise AssertionError(f"{args} never got a record")

    def task_file(self, contact: str) -> Path:
        return next((self.home / "tasks").glob(f"kit-*-{contact}@kit-sync.ics"))

    def cycles(self) -> int:
        db = sqlite3.connect(self.home / "state.sqlite")
        try:
            return int(db.execute("SELECT COUNT(*) FROM cycles WHERE ok = 1").fetchone()[0])
        finally:
            db.close()


@pytest.fixture
def kit(
    tmp_path: Path,
    clock: datetime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Kit]:
    # Files written by the test count as settled at once (the 2 s racy window is a
    # test of its own below).
    monkeypatch.setattr(quick, "RACY_NS", 0)
    monkeypatch.chdir(tmp_path)
    yield Kit(tmp_path, capsys)


def test_an_idle_sync_is_answered_from_its_record_and_still_counts_as_a_cycle(kit: Kit) -> None:
    how, first = kit("sync")
    assert (how, first.splitlines()[0]) == (
        "full",
        "created 2, regenerated 0, updated 0, cancelled 0, failed 0",
    )
    how, idle = kit("sync")
    assert how == "full"  # this idle run leaves the record
    before = kit.cycles()
    how, again = kit("sync")
    assert (how, again) == ("quick", idle)
    assert kit.cycles() == before + 1  # health and status see the cycle


def test_json_and_text_answers_are_kept_apart(kit: Kit) -> None:
    kit("sync")
    text = kit.settled("sync")
    how, as_json = kit("sync", "--json")
    assert how == "full"
    assert json.loads(as_json)["counts"]["created"] == 0
    assert kit("sync", "--json") == ("quick", as_json)
    assert kit("sync") == ("quick", text)


def test_a_completion_on_a_phone_is_never_answered_from_the_record(kit: Kit) -> None:
    kit("sync")
    kit.settled("sync")
    path = kit.task_file("ann-one")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = path.read_bytes().decode()
    text = text.replace("STATUS:NEEDS-ACTION", f"STATUS:COMPLETED\r\nCOMPLETED:{stamp}")
    path.write_bytes(text.encode())
    how, out = kit("sync")
    assert how == "full"
    assert "regenerated 1" in out


def test_an_edit_keeping_size_and_mtime_is_seen(kit: Kit) -> None:
    """A phone moves the due date; the file keeps its size and, restored, its
    mtime_ns: the inode's change time still differs."""
    kit("sync")
    before = kit.settled("status")
    path = kit.task_file("ann-one")
    st = path.stat()
    text = path.read_bytes().decode()
    due = next(line for line in text.splitlines() if line.startswith("DUE;VALUE=DATE:"))
    moved = (datetime.strptime(due[-8:], "%Y%m%d") + timedelta(days=3)).strftime("%Y%m%d")
    path.write_bytes(text.replace(due, due[:-8] + moved).encode())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    how, after = kit("status")
    assert how == "full"
    assert f"{moved[:4]}-{moved[4:6]}-{moved[6:]}" in after and after != before


def test_an_edited_config_is_never_answered_from_the_record(kit: Kit) -> None:
    kit("sync")
    kit.settled("sync")
    kit.write_config(
        {**CONFIG, "contacts": [*CONFIG["contacts"], {"name": "Cy Three", "tier": "inner"}]}
    )  # type: ignore[list-item]
    how, out = kit("sync")
    assert (how, out.splitlines()[0]) == (
        "full",
        "created 1, regenerated 0, updated 0, cancelled 0, failed 0",
    )


def test_an_edited_roster_file_is_never_answered_from_the_record(kit: Kit) -> None:
    (kit.home / "people.csv").write_text("name,tier\nDee Four,inner\n")
    kit.write_config({**CONFIG, "include": [{"path": "people.csv", "format": "csv"}]})
    kit("sync")
    kit.settled("status")
    (kit.home / "people.csv").write_text("name,tier\nDee Four,inner\nEve Five,inner\n")
    how, out = kit("status")
    assert how == "full" and "Eve Five" in out


def test_a_new_day_is_never_answered_from_the_record(kit: Kit, test_now: datetime) -> None:
    import time_machine

    kit("sync")
    kit.settled("sync")
    kit.settled("status")
    with time_machine.travel(test_now + timedelta(days=40), tick=True):
        how, out = kit("status")
        assert how == "full"
        assert "overdue" in out
        assert kit("status") == ("quick", out)  # the new day gets its own record


def test_a_touch_is_never_answered_from_the_record(kit: Kit) -> None:
    kit("sync")
    before = kit.settled("status")
    how, _ = kit("touch", "ann-one")
    assert how == "full"
    how, after = kit("status")
    assert how == "full" and after != before


def test_another_kit_sync_in_a_cycle_makes_it_wait_the_full_way(kit: Kit) -> None:
    kit("sync")
    kit.settled("sync")
    argv = ["--config", str(kit.config), "sync"]
    with StateLock(kit.home / "state.sqlite").cycle():
        assert quick.answer(argv) is None
    assert quick.answer(argv) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "sync"],
        ["sync", "--dry-run"],
        ["sync", "--allow-empty"],
        ["sync", "--json", "extra"],
        ["--config"],
        ["--color", "purple", "sync"],
        ["-qv", "sync"],
        ["due"],
        [],
    ],
)
def test_what_it_does_not_know_goes_the_full_way(kit: Kit, argv: list[str]) -> None:
    kit("sync")
    kit.settled("sync")
    assert quick.answer(["--config", str(kit.config), *argv]) is None


def test_options_it_knows_are_parsed_like_the_cli(kit: Kit) -> None:
    kit("sync")
    kit.settled("-q", "--log-format=json", "--color", "never", "sync")
    call = quick.parse(["-c", "x.yaml", "--no-skip-bad-rows", "status", "--json"])
    assert call is not None and (call.command, call.config, call.as_json) == (
        "status",
        "x.yaml",
        True,
    )


def test_a_run_that_warned_leaves_no_record(kit: Kit) -> None:
    # A roster row that cannot be read, skipped: a warning at each run.
    (kit.home / "people.csv").write_text("name,tier\nDee Four,inner\n,inner\n")
    kit.write_config({**CONFIG, "include": [{"path": "people.csv", "format": "csv"}]})
    for _ in range(3):
        assert kit("--skip-bad-rows", "sync")[0] == "full"


def test_a_new_code_version_is_never_answered_from_an_old_record(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit("sync")
    kit.settled("sync")
    monkeypatch.setattr(quick, "_code", "another kit-sync")
    assert kit("sync")[0] == "full"


def test_a_lost_state_file_goes_the_full_way(kit: Kit) -> None:
    kit("sync")
    kit.settled("sync")
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        (kit.home / name).unlink(missing_ok=True)
    how, out = kit("sync")
    assert how == "full" and "created 0" in out


def test_files_changed_within_the_racy_window_leave_no_record(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change less than 2 s before the run could be followed by another in the same
    timestamp tick that keeps every stat field: such a run is not recorded."""
    monkeypatch.setattr(quick, "RACY_NS", 2_000_000_000)
    for _ in range(3):
        assert kit("sync")[0] == "full"  # the tasks were just written


def test_the_pointer_file_is_private(kit: Kit) -> None:
    kit("sync")
    kit.settled("sync")
    pointer = Path(quick.pointer_path(kit.config))
    assert pointer.stat().st_mode & 0o777 == 0o600
    assert pointer.parent.stat().st_mode & 0o777 == 0o700


# --- a CalDAV task list: its sync-token and CTag stand for the folder's stats ------------


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


class DavKit(Kit):
    def __init__(
        self,
        home: Path,
        capsys: pytest.CaptureFixture[str],
        server: DavServer,
        url: str | None = None,
        **backend: Any,
    ) -> None:
        self.home = home
        self.capsys = capsys
        self.dav = ServerKit(home, server, url or server.new_collection(), **backend)
        self.config = self.dav.config_path
        self.config.chmod(0o600)


@pytest.fixture
def dav(
    tmp_path: Path,
    clock: datetime,
    capsys: pytest.CaptureFixture[str],
    server: DavServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[DavKit]:
    monkeypatch.chdir(tmp_path)
    yield DavKit(tmp_path, capsys, server)


def completed(text: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return text.replace("STATUS:NEEDS-ACTION", f"STATUS:COMPLETED\r\nCOMPLETED:{stamp}")


@pytest.mark.integration
def test_caldav_an_idle_sync_is_answered_and_a_completion_on_a_phone_is_not(dav: DavKit) -> None:
    how, first = dav("sync")
    assert first.startswith("created 2")
    idle = dav.settled("sync")
    assert idle.startswith("created 0")
    before = dav.cycles()
    assert dav("sync") == ("quick", idle)
    assert dav.cycles() == before + 1
    phone = Phone(dav.dav.server, dav.dav.collection)
    try:
        href = dav.dav.the_open(ANN).href
        phone.edit(href, completed)
    finally:
        phone.close()
    how, out = dav("sync")
    assert how == "full" and "regenerated 1" in out


@pytest.mark.integration
def test_caldav_a_foreign_task_added_on_a_phone_is_never_answered_from_the_record(
    dav: DavKit,
) -> None:
    dav("sync")
    before = dav.settled("status")
    phone = Phone(dav.dav.server, dav.dav.collection)
    try:
        phone.put("phone-made.ics", FOREIGN.format(uid="phone-made-1", summary="Buy milk"))
    finally:
        phone.close()
    how, after = dav("status")
    assert how == "full" and after == before  # looked again; a foreign task changes nothing
    assert dav("status") == ("quick", after)


@pytest.mark.integration
def test_caldav_the_password_is_read_from_its_source_each_time_and_never_kept(
    tmp_path: Path,
    clock: datetime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    locked: Radicale,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_TEST_DAV_PASSWORD", locked.password)
    kit = DavKit(tmp_path, capsys, locked, password={"env": "KIT_TEST_DAV_PASSWORD"})
    kit("sync")
    idle = kit.settled("sync")
    db = sqlite3.connect(tmp_path / "state.sqlite")
    try:
        record = db.execute("SELECT value FROM meta WHERE key = 'quick'").fetchone()[0]
    finally:
        db.close()
    assert locked.password not in record and "KIT_TEST_DAV_PASSWORD" not in record
    monkeypatch.setenv("KIT_TEST_DAV_PASSWORD", "wrong")  # the server refuses it now
    assert quick.answer(["--config", str(kit.config), "sync"]) is None
    monkeypatch.setenv("KIT_TEST_DAV_PASSWORD", locked.password)
    assert kit("sync") == ("quick", idle)


@pytest.mark.integration
def test_caldav_a_garbled_answer_to_the_quick_check_goes_the_full_way(
    tmp_path: Path,
    clock: datetime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Its PROPFIND answered with something that is not XML: no answer from the
    record and no new record, and the sync itself goes on as ever."""
    server = shared("xandikos", request)
    proxy = FaultProxy(server.port)
    try:
        monkeypatch.chdir(tmp_path)
        kit = DavKit(tmp_path, capsys, server, proxy.url_for(server.new_collection()))
        kit("sync")
        idle = kit.settled("sync")
        proxy.add(Rule("status", method="PROPFIND", contains=b"getctag", status=207, body=b"<x"))
        assert kit("sync") == ("full", idle)
        assert kit("sync") == ("full", idle)  # nothing recorded that it could not check
        proxy.clear()
        assert kit.settled("sync") == idle
    finally:
        proxy.close()
