"""Placement of due dates (DESIGN rule 12): the pure rule, property-based, and the
issue's must-show on the engine with the local backend."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_sync.cadence import Interval
from kit_sync.config import load_config
from kit_sync.errors import ConfigError
from kit_sync.schedule import (
    MAX_FLEX_DAYS,
    Load,
    Policy,
    Request,
    capacity_warning,
    fits,
    place,
    place_all,
    week_of,
    weekly_rate,
    window,
)
from tests.kit import BASE_CONFIG, World

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2080, 12, 31))
intervals = st.one_of(
    st.builds(Interval, days=st.integers(1, 400)),
    st.builds(Interval, months=st.integers(1, 24)),
)
policies = st.builds(
    Policy,
    capacity=st.one_of(st.none(), st.integers(1, 20)),
    flex=st.sampled_from([0.0, 0.05, 0.15, 0.3, 0.5]),
    easy_days=st.frozensets(st.integers(0, 6), max_size=6),
)


@st.composite
def requests(draw: Any) -> Request:
    anchor = draw(days)
    every = draw(intervals)
    nominal = every.after(anchor)
    today = anchor + timedelta(days=draw(st.integers(0, 500)))
    return Request(
        draw(st.sampled_from(["ann", "bob", "cy-9", "zoë"])), nominal, every, anchor, today
    )


@st.composite
def loads(draw: Any, around: date) -> Load:
    offsets = draw(st.lists(st.integers(-40, 40), max_size=60))
    return Load.of(around + timedelta(days=o) for o in offsets)


@settings(max_examples=150)
@given(st.data())
def test_placed_day_keeps_every_promise(data: Any) -> None:
    request = data.draw(requests())
    policy = data.draw(policies)
    load = data.draw(loads(request.nominal))
    placed = place(request, load, policy)
    f = policy.flex_days(request.every)
    assert f <= MAX_FLEX_DAYS
    assert placed.day.weekday() not in policy.easy_days
    assert placed.day > request.anchor
    # Within nominal ± flex, or just past it when every day there is easy/gone.
    assert request.nominal - timedelta(days=f) <= placed.day
    assert placed.day <= request.nominal + timedelta(days=f + 7)
    # Never pulled into the past, and never later-than-late: a nominal day already
    # past is the earliest.
    assert placed.day >= min(request.today, request.nominal)
    # The next plan keeps it: a placed date fits its own window, whatever today is.
    assert fits(placed.day, request, policy)
    later = Request(
        request.key, request.nominal, request.every, request.anchor, request.today + timedelta(99)
    )
    assert fits(placed.day, later, policy)
    # Deterministic: the same inputs give the same day.
    assert place(request, Load.of(load.days.elements()), policy) == placed


@given(requests(), policies, st.data())
def test_the_least_loaded_week_wins_then_the_nearest_day(
    request: Request, policy: Policy, data: Any
) -> None:
    load = data.draw(loads(request.nominal))
    placed = place(request, load, policy)
    candidates = window(request, policy)
    least = min(load.week(d) for d in candidates)
    assert load.week(placed.day) == least
    same = [
        d for d in candidates if load.week(d) == least and load.days[d] == load.days[placed.day]
    ]
    assert abs((placed.day - request.nominal).days) == min(
        abs((d - request.nominal).days) for d in same
    )
    if policy.capacity is not None:
        assert placed.over_capacity == (least >= policy.capacity)


@given(requests(), st.sampled_from([0.0, 0.15]))
def test_without_load_or_easy_days_the_nominal_day_is_kept(request: Request, flex: float) -> None:
    if request.nominal < request.today:
        return
    assert place(request, Load(), Policy(flex=flex)).day == request.nominal


@given(st.lists(requests(), min_size=1, max_size=40), policies)
def test_placing_several_is_independent_of_their_order(
    batch: list[Request], policy: Policy
) -> None:
    unique = list({r.key: r for r in batch}.values())
    one = place_all(unique, Load(), policy)
    other = place_all(list(reversed(unique)), Load(), policy)
    assert one == other


@given(days, intervals)
def test_old_avoid_weekends_gives_the_same_dates_as_before(touch: date, every: Interval) -> None:
    from kit_sync.cadence import Rules, next_due

    old = next_due(touch, every, Rules(avoid_weekends=True))
    request = Request("x", every.after(touch), every, touch, touch)
    assert place(request, Load(), Policy(easy_days=frozenset({5, 6}))).day == old


def test_flex_is_a_share_of_the_interval_at_most_14_days() -> None:
    policy = Policy(flex=0.15)
    assert policy.flex_days(Interval(days=21)) == 3
    assert policy.flex_days(Interval(months=3)) == 13
    assert policy.flex_days(Interval(months=12)) == MAX_FLEX_DAYS
    assert Policy().flex_days(Interval(months=12)) == 0


def test_weekly_rate_and_the_infeasible_warning() -> None:
    roster = [Interval(days=14)] * 28  # 14 a week
    assert weekly_rate(roster) == pytest.approx(14)
    warning = capacity_warning(roster, Policy(capacity=10))
    assert warning is not None and "needs about 14 a week; capacity is 10" in warning
    assert capacity_warning(roster, Policy(capacity=14)) is None
    assert capacity_warning(roster, Policy()) is None


# --- DST: the touch day is the local day, placement counts whole days -------------------


@pytest.mark.parametrize(
    ("zone", "completed", "touch_day"),
    [
        # 23:30 local on the night Europe/Berlin springs forward (UTC 21:30)
        ("Europe/Berlin", datetime(2027, 3, 27, 22, 30, tzinfo=UTC), date(2027, 3, 27)),
        ("Europe/Berlin", datetime(2027, 3, 28, 21, 30, tzinfo=UTC), date(2027, 3, 28)),
        # 00:30 local just after New York falls back
        ("America/New_York", datetime(2026, 11, 1, 4, 30, tzinfo=UTC), date(2026, 11, 1)),
        ("America/New_York", datetime(2026, 11, 1, 3, 30, tzinfo=UTC), date(2026, 10, 31)),
    ],
)
def test_placement_counts_from_the_local_touch_day_across_dst(
    tmp_path: Path, zone: str, completed: datetime, touch_day: date
) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["timezone"] = zone
    data["schedule"] = {"flex": "15%", "easy_days": ["saturday", "sunday"]}
    world = World(tmp_path, data)
    world.at(completed - timedelta(days=30))
    world.sync()
    world.complete_raw(world.the_open("ann-example-com"), f"COMPLETED:{completed:%Y%m%dT%H%M%SZ}")
    world.at(completed + timedelta(hours=2))
    world.sync()
    task = world.the_open("ann-example-com")
    nominal = touch_day + timedelta(weeks=3)
    assert task.meta.anchor == touch_day
    assert task.due is not None and abs((task.due - nominal).days) <= 3
    assert task.due.weekday() < 5
    assert task.meta.planned_due == task.due and not task.snoozed


# --- the must-show on the engine ----------------------------------------------


def _roster_config(count: int, every: str, schedule: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    data["tiers"] = {"wide": {"every": every, "channel": "email"}}
    data["contacts"] = [
        {"name": f"Person {i:02d}", "id": f"p{i:02d}", "tier": "wide"} for i in range(count)
    ]
    data["schedule"] = schedule
    return data


EVEN = {"capacity": {"per_week": 10}, "flex": "15%", "easy_days": ["saturday", "sunday"]}


def test_forty_people_touched_on_one_day_spread_over_weeks(tmp_path: Path) -> None:
    world = World(tmp_path, _roster_config(40, "3 months", EVEN))
    world.sync()
    day = world.today()  # 2026-11-21
    for task in world.open_tasks():
        world.complete_raw(task, "COMPLETED:20261121T120000Z")
    world.advance(hours=2)
    result = world.sync()
    assert result.counts["regenerated"] == 40 and not result.plan.warnings
    dues = {t.contact_id: t.due for t in world.open_tasks()}
    assert len(dues) == 40 and all(dues.values())
    nominal = Interval(months=3).after(day)
    per_week = Counter(week_of(d) for d in dues.values() if d)
    assert max(per_week.values()) <= 10
    for due in dues.values():
        assert due is not None
        assert due.weekday() < 5
        assert abs((due - nominal).days) <= 14

    # A second sync changes nothing.
    again = world.sync()
    assert not again.plan.actions
    assert {t.contact_id: t.due for t in world.open_tasks()} == dues

    # Touching one of them moves only that one.
    world.advance(days=10)
    engine = world.engine()
    contact = engine.roster.get("p07")
    assert contact is not None
    engine.touch(contact, world.today())
    engine.state.close()
    after = {t.contact_id: t.due for t in world.open_tasks()}
    moved = {cid for cid in dues if after[cid] != dues[cid]}
    assert moved == {"p07"}
    assert Counter(week_of(d) for d in after.values() if d).most_common(1)[0][1] <= 10


def test_a_snooze_is_never_moved_and_counts_in_the_load(tmp_path: Path) -> None:
    world = World(
        tmp_path, _roster_config(6, "2 weeks", {"capacity": {"per_week": 1}, "flex": "50%"})
    )
    world.sync()
    task = world.the_open("p00")
    snoozed_to = date(2026, 12, 30)
    world.set_due_raw(task, snoozed_to)
    for other in world.open_tasks():
        if other.contact_id != "p00":
            world.complete_raw(other, "COMPLETED:20261121T120000Z")
    world.advance(hours=1)
    result = world.sync()
    assert world.the_open("p00").due == snoozed_to
    dues = [t.due for t in world.open_tasks() if t.contact_id != "p00"]
    # 5 regenerated into a window of 2 weeks ± 7 days with one a week: some weeks
    # overflow, and the plan says so.
    assert result.plan.warnings and "capacity of 1" in result.plan.warnings[0]
    assert all(d is not None and abs((d - date(2026, 12, 5)).days) <= 7 for d in dues)


def test_changing_the_schedule_keeps_dates_that_still_fit(tmp_path: Path) -> None:
    world = World(tmp_path, _roster_config(12, "1 month", {}))
    world.sync()
    before = {t.contact_id: t.due for t in world.open_tasks()}
    # Flex and capacity: every date already set still fits, none moves.
    world.edit_config(schedule={"capacity": {"per_week": 2}, "flex": "20%"})
    assert not world.sync().plan.actions
    # Easy weekends: only the dates on a weekend move, each to a weekday nearby.
    world.edit_config(schedule={"flex": "20%", "easy_days": ["sat", "sun"]})
    result = world.sync()
    after = {t.contact_id: t.due for t in world.open_tasks()}
    moved = {cid for cid in before if before[cid] != after[cid]}
    assert moved == {cid for cid, d in before.items() if d and d.weekday() >= 5}
    assert all(a.reason == "scheduling rules changed" for a in result.plan.actions), [
        a.describe() for a in result.plan.actions
    ]
    assert all(d and d.weekday() < 5 for d in after.values())


# --- config -----------------------------------------------------------------------------


def _config(tmp_path: Path, schedule: Any) -> Path:
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"schedule": schedule}))
    return path


def test_schedule_keys_load(tmp_path: Path) -> None:
    config, _ = load_config(_config(tmp_path, EVEN))
    assert config.schedule.policy == Policy(10, 0.15, frozenset({5, 6}))
    assert not config.warnings


def test_avoid_weekends_still_loads_with_a_deprecation_warning(tmp_path: Path) -> None:
    config, _ = load_config(_config(tmp_path, {"avoid_weekends": True}))
    assert config.schedule.policy.easy_days == frozenset({5, 6})
    assert any(
        "c.yaml:2 schedule.avoid_weekends: is deprecated" in w
        and "easy_days: [saturday, sunday]" in w
        for w in config.warnings
    ), config.warnings


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"flex": "80%"}, "flex '80%' is not a share of the interval like 15%"),
        ({"flex": 15}, "flex '15' needs a percent sign, like 15%"),
        ({"flex": "lots"}, "is not a share"),
        ({"easy_days": ["caturday"]}, "'caturday' is not a day of the week"),
        (
            {"easy_days": [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]},
            "leave at least one",
        ),
        ({"capacity": {"per_week": 0}}, "schedule.capacity.per_week"),
        ({"capacity": {"per_wek": 3}}, "did you mean 'per_week'"),
    ],
)
def test_bad_schedule_keys_are_named(tmp_path: Path, schedule: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, schedule))
    assert message in "\n".join(err.value.problems), err.value.problems


# --- check / status warn about an infeasible roster ----------------------------------


def test_an_infeasible_roster_warns_with_the_weekly_rate_it_needs(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    # 28 people every 2 weeks = 14 due dates a week, for a capacity of 10.
    data = _roster_config(28, "2 weeks", {"capacity": {"per_week": 10}, "flex": "15%"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    for command in ("check", "status"):
        done = subprocess.run(
            [sys.executable, "-m", "kit_sync", "--config", str(tmp_path / "config.yaml"), command],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "the roster needs about 14 a week; capacity is 10" in done.stderr, done.stderr
    data["schedule"]["capacity"]["per_week"] = 14
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", str(tmp_path / "config.yaml"), "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "needs about" not in done.stderr


def test_a_burst_over_capacity_is_reported_by_sync_and_status(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    # 5 people every 2 weeks, all touched today: their windows (± 7 days) span 3
    # weeks of capacity 1, so weeks overflow (and the roster needs 2.5 a week).
    data = _roster_config(5, "2 weeks", {"capacity": {"per_week": 1}, "flex": "50%"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kit_sync", "--config", str(tmp_path / "config.yaml"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    assert cli("sync").returncode == 0
    logged = ""
    for i in range(5):
        done = cli("touch", f"p{i:02d}")
        assert done.returncode == 0, done.stderr
        logged += done.stderr
    # The cycle that could not fit a date says which week is over.
    assert "due dates, more than the capacity of 1 a week" in logged, logged
    status = cli("status")
    assert status.returncode == 0
    assert "hold more due dates than the capacity of 1" in status.stderr, status.stderr
    assert "the roster needs about 2.5 a week; capacity is 1" in status.stderr


def test_overload_warning_names_the_weeks() -> None:
    from kit_sync.schedule import overload_warning

    today = date(2026, 11, 25)
    dues = [date(2026, 11, 30)] * 3 + [date(2026, 12, 7)] * 2 + [date(2026, 11, 2)] * 9
    warning = overload_warning(dues, today, Policy(capacity=2))
    assert warning == (
        "1 week(s) hold more due dates than the capacity of 2: 2026-W49 (3); see kit-sync load"
    )
    assert overload_warning(dues, today, Policy(capacity=3)) is None
    assert overload_warning(dues, today, Policy()) is None


def test_a_backend_that_regenerates_itself_gets_the_placed_date_once(tmp_path: Path) -> None:
    """Exchange moves its regenerating task itself (in UTC): the engine then writes
    the placed date, once, and leaves it there."""
    from kit_sync.model import Status, TaskChange
    from tests.test_engine_regenerating import engine_for

    data = _roster_config(1, "3 weeks", EVEN)
    data["timezone"] = "Pacific/Auckland"
    world = World(tmp_path, data)

    def run(fn: Any = None) -> Any:
        engine = engine_for(world)
        try:
            return fn(engine) if fn else engine.run_cycle()
        finally:
            engine.state.close()

    run()
    master = world.the_open("p00")
    world.at(datetime(2026, 12, 4, 19, 30, tzinfo=UTC))  # Sat 5 Dec, 08:30 in Auckland
    run(lambda e: e.backend.update_task(master, TaskChange(status=Status.COMPLETED)))
    run()
    placed = world.the_open("p00")
    assert placed.uid == master.uid
    assert placed.due is not None and placed.due.weekday() < 5
    assert abs((placed.due - date(2026, 12, 26)).days) <= 3  # Sat 5 Dec + 3 weeks ± 3
    assert run().plan.actions == []
    assert world.the_open("p00").due == placed.due


def test_the_dry_run_shows_the_days_the_sync_then_writes(tmp_path: Path) -> None:
    world = World(tmp_path, _roster_config(30, "1 month", EVEN))
    engine = world.engine()
    dry = engine.run_cycle(dry_run=True)
    engine.state.close()
    planned = {a.contact_id: a.new.due for a in dry.plan.actions if a.new is not None}
    world.sync()
    assert {t.contact_id: t.due for t in world.open_tasks()} == planned
