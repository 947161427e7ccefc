"""The weekly review (`kit-sync digest`): its sections, its schedule, and delivery to
a real SMTP server (aiosmtpd) started here on 127.0.0.1, by the command and by the
daemon, once per period across restarts."""

from __future__ import annotations

import copy
import email
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import given
from hypothesis import strategies as st

from kit_sync.daemon import Daemon
from kit_sync.digest import (
    build_digest,
    digest_markdown,
    digest_text,
    last_slot,
    send_digest_if_due,
)
from kit_sync.model import Touch
from kit_sync.occasions import Trip, next_birthday
from kit_sync.overview import fetch_snapshot
from tests.kit import BASE_CONFIG, World
from tests.servers import free_port, self_signed

SECTIONS = (
    "Due this week",
    "Overdue (",
    "Touched last week",
    "Added to the roster since",
    "Load, next 4 weeks",
)


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (b"me", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _config(port: int, **smtp: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"].append(
        {
            "name": "Mei Tanaka",
            "email": "mei@example.jp",
            "tier": "core",
            "birthday": "1988-11-30",
            "city": "Lisbon",
        }
    )
    data["digest"] = {
        "every": "monday 08:00",
        "to": "me@example.com",
        "from": "kit-sync@example.com",
        "smtp": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": "me",
            "password": "s3cret",
            **smtp,
        },
    }
    return data


def _world(tmp_path: Path, port: int) -> World:
    world = World(tmp_path, _config(port))
    world.sync()  # first seen on 2026-11-21 (Saturday)
    engine = world.engine()
    engine.state.add_touch(Touch("ann-example-com", date(2026, 11, 18), "cli", "t1", "coffee"))
    engine.state.add_touch(Touch("bob-example-com", date(2026, 9, 1), "cli", "t2"))
    engine.state.close()
    world.sync()
    return world


def _body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


def test_the_digest_has_every_section(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    world = _world(tmp_path, smtp[1])
    world.at(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 08:00 Berlin
    engine = world.engine()
    trips = (
        Trip("Lisbon", date(2026, 12, 10), date(2026, 12, 14)),
        Trip("Oslo", date(2027, 6, 1), date(2027, 6, 5)),  # too far ahead to list
    )
    digest = build_digest(fetch_snapshot(engine), since=date(2026, 11, 16), trips=trips)
    engine.state.close()
    data = digest.as_dict()
    # Ann: touched Wed 18 Nov (3 weeks: due 9 Dec); Bob: touched 1 Sep (2 months:
    # due 1 Nov, overdue); Mei: new, due somewhere in her first 2 months.
    assert data["today"] == "2026-11-23"
    assert [p["id"] for p in data["overdue_by_tier"]["core"]] == ["bob-example-com"]
    assert data["overdue_by_tier"]["core"][0]["days_overdue"] == 22
    assert data["touched_last_week"] == [
        {
            "id": "ann-example-com",
            "name": "Ann Lee",
            "day": "2026-11-18",
            "how": "touch",
            "note": "coffee",
        }
    ]
    assert {p["id"] for p in data["added"]} == {
        "ann-example-com",
        "bob-example-com",
        "mei-example-jp",
    }
    assert data["birthdays"] == [
        {"id": "mei-example-jp", "name": "Mei Tanaka", "day": "2026-11-30"}
    ]
    assert len(data["load"]["weeks"]) == 4
    assert data["trips"] == [
        {"city": "Lisbon", "from": "2026-12-10", "to": "2026-12-14", "people": ["mei-example-jp"]}
    ]
    text = digest_text(digest)
    for section in (*SECTIONS, "Birthdays coming up", "Trips coming up"):
        assert section in text, text
    assert "Lisbon 10–14 Dec: Mei Tanaka" in text
    assert 'Ann Lee on Wed 18 Nov — touch: "coffee"' in text
    page = digest_markdown(digest)
    assert page.startswith("# Weekly review — Monday 23 November 2026")
    assert "## Overdue (1)" in page and "```" in page


def test_next_birthday_on_29_february() -> None:
    assert next_birthday(date(1988, 2, 29), date(2027, 1, 1)) == date(2027, 2, 28)
    assert next_birthday(date(1988, 2, 29), date(2028, 1, 1)) == date(2028, 2, 29)
    assert next_birthday(date(1988, 3, 2), date(2026, 3, 3)) == date(2027, 3, 2)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(ZONES),
    st.sampled_from(["monday 08:00", "sunday 02:30", "daily 00:00", "friday 23:59"]),
)
def test_the_period_is_the_last_scheduled_time(now: datetime, zone: str, every: str) -> None:
    tz = ZoneInfo(zone)
    slot = last_slot(every, now, tz)
    local = now.astimezone(tz)
    assert slot <= local
    assert local - slot < timedelta(days=1 if every.startswith("daily") else 7, hours=2)
    word, clock = every.split()
    assert f"{slot.hour:02d}:{slot.minute:02d}" == clock
    if word != "daily":
        assert slot.strftime("%A").lower() == word
    # Every moment until the next slot belongs to the same period.
    assert last_slot(every, slot.astimezone(UTC) + timedelta(minutes=1), tz) == slot


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Sunday 29 March 2026, 02:30 does not exist in Berlin; the slot is still that day.
        (datetime(2026, 3, 29, 6, 0, tzinfo=UTC), datetime(2026, 3, 29, 2, 30)),
        # Sunday 25 October 2026, after 02:30 happened twice
        (datetime(2026, 10, 25, 3, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, 30)),
    ],
)
def test_the_period_on_dst_days(now: datetime, expected: datetime) -> None:
    tz = ZoneInfo("Europe/Berlin")
    slot = last_slot("sunday 02:30", now, tz)
    assert slot.replace(tzinfo=None) == expected


# --- delivery -----------------------------------------------------------------------------


def test_digest_send_delivers_one_email(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(port)))
    cli = [sys.executable, "-m", "kit_sync", "--config", str(tmp_path / "config.yaml")]
    assert subprocess.run([*cli, "sync"], cwd=tmp_path, timeout=120, check=False).returncode == 0
    done = subprocess.run(
        [*cli, "digest", "--send"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sent to me@example.com" in done.stdout
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["From"] == "kit-sync@example.com" and message["To"] == "me@example.com"
    assert message["Subject"].startswith("kit-sync weekly review")
    assert inbox.envelopes[0] == ("kit-sync@example.com", ["me@example.com"])
    body = _body(message)
    for section in SECTIONS:
        assert section in body, body
    assert "s3cret" not in body
    # --json and --markdown print without sending.
    out = subprocess.run(
        [*cli, "digest", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and set(json.loads(out.stdout)) >= {
        "due_this_week",
        "overdue_by_tier",
    }
    assert len(inbox.messages) == 1


def test_a_refused_login_or_an_absent_server_is_exit_3(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    cli = [sys.executable, "-m", "kit_sync", "--config", str(tmp_path / "config.yaml")]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(port, password="wrong")))
    done = subprocess.run(
        [*cli, "digest", "--send"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3
    assert f"the mail server 127.0.0.1:{port} refused the login of me" in done.stderr
    assert "wrong" not in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(free_port())))
    done = subprocess.run(
        [*cli, "digest", "--send"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3 and "cannot reach the mail server" in done.stderr, done.stderr
    assert not inbox.messages
    data = _config(port)
    del data["digest"]["smtp"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [*cli, "digest", "--send"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "needs a mail server" in done.stderr


def test_starttls_with_the_servers_own_ca(tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=_authenticator,
    )  # fmt: skip
    controller.start()
    try:
        world = World(tmp_path, _config(port, security="starttls", verify=str(cert)))
        world.sync()
        engine = world.engine()
        assert engine.config.digest is not None
        assert send_digest_if_due(engine, engine.config.digest)
        engine.state.close()
    finally:
        controller.stop()
    assert len(inbox.messages) == 1


def _wait(predicate: Any, what: str) -> None:
    for _ in range(600):  # bounded: at most ~60 s on a loaded machine
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _start(world: World) -> Daemon:
    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    daemon.scheduler.start()
    daemon.add_jobs()
    return daemon


def _stop(daemon: Daemon) -> None:
    daemon.stop.set()
    daemon.scheduler.shutdown(wait=True)
    daemon.engine.state.close()


def test_the_daemon_sends_once_per_period_across_restarts(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    world = _world(tmp_path, port)  # Saturday 21 Nov: the period of Monday 16 Nov 08:00
    daemon = _start(world)
    try:
        job = daemon.scheduler.get_job("digest")
        assert job is not None
        after = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
        assert job.trigger.get_next_fire_time(None, after) == datetime(
            2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/Berlin")
        )
        # Not sent while the daemon was down: sent once at start-up.
        _wait(lambda: daemon.digest_status is not None, "the start-up digest")
        assert daemon.digest_status == "sent"
        assert len(inbox.messages) == 1
    finally:
        _stop(daemon)

    # A restart in the same period sends nothing.
    world.advance(hours=30)
    daemon = _start(world)
    try:
        _wait(lambda: daemon.digest_status is not None, "the start-up check")
        assert daemon.digest_status == "already sent"
        # The cron job firing again within the period sends nothing either.
        daemon.digest_job()
        assert len(inbox.messages) == 1
        # Monday 08:00 in Berlin: the next period.
        world.at(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
        daemon.digest_job()
        assert daemon.digest_status == "sent" and len(inbox.messages) == 2
        daemon.digest_job()
        assert len(inbox.messages) == 2
    finally:
        _stop(daemon)
    body = _body(inbox.messages[1])
    assert 'Ann Lee on Wed 18 Nov — touch: "coffee"' in body
    for section in SECTIONS:
        assert section in body


def test_a_failed_send_is_retried_after_the_next_cycle(tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet
    world = _world(tmp_path, port)
    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    try:
        daemon.digest_job()
        assert daemon.digest_status is not None and daemon.digest_status.startswith("failed")
        inbox = Inbox()
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator,
            auth_require_tls=False,
        )  # fmt: skip
        controller.start()
        try:
            daemon.cycle()
        finally:
            controller.stop()
        assert daemon.digest_status == "sent" and len(inbox.messages) == 1
    finally:
        engine.state.close()
