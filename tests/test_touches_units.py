"""Touch sources without a server: config keys, address matching, the day in the
user's zone, the planning rule for detected touches (property-based), and the
runner's back-off and cursors (issue 14)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_sync.cadence import Interval
from kit_sync.config import load_config
from kit_sync.errors import ConfigError
from kit_sync.model import (
    EMAIL_SENT,
    AnchorKind,
    Contact,
    KitMeta,
    KitTask,
    Roster,
    Status,
    Touch,
)
from kit_sync.plan import Inputs, Kind, build_plan
from kit_sync.state import State
from kit_sync.touches.base import Found, SourceUnavailable, detected_touch
from kit_sync.touches.match import AddressBook, local_day
from kit_sync.touches.runner import SourceRunner

NY = ZoneInfo("America/New_York")


# --- config ------------------------------------------------------------------------------


def write(tmp_path: Path, touches: list[dict[str, Any]]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"timezone": "UTC", "touches": touches}))
    return path


def test_config_keys_and_defaults(tmp_path: Path) -> None:
    config, _ = load_config(
        write(
            tmp_path,
            [
                {"type": "imap", "host": "imap.example.com", "username": "me", "password": "x"},
                {
                    "type": "imap",
                    "host": "h",
                    "security": "starttls",
                    "username": "u",
                    "password": {"env": "IMAP_PASSWORD"},
                    "folders": ["Sent", "Archive"],
                    "count_received": True,
                    "lookback": "6 months",
                },
                {
                    "type": "caldav-events",
                    "url": "https://dav.example.com/cal/",
                    "username": "me",
                    "password": "y",
                },
            ],
        ),
        environ={"IMAP_PASSWORD": "from-env"},
    )
    imap, other, cal = config.touches
    assert (imap.port_number, imap.security, imap.folders, imap.count_received) == (
        993,
        "ssl",
        None,
        False,
    )
    assert imap.lookback == Interval(days=90)
    assert other.port_number == 143 and other.password.get_secret_value() == "from-env"
    assert other.lookback == Interval(months=6)
    assert cal.type == "caldav-events" and cal.lookback == Interval(days=90)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {
                "type": "imap",
                "host": "imap.example.com",
                "security": "none",
                "username": "u",
                "password": "p",
            },
            "security: none would send the password to imap.example.com",
        ),
        (
            {"type": "imap", "host": "h", "username": "u", "password": "p", "folderz": ["S"]},
            "touches[0].folderz: unknown option 'folderz'; did you mean 'folders'?",
        ),
        (
            {"type": "gmail"},
            "unknown touch source type 'gmail' (known: imap, caldav-events, exchange, graph)",
        ),
        (
            {"type": "imap", "host": "h", "username": "u", "password": "p", "lookback": "ever"},
            "touches[0].lookback: 'ever' is not an interval",
        ),
        ({"type": "caldav-events", "url": "dav.example.com"}, "is not an http(s) URL"),
        ({"type": "imap", "host": "h", "username": "u"}, "touches[0].password: is required"),
    ],
)
def test_config_problems_name_the_line_and_field(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, [entry]))
    assert message in str(err.value)
    assert "c.yaml:" in str(err.value)


def test_plain_imap_is_allowed_on_loopback_only(tmp_path: Path) -> None:
    entry = {
        "type": "imap",
        "host": "127.0.0.1",
        "security": "none",
        "username": "u",
        "password": "p",
    }
    config, _ = load_config(write(tmp_path, [entry]))
    assert config.touches[0].port_number == 143


# --- matching and days -------------------------------------------------------------------


def test_addresses_match_case_insensitively_and_nothing_is_folded() -> None:
    book = AddressBook(
        [("Ann@Example.com", "ann"), ("shared@example.com", "ann"), ("shared@example.com", "bob")]
    )
    assert book.contacts_in('"Lee, Ann" <ANN@example.COM>') == ["ann"]
    assert book.contacts_in("ann+news@example.com, a.nn@example.com, ann@example.org") == []
    assert book.contacts_in("shared@example.com", "ann@example.com") == ["ann", "bob"]
    assert book.contacts_of("mailto:ANN@example.com") == ["ann"]
    assert book.contacts_in(None, "") == []


def test_fingerprint_changes_with_the_roster_addresses() -> None:
    a = AddressBook([("ann@example.com", "ann")])
    assert a.fingerprint() == AddressBook([("ANN@example.com", "ann")]).fingerprint()
    assert a.fingerprint() != AddressBook([("ann@example.com", "bob")]).fingerprint()


@settings(max_examples=200)
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.timezones()
    ),
    st.sampled_from(["America/New_York", "Europe/Berlin", "Pacific/Chatham", "UTC"]),
)
def test_a_touch_falls_on_its_day_in_the_users_zone(moment: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    touch = detected_touch("ann", moment, EMAIL_SENT, "imap", "h", tz)
    assert touch.day == moment.astimezone(tz).date() == local_day(moment, tz)
    assert touch.at == moment and touch.detected


@pytest.mark.parametrize(
    ("sent", "day"),
    [
        (datetime(2026, 3, 7, 23, 30, tzinfo=NY), date(2026, 3, 7)),  # EST, UTC next day
        (datetime(2026, 3, 8, 3, 30, tzinfo=NY), date(2026, 3, 8)),  # the night DST starts
        (datetime(2026, 11, 1, 1, 30, tzinfo=NY, fold=1), date(2026, 11, 1)),  # repeated hour
        (datetime(2026, 11, 1, 23, 59, tzinfo=NY), date(2026, 11, 1)),
        (datetime(2026, 11, 2, 0, 0, tzinfo=NY), date(2026, 11, 2)),  # midnight
    ],
)
def test_new_york_days_across_dst_and_midnight(sent: datetime, day: date) -> None:
    assert local_day(sent.astimezone(UTC), NY) == day


# --- the planning rule -------------------------------------------------------------------

ANN = Contact("ann", "Ann Lee", Interval(days=21), emails=("ann@example.com",))
CREATED = date(2026, 3, 1)


def inputs(touches: list[Touch], *, anchor: date = date(2026, 2, 20)) -> Inputs:
    task = KitTask(
        uid="kit-open",
        href="open.ics",
        etag="1",
        status=Status.OPEN,
        due=anchor + timedelta(days=21),
        meta=KitMeta("ann", anchor, AnchorKind.TOUCH, "P21D", anchor + timedelta(days=21)),
        created=datetime.combine(CREATED, time(9), tzinfo=UTC),
    )
    return Inputs(
        roster=Roster([ANN]),
        tasks=[task],
        journal=touches,
        now=datetime(2026, 4, 10, 12, tzinfo=UTC),
        tz=NY,
        first_seen={"ann": date(2026, 1, 1)},
    )


def sent_on(day: date, n: int = 0) -> Touch:
    at = datetime.combine(day, time(10, n), tzinfo=NY)
    return detected_touch("ann", at, EMAIL_SENT, "imap", f"m{day}{n}", NY)


@settings(max_examples=150)
@given(st.lists(st.dates(date(2026, 2, 1), date(2026, 4, 10)), min_size=1, max_size=6))
def test_detected_touches_complete_once_as_of_the_latest(days: list[date]) -> None:
    touches = [sent_on(d, i) for i, d in enumerate(days)]
    plan = build_plan(inputs(touches))
    latest = max(days)
    completes = [a for a in plan.actions if a.verb == "complete"]
    regenerated = [a for a in plan.actions if a.kind is Kind.REGENERATE]
    if latest > date(2026, 2, 20) and latest >= CREATED:
        (done,) = completes
        assert done.change is not None and done.change.status is Status.COMPLETED
        assert done.change.completed_at == max(t.at for t in touches if t.day == latest)  # type: ignore[type-var]
        assert done.change.content is not None
        assert done.change.content.description.startswith(f"Detected: email sent {latest}")
        (new,) = regenerated
        assert new.new is not None and new.after_previous
        assert new.new.meta.anchor == latest and new.new.meta.from_uid == "kit-open"
        assert new.new.due == latest + timedelta(days=21)
    else:
        assert completes == [] and regenerated == []
        if latest > date(2026, 2, 20):  # before the task was created: the due moves
            (update,) = plan.actions
            assert update.change is not None and update.change.due == latest + timedelta(21)


def test_the_completed_task_is_not_journaled_again_as_a_tick() -> None:
    touch = sent_on(date(2026, 3, 5))
    completed = KitTask(
        uid="kit-open",
        href="open.ics",
        etag="2",
        status=Status.COMPLETED,
        due=date(2026, 3, 13),
        meta=KitMeta("ann", date(2026, 2, 20), AnchorKind.TOUCH, "P21D", date(2026, 3, 13)),
        completed=touch.at,
    )
    base = inputs([touch])
    plan = build_plan(Inputs(**{**base.__dict__, "tasks": [completed]}))
    assert plan.touches == []
    assert [a.kind for a in plan.actions] == [Kind.REGENERATE]


# --- the runner --------------------------------------------------------------------------


class FlakySource:
    type = "imap"

    def __init__(self) -> None:
        self.calls = 0
        self.down = True
        self.cursors: list[str | None] = []

    name = "flaky"
    key = "touches|flaky"

    def fetch_touches(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        self.calls += 1
        self.cursors.append(cursor)
        if self.down:
            raise SourceUnavailable("flaky: connection refused")
        at = datetime(2026, 3, 2, 12, tzinfo=UTC)
        return Found(
            [
                detected_touch(c, at, EMAIL_SENT, "imap", "x", NY)
                for c in book.contacts_of("ann@example.com")
            ],
            cursor="c1",
            read=1,
        )

    def close(self) -> None:
        pass


def test_a_failing_source_backs_off_and_comes_back(tmp_path: Path) -> None:
    source = FlakySource()
    config = type("C", (), {"type": "imap", "lookback": Interval(days=90)})()
    runner = SourceRunner(
        [config], NY, max_backoff=timedelta(minutes=5), opener=lambda c, tz: source
    )
    state = State(tmp_path / "s.sqlite")
    roster = Roster([ANN])
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    try:
        assert runner.poll(state, roster, now).failures == ["flaky: flaky: connection refused"]
        # Within the back-off (30 s after one failure) the source is not asked.
        assert (
            "next try after" in runner.poll(state, roster, now + timedelta(seconds=20)).failures[0]
        )
        assert source.calls == 1
        runner.poll(state, roster, now + timedelta(seconds=31))
        assert source.calls == 2  # and now 60 s
        runner.poll(state, roster, now + timedelta(seconds=80))
        assert source.calls == 2
        source.down = False
        ok = runner.poll(state, roster, now + timedelta(seconds=92))
        assert ok.failures == [] and [t.contact_id for t in ok.touches] == ["ann"]
        # The cursor came back next time, wrapped with the roster's fingerprint.
        again = runner.poll(state, roster, now + timedelta(seconds=93))
        assert again.touches == [] and source.cursors[-1] == "c1"
        # A new address on the roster: the source looks back again (cursor None).
        roster2 = Roster([ANN, Contact("bob", "Bob", Interval(days=7), emails=("b@x.org",))])
        runner.poll(state, roster2, now + timedelta(seconds=94))
        assert source.cursors[-1] is None
    finally:
        state.close()


def test_an_address_in_a_quoted_name_is_not_a_recipient() -> None:
    book = AddressBook([("ann@example.com", "ann"), ("bob@example.com", "bob")])
    assert book.contacts_in('"ann@example.com" <bob@example.com>') == ["bob"]
    assert book.contacts_in("bob@example.com (was ann@example.com)") == ["bob"]
    assert book.contacts_in("=?utf-8?q?Ann_L=C3=A9e?= <ann@example.com>") == ["ann"]
    assert book.contacts_in("Ann Lee <ann@example.com>;bob@example.com") == ["ann", "bob"]


def test_fetched_header_fields_are_unfolded_and_the_first_one_counts() -> None:
    from kit_sync.touches.imap import _headers

    raw = (
        b"To: Ann Lee <ann@example.com>,\r\n\tBob <bob@example.com>\r\n"
        b"DATE: Tue, 10 Mar 2026 23:30:00 -0400\r\nTo: eve@example.com\r\n\r\n"
    )
    headers = _headers(raw)
    assert headers["to"] == "Ann Lee <ann@example.com>, Bob <bob@example.com>"
    assert headers["date"] == "Tue, 10 Mar 2026 23:30:00 -0400"
