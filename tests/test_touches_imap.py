"""Sent mail resets a person's clock: the imap touch source against a real Dovecot
server, through real syncs of the local backend (issue 14, DESIGN rule 10)."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from imap_server import Dovecot, dovecot, require_dovecot  # noqa: F401 - fixture
from kit import BASE_CONFIG, World

from kit_sync.model import Status
from kit_sync.state import State

pytestmark = pytest.mark.integration

NY = ZoneInfo("America/New_York")
ANN = "ann-example-com"
BOB = "bob-example-com"


def imap_section(server: Dovecot, **extra: Any) -> dict[str, Any]:
    return {
        "type": "imap",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": server.user,
        "password": server.password,
        **extra,
    }


@pytest.fixture
def world(tmp_path: Path, dovecot: Dovecot) -> Iterator[World]:  # noqa: F811
    config = copy.deepcopy(BASE_CONFIG)
    config["timezone"] = "America/New_York"
    config["touches"] = [imap_section(dovecot)]
    w = World(tmp_path, config)
    w.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    yield w
    if w.sources is not None:
        w.sources.close()


def journal(world: World) -> list[Any]:
    state = State(world.dir / "state.sqlite")
    try:
        return [t for t in state.touches() if t.detected]
    finally:
        state.close()


def completed(world: World, contact: str) -> list[Any]:
    return [t for t in world.tasks() if t.contact_id == contact and t.status is Status.COMPLETED]


def ics_of(world: World, task: Any) -> str:
    return (world.folder / task.href).read_text()


# --- must show ---------------------------------------------------------------------------


def test_email_sent_2330_new_york_completes_the_task_as_of_that_new_york_day(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    world.sync()  # Ann's task exists from 2 March (EST)
    first = world.the_open(ANN)
    # 10 March 2026, 23:30 in New York: after the DST switch of 8 March (EDT, -04:00);
    # already 11 March in UTC.
    sent = datetime(2026, 3, 10, 23, 30, tzinfo=NY)
    dovecot.append("Sent", sent, to="Ann Lee <ann@example.com>")
    world.at(datetime(2026, 3, 12, 14, 0, tzinfo=UTC))
    result = world.sync()

    assert result.source_failures == []
    assert [(t.contact_id, t.day, t.kind) for t in result.detected] == [
        (ANN, date(2026, 3, 10), "email sent")
    ]
    (done,) = completed(world, ANN)
    assert done.uid == first.uid
    assert done.completed == sent.astimezone(UTC)  # COMPLETED = the message's time
    text = ics_of(world, done)
    assert "COMPLETED:20260311T033000Z" in text
    assert "Detected: email sent 2026-03-10" in text.replace("\r\n ", "")
    nxt = world.the_open(ANN)
    assert nxt.due == date(2026, 3, 31)  # 10 March + 3 weeks
    assert nxt.meta.from_uid == first.uid
    # Bob got no mail: untouched.
    assert completed(world, BOB) == []


def test_mail_to_someone_not_on_the_roster_changes_nothing_and_stores_nothing(
    world: World,
    dovecot: Dovecot,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.sync()
    before = {t.uid: (t.due, t.etag) for t in world.tasks()}
    dovecot.append(
        "Sent",
        datetime(2026, 3, 5, 10, 0, tzinfo=NY),
        to="Stranger <stranger@elsewhere.example>",
        cc="other.person@elsewhere.example",
        message_id="<secret-thread-42@elsewhere.example>",
        subject="private matters",
    )
    world.at(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    with caplog.at_level(logging.DEBUG, logger="kit_sync"):
        result = world.sync()
    assert result.detected == []
    assert {t.uid: (t.due, t.etag) for t in world.tasks()} == before
    assert journal(world) == []
    for path in world.dir.glob("state.sqlite*"):
        raw = path.read_bytes()
        for needle in (b"stranger", b"elsewhere", b"other.person", b"secret-thread", b"private"):
            assert needle not in raw, (path.name, needle)
    assert "elsewhere" not in caplog.text and "private" not in caplog.text


def test_mail_from_a_contact_in_inbox_counts_only_with_count_received(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    world.sync()
    got = datetime(2026, 3, 5, 9, 15, tzinfo=NY)
    dovecot.append("INBOX", got, sender="Ann Lee <Ann@Example.com>", to="me@example.com")
    world.at(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    world.sync()
    assert completed(world, ANN) == []
    assert journal(world) == []

    world.edit_config(touches=[imap_section(dovecot, count_received=True)])
    world.sources = None  # a restart with the new config
    world.sync()
    (done,) = completed(world, ANN)
    assert done.completed == got.astimezone(UTC)
    assert "Detected: email received 2026-03-05" in ics_of(world, done).replace("\r\n ", "")
    assert world.the_open(ANN).due == date(2026, 3, 26)


def test_sync_twice_or_without_the_state_file_counts_nothing_twice(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    world.sync()
    dovecot.append("Sent", datetime(2026, 3, 4, 18, 0, tzinfo=NY), to="ann@example.com")
    dovecot.append(
        "Sent", datetime(2026, 3, 5, 8, 0, tzinfo=NY), to="bob@example.com", cc="ann@example.com"
    )
    world.at(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    world.sync()
    tasks = {t.uid: (t.status, t.due) for t in world.tasks()}
    touches = sorted((t.contact_id, t.day) for t in journal(world))
    assert touches == [(ANN, date(2026, 3, 4)), (ANN, date(2026, 3, 5)), (BOB, date(2026, 3, 5))]

    again = world.sync()
    assert again.detected == []
    assert sum(again.counts.values()) == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks

    # Lose the state file: the source looks back again and finds the same mail.
    world.sources.close()  # type: ignore[union-attr]
    world.sources = None
    for path in world.dir.glob("state.sqlite*"):
        path.unlink()
    world.advance(hours=1)
    rebuilt = world.sync()
    assert len(rebuilt.detected) == 3
    assert rebuilt.counts["regenerated"] == 0 and rebuilt.counts["created"] == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks
    assert len(completed(world, ANN)) == 1 and len(completed(world, BOB)) == 1
    assert sorted((t.contact_id, t.day) for t in journal(world)) == touches


def test_several_touches_between_syncs_collapse_to_the_latest(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    world.sync()
    for day in (3, 7, 5):
        dovecot.append("Sent", datetime(2026, 3, day, 11, 0, tzinfo=NY), to="ann@example.com")
    world.at(datetime(2026, 3, 9, 14, 0, tzinfo=UTC))
    world.sync()
    (done,) = completed(world, ANN)
    assert done.completed == datetime(2026, 3, 7, 11, 0, tzinfo=NY).astimezone(UTC)
    assert world.the_open(ANN).due == date(2026, 3, 28)
    assert sorted(t.day.day for t in journal(world) if t.contact_id == ANN) == [3, 5, 7]


def test_mail_before_the_task_was_created_moves_the_due_date_without_completing(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    # Mail from before kit-sync knew Ann: the first sync counts her clock from it.
    dovecot.append("Sent", datetime(2026, 2, 20, 23, 45, tzinfo=NY), bcc="ann@example.com")
    world.sync()
    task = world.the_open(ANN)
    assert task.meta.anchor == date(2026, 2, 20)
    assert task.due == date(2026, 3, 13)
    assert completed(world, ANN) == []


def test_lookback_limits_the_first_read(world: World, dovecot: Dovecot) -> None:  # noqa: F811
    world.edit_config(touches=[imap_section(dovecot, lookback="2 weeks")])
    dovecot.append("Sent", datetime(2026, 2, 10, 12, 0, tzinfo=NY), to="bob@example.com")
    dovecot.append("Sent", datetime(2026, 2, 20, 12, 0, tzinfo=NY), to="ann@example.com")
    world.sync()
    assert [(t.contact_id, t.day) for t in journal(world)] == [(ANN, date(2026, 2, 20))]


def test_a_rebuilt_folder_is_read_again_without_counting_twice(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    world.sync()
    msgid = dovecot.append("Sent", datetime(2026, 3, 4, 12, 0, tzinfo=NY), to="ann@example.com")
    world.at(datetime(2026, 3, 5, 14, 0, tzinfo=UTC))
    world.sync()
    assert len(completed(world, ANN)) == 1
    client = dovecot.client()
    client.delete_folder("Sent")
    client.create_folder("Sent")
    client.logout()
    # The same message comes back (restored from a backup): new UIDVALIDITY.
    dovecot.append(
        "Sent", datetime(2026, 3, 4, 12, 0, tzinfo=NY), to="ann@example.com", message_id=msgid
    )
    world.edit_config(touches=[imap_section(dovecot, folders=["Sent"])])
    world.advance(hours=1)
    result = world.sync()
    assert result.detected == []
    assert len(completed(world, ANN)) == 1


# --- incremental -------------------------------------------------------------------------


def test_idle_check_is_one_status_per_folder_and_new_mail_is_read_alone(
    tmp_path: Path,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    from kit_sync.config import ImapSourceConfig
    from kit_sync.touches.imap import ImapSource
    from kit_sync.touches.match import AddressBook

    book = AddressBook([("ann@example.com", ANN)])
    source = ImapSource(ImapSourceConfig.model_validate(imap_section(dovecot)), NY)
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    since = now - timedelta(days=90)
    for day in range(1, 6):
        dovecot.append("Sent", datetime(2026, 3, day, 9, 0, tzinfo=NY), to="ann@example.com")
    try:
        first = source.fetch_touches(book, since, now, None)
        assert first.read == 5 and len(first.touches) == 5
        before = source.commands
        idle = source.fetch_touches(book, since, now, first.cursor)
        assert idle.touches == [] and idle.read == 0
        assert source.commands - before <= 1  # one STATUS, no SELECT/SEARCH/FETCH
        assert json.loads(idle.cursor or "") == json.loads(first.cursor or "")

        dovecot.append("Sent", datetime(2026, 3, 9, 9, 0, tzinfo=NY), to="ann@example.com")
        more = source.fetch_touches(book, since, now, idle.cursor)
        assert more.read == 1
        assert [t.day for t in more.touches] == [date(2026, 3, 9)]
    finally:
        source.close()


def test_headers_are_matched_exactly_and_case_insensitively(
    tmp_path: Path,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    from kit_sync.config import ImapSourceConfig
    from kit_sync.touches.imap import ImapSource
    from kit_sync.touches.match import AddressBook

    book = AddressBook([("ann@example.com", ANN), ("Bob@Example.com", BOB)])
    source = ImapSource(ImapSourceConfig.model_validate(imap_section(dovecot)), NY)
    when = datetime(2026, 3, 3, 9, 0, tzinfo=NY)
    dovecot.append("Sent", when, to='"Lee, Ann" <ANN@example.com>, bob@example.com')
    dovecot.append("Sent", when, to="ann+news@example.com, a.nn@example.com")  # not Ann
    dovecot.append("Sent", when, to="", bcc="bob@example.com", message_id="")  # no Message-ID
    try:
        found = source.fetch_touches(
            book, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC), None
        )
    finally:
        source.close()
    assert sorted(t.contact_id for t in found.touches) == [ANN, BOB, BOB]
    assert found.read == 3
    assert all(t.source_uid.startswith("imap:") for t in found.touches)


# --- a source that fails -----------------------------------------------------------------


def test_a_source_that_is_down_is_reported_and_tasks_still_sync(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    dovecot.stop()
    result = world.sync()
    assert len(world.open_tasks()) == 2  # the task sync ran
    (line,) = result.source_failures
    assert "imap 127.0.0.1" in line and "connection refused" in line

    # The daemon's next cycles: the source waits out its back-off, then works again.
    world.advance(seconds=10)
    assert "next try after" in world.sync().source_failures[0]
    dovecot.start()
    dovecot.append("Sent", datetime(2026, 3, 2, 12, 0, tzinfo=NY), to="bob@example.com")
    world.advance(seconds=30)
    ok = world.sync()
    assert ok.source_failures == []
    assert [t.contact_id for t in ok.detected] == [BOB]


def test_refused_login_is_a_clear_line(world: World, dovecot: Dovecot) -> None:  # noqa: F811
    world.edit_config(touches=[imap_section(dovecot, password="wrong")])
    result = world.sync()
    assert len(world.open_tasks()) == 2
    (line,) = result.source_failures
    assert "refused the login" in line and "wrong" not in line


# --- the command line --------------------------------------------------------------------


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
    )


def test_cli_source_down_exits_1_after_syncing_the_tasks(tmp_path: Path) -> None:
    from servers import free_port

    config = copy.deepcopy(BASE_CONFIG)
    config["touches"] = [
        {
            "type": "imap",
            "host": "127.0.0.1",
            "port": free_port(),
            "security": "none",
            "username": "me",
            "password": "pw",
        }
    ]
    World(tmp_path, config)
    done = cli(tmp_path / "config.yaml", "sync")
    assert done.returncode == 1, done.stderr
    assert "created 2" in done.stdout
    assert "touch source" in done.stderr and "connection refused" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(list((tmp_path / "tasks").glob("*.ics"))) == 2


def test_cli_touches_and_dry_run_show_what_mail_would_do(
    tmp_path: Path,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    config = copy.deepcopy(BASE_CONFIG)
    config["timezone"] = "UTC"
    config["touches"] = [imap_section(dovecot)]
    World(tmp_path, config)
    path = tmp_path / "config.yaml"
    now = datetime.now(UTC)
    dovecot.append("Sent", now - timedelta(days=3), to="bob@example.com")
    assert cli(path, "sync").returncode == 0  # Bob's clock counts from that mail
    dovecot.append("Sent", now - timedelta(seconds=5), to="ann@example.com")

    listed = cli(path, "touches", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {(r["contact_id"], r["kind"], r["journaled"]) for r in rows} == {
        (BOB, "email sent", True),
        (ANN, "email sent", False),
    }
    assert set(rows[0]) == {"contact_id", "name", "day", "at", "kind", "source", "journaled"}
    assert cli(path, "touches", "--since", "1").stdout.count("email sent") == 1

    history = cli(path, "history", "bob@example.com", "--json")
    assert history.returncode == 0, history.stderr
    (entry,) = json.loads(history.stdout)["touches"]
    assert (entry["kind"], entry["source"]) == ("email sent", "imap")
    assert entry["day"] == (now - timedelta(days=3)).date().isoformat()

    dry = cli(path, "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    sent = (now - timedelta(seconds=5)).date()
    assert f"would complete Ann Lee ({ANN}): email sent {sent}" in dry.stdout
    assert f"would regenerate Ann Lee ({ANN})" in dry.stdout
    # Nothing was written: the same dry run shows the same again.
    assert cli(path, "sync", "--dry-run").stdout == dry.stdout


def test_require_dovecot_runs_in_ci() -> None:
    """CI installs Dovecot (scripts/test.sh): its absence fails there, not skips."""
    require_dovecot()


@pytest.mark.parametrize("writes", [0, 1], ids=["before the completion", "before the successor"])
def test_a_crash_between_the_writes_of_a_detected_touch_loses_and_doubles_nothing(
    world: World,
    dovecot: Dovecot,  # noqa: F811
    writes: int,
) -> None:
    from kit import Crash, crash_after

    world.sync()
    first = world.the_open(ANN)
    dovecot.append("Sent", datetime(2026, 3, 4, 21, 0, tzinfo=NY), to="ann@example.com")
    world.at(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    engine = world.engine()
    crash_after(engine.backend, writes)
    with pytest.raises(Crash):
        engine.run_cycle()
    engine.state.close()

    world.advance(minutes=1)
    world.sync()
    (done,) = completed(world, ANN)
    assert done.uid == first.uid
    assert done.completed == datetime(2026, 3, 4, 21, 0, tzinfo=NY).astimezone(UTC)
    nxt = world.the_open(ANN)
    assert nxt.due == date(2026, 3, 25) and nxt.meta.from_uid == first.uid
    assert sum(world.sync().counts.values()) == 0


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_with_the_servers_ca_bundle_and_a_refused_unknown_certificate(
    tmp_path: Path, security: str
) -> None:
    from imap_server import running
    from servers import self_signed

    from kit_sync.config import ImapSourceConfig
    from kit_sync.touches.base import SourceUnavailable
    from kit_sync.touches.imap import ImapSource
    from kit_sync.touches.match import AddressBook

    require_dovecot()
    cert, key = self_signed(tmp_path / "tls")
    with running(tls=(cert, key)) as server:
        server.append("Sent", datetime(2026, 3, 3, 9, 0, tzinfo=NY), to="ann@example.com")
        section = imap_section(server, security=security, verify=str(cert))
        section["port"] = server.imaps_port if security == "ssl" else server.port
        book = AddressBook([("ann@example.com", ANN)])
        window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))
        source = ImapSource(ImapSourceConfig.model_validate(section), NY)
        try:
            found = source.fetch_touches(book, *window, None)
        finally:
            source.close()
        assert [t.contact_id for t in found.touches] == [ANN]

        section.pop("verify")  # the system's CAs do not know this certificate
        untrusted = ImapSource(ImapSourceConfig.model_validate(section), NY)
        with pytest.raises(SourceUnavailable) as err:
            untrusted.fetch_touches(book, *window, None)
        assert "TLS failed" in str(err.value) and "verify" in str(err.value)


def test_the_daemon_keeps_syncing_tasks_and_retries_a_down_source_with_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from imap_server import Dovecot
    from servers import free_port

    from kit_sync.app import load, open_engine
    from kit_sync.daemon import Daemon

    require_dovecot()
    port = free_port()
    server = Dovecot(port=port)
    config = copy.deepcopy(BASE_CONFIG)
    config["timezone"] = "America/New_York"
    config["touches"] = [imap_section(server)]
    World(tmp_path, config)
    clock = {"now": datetime(2026, 3, 2, 15, 0, tzinfo=UTC)}
    loaded = load(tmp_path / "config.yaml")
    engine = open_engine(loaded, clock=lambda: clock["now"])
    daemon = Daemon(engine, loaded.config, clock=lambda: clock["now"])
    try:
        with caplog.at_level(logging.INFO, logger="kit_sync"):
            daemon.cycle()
        assert daemon.failures == 0  # the task sync itself went through
        assert len(list((tmp_path / "tasks").glob("*.ics"))) == 2
        assert "retrying in 30 s (tasks are synced anyway)" in caplog.text
        caplog.clear()
        clock["now"] += timedelta(seconds=10)
        with caplog.at_level(logging.INFO, logger="kit_sync"):
            daemon.cycle()  # within the back-off: the source is not asked
        assert "retrying in" not in caplog.text
        server.start()
        server.append("Sent", datetime(2026, 3, 2, 9, 0, tzinfo=NY), to="ann@example.com")
        clock["now"] += timedelta(seconds=30)
        with caplog.at_level(logging.INFO, logger="kit_sync"):
            daemon.cycle()
        assert "works again" in caplog.text
        assert [t.contact_id for t in engine.state.touches() if t.detected] == [ANN]
    finally:
        assert engine.sources is not None
        engine.sources.close()
        engine.backend.close()
        engine.state.close()
        server.remove()


def test_a_missing_folder_is_a_clear_line(world: World, dovecot: Dovecot) -> None:  # noqa: F811
    world.edit_config(touches=[imap_section(dovecot, folders=["Sent", "Gesendet"])])
    result = world.sync()
    assert len(world.open_tasks()) == 2
    (line,) = result.source_failures
    assert "cannot read the folder 'Gesendet'" in line and "folders:" in line


def test_flag_changes_read_nothing_and_a_deleted_message_keeps_its_touch(
    world: World,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    world.sync()
    dovecot.append("Sent", datetime(2026, 3, 4, 12, 0, tzinfo=NY), to="ann@example.com")
    world.at(datetime(2026, 3, 5, 14, 0, tzinfo=UTC))
    world.sync()
    tasks = {t.uid: (t.status, t.due) for t in world.tasks()}
    client = dovecot.client()
    client.select_folder("Sent")
    uids = client.search(["ALL"])
    client.add_flags(uids, [b"\\Flagged"])  # HIGHESTMODSEQ moves, UIDNEXT does not
    world.advance(minutes=5)
    assert world.sync().detected == []
    client.delete_messages(uids)
    client.expunge()
    client.logout()
    world.advance(minutes=5)
    result = world.sync()
    assert result.detected == [] and sum(result.counts.values()) == 0
    assert {t.uid: (t.status, t.due) for t in world.tasks()} == tasks
    assert [t.contact_id for t in journal(world)] == [ANN]
