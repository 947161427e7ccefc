"""Local (vdir) backend figures against the neighbours and the filesystem floor.

    .venv/bin/python benchmarks/local_bench.py [--sizes 1000,10000] [--rounds 5]

Every figure is a whole process (start-up included), measured in this run, the
processes of one comparison interleaved round by round; each line gives the median
and the min-max over the rounds and the ratio of the medians. What is compared:

1. no-change `kit-sync sync` against `todo list` (todoman) and `vdirsyncer sync`
   (the folder paired with a second local folder) on the same folder, and against
   the floor: a Python process doing `os.scandir` + `stat` of the folder. CPU time
   (user + sys of the child, from wait4): the fair figure on a shared machine,
   where the wall time mostly measures the other users. Targets at N = 1,000: <= 0.5x
   todoman and vdirsyncer; at N = 10,000: <= 10x the floor.
2. the first `kit-sync sync` (N creates) against a bare loop writing the same bytes
   the way kit-sync must (temp file, write, fsync, rename; the folder fsynced once at
   the end), each on an empty folder. Wall time: both wait on the disk, and that
   wait is the cost. Target: <= 2x.
3. start-up: `kit-sync --help`, and `kit-sync status` with a roster of one contact
   (an empty roster is a config error, exit 2), against `python -c pass` (CPU
   time). Target: <= 3x.
4. peak RSS (the child's own VmHWM, polled from /proc) of the first and a
   no-change sync at the largest N. Target at N = 10,000: <= 100 MB.

The roster is inline YAML in the config (`--roster csv`: a CSV include, as an
Outlook/Google export would be). Figures, not assertions: the tests pin behaviour.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent
PY = sys.executable

FLOOR = """
import os, sys
n = 0
for e in os.scandir(sys.argv[1]):
    if e.name.endswith(".ics"):
        e.stat()
        n += 1
"""

BARE_LOOP = """
import os, sys, tempfile
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), "rb") as fh:
        data = fh.read()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dst)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, os.path.join(dst, name))
fd = os.open(dst, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
"""


def line(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: int


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """One child process: wall and CPU seconds (its own rusage, from wait4) and its
    peak RSS (VmHWM polled from /proc: ru_maxrss would count this parent's pages)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    status = Path(f"/proc/{proc.pid}/status")
    peak_kb = 0
    while True:
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            for row in status.read_text().splitlines():
                if row.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(row.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(code)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{err[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, peak_kb // 1024)


@dataclass
class Series:
    name: str
    runs: list[Run] = field(default_factory=list)

    def values(self, what: str) -> list[float]:
        return [getattr(r, what) for r in self.runs]

    def median(self, what: str) -> float:
        return statistics.median(self.values(what))

    def show(self, what: str) -> str:
        v = self.values(what)
        scale, unit = (1000, "ms") if max(v) < 2 else (1, "s")
        fmt = ".0f" if unit == "ms" else ".2f"
        return (
            f"{self.name} {statistics.median(v) * scale:{fmt}} {unit} "
            f"[{min(v) * scale:{fmt}}-{max(v) * scale:{fmt}}]"
        )


def interleave(
    commands: dict[str, Callable[[], Run]], rounds: int, prepare: Callable[[], None] | None = None
) -> dict[str, Series]:
    out = {name: Series(name) for name in commands}
    for _ in range(rounds):
        for name, fn in commands.items():
            if prepare is not None:
                prepare()
            out[name].runs.append(fn())
    return out


RESULTS: list[tuple[str, float, float, bool]] = []


def verdict(target: str, kit: Series, base: Series, what: str, limit: float) -> None:
    ratio = kit.median(what) / base.median(what)
    ok = ratio <= limit
    RESULTS.append((target, ratio, limit, ok))
    line(
        f"{target}: {kit.show(what)} vs {base.show(what)} ({what}): ratio {ratio:.2f} "
        f"(target <= {limit:g}) {'PASS' if ok else 'FAIL'}"
    )


# --- the kit ------------------------------------------------------------------------


def write_kit(folder: Path, n: int, roster: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    people = [
        {"name": f"Person {i:05d}", "email": f"p{i}@example.com", "tier": ("inner", "core")[i % 2]}
        for i in range(n)
    ]
    config: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "backend": {"type": "local", "path": "tasks"},
        "state": "state.sqlite",
        "tiers": {"inner": {"every": "3 weeks"}, "core": {"every": "2 months"}},
    }
    if roster == "csv":
        with (folder / "people.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["name", "email", "tier"])
            for p in people:
                w.writerow([p["name"], p["email"], p["tier"]])
        config["include"] = [{"path": "people.csv", "format": "csv"}]
    else:
        config["contacts"] = people
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def kit(config: Path, *args: str) -> Callable[[], Run]:
    cmd = [str(BIN / "kit-sync"), "-q", "--config", str(config), *args]
    return lambda: run(cmd, config.parent)


def reset(config: Path) -> None:
    shutil.rmtree(config.parent / "tasks", ignore_errors=True)
    for p in config.parent.glob("state.sqlite*"):
        p.unlink()


def settle(config: Path, command: str) -> None:
    """Once the files just written are 2 s old (kit_sync.quick.RACY_NS), one run that
    finds nothing to do leaves the quick check's record, as the first `todo list`
    fills todoman's cache: the rounds measure the steady state of each tool."""
    time.sleep(2.1)
    kit(config, command)()


def todoman(folder: Path, tasks: Path) -> Callable[[], Run]:
    """`todo list` on the same folder (todoman's lists are the folder's subfolders)."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "todoman.py"
    conf.write_text(
        f'path = "{tasks.parent}/*"\ndate_format = "%Y-%m-%d"\ntime_format = "%H:%M"\n'
        f'cache_path = "{folder}/todoman-cache.sqlite3"\ndefault_list = "{tasks.name}"\n'
    )
    cmd = [str(BIN / "todo"), "--config", str(conf), "list"]
    env = dict(os.environ, TZ="Europe/Berlin")
    return lambda: run(cmd, folder, env)


def vdirsyncer(folder: Path, tasks: Path) -> Callable[[], Run]:
    """`vdirsyncer sync` of the folder with a second local folder (already in sync)."""
    other = folder / "other"
    other.mkdir(parents=True, exist_ok=True)
    (folder / "config").write_text(
        f'[general]\nstatus_path = "{folder}/status/"\n\n'
        '[pair tasks]\na = "kit"\nb = "other"\ncollections = null\n\n'
        f'[storage kit]\ntype = "filesystem"\npath = "{tasks}/"\nfileext = ".ics"\n\n'
        f'[storage other]\ntype = "filesystem"\npath = "{other}/"\nfileext = ".ics"\n'
    )
    env = dict(os.environ, VDIRSYNCER_CONFIG=str(folder / "config"))
    exe = str(BIN / "vdirsyncer")
    subprocess.run([exe, "discover"], env=env, check=True, capture_output=True, input=b"y\n" * 4)
    subprocess.run([exe, "sync"], env=env, check=True, capture_output=True)
    return lambda: run([exe, "sync"], folder, env)


# --- the comparisons ----------------------------------------------------------------


def no_change(n: int, work: Path, rounds: int, roster: str) -> Run:
    line(f"\n## no-change sync, N = {n:,}")
    config = write_kit(work / f"kit-{n}", n, roster)
    tasks = config.parent / "tasks"
    first = kit(config, "sync")()
    line(f"(first sync {first.wall:.1f} s wall, {first.cpu:.1f} s CPU, peak {first.peak_mb} MB)")
    settle(config, "sync")
    commands: dict[str, Callable[[], Run]] = {
        "kit-sync sync": kit(config, "sync"),
        "scandir+stat": lambda: run([PY, "-c", FLOOR, str(tasks)], work),
    }
    if n <= 1000:
        commands["todo list"] = todoman(work / f"todoman-{n}", tasks)
        commands["vdirsyncer sync"] = vdirsyncer(work / f"vdirsyncer-{n}", tasks)
        commands["todo list"]()  # fills todoman's cache
    series = interleave(commands, rounds)
    ks = series["kit-sync sync"]
    if "todo list" in series:
        verdict(f"N={n:,} no-change sync vs todo list", ks, series["todo list"], "cpu", 0.5)
        verdict(f"N={n:,} no-change sync vs vdirsyncer", ks, series["vdirsyncer sync"], "cpu", 0.5)
    limit = 10 if n >= 10000 else float("inf")
    if limit != float("inf"):
        verdict(f"N={n:,} no-change sync vs scandir+stat", ks, series["scandir+stat"], "cpu", limit)
    else:
        line(
            f"(floor: {ks.show('cpu')} vs {series['scandir+stat'].show('cpu')}: ratio "
            f"{ks.median('cpu') / series['scandir+stat'].median('cpu'):.1f}; the 10x target is "
            "for N = 10,000)"
        )
    line("(wall: " + "; ".join(s.show("wall") for s in series.values()) + ")")
    return Run(0, 0, max(r.peak_mb for r in ks.runs))


def first_sync(n: int, work: Path, rounds: int, roster: str) -> Run:
    line(f"\n## first sync, N = {n:,}")
    config = write_kit(work / f"first-{n}", n, roster)
    reset(config)
    kit(config, "sync")()
    source = work / f"first-{n}-bytes"
    shutil.copytree(config.parent / "tasks", source)
    target = work / f"first-{n}-bare"

    def bare() -> Run:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        return run([PY, "-c", BARE_LOOP, str(source), str(target)], work)

    def first() -> Run:
        reset(config)
        return kit(config, "sync")()

    series = interleave({"kit-sync sync": first, "bare write loop": bare}, rounds)
    verdict(
        f"N={n:,} first sync vs bare atomic-write loop",
        series["kit-sync sync"],
        series["bare write loop"],
        "wall",
        2,
    )
    line(f"(CPU: {series['kit-sync sync'].show('cpu')} vs {series['bare write loop'].show('cpu')})")
    return Run(0, 0, max(r.peak_mb for r in series["kit-sync sync"].runs))


def start_up(work: Path, rounds: int) -> None:
    line("\n## start-up")
    config = write_kit(work / "tiny", 1, "yaml")
    run([str(BIN / "kit-sync"), "--help"], work)  # compiles what --help imports
    kit(config, "sync")()
    settle(config, "status")
    series = interleave(
        {
            "kit-sync --help": lambda: run([str(BIN / "kit-sync"), "--help"], work),
            "kit-sync status": kit(config, "status"),
            "python -c pass": lambda: run([PY, "-c", "pass"], work),
        },
        rounds,
    )
    base = series["python -c pass"]
    verdict("kit-sync --help vs python -c pass", series["kit-sync --help"], base, "cpu", 3)
    status = series["kit-sync status"]
    verdict("kit-sync status (1 contact) vs python -c pass", status, base, "cpu", 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each comparison")
    parser.add_argument(
        "--first-rounds", type=int, default=3, help="rounds of the first-sync comparison"
    )
    parser.add_argument("--roster", choices=("yaml", "csv"), default="yaml")
    parser.add_argument("--skip", default="", help="comma-separated: startup,first,nochange")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    line(f"# kit-sync local benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    load = os.getloadavg()
    line(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {load[0]:.1f}; roster: {args.roster}"
    )
    with tempfile.TemporaryDirectory(prefix="kit-local-bench-") as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # the quick check's pointers
        # Every tool runs as installed, with its compiled bytecode: pip compiles what
        # it installs (todoman, vdirsyncer, a `pip install .` of kit-sync), and an
        # editable kit-sync caches its own at its first run, unless this is set (as
        # in some sandboxes), which would recompile kit-sync's modules at every start.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        if "startup" not in skip:
            start_up(work, args.rounds)
        peaks: dict[int, tuple[int, int]] = {}
        for n in sizes:
            nc = (
                Run(0, 0, 0) if "nochange" in skip else no_change(n, work, args.rounds, args.roster)
            )
            fs = (
                Run(0, 0, 0)
                if "first" in skip
                else first_sync(n, work, args.first_rounds if n < 10000 else 1, args.roster)
            )
            peaks[n] = (fs.peak_mb, nc.peak_mb)
        big = max(sizes)
        first_mb, idle_mb = peaks[big]
        line(f"\n## peak RSS, N = {big:,}")
        for what, mb in (("first sync", first_mb), ("no-change sync", idle_mb)):
            if mb:
                ok = mb <= 100 or big < 10000
                RESULTS.append((f"N={big:,} peak RSS {what}", mb, 100, ok))
                line(f"{what}: {mb} MB (target <= 100 MB at N = 10,000) {'PASS' if ok else 'FAIL'}")
    line("\n## summary")
    for target, ratio, limit, ok in RESULTS:
        line(f"{'PASS' if ok else 'FAIL'}  {target}: {ratio:.2f} (<= {limit:g})")


if __name__ == "__main__":
    main()
