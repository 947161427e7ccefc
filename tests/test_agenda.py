"""The catch-up hour (`kit-sync agenda`) and the weekly load (`kit-sync load`)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kit_sync.agenda import agenda_markdown, agenda_text, build_agenda, urgency
from kit_sync.cadence import Interval
from kit_sync.config import AgendaOptions
from kit_sync.model import Channel, Contact, Touch
from kit_sync.overview import Person, Snapshot, fetch_snapshot, load_chart, weekly_load
from kit_sync.schedule import Policy
from tests.kit import BASE_CONFIG, World

TODAY = date(2026, 11, 21)  # the World's clock: 2026-11-21 10:00 UTC, Europe/Berlin

ROSTER: dict[str, Any] = {
    **{k: v for k, v in BASE_CONFIG.items() if k not in ("tiers", "contacts")},
    "tiers": {
        "vip": {"every": "4 weeks", "channel": "call", "priority": "high"},
        "core": {"every": "2 months", "channel": "email"},
        "low": {"every": "3 months", "channel": "email", "priority": "low"},
    },
    "contacts": [
        {"name": "Vera Voss", "id": "vip1", "tier": "vip", "email": "vera@example.com",
         "company": "Acme", "city": "Lyon", "notes": "Ask about the Lyon move"},
        {"name": "Victor Vance", "id": "vip2", "tier": "vip"},
        {"name": "Cora Cole", "id": "core1", "tier": "core"},
        {"name": "Lola Low", "id": "low1", "tier": "low"},
        {"name": "Sam Soon", "id": "soon1", "every": "2 weeks", "channel": "message"},
        {"name": "Mia Meet", "id": "meet1", "every": "6 weeks", "channel": "lunch",
         "phone": "+33 1 23 45 67 89"},
        {"name": "Fay Far", "id": "far1", "tier": "core"},
        {"name": "Andy Any", "id": "any1", "every": "30 days"},
    ],
}  # fmt: skip

TOUCHED = {
    "vip1": date(2026, 9, 26),  # due 10-24: 28 days late of 28 -> 1.0 x2 = 2.0
    "vip2": date(2026, 10, 10),  # due 11-07: 14 of 28 -> 0.5 x2 = 1.0
    "core1": date(2026, 7, 1),  # due 09-01: 81 of 61 -> 1.33
    "low1": date(2026, 5, 1),  # due 08-01: 112 of 91 -> 1.23 x0.5 = 0.62
    "soon1": date(2026, 11, 10),  # due 11-24: not yet (within 7 days)
    "meet1": date(2026, 8, 1),  # a lunch: to schedule
    "far1": date(2026, 11, 1),  # due 2027-01-01: not on the agenda
    "any1": date(2026, 10, 1),  # due 10-31: 21 of 30 -> 0.7
}


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path, copy.deepcopy(ROSTER))
    world.sync()
    engine = world.engine()
    for cid, day in TOUCHED.items():
        note = "talked about the move" if cid == "vip1" else ""
        engine.state.add_touch(Touch(cid, day, "cli", f"cli:{cid}", note))
    engine.state.close()
    world.sync()
    return world


def _agenda(world: World, minutes: int, options: AgendaOptions | None = None) -> Any:
    engine = world.engine()
    try:
        return build_agenda(fetch_snapshot(engine), minutes, options or engine.config.agenda)
    finally:
        engine.state.close()


def test_the_order_is_pinned_on_a_fixed_roster(world: World) -> None:
    agenda = _agenda(world, 60)
    assert [e.person.contact.id for e in agenda.now] == [
        "vip1",
        "core1",
        "vip2",
        "any1",
        "low1",
        "soon1",
    ]
    assert [e.person.contact.id for e in agenda.to_schedule] == ["meet1"]
    assert agenda.used == 15 + 5 + 15 + 5 + 5 + 3 and not agenda.left
    first = agenda.as_dict()["now"][0]
    assert first["name"] == "Vera Voss" and first["days_overdue"] == 28
    assert first["last_touch"] == {
        "day": "2026-09-26",
        "how": "touch",
        "note": "talked about the move",
    }
    assert (first["company"], first["city"], first["notes"]) == (
        "Acme",
        "Lyon",
        "Ask about the Lyon move",
    )
    assert agenda.as_dict()["to_schedule"][0]["phone"] == "+33 1 23 45 67 89"


def test_a_small_budget_passes_over_who_does_not_fit(world: World) -> None:
    agenda = _agenda(world, 30)
    assert [e.person.contact.id for e in agenda.now] == ["vip1", "core1", "any1", "low1"]
    assert [e.person.contact.id for e in agenda.left] == ["vip2", "soon1"]
    assert agenda.used == 30
    text = agenda_text(agenda)
    assert "30 of 30 minutes" in text and "Next time (2): Victor Vance, Sam Soon" in text
    assert "last touch: 2026-09-26 (touch) — talked about the move" in text


def test_per_channel_minutes_come_from_the_config(world: World) -> None:
    options = AgendaOptions(minutes={Channel.CALL: 25}, within=0)
    agenda = _agenda(world, 60, options)
    # vip1 25 + core1 5 + vip2 25 = 55; any1 5 = 60; soon1 is not due within 0 days.
    assert [e.person.contact.id for e in agenda.now] == ["vip1", "core1", "vip2", "any1"]
    assert agenda.used == 60


def test_markdown_is_a_printable_page(world: World) -> None:
    page = agenda_markdown(_agenda(world, 60))
    assert page.startswith("# Catch-up hour — Saturday 21 November 2026")
    assert "## 1. Vera Voss — call, 15 min (28 days overdue)" in page
    assert "## To schedule" in page and "**Mia Meet** — lunch" in page
    assert page.count("- [ ] done") == 6


# --- the budget and the first person, for any roster -------------------------------


@st.composite
def snapshots(draw: Any) -> Snapshot:
    count = draw(st.integers(0, 25))
    people = []
    for i in range(count):
        every = Interval(days=draw(st.integers(1, 200)))
        channel = draw(st.sampled_from(list(Channel)))
        contact = Contact(
            f"c{i}", f"Person {i}", every, channel, draw(st.sampled_from([0, 1, 5, 9]))
        )
        due = TODAY + timedelta(days=draw(st.integers(-300, 30)))
        people.append(Person(contact, "open", due, (), None))
    return Snapshot(datetime(2026, 11, 21, 10), TODAY, people, Policy())


@given(snapshots(), st.integers(1, 120))
def test_never_over_budget_and_the_most_urgent_that_fits_comes_first(
    snapshot: Snapshot, minutes: int
) -> None:
    options = AgendaOptions(within=7)
    agenda = build_agenda(snapshot, minutes, options)
    assert agenda.used <= minutes
    eligible = [
        p
        for p in snapshot.people
        if p.next_due is not None
        and p.next_due <= TODAY + timedelta(days=7)
        and p.contact.channel not in options.meetings
        and options.minutes_for(p.contact.channel) <= minutes
    ]
    if eligible:
        top = max(urgency(p, TODAY) for p in eligible)
        assert agenda.now and agenda.now[0].urgency == top
    scores = [e.urgency for e in agenda.now]
    assert scores == sorted(scores, reverse=True)
    # Meetings are never in the budget; everyone considered is listed once.
    assert all(e.person.contact.channel in options.meetings for e in agenda.to_schedule)
    ids = [e.person.contact.id for e in [*agenda.now, *agenda.to_schedule, *agenda.left]]
    assert len(ids) == len(set(ids))


def test_high_priority_comes_first_at_equal_lateness() -> None:
    high = Contact("h", "High", Interval(days=30), Channel.EMAIL, 1)
    normal = Contact("n", "Normal", Interval(days=30), Channel.EMAIL, 0)
    due = TODAY - timedelta(days=15)
    snap = Snapshot(
        datetime(2026, 11, 21),
        TODAY,
        [Person(normal, "open", due, (), None), Person(high, "open", due, (), None)],
        Policy(),
    )
    assert [e.person.contact.id for e in build_agenda(snap, 60, AgendaOptions(within=7)).now] == [
        "h",
        "n",
    ]


# --- the load ----------------------------------------------------------------------------


def test_weekly_load_and_its_chart(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["tiers"] = {"wide": {"every": "2 weeks"}}
    data["contacts"] = [{"name": f"P{i}", "id": f"p{i}", "tier": "wide"} for i in range(9)]
    data["schedule"] = {"capacity": {"per_week": 3}, "flex": "0%"}
    world = World(tmp_path, data)
    world.sync()
    engine = world.engine()
    for i in range(9):
        # 5 due in the week of 2026-11-30, 4 in the week after
        day = date(2026, 11, 17) if i < 5 else date(2026, 11, 24)
        engine.state.add_touch(Touch(f"p{i}", day, "cli", f"cli:{i}"))
    engine.state.close()
    world.sync()
    engine = world.engine()
    report = weekly_load(fetch_snapshot(engine), 4)
    engine.state.close()
    data_out = report.as_dict()
    assert data_out["capacity"] == 3 and data_out["overdue"] == 0
    assert [(w["week"], w["start"], w["due"], w["over_capacity"]) for w in data_out["weeks"]] == [
        ("2026-W47", "2026-11-16", 0, False),
        ("2026-W48", "2026-11-23", 0, False),
        ("2026-W49", "2026-11-30", 5, True),
        ("2026-W50", "2026-12-07", 4, True),
    ]
    chart = load_chart(report).splitlines()
    assert chart[0] == "capacity: 3 a week (│)"
    assert chart[3] == "2026-W49  30 Nov  ███│██  5 over"
    assert chart[1] == "2026-W47  16 Nov     │    0"
    assert "|" in load_chart(report, unicode=False)


# --- through the command line ------------------------------------------------------------


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", str(home / "config.yaml"), *args],
        capture_output=True,
        text=True,
        cwd=home,
        timeout=120,
        check=False,
    )


def test_agenda_and_load_commands(tmp_path: Path) -> None:
    data = copy.deepcopy(ROSTER)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert _cli(tmp_path, "sync").returncode == 0
    # Touched long ago: everyone is overdue whatever today is.
    for who in ("vip1", "vip2", "core1", "low1", "any1", "meet1"):
        done = _cli(tmp_path, "touch", who, "--on", "2020-01-06")
        assert done.returncode == 0, done.stderr
    done = _cli(tmp_path, "agenda", "--minutes", "40", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["budget_minutes"] == 40 and out["used_minutes"] <= 40
    assert out["now"][0]["id"] == "vip1"  # every one is as late; priority decides
    assert [p["id"] for p in out["to_schedule"]] == ["meet1"]
    assert sum(p["minutes"] for p in out["now"]) == out["used_minutes"]
    markdown = _cli(tmp_path, "agenda", "--markdown")
    assert markdown.returncode == 0 and markdown.stdout.startswith("# Catch-up hour")
    both = _cli(tmp_path, "agenda", "--json", "--markdown")
    assert both.returncode == 2 and "not both" in both.stderr
    load = _cli(tmp_path, "load", "--weeks", "3", "--json")
    assert load.returncode == 0, load.stderr
    report = json.loads(load.stdout)
    assert len(report["weeks"]) == 3 and report["overdue"] >= 6
    chart = _cli(tmp_path, "load")
    assert chart.returncode == 0 and len(chart.stdout.splitlines()) >= 12
