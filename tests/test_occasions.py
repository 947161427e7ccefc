"""Occasions: birthday tasks, trips and the calendar feed (issue 15), end to end on
the local folder with a clock the test moves."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar
from kit import BASE_CONFIG, World

from kit_sync.cadence import Interval
from kit_sync.model import Status
from kit_sync.occasions import (
    Trip,
    birthday_in,
    next_birthday,
    split_key,
    task_key,
    trip_for,
    with_trip,
)

BDAY = task_key("ann@example.com".replace("@", "-at-"), "birthday")


def config(**extra: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    data.update(extra)
    return data


def world(tmp_path: Path, now: datetime, **extra: Any) -> World:
    w = World(tmp_path, config(**extra))
    w.at(now)
    return w


def kinds(w: World) -> dict[str | None, list[Any]]:
    out: dict[str | None, list[Any]] = {}
    for t in w.open_tasks():
        out.setdefault(split_key(t.contact_id)[1], []).append(t)
    return out


# --- pure rules ----------------------------------------------------------------------


@given(st.dates(date(1904, 1, 1), date(2096, 12, 31)), st.dates(date(1990, 1, 1), date(2090, 1, 1)))
def test_next_birthday_is_the_first_on_or_after(born: date, after: date) -> None:
    day = next_birthday(born, after)
    assert after <= day < after + timedelta(days=367)
    if (born.month, born.day) == (2, 29) and day.month == 2 and day.day == 28:
        assert not (day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0))
    else:
        assert (day.month, day.day) == (born.month, born.day)
    # nothing in between is a birthday
    assert next_birthday(born, after) == next_birthday(born, min(day, after))


def test_29_february_falls_on_28_february_in_common_years() -> None:
    born = date(1992, 2, 29)
    assert birthday_in(born, 2027) == date(2027, 2, 28)
    assert birthday_in(born, 2028) == date(2028, 2, 29)
    assert next_birthday(born, date(2027, 3, 1)) == date(2028, 2, 29)


def test_task_keys_round_trip_and_stay_apart() -> None:
    assert split_key(task_key("ann", "birthday")) == ("ann", "birthday")
    assert split_key("ann") == ("ann", None)
    # an id with the separator but another word after it is a plain id
    assert split_key("a#b") == ("a#b", None)


LISBON = Trip("Lisbon", date(2027, 3, 10), date(2027, 3, 14), ("Lisboa",))


def test_trip_label_and_title() -> None:
    assert with_trip("Keep in touch with Ana", LISBON) == (
        "Keep in touch with Ana — in Lisbon 10–14 Mar"
    )
    span = Trip("Oslo", date(2027, 12, 30), date(2028, 1, 2))
    assert span.label() == "in Oslo 30 Dec 2027–2 Jan 2028"


@pytest.mark.parametrize(
    ("city", "due", "pulled"),
    [
        ("Lisbon", date(2027, 4, 14), True),  # a month after: met during the trip
        ("LISBOA", date(2027, 4, 14), True),  # alias, case-insensitive
        ("lisbon", date(2027, 5, 14), True),  # exactly `pull` after the end
        ("Lisbon", date(2027, 5, 15), False),  # beyond the pull
        ("Lisbon", date(2027, 3, 1), False),  # due before the trip: left alone
        ("Lisbon", date(2027, 3, 12), False),  # due during the trip: left alone
        ("Porto", date(2027, 4, 14), False),
        (None, date(2027, 4, 14), False),
    ],
)
def test_which_contacts_a_trip_pulls(city: str | None, due: date, pulled: bool) -> None:
    got = trip_for(city, due, date(2027, 1, 1), (LISBON,), Interval(months=2))
    assert (got is LISBON) is pulled


def test_a_past_trip_pulls_nobody() -> None:
    assert trip_for("Lisbon", date(2027, 4, 1), date(2027, 3, 15), (LISBON,), Interval(2)) is None


# --- birthdays, end to end --------------------------------------------------------------

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def with_birthdays(born: str, **birthdays: Any) -> dict[str, Any]:
    contacts = copy.deepcopy(BASE_CONFIG["contacts"])
    contacts[0]["birthday"] = born
    return {"contacts": contacts, "birthdays": {"tasks": True, **birthdays}}


def test_one_birthday_task_due_on_the_next_birthday(tmp_path: Path) -> None:
    w = world(tmp_path, NOW, **with_birthdays("1988-03-02"))
    w.sync()
    open_ = kinds(w)
    assert len(open_[None]) == 2  # both keep-in-touch tasks
    [bday] = open_["birthday"]
    assert bday.due == date(2027, 3, 2)
    assert bday.summary == "Birthday: Ann Lee"
    assert split_key(bday.contact_id)[0] == "ann-example-com"
    # a second sync changes nothing
    assert not w.sync().plan.actions


def test_completing_it_schedules_the_following_year_and_leaves_keep_in_touch(
    tmp_path: Path,
) -> None:
    w = world(tmp_path, NOW, **with_birthdays("1988-03-02"))
    w.sync()
    [bday] = kinds(w)["birthday"]
    keep = {t.contact_id: t.due for t in kinds(w)[None]}
    # ticked off early, on 28 February, and late, a week after: both give 2 March 2028
    w.at(datetime(2027, 2, 28, 10, 0, tzinfo=UTC))
    w.complete_raw(bday, "COMPLETED:20270228T100000Z")
    w.sync()
    [nxt] = kinds(w)["birthday"]
    assert nxt.due == date(2028, 3, 2)
    assert {t.contact_id: t.due for t in kinds(w)[None]} == keep  # not a touch by default
    done = [t for t in w.tasks() if t.status is Status.COMPLETED]
    assert [t.uid for t in done] == [bday.uid]
    w.at(datetime(2028, 3, 9, 10, 0, tzinfo=UTC))
    w.complete_raw(nxt, "COMPLETED:20280309T100000Z")
    w.sync()
    [third] = kinds(w)["birthday"]
    assert third.due == date(2029, 3, 2)


def test_a_29_february_birthday_is_due_28_february_in_2027(tmp_path: Path) -> None:
    w = world(tmp_path, NOW, **with_birthdays("1992-02-29"))
    w.sync()
    [bday] = kinds(w)["birthday"]
    assert bday.due == date(2027, 2, 28)


def test_lead_days_and_counts_as_touch(tmp_path: Path) -> None:
    w = world(tmp_path, NOW, **with_birthdays("1988-03-02", lead="3 days", counts_as_touch=True))
    w.sync()
    [bday] = kinds(w)["birthday"]
    assert bday.due == date(2027, 2, 27)
    w.at(datetime(2027, 3, 2, 8, 0, tzinfo=UTC))
    w.complete_raw(bday, "COMPLETED:20270302T080000Z")
    w.sync()
    ann = w.the_open("ann-example-com")
    assert ann.meta.anchor == date(2027, 3, 2)  # the keep-in-touch clock restarted
    assert ann.due is not None and ann.due > date(2027, 3, 2)


def test_paused_contact_or_removed_birthday_cancels_it(tmp_path: Path) -> None:
    w = world(tmp_path, NOW, **with_birthdays("1988-03-02"))
    w.sync()
    [bday] = kinds(w)["birthday"]
    data = copy.deepcopy(w.config_data)
    del data["contacts"][0]["birthday"]
    w.write_config(data)
    w.sync()
    assert "birthday" not in kinds(w)
    [gone] = [t for t in w.tasks() if t.uid == bday.uid]
    assert gone.status is Status.CANCELLED
    # back again, then paused
    w.write_config(config(**with_birthdays("1988-03-02")))
    w.sync()
    assert len(kinds(w)["birthday"]) == 1
    data = copy.deepcopy(w.config_data)
    data["contacts"][0]["paused"] = True
    w.write_config(data)
    w.sync()
    assert "birthday" not in kinds(w)


def test_a_changed_birthday_moves_the_open_task(tmp_path: Path) -> None:
    w = world(tmp_path, NOW, **with_birthdays("1988-03-02"))
    w.sync()
    w.write_config(config(**with_birthdays("1988-05-20")))
    w.sync()
    [bday] = kinds(w)["birthday"]
    assert bday.due == date(2027, 5, 20)


# --- trips ---------------------------------------------------------------------------


def trip_world(tmp_path: Path, trips: Any) -> World:
    contacts = [
        # due 2027-04-14: a month after a 10-14 March trip
        {"name": "Ana Lisboa", "email": "ana@example.pt", "every": "3 months", "city": "Lisbon"},
        {"name": "Rui Porto", "email": "rui@example.pt", "every": "3 months", "city": "Porto"},
        {"name": "Eva Early", "email": "eva@example.pt", "every": "2 months", "city": "lisboa"},
    ]
    w = World(tmp_path, config(contacts=contacts))
    w.at(datetime(2027, 1, 14, 9, 0, tzinfo=UTC))
    w.sync()
    # everyone was met on 14 January: their tasks are due 14 January + every
    for t in w.open_tasks():
        w.complete_raw(t, "COMPLETED:20270114T090000Z")
    w.edit_config(trips=trips)
    w.sync()
    return w


TRIP = [{"city": "Lisbon", "from": "2027-03-10", "to": "2027-03-14", "aliases": ["Lisboa"]}]


def test_a_trip_pulls_a_contact_in_its_city_due_after_it(tmp_path: Path) -> None:
    w = trip_world(tmp_path, [])
    before = {t.contact_id: t.due for t in w.open_tasks()}
    assert before == {
        "ana-example-pt": date(2027, 4, 14),
        "rui-example-pt": date(2027, 4, 14),
        "eva-example-pt": date(2027, 3, 14),
    }
    w.edit_config(trips=TRIP)
    w.sync()
    ana = w.the_open("ana-example-pt")
    assert ana.due == date(2027, 3, 10)
    assert ana.summary == "Keep in touch with Ana Lisboa — in Lisbon 10–14 Mar"
    assert w.the_open("rui-example-pt").due == date(2027, 4, 14)  # Porto
    assert w.the_open("eva-example-pt").due == date(2027, 3, 14)  # due during the trip
    assert not w.sync().plan.actions  # stable
    # the trip is cancelled: Ana's date and title come back
    w.edit_config(trips=[])
    w.sync()
    ana = w.the_open("ana-example-pt")
    assert ana.due == date(2027, 4, 14)
    assert ana.summary == "Keep in touch with Ana Lisboa"
    assert not w.sync().plan.actions


def test_a_trip_with_pull_mapping_form_and_a_new_contact(tmp_path: Path) -> None:
    w = trip_world(tmp_path, {"pull": "1 month", "list": TRIP})
    assert w.the_open("ana-example-pt").due == date(2027, 3, 10)


def test_a_user_snooze_beats_a_trip(tmp_path: Path) -> None:
    w = trip_world(tmp_path, [])
    w.set_due_raw(w.the_open("ana-example-pt"), date(2027, 4, 20))
    w.edit_config(trips=TRIP)
    w.sync()
    assert w.the_open("ana-example-pt").due == date(2027, 4, 20)


def test_touching_a_pulled_contact_counts_from_that_day(tmp_path: Path) -> None:
    w = trip_world(tmp_path, TRIP)
    ana = w.the_open("ana-example-pt")
    assert ana.due == date(2027, 3, 10)
    w.at(datetime(2027, 3, 11, 18, 0, tzinfo=UTC))
    w.complete_raw(ana, "COMPLETED:20270311T180000Z")
    w.sync()
    nxt = w.the_open("ana-example-pt")
    assert nxt.due == date(2027, 6, 11)
    assert "Lisbon" not in nxt.summary


# --- the calendar feed ----------------------------------------------------------------


def test_feed_has_one_all_day_event_per_open_task(tmp_path: Path) -> None:
    extra = with_birthdays("1988-03-02")
    w = world(tmp_path, NOW, calendar={"path": "feed/kit.ics"}, **extra)
    w.sync()
    path = tmp_path / "feed" / "kit.ics"
    cal = Calendar.from_ical(path.read_bytes())
    events = cal.walk("VEVENT")
    opens = w.open_tasks()
    assert len(events) == len(opens) == 3
    assert {(str(e["SUMMARY"]), e.decoded("DTSTART")) for e in events} == {
        (t.summary, t.due) for t in opens
    }
    for e in events:
        start = e.decoded("DTSTART")
        assert type(start) is date
        assert e.decoded("DTEND") == start + timedelta(days=1)
    assert not cal.walk("VTIMEZONE")
    assert "REFRESH-INTERVAL" in cal and "X-PUBLISHED-TTL" in cal
    assert path.stat().st_mode & 0o777 == 0o600
    uids = {str(e["UID"]) for e in events}
    # unchanged sync: the file is not rewritten
    mtime = path.stat().st_mtime_ns
    w.advance(minutes=10)
    w.sync()
    assert path.stat().st_mtime_ns == mtime
    # a completion moves the event (same UID), no stale event left behind
    ann = w.the_open("ann-example-com")
    w.complete_raw(ann, "COMPLETED:20261202T100000Z")
    w.sync()
    events = Calendar.from_ical(path.read_bytes()).walk("VEVENT")
    assert {str(e["UID"]) for e in events} == uids
    ann_event = [
        e for e in events if "Ann" in str(e["SUMMARY"]) and "Birthday" not in str(e["SUMMARY"])
    ]
    assert [e.decoded("DTSTART") for e in ann_event] == [w.the_open("ann-example-com").due]


def test_a_contact_who_moved_away_loses_the_trip(tmp_path: Path) -> None:
    w = trip_world(tmp_path, TRIP)
    assert w.the_open("ana-example-pt").due == date(2027, 3, 10)
    data = copy.deepcopy(w.config_data)
    del data["contacts"][0]["city"]
    w.write_config(data)
    w.sync()
    ana = w.the_open("ana-example-pt")
    assert (ana.due, ana.summary) == (date(2027, 4, 14), "Keep in touch with Ana Lisboa")


# --- kit-sync near ------------------------------------------------------------------------


def test_near_lists_everyone_in_the_city_with_aliases(tmp_path: Path) -> None:
    from kit_sync.near import near_dict, near_text, people_near
    from kit_sync.overview import fetch_snapshot

    w = trip_world(tmp_path, TRIP)
    data = copy.deepcopy(w.config_data)
    data["contacts"][0]["notes"] = "Architect.\nAsk about the tram line."
    w.write_config(data)
    engine = w.engine()
    try:
        report = people_near(fetch_snapshot(engine), "LISBOA", engine.config.trips.trips())
    finally:
        engine.state.close()
    out = near_dict(report)
    assert [p["name"] for p in out["people"]] == ["Ana Lisboa", "Eva Early"]
    assert out["people"][0]["notes"] == "Architect.\nAsk about the tram line."
    assert out["people"][0]["last_touch"] == "2027-01-14"
    assert out["people"][0]["next_due"] == "2027-03-10"
    assert out["trips"] == [{"city": "Lisbon", "from": "2027-03-10", "to": "2027-03-14"}]
    text = near_text(report)
    assert "Ask about the tram line." in text
    assert "your trip: in Lisbon 10–14 Mar" in text
    assert "Rui Porto" not in text


def test_near_command(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from kit_sync.cli import app

    w = trip_world(tmp_path, TRIP)
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(w.config_path), "near", "lisbon", "--json"])
    assert result.exit_code == 0, result.output
    assert {p["name"] for p in json.loads(result.output)["people"]} == {"Ana Lisboa", "Eva Early"}
    nobody = runner.invoke(app, ["--config", str(w.config_path), "near", "Oslo"])
    assert nobody.exit_code == 0 and "nobody on the roster lives in Oslo" in nobody.output
    missing = runner.invoke(app, ["--config", str(w.config_path), "near"])
    assert missing.exit_code == 2


def test_the_daemon_serves_the_feed_only_with_the_token(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from test_service_health import free_port, wait_for

    port = free_port()
    token = "feed-secret-4711"
    World(
        tmp_path,
        config(
            calendar={"path": "kit.ics"},
            health={"listen": f"127.0.0.1:{port}", "token": {"env": "FEED_TOKEN"}},
        ),
    )
    base = f"http://127.0.0.1:{port}/calendar.ics"

    def get(url: str, bearer: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(url)
        if bearer is not None:
            request.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_SYNC")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit_sync", "-c", "config.yaml", "run"],
        cwd=tmp_path,
        env=env | {"FEED_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: get(f"{base}?token={token}")[0] == 200, "the feed", timeout=120)
        assert get(base)[0] == 401  # a subscription fetch without the token
        assert get(f"{base}?token=wrong")[0] == 401
        assert get(base, "wrong")[0] == 401
        status, body = get(base, token)
        assert status == 200
        events = Calendar.from_ical(body).walk("VEVENT")
        assert {str(e["SUMMARY"]) for e in events} == {
            "Keep in touch with Ann Lee",
            "Keep in touch with Bob Stone",
        }
        assert get(f"http://127.0.0.1:{port}/healthz?token={token}")[0] == 401  # header only
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
