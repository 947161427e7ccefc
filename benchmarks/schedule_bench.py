"""What placing due dates (schedule: capacity, flex, easy_days) costs the planner.

Plans N contacts in two situations, each with the schedule off (the baseline) and
on, in this one process, and prints the times and their ratio:

1. a first sync: N never-touched contacts, N creates;
2. a burst: N open tasks all completed on one day, N regenerations (every due date
   placed, each window searched against the load of all the others).

    .venv/bin/python benchmarks/schedule_bench.py [--sizes 1000 5000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from kit_sync.cadence import Interval
from kit_sync.model import AnchorKind, Contact, KitMeta, KitTask, Roster, Status
from kit_sync.plan import Inputs, build_plan
from kit_sync.schedule import Policy

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)
ON = Policy(capacity=50, flex=0.15, easy_days=frozenset({5, 6}))


def roster(n: int) -> Roster:
    return Roster([Contact(f"p{i}", f"Person {i}", Interval(months=3)) for i in range(n)])


def completed_tasks(n: int) -> list[KitTask]:
    day = date(2026, 8, 21)
    return [
        KitTask(
            f"kit-{i:016d}-p{i}@kit-sync",
            f"p{i}.ics",
            "etag",
            Status.COMPLETED,
            date(2026, 11, 21),
            KitMeta(f"p{i}", day, AnchorKind.TOUCH, "P3M", date(2026, 11, 21)),
            completed=datetime(2026, 11, 21, 9, tzinfo=UTC),
        )
        for i in range(n)
    ]


def timed(inputs: Inputs, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        plan = build_plan(inputs)
        times.append(time.perf_counter() - start)
        assert len(plan.actions) == len(inputs.roster.contacts)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    print(f"# kit-sync placement benchmark, python {platform.python_version()}")
    print(f"# schedule on: capacity {ON.capacity}/week, flex 15%, easy Sat+Sun; median of 3")
    print(f"{'case':<12} {'N':>6} {'off (s)':>9} {'on (s)':>9} {'ratio':>7}")
    for n in args.sizes:
        people = roster(n)
        for case, tasks in (("first sync", []), ("burst", completed_tasks(n))):
            off = timed(Inputs(people, tasks, [], NOW, TZ))
            on = timed(Inputs(people, tasks, [], NOW, TZ, schedule=ON))
            print(f"{case:<12} {n:>6} {off:>9.3f} {on:>9.3f} {on / off:>6.2f}x")


if __name__ == "__main__":
    main()
